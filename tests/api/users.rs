//! `/v1/users`: the CRUD routes, token death on disable/delete, owner rules and
//! the plan's user limit (also under concurrent creates).

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Reply, Tenant, TestApp, assert_problem, spawn_app};

async fn create_user(app: &TestApp, token: &str, email: &str, role: &str) -> Reply {
    app.post(
        "/v1/users",
        token,
        json!({ "email": email, "display_name": "Someone", "role": role }),
    )
    .await
}

async fn patch_user(app: &TestApp, token: &str, id: impl std::fmt::Display, body: Value) -> Reply {
    app.patch(&format!("/v1/users/{id}"), token, body).await
}

async fn delete_user(app: &TestApp, token: &str, id: impl std::fmt::Display) -> Reply {
    app.delete(&format!("/v1/users/{id}"), token).await
}

/// A platform admin sets the tenant's user limit.
async fn set_user_limit(app: &TestApp, t: &Tenant, users: u32) {
    let body = json!({ "limits": { "users": users } });
    let reply = app
        .patch(
            &format!("/v1/tenants/{}", t.id),
            &app.platform_token(),
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["limits"]["users"], users);
}

/// Ids of the tenant's users, as listed (one page is enough in these tests).
async fn listed_ids(app: &TestApp, t: &Tenant) -> Vec<String> {
    let reply = app.get("/v1/users?limit=200", &t.owner_token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["next_cursor"].is_null(), "{}", reply.body);
    let items = reply.body["items"].as_array().unwrap();
    items
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn create_list_get_patch_delete() {
    let app = spawn_app().await;
    let t = app.provision("crud").await;
    let created = create_user(&app, &t.owner_token, " Ada@Example.COM ", "admin").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let location = created.headers.get("location").unwrap().to_str().unwrap();
    assert_eq!(location, format!("/v1/users/{id}"));
    assert_eq!(created.body["email"], "ada@example.com");
    assert_eq!(created.body["role"], "admin");
    assert_eq!(created.body["status"], "active");

    // Newest first: the new user, then the owner.
    assert_eq!(
        listed_ids(&app, &t).await,
        vec![id.clone(), t.owner_id.to_string()]
    );

    let got = app.get(location, &t.owner_token).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body, created.body);

    let patched = patch_user(
        &app,
        &t.owner_token,
        &id,
        json!({ "display_name": "Ada L." }),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["display_name"], "Ada L.");
    let got = app.get(location, &t.owner_token).await;
    assert_eq!(got.body["display_name"], "Ada L.");
    assert_eq!(got.body["role"], "admin");

    let deleted = delete_user(&app, &t.owner_token, &id).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_problem(&app.get(location, &t.owner_token).await, 404, "not_found");
    assert_problem(
        &delete_user(&app, &t.owner_token, &id).await,
        404,
        "not_found",
    );
    assert_eq!(listed_ids(&app, &t).await, vec![t.owner_id.to_string()]);
}

#[actix_web::test]
async fn duplicate_email_is_refused_case_insensitively() {
    let app = spawn_app().await;
    let t = app.provision("dupes").await;
    let first = create_user(&app, &t.owner_token, "dup@example.com", "member").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = create_user(&app, &t.owner_token, "DUP@Example.com", "viewer").await;
    assert_problem(&again, 409, "email_taken");
    // A deleted user's email is free again.
    let id = first.body["id"].as_str().unwrap();
    assert_eq!(delete_user(&app, &t.owner_token, id).await.status, 204);
    let reused = create_user(&app, &t.owner_token, "Dup@example.com", "member").await;
    assert_eq!(reused.status, 201, "{}", reused.body);
}

#[actix_web::test]
async fn disabled_token_fails_at_once_and_works_again_when_reenabled() {
    let app = spawn_app().await;
    let t = app.provision("disable").await;
    let (id, token) = app.add_user(&t, "member").await;
    assert_eq!(app.get("/v1/channels", &token).await.status, 200);

    let off = patch_user(&app, &t.owner_token, id, json!({ "status": "disabled" })).await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["status"], "disabled");
    assert_problem(
        &app.get("/v1/channels", &token).await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &app.get(&format!("/v1/tenants/{}", t.id), &token).await,
        401,
        "unauthenticated",
    );

    let on = patch_user(&app, &t.owner_token, id, json!({ "status": "active" })).await;
    assert_eq!(on.status, 200, "{}", on.body);
    assert_eq!(app.get("/v1/channels", &token).await.status, 200);
}

