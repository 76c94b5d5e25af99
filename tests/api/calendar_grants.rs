//! Calendar collections are granted to users (V34): a member links only a
//! collection an admin granted to them or to everyone, revoking a grant removes
//! the links it alone covered (and their events), grants and links compare on
//! one canonical path, only admins manage grants, erasure takes a user's grants
//! and links, and V34 grants every link that existed before it.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::calendar::{ALICE, FROM, TO, connect, events, grant, link_only, sync};
use crate::helpers::{TestApp, assert_problem, spawn_app};
use crate::radicale::{Radicale, ics};

async fn try_link(app: &TestApp, token: &str, account: Uuid, path: &str) -> crate::helpers::Reply {
    app.post(
        "/v1/me/calendars",
        token,
        json!({ "account_id": account, "path": path }),
    )
    .await
}

async fn my_paths(app: &TestApp, token: &str) -> Vec<String> {
    let mine = app.get("/v1/me/calendars", token).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect()
}

/// The security review's finding: any member could link any collection of a
/// tenant account — another user's `/bob/private/` too — and read its events.
#[actix_web::test]
async fn a_member_cannot_link_a_collection_not_granted_to_them() {
    let app = spawn_app().await;
    let a = app.provision("calbob").await;
    let account = connect(&app, &a, "http://calendar.example/", "pw").await;
    let (_, alice) = app.add_user(&a, "member").await;
    let reply = try_link(&app, &alice, account, "/bob/private/").await;
    assert_problem(&reply, 403, "calendar_not_granted");
    assert!(my_paths(&app, &alice).await.is_empty());

    // Bob's grant is Bob's: it does not open the collection to Alice.
    let (bob_id, bob) = app.add_user(&a, "member").await;
    grant(&app, &a.owner_token, account, "/bob/private/", Some(bob_id)).await;
    let reply = try_link(&app, &alice, account, "/bob/private/").await;
    assert_problem(&reply, 403, "calendar_not_granted");
    assert_eq!(link_status(&app, &bob, account, "/bob/private/").await, 201);
    // One rule for everyone: the owner needs a grant too.
    let reply = try_link(&app, &a.owner_token, account, "/bob/private/").await;
    assert_problem(&reply, 403, "calendar_not_granted");
    assert!(my_paths(&app, &alice).await.is_empty());
    assert!(my_paths(&app, &a.owner_token).await.is_empty());
}

async fn link_status(app: &TestApp, token: &str, account: Uuid, path: &str) -> u16 {
    try_link(app, token, account, path).await.status.as_u16()
}

#[actix_web::test]
async fn a_member_links_what_is_granted_to_them_or_to_everyone() {
    let app = spawn_app().await;
    let a = app.provision("calgrant").await;
    let account = connect(&app, &a, "http://calendar.example/", "pw").await;
    let (alice_id, alice) = app.add_user(&a, "member").await;
    let (_, carol) = app.add_user(&a, "member").await;
    grant(
        &app,
        &a.owner_token,
        account,
        "/alice/work/",
        Some(alice_id),
    )
    .await;
    grant(&app, &a.owner_token, account, "/team/", None).await;
    link_only(&app, &alice, account, "/alice/work/").await;
    link_only(&app, &alice, account, "/team/").await;
    link_only(&app, &carol, account, "/team/").await;
    let reply = try_link(&app, &carol, account, "/alice/work/").await;
    assert_problem(&reply, 403, "calendar_not_granted");
    assert_eq!(my_paths(&app, &alice).await, ["/alice/work/", "/team/"]);
    assert_eq!(my_paths(&app, &carol).await, ["/team/"]);
    // Re-linking renames, still under the grant.
    let again = app
        .post(
            "/v1/me/calendars",
            &carol,
            json!({ "account_id": account, "path": "/team/", "display_name": "Team" }),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body["display_name"], "Team");
    // Another account's grant does not cover this account's collection.
    let other = connect(&app, &a, "http://calendar2.example/", "pw").await;
    let reply = try_link(&app, &carol, other, "/team/").await;
    assert_problem(&reply, 403, "calendar_not_granted");
}