#[actix_web::test]
async fn deleted_user_token_fails_at_once_and_user_is_gone() {
    let app = spawn_app().await;
    let t = app.provision("deleted").await;
    let (id, token) = app.add_user(&t, "admin").await;
    assert_eq!(app.get("/v1/users", &token).await.status, 200);
    assert_eq!(delete_user(&app, &t.owner_token, id).await.status, 204);
    assert_problem(&app.get("/v1/users", &token).await, 401, "unauthenticated");
    assert_problem(
        &app.get(&format!("/v1/users/{id}"), &t.owner_token).await,
        404,
        "not_found",
    );
}

#[actix_web::test]
async fn only_owners_make_owners() {
    let app = spawn_app().await;
    let t = app.provision("owners").await;
    let (_, admin) = app.add_user(&t, "admin").await;
    let by_admin = create_user(&app, &admin, "boss@example.com", "owner").await;
    assert_problem(&by_admin, 403, "forbidden");
    let (member, _) = app.add_user(&t, "member").await;
    let promote = patch_user(&app, &admin, member, json!({ "role": "owner" })).await;
    assert_problem(&promote, 403, "forbidden");
    let by_owner = create_user(&app, &t.owner_token, "boss@example.com", "owner").await;
    assert_eq!(by_owner.status, 201, "{}", by_owner.body);
    assert_eq!(by_owner.body["role"], "owner");
}

#[actix_web::test]
async fn the_last_active_owner_stays() {
    let app = spawn_app().await;
    let t = app.provision("lastowner").await;
    let me = t.owner_id;
    for change in [json!({ "role": "admin" }), json!({ "status": "disabled" })] {
        let reply = patch_user(&app, &t.owner_token, me, change).await;
        assert_problem(&reply, 409, "last_owner");
    }
    assert_problem(
        &delete_user(&app, &t.owner_token, me).await,
        409,
        "last_owner",
    );
    let still = app.get(&format!("/v1/users/{me}"), &t.owner_token).await;
    assert_eq!(
        (&still.body["role"], &still.body["status"]),
        (&json!("owner"), &json!("active"))
    );

    // With a second owner, the first may be disabled, then deleted; not the second.
    let (second, token) = app.add_user(&t, "owner").await;
    let off = patch_user(&app, &token, me, json!({ "status": "disabled" })).await;
    assert_eq!(off.status, 200, "{}", off.body);
    let demote = patch_user(&app, &token, second, json!({ "role": "admin" })).await;
    assert_problem(&demote, 409, "last_owner");
    assert_eq!(delete_user(&app, &token, me).await.status, 204);
    assert_problem(&delete_user(&app, &token, second).await, 409, "last_owner");
    let gone = patch_user(&app, &token, me, json!({ "role": "admin" })).await;
    assert_problem(&gone, 404, "not_found");
}

#[actix_web::test]
async fn plan_user_limit_applies_on_the_next_request() {
    let app = spawn_app().await;
    let t = app.provision("userlimit").await;
    for _ in 0..3 {
        app.add_user(&t, "member").await;
    }
    // Four users now; a limit of 3 refuses the very next create.
    set_user_limit(&app, &t, 3).await;
    let over = create_user(&app, &t.owner_token, "late@example.com", "member").await;
    assert_problem(&over, 403, "plan_limit_exceeded");

    // Deleting two brings the count to 2: exactly one more fits.
    let owner = t.owner_id.to_string();
    for id in listed_ids(&app, &t)
        .await
        .iter()
        .filter(|id| **id != owner)
        .take(2)
    {
        assert_eq!(delete_user(&app, &t.owner_token, id).await.status, 204);
    }
    let fits = create_user(&app, &t.owner_token, "a@example.com", "viewer").await;
    assert_eq!(fits.status, 201, "{}", fits.body);
    let over = create_user(&app, &t.owner_token, "b@example.com", "viewer").await;
    assert_problem(&over, 403, "plan_limit_exceeded");

    set_user_limit(&app, &t, 4).await;
    let fits = create_user(&app, &t.owner_token, "b@example.com", "viewer").await;
    assert_eq!(fits.status, 201, "{}", fits.body);
    assert_eq!(listed_ids(&app, &t).await.len(), 4);
}