#[actix_web::test]
async fn grants_are_managed_by_admins_for_users_of_the_tenant() {
    let app = spawn_app().await;
    let a = app.provision("calgrants").await;
    let account = connect(&app, &a, "http://calendar.example/", "pw").await;
    let grants = format!("/v1/calendar-accounts/{account}/grants");
    let (member_id, member) = app.add_user(&a, "member").await;
    let (_, admin) = app.add_user(&a, "admin").await;

    // A member may not grant (themselves either), list or revoke.
    let reply = app
        .post(
            &grants,
            &member,
            json!({ "path": "/x/", "user_id": member_id }),
        )
        .await;
    assert_problem(&reply, 403, "forbidden");
    assert_problem(&app.get(&grants, &member).await, 403, "forbidden");
    let made = grant(&app, &admin, account, "/x/", Some(member_id)).await;
    assert_problem(
        &app.delete(&format!("{grants}/{made}"), &member).await,
        403,
        "forbidden",
    );

    // The same grant twice; everyone twice.
    let reply = app
        .post(
            &grants,
            &admin,
            json!({ "path": "/x", "user_id": member_id }),
        )
        .await;
    assert_problem(&reply, 409, "calendar_grant_exists");
    grant(&app, &admin, account, "/x/", None).await;
    let reply = app
        .post(&grants, &admin, json!({ "path": "/x/", "user_id": null }))
        .await;
    assert_problem(&reply, 409, "calendar_grant_exists");

    // A user of another tenant answers like one that exists nowhere.
    let b = app.provision("calgrantsother").await;
    let (foreign, _) = app.add_user(&b, "member").await;
    for user in [foreign, Uuid::new_v4()] {
        let reply = app
            .post(&grants, &admin, json!({ "path": "/y/", "user_id": user }))
            .await;
        assert_problem(&reply, 422, "calendar_grant_user_unknown");
        assert_eq!(
            reply.body["detail"],
            format!("no user {user} in this tenant")
        );
    }
    // Unknown fields and ambiguous paths are refused.
    let reply = app
        .post(&grants, &admin, json!({ "path": "/y/", "role": "admin" }))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = app
        .post(&grants, &admin, json!({ "path": "/y/../x/" }))
        .await;
    assert_problem(&reply, 400, "validation_failed");

    // Listed newest first, paged; a revoked grant is gone, a second revoke 404s.
    let page = app.get(&format!("{grants}?limit=1"), &admin).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["items"][0]["user_id"], Value::Null);
    assert_eq!(page.body["items"][0]["path"], "/x/");
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!("{grants}?limit=1&cursor={cursor}"), &admin)
        .await;
    assert_eq!(next.body["items"][0]["id"], made.to_string());
    assert_eq!(next.body["items"][0]["user_id"], member_id.to_string());
    assert_eq!(next.body["next_cursor"], Value::Null);
    let gone = app.delete(&format!("{grants}/{made}"), &admin).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let again = app.delete(&format!("{grants}/{made}"), &admin).await;
    assert_problem(&again, 404, "not_found");
    let left = app.get(&grants, &admin).await;
    assert_eq!(left.body["items"].as_array().unwrap().len(), 1);
}

/// Grants and links are compared as strings, so both store one spelling per
/// collection (`calendar::path`): escapes of unreserved characters decoded, a
/// trailing `/`, case kept, ambiguous spellings refused.
#[actix_web::test]
async fn grant_and_link_compare_on_the_canonical_path() {
    let app = spawn_app().await;
    let a = app.provision("calpaths").await;
    let account = connect(&app, &a, "http://calendar.example/", "pw").await;
    let (bob_id, bob) = app.add_user(&a, "member").await;
    let grants = format!("/v1/calendar-accounts/{account}/grants");
    let reply = app
        .post(
            &grants,
            &a.owner_token,
            json!({ "path": "/bob/%70rivate", "user_id": bob_id }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["path"], "/bob/private/");
    // Every spelling of the granted collection links it (one link, not three).
    for path in ["/bob/private", "/bob/private/", "/bob/pr%69vate/"] {
        let reply = try_link(&app, &bob, account, path).await;
        assert_eq!(reply.status, 201, "{path}: {}", reply.body);
        assert_eq!(reply.body["path"], "/bob/private/");
    }
    assert_eq!(my_paths(&app, &bob).await, ["/bob/private/"]);
    // Paths are case-sensitive: another collection, not granted.
    let reply = try_link(&app, &bob, account, "/Bob/private/").await;
    assert_problem(&reply, 403, "calendar_not_granted");
    // Spellings a server could resolve to another collection are refused.
    for path in [
        "/bob/private/../../alice/",
        "/bob/%2e%2e/alice/",
        "/bob//private/",
        "/bob%2Fprivate/",
        "/bob/./private/",
        "bob/private/",
        "/bob/private/?x=1",
    ] {
        let reply = try_link(&app, &bob, account, path).await;
        assert_problem(&reply, 400, "validation_failed");
        let reply = app
            .post(&grants, &a.owner_token, json!({ "path": path }))
            .await;
        assert_problem(&reply, 400, "validation_failed");
    }
}

/// Revoking a grant removes, in its transaction, the links it alone covered
/// and their synced events; a later sync does not bring them back. A link that
/// another grant still covers stays.
#[actix_web::test]
async fn revoking_a_grant_removes_the_links_it_alone_covered_and_their_events() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/cal/").await;
    server
        .put(
            ALICE,
            "/alice/cal/a.ics",
            &ics("a", "Planning", "20261203T090000Z", "20261203T100000Z", ""),
        )
        .await;
    let app = spawn_app().await;
    let a = app.provision("calrevoke").await;
    let account = connect(&app, &a, &server.base, ALICE.1).await;
    let (member_id, member) = app.add_user(&a, "member").await;
    let (_, other) = app.add_user(&a, "member").await;
    let mine = grant(
        &app,
        &a.owner_token,
        account,
        "/alice/cal/",
        Some(member_id),
    )
    .await;
    let everyone = grant(&app, &a.owner_token, account, "/alice/cal/", None).await;
    link_only(&app, &member, account, "/alice/cal/").await;
    link_only(&app, &other, account, "/alice/cal/").await;
    assert_eq!(sync(&app, &a, account).await["state"], "succeeded");
    assert_eq!(events(&app, &member, FROM, TO).await.len(), 1);
    assert_eq!(events(&app, &other, FROM, TO).await.len(), 1);

    // The member's own grant goes: the everyone grant still covers both links.
    let grants = format!("/v1/calendar-accounts/{account}/grants");
    let gone = app
        .delete(&format!("{grants}/{mine}"), &a.owner_token)
        .await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(my_paths(&app, &member).await, ["/alice/cal/"]);
    // The everyone grant goes: both links and their events with it.
    let gone = app
        .delete(&format!("{grants}/{everyone}"), &a.owner_token)
        .await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    for token in [&member, &other] {
        assert!(my_paths(&app, token).await.is_empty());
        assert!(events(&app, token, FROM, TO).await.is_empty());
    }
    let su = app.superuser_client().await;
    let count = |table: &'static str| {
        let su = &su;
        async move {
            let row = su
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
                    &[&a.id],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert_eq!(count("calendar_links").await, 0);
    assert_eq!(count("calendar_events").await, 0);
    // A later sync finds no link to fill, and linking again is refused.
    assert_eq!(sync(&app, &a, account).await["state"], "succeeded");
    assert_eq!(count("calendar_links").await, 0);
    assert_eq!(count("calendar_events").await, 0);
    let reply = try_link(&app, &member, account, "/alice/cal/").await;
    assert_problem(&reply, 403, "calendar_not_granted");
    // The revocations are in the tenant's trail.
    let audit = app
        .get("/v1/audit?action=calendar_grant_revoked", &a.owner_token)
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert_eq!(
        audit.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        audit.body
    );
}

/// A link racing the revoke of its grant: whichever answers first, no link is
/// left once both have answered (the link's grant check and the revoke's link
/// deletion are serializable with each other). Prints how many links were made
/// before their revoke, to show both orders ran.
#[actix_web::test]
async fn a_link_racing_a_revoke_never_outlives_the_grant() {
    let app = spawn_app().await;
    let a = app.provision("calrace").await;
    let account = connect(&app, &a, "http://calendar.example/", "pw").await;
    let (member_id, member) = app.add_user(&a, "member").await;
    let su = app.superuser_client().await;
    let (mut linked, rounds) = (0, 20);
    for round in 0..rounds {
        let path = format!("/race/{round}/");
        let made = grant(&app, &a.owner_token, account, &path, Some(member_id)).await;
        let revoke = format!("/v1/calendar-accounts/{account}/grants/{made}");
        let (link, revoked) = futures_util::join!(
            try_link(&app, &member, account, &path),
            app.delete(&revoke, &a.owner_token)
        );
        assert_eq!(revoked.status, 204, "{}", revoked.body);
        match link.status.as_u16() {
            201 => linked += 1,
            403 => assert_problem(&link, 403, "calendar_not_granted"),
            other => panic!("round {round}: the link answered {other}: {}", link.body),
        }
        let left: i64 = su
            .query_one(
                "SELECT count(*) FROM calendar_links WHERE tenant_id = $1",
                &[&a.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "round {round}: a link outlived its grant");
    }
    eprintln!("links made before their revoke: {linked} of {rounds}");
}

/// User erasure deletes the user's grants and linked calendars (their events
/// by the cascade) in its last transaction, and counts them.
#[actix_web::test]
async fn erasing_a_user_deletes_their_grants_and_linked_calendars() {
    let app = spawn_app().await;
    let a = app.provision("calerase").await;
    let account = connect(&app, &a, "http://calendar.example/", "pw").await;
    let (user, token) = app.add_user(&a, "member").await;
    let (_, compliance) = app.add_user(&a, "compliance").await;
    grant(&app, &a.owner_token, account, "/u/cal/", Some(user)).await;
    grant(&app, &a.owner_token, account, "/everyone/", None).await;
    link_only(&app, &token, account, "/u/cal/").await;
    link_only(&app, &token, account, "/everyone/").await;
    let done = crate::erasure::erase(&app, &compliance, user).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["calendar_grants"], 1, "{done}");
    assert_eq!(done["counts"]["calendar_links"], 2, "{done}");
    let su = app.superuser_client().await;
    let row = su
        .query_one(
            "SELECT (SELECT count(*) FROM calendar_grants WHERE tenant_id = $1 AND user_id = $2),
                    (SELECT count(*) FROM calendar_links WHERE tenant_id = $1 AND user_id = $2),
                    (SELECT count(*) FROM calendar_grants WHERE tenant_id = $1 AND user_id IS NULL)",
            &[&a.id, &user],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 0));
    assert_eq!(
        row.get::<_, i64>(2),
        1,
        "the everyone grant names no user: it stays"
    );
    // An erased user cannot be granted anything.
    let reply = app
        .post(
            &format!("/v1/calendar-accounts/{account}/grants"),
            &a.owner_token,
            json!({ "path": "/u/cal/", "user_id": user }),
        )
        .await;
    assert_problem(&reply, 422, "calendar_grant_user_unknown");
}