#[actix_web::test]
async fn user_limit_is_exact_under_concurrent_creates() {
    let app = spawn_app().await;
    let t = app.provision("racing").await;
    set_user_limit(&app, &t, 5).await;

    // Warm the pool so the creates race each other, not connection set-up.
    let warm = join_all((0..8).map(|_| app.get("/v1/users", &t.owner_token))).await;
    assert!(warm.iter().all(|r| r.status == 200));
    let emails: Vec<String> = (0..12).map(|n| format!("racer{n}@example.com")).collect();
    let creates = emails
        .iter()
        .map(|e| create_user(&app, &t.owner_token, e, "member"));
    let replies = join_all(creates).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        created,
        4,
        "owner + 4 = 5: {:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 201) {
        match reply.status.as_u16() {
            403 => assert_problem(reply, 403, "plan_limit_exceeded"),
            503 => assert_problem(reply, 503, "retry_exhausted"),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!(listed_ids(&app, &t).await.len(), 5);
}

#[actix_web::test]
async fn a_token_stops_working_when_its_users_role_changes() {
    let app = spawn_app().await;
    let t = app.provision("demotion").await;
    let (second_owner, second_token) = app.add_user(&t, "owner").await;
    let demoted = app
        .patch(
            &format!("/v1/users/{second_owner}"),
            &t.owner_token,
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    // The old owner token can neither act nor undo its demotion.
    let reply = app
        .patch(
            &format!("/v1/users/{second_owner}"),
            &second_token,
            json!({ "role": "owner" }),
        )
        .await;
    assert_problem(&reply, 401, "unauthenticated");
    assert_problem(
        &app.get("/v1/channels", &second_token).await,
        401,
        "unauthenticated",
    );
    let fresh = app.token(t.id, second_owner, meridian::auth::Role::Viewer);
    assert_eq!(app.get("/v1/channels", &fresh).await.status, 200);
    assert_problem(
        &app.post("/v1/channels", &fresh, json!({ "name": "nope" }))
            .await,
        403,
        "forbidden",
    );
}

#[actix_web::test]
async fn only_owners_grant_or_touch_the_compliance_role() {
    let app = spawn_app().await;
    let t = app.provision("grants").await;
    let (admin_id, admin) = app.add_user(&t, "admin").await;
    let (member, _) = app.add_user(&t, "member").await;

    // The report: an admin makes itself a compliance officer, then widens residency.
    let itself = patch_user(&app, &admin, admin_id, json!({ "role": "compliance" })).await;
    assert_problem(&itself, 403, "forbidden");
    let promote = patch_user(&app, &admin, member, json!({ "role": "compliance" })).await;
    assert_problem(&promote, 403, "forbidden");
    let create = create_user(&app, &admin, "auditor@example.com", "compliance").await;
    assert_problem(&create, 403, "forbidden");
    let residency = json!({ "residency": null });
    let widened = app
        .patch(&format!("/v1/tenants/{}", t.id), &admin, residency)
        .await;
    assert_problem(&widened, 403, "forbidden");

    // Nor may an admin demote, disable or delete a compliance officer or an owner.
    let (officer, _) = app.add_user(&t, "compliance").await;
    let (owner2, _) = app.add_user(&t, "owner").await;
    for target in [officer, owner2] {
        for change in [json!({ "role": "member" }), json!({ "status": "disabled" })] {
            let reply = patch_user(&app, &admin, target, change).await;
            assert_problem(&reply, 403, "forbidden");
        }
        assert_problem(&delete_user(&app, &admin, target).await, 403, "forbidden");
    }
    let roles: Vec<(String, String)> = {
        let reply = app.get("/v1/users?limit=200", &t.owner_token).await;
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let field = |k: &str| u[k].as_str().unwrap().to_owned();
                (
                    field("id"),
                    format!("{}/{}", field("role"), field("status")),
                )
            })
            .collect()
    };
    for (id, expected) in [
        (admin_id, "admin/active"),
        (member, "member/active"),
        (officer, "compliance/active"),
        (owner2, "owner/active"),
    ] {
        let found = roles.iter().find(|(u, _)| *u == id.to_string());
        assert_eq!(found.map(|(_, r)| r.as_str()), Some(expected), "{roles:?}");
    }

    // Owners may do all of it.
    let by_owner = create_user(&app, &t.owner_token, "auditor@example.com", "compliance").await;
    assert_eq!(by_owner.status, 201, "{}", by_owner.body);
    let promote = patch_user(
        &app,
        &t.owner_token,
        member,
        json!({ "role": "compliance" }),
    )
    .await;
    assert_eq!(promote.status, 200, "{}", promote.body);
    let demote = patch_user(&app, &t.owner_token, officer, json!({ "role": "viewer" })).await;
    assert_eq!(demote.status, 200, "{}", demote.body);
    assert_eq!(delete_user(&app, &t.owner_token, member).await.status, 204);
    // An admin still manages the roles below: members, viewers and admins.
    let (viewer, _) = app.add_user(&t, "viewer").await;
    let up = patch_user(&app, &admin, viewer, json!({ "role": "member" })).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let other = create_user(&app, &admin, "helper@example.com", "admin").await;
    assert_eq!(other.status, 201, "{}", other.body);
}