/// Links made before V34 keep working: the migration grants each to its user.
#[actix_web::test]
async fn v34_grants_every_existing_link_to_its_user() {
    let (url, db) = crate::helpers::database_migrated_to(33).await;
    let (tenant, user, account, link) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    db.execute(
        "INSERT INTO tenants (id, slug, name, home_region, plan) VALUES ($1, 'v34', 'V34', 'us-east1', 'pro')",
        &[&tenant],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO users (tenant_id, id, home_region, email, display_name, role)
         VALUES ($1, $2, 'us-east1', 'u@x.example', 'U', 'member')",
        &[&tenant, &user],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO calendar_accounts (tenant_id, id, home_region, base_url, username, auth_kind, secret_sealed)
         VALUES ($1, $2, 'us-east1', 'http://calendar.example/', 'u', 'password', '\\x01')",
        &[&tenant, &account],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO calendar_links (tenant_id, id, home_region, account_id, user_id, path)
         VALUES ($1, $2, 'us-east1', $3, $4, '/u/old')",
        &[&tenant, &link, &account, &user],
    )
    .await
    .unwrap();
    let report = meridian::db::migrate::run(&url, None, Some(meridian::db::Dialect::Postgres))
        .await
        .unwrap();
    assert!(
        report.applied.iter().any(|m| m.contains("V34")),
        "{:?}",
        report.applied
    );
    let rows = db
        .query(
            "SELECT account_id, path, user_id, created_by, home_region FROM calendar_grants WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.get::<_, Uuid>(0), account);
    // The stored path exactly, even a spelling the API no longer stores.
    assert_eq!(row.get::<_, String>(1), "/u/old");
    assert_eq!(row.get::<_, Option<Uuid>>(2), Some(user));
    assert_eq!(row.get::<_, Option<Uuid>>(3), None);
    assert_eq!(row.get::<_, String>(4), "us-east1");
}
