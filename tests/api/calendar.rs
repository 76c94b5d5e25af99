//! Calendar sync against a real CalDAV server (Radicale, `radicale.rs`) and the
//! real PostgreSQL: first and incremental sync, recurring events, write-through
//! with ETag conflicts, wrong credentials, the health views, and the ids the
//! isolation suite probes (servers that are down or slow: `calendar_timeouts.rs`).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Reply, Tenant, TestApp, assert_problem, spawn_app};
use crate::radicale::{Radicale, ics};

pub(crate) const ALICE: (&str, &str) = ("alice", "pw-alice");

pub(crate) async fn connect(
    app: &TestApp,
    tenant: &Tenant,
    base_url: &str,
    password: &str,
) -> Uuid {
    let reply = app
        .post(
            "/v1/calendar-accounts",
            &tenant.owner_token,
            json!({ "base_url": base_url, "username": "alice", "password": password }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(reply.body.get("password").is_none(), "{}", reply.body);
    reply.body["id"].as_str().unwrap().parse().unwrap()
}

/// Grants `path` of `account` to `user` (`None`: everyone) as `admin`; returns
/// the grant's id.
pub(crate) async fn grant(
    app: &TestApp,
    admin: &str,
    account: Uuid,
    path: &str,
    user: Option<Uuid>,
) -> Uuid {
    let reply = app
        .post(
            &format!("/v1/calendar-accounts/{account}/grants"),
            admin,
            json!({ "path": path, "user_id": user }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_str().unwrap().parse().unwrap()
}

/// Grants `path` to everyone as `token` (an admin's: a link needs a grant,
/// V34), unless granted already, then links it for `token`'s user.
pub(crate) async fn link(app: &TestApp, token: &str, account: Uuid, path: &str) -> Uuid {
    let granted = app
        .post(
            &format!("/v1/calendar-accounts/{account}/grants"),
            token,
            json!({ "path": path }),
        )
        .await;
    if granted.status != 201 {
        assert_problem(&granted, 409, "calendar_grant_exists");
    }
    link_only(app, token, account, path).await
}

/// Links `path` for `token`'s user, which must already be granted.
pub(crate) async fn link_only(app: &TestApp, token: &str, account: Uuid, path: &str) -> Uuid {
    let reply = app
        .post(
            "/v1/me/calendars",
            token,
            json!({ "account_id": account, "path": path, "display_name": "Work" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_str().unwrap().parse().unwrap()
}

/// Asks for a sync of `account` and waits for its job; returns the job.
pub(crate) async fn sync(app: &TestApp, tenant: &Tenant, account: Uuid) -> Value {
    let reply = app
        .post(
            &format!("/v1/calendar-accounts/{account}/sync"),
            &tenant.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let job = reply.body["job_id"].as_str().unwrap().to_owned();
    // Up to 5 min: the benchmark's first sync of 10,000 objects runs here too
    // (not a timing assertion).
    for _ in 0..6000 {
        let job = app
            .get(&format!("/v1/jobs/{job}"), &tenant.owner_token)
            .await
            .body;
        if matches!(job["state"].as_str(), Some("succeeded" | "failed" | "dead")) {
            return job;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sync job {job} did not finish");
}

/// `method` on `path` with `If-Match: etag` (and a JSON `body`, if any).
pub(crate) async fn with_if_match(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    etag: &str,
    body: Option<Value>,
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("If-Match", etag.to_owned()));
    let mut res = match body {
        Some(body) => req.send_json(&body).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let bytes = res.body().limit(1 << 20).await.unwrap();
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

pub(crate) async fn events(app: &TestApp, token: &str, from: &str, to: &str) -> Vec<Value> {
    let reply = app
        .get(&format!("/v1/calendar-events?from={from}&to={to}"), token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

pub(crate) fn summaries(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|e| {
            (
                e["starts_at"].as_str().unwrap().to_owned(),
                e["summary"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) async fn account_state(app: &TestApp, tenant: &Tenant, id: Uuid) -> Value {
    app.get(&format!("/v1/calendar-accounts/{id}"), &tenant.owner_token)
        .await
        .body
}

pub(crate) const FROM: &str = "2026-12-01T00:00:00Z";
pub(crate) const TO: &str = "2026-12-31T00:00:00Z";

#[actix_web::test]
async fn first_sync_then_remote_adds_edits_and_deletes_arrive_incrementally() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/work/").await;
    server
        .put(
            ALICE,
            "/alice/work/a.ics",
            &ics("a", "Kickoff", "20261202T090000Z", "20261202T100000Z", ""),
        )
        .await;
    // Weekly, four times, the second excluded and the third moved to 15:00.
    let weekly = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:w\r\n\
        DTSTAMP:20260101T000000Z\r\nDTSTART:20261203T080000Z\r\nDTEND:20261203T083000Z\r\n\
        SUMMARY:Weekly\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE:20261210T080000Z\r\nEND:VEVENT\r\n\
        BEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20261217T080000Z\r\n\
        DTSTART:20261217T150000Z\r\nDTEND:20261217T153000Z\r\nSUMMARY:Weekly (moved)\r\n\
        END:VEVENT\r\nEND:VCALENDAR\r\n";
    server.put(ALICE, "/alice/work/w.ics", weekly).await;

    let app = spawn_app().await;
    let a = app.provision("calsync").await;
    let account = connect(&app, &a, &format!("{}/", server.base), ALICE.1).await;
    link(&app, &a.owner_token, account, "/alice/work/").await;
    let job = sync(&app, &a, account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let first = summaries(&events(&app, &a.owner_token, FROM, TO).await);
    assert_eq!(
        first,
        vec![
            ("2026-12-02T09:00:00Z".into(), "Kickoff".into()),
            ("2026-12-03T08:00:00Z".into(), "Weekly".into()),
            ("2026-12-17T15:00:00Z".into(), "Weekly (moved)".into()),
            ("2026-12-24T08:00:00Z".into(), "Weekly".into()),
        ]
    );
    let stored = account_state(&app, &a, account).await;
    assert_eq!(stored["status"], "ok");
    // A window that cuts the series shows only its part.
    let narrow = events(
        &app,
        &a.owner_token,
        "2026-12-20T00:00:00Z",
        "2026-12-25T00:00:00Z",
    )
    .await;
    assert_eq!(
        summaries(&narrow),
        vec![("2026-12-24T08:00:00Z".into(), "Weekly".into())]
    );

    // Remote changes: one added, one edited, one deleted.
    server
        .put(
            ALICE,
            "/alice/work/b.ics",
            &ics("b", "Review", "20261205T130000Z", "20261205T140000Z", ""),
        )
        .await;
    server
        .put(
            ALICE,
            "/alice/work/a.ics",
            &ics(
                "a",
                "Kickoff (room 2)",
                "20261202T100000Z",
                "20261202T110000Z",
                "",
            ),
        )
        .await;
    server.delete(ALICE, "/alice/work/w.ics").await;
    let job = sync(&app, &a, account).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    // Incremental: only the two changed objects were fetched.
    assert_eq!(
        job["result"]["accounts"][0]["calendars"][0]["fetched"], 2,
        "{job}"
    );
    assert_eq!(
        job["result"]["accounts"][0]["calendars"][0]["removed"], 1,
        "{job}"
    );
    let second = summaries(&events(&app, &a.owner_token, FROM, TO).await);
    assert_eq!(
        second,
        vec![
            ("2026-12-02T10:00:00Z".into(), "Kickoff (room 2)".into()),
            ("2026-12-05T13:00:00Z".into(), "Review".into()),
        ]
    );
    // Nothing changed: nothing fetched.
    let job = sync(&app, &a, account).await;
    assert_eq!(
        job["result"]["accounts"][0]["calendars"][0]["fetched"], 0,
        "{job}"
    );

    // Another user of the tenant sees none of them.
    let (_, member) = app.add_user(&a, "member").await;
    assert!(events(&app, &member, FROM, TO).await.is_empty());
    // The window is bounded and ordered.
    let reply = app
        .get(
            &format!("/v1/calendar-events?from={TO}&to={FROM}"),
            &a.owner_token,
        )
        .await;
    assert_problem(&reply, 400, "validation_failed");
}

#[actix_web::test]
async fn writes_go_through_with_if_match_and_conflicts_answer_both_versions() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/cal/").await;
    let app = spawn_app().await;
    let a = app.provision("calwrite").await;
    let account = connect(&app, &a, &server.base, ALICE.1).await;
    let calendar = link(&app, &a.owner_token, account, "/alice/cal/").await;
    // The account's first sync and the node's first scheduled one run before
    // the writes: a sync that listed the server before the DELETE below would
    // store the event again until the next sync.
    crate::retention::settle(&app, &[a.id]).await;

    let created = app
        .post(
            "/v1/calendar-events",
            &a.owner_token,
            json!({ "calendar_id": calendar, "summary": "Planning", "starts_at": "2026-12-08T10:00:00Z",
                    "ends_at": "2026-12-08T11:00:00Z", "attendees": ["bob@example.com"] }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let uid = created.body["uid"].as_str().unwrap().to_owned();
    let etag = created.body["etag"].as_str().unwrap().to_owned();
    assert_eq!(created.headers.get("etag").unwrap().to_str().unwrap(), etag);
    // It is on the server, with that ETag.
    let on_server = server
        .request("GET", &format!("/alice/cal/{uid}.ics"), ALICE, &[], "")
        .await;
    assert_eq!(on_server.status, 200);
    assert_eq!(on_server.etag.as_deref(), Some(etag.as_str()));
    assert!(
        on_server.body.contains("SUMMARY:Planning"),
        "{}",
        on_server.body
    );
    assert!(on_server.body.contains("bob@example.com"));

    // Without If-Match: 428.
    let reply = app
        .patch(
            &format!("/v1/calendar-events/{id}"),
            &a.owner_token,
            json!({"summary": "x"}),
        )
        .await;
    assert_problem(&reply, 428, "precondition_required");

    let event = format!("/v1/calendar-events/{id}");
    let patch = async |etag: &str, body: Value| {
        let reply = with_if_match(&app, &a.owner_token, "PATCH", &event, etag, Some(body)).await;
        (reply.status.as_u16(), reply.body)
    };
    let (status, changed) = patch(&etag, json!({"summary": "Planning (moved)", "starts_at": "2026-12-08T12:00:00Z", "ends_at": "2026-12-08T13:00:00Z"})).await;
    assert_eq!(status, 200, "{changed}");
    let etag2 = changed["etag"].as_str().unwrap().to_owned();
    assert_ne!(etag2, etag);
    let on_server = server
        .request("GET", &format!("/alice/cal/{uid}.ics"), ALICE, &[], "")
        .await;
    assert!(on_server.body.contains("SUMMARY:Planning (moved)"));
    assert_eq!(on_server.etag.as_deref(), Some(etag2.as_str()));

    // A stale etag from the client: 409 with the stored version.
    let (status, body) = patch(&etag, json!({"summary": "stale"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "calendar_edit_conflict");
    assert_eq!(body["yours"]["summary"], "stale");
    assert_eq!(body["theirs"]["summary"], "Planning (moved)");

    // Someone edits it on the server: our stored etag no longer matches there.
    server
        .put(
            ALICE,
            &format!("/alice/cal/{uid}.ics"),
            &ics(
                &uid,
                "Edited elsewhere",
                "20261208T140000Z",
                "20261208T150000Z",
                "",
            ),
        )
        .await;
    let (status, body) = patch(&etag2, json!({"summary": "Mine"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["yours"]["summary"], "Mine");
    assert_eq!(body["theirs"]["summary"], "Edited elsewhere");
    // The server's version was kept (not overwritten) and is now stored here.
    let on_server = server
        .request("GET", &format!("/alice/cal/{uid}.ics"), ALICE, &[], "")
        .await;
    assert!(on_server.body.contains("Edited elsewhere"));
    let listed = events(&app, &a.owner_token, FROM, TO).await;
    assert_eq!(listed[0]["summary"], "Edited elsewhere");
    let theirs_etag = body["theirs"]["etag"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["etag"], theirs_etag.as_str());

    // Delete with the current etag: gone there and here.
    let gone = with_if_match(&app, &a.owner_token, "DELETE", &event, &theirs_etag, None).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let on_server = server
        .request("GET", &format!("/alice/cal/{uid}.ics"), ALICE, &[], "")
        .await;
    assert_eq!(on_server.status, 404);
    assert!(events(&app, &a.owner_token, FROM, TO).await.is_empty());
}

#[actix_web::test]
async fn wrong_credentials_mark_the_account_unauthorized() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/cal/").await;
    let app = spawn_app().await;
    let a = app.provision("calbadpw").await;
    let account = connect(&app, &a, &server.base, "not-the-password").await;
    link(&app, &a.owner_token, account, "/alice/cal/").await;
    let job = sync(&app, &a, account).await;
    assert_eq!(
        job["result"]["accounts"][0]["status"], "unauthorized",
        "{job}"
    );
    let state = account_state(&app, &a, account).await;
    assert_eq!(state["status"], "unauthorized", "{state}");
    // Connecting and linking each queued a sync too: every one failed.
    assert!(state["failure_streak"].as_i64().unwrap() >= 1, "{state}");
    // Nobody ever sees the password.
    assert!(!state.to_string().contains("not-the-password"));
}

#[actix_web::test]
async fn health_shows_stored_state_and_checks_servers_for_platform_staff() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/cal/").await;
    let app = spawn_app().await;
    let a = app.provision("calhealth").await;
    let good = connect(&app, &a, &format!("{}/alice/", server.base), ALICE.1).await;
    let bad = connect(&app, &a, &format!("{}/alice/", server.base), "wrong").await;
    link(&app, &a.owner_token, good, "/alice/cal/").await;
    sync(&app, &a, good).await;
    sync(&app, &a, bad).await;

    let platform = app.platform_token();
    let health = app.get("/v1/calendar-health", &platform).await;
    assert_eq!(health.status, 200, "{}", health.body);
    let mine: Vec<&Value> = health.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["tenant_id"] == a.id.to_string())
        .collect();
    assert_eq!(mine.len(), 2);
    let row = |id: Uuid| {
        mine.iter()
            .find(|r| r["account_id"] == id.to_string())
            .unwrap()
    };
    assert_eq!(row(good)["status"], "ok");
    assert_eq!(row(good)["calendars"], 1);
    assert!(row(good)["lag_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(row(bad)["status"], "unauthorized");
    // State only: no user names, paths or secrets.
    let text = health.body.to_string();
    assert!(!text.contains("alice") && !text.contains("wrong") && !text.contains(ALICE.1));

    let check = app
        .post("/v1/calendar-health/check", &platform, json!({}))
        .await;
    assert_eq!(check.status, 200, "{}", check.body);
    let results = check.body["results"].as_array().unwrap();
    let outcome = |id: Uuid| {
        results
            .iter()
            .find(|r| r["account_id"] == id.to_string())
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome(good), "ok");
    assert_eq!(outcome(bad), "unauthorized", "{}", check.body);
    assert_eq!(account_state(&app, &a, good).await["last_check_ok"], true);

    // Tenant users may not; operators may.
    assert_problem(
        &app.get("/v1/calendar-health", &a.owner_token).await,
        403,
        "forbidden",
    );
    let bulk = app
        .post("/v1/calendar-accounts/sync", &platform, json!({}))
        .await;
    assert_eq!(bulk.status, 202, "{}", bulk.body);
    assert!(bulk.body["tenants"].as_u64().unwrap() >= 1);
}

/// Tenant `a`'s calendar account, one stored event (inserted directly, as a
/// sync would) and the account's grant, for the isolation suite: no CalDAV
/// server needed.
pub(crate) async fn isolation_ids(app: &TestApp, a: &Tenant) -> (Uuid, Uuid, Uuid) {
    let account = connect(app, a, "http://calendar.example/", "pw").await;
    let grant = grant(app, &a.owner_token, account, "/a/cal/", None).await;
    let calendar = link_only(app, &a.owner_token, account, "/a/cal/").await;
    let event = Uuid::now_v7();
    let db = app.superuser_client().await;
    db.execute(
        "INSERT INTO calendar_events (tenant_id, id, home_region, calendar_id, href, uid, etag, ics, \
            summary, starts_at, ends_at)
         SELECT $1, $2, home_region, $3, '/a/cal/x.ics', 'x', '\"1\"', $4, 'Secret offsite',
                '2026-12-01T10:00:00Z', '2026-12-01T11:00:00Z' FROM tenants WHERE id = $1",
        &[
            &a.id,
            &event,
            &calendar,
            &ics("x", "Secret offsite", "20261201T100000Z", "20261201T110000Z", ""),
        ],
    )
    .await
    .unwrap();
    (account, event, grant)
}

#[actix_web::test]
async fn tenant_b_never_sees_tenant_a_calendar_accounts_or_events() {
    let app = spawn_app().await;
    let a = app.provision("calvictim").await;
    let (account, event, grant) = isolation_ids(&app, &a).await;
    assert_eq!(events(&app, &a.owner_token, FROM, TO).await.len(), 1);
    let b = app.provision("calattacker").await;
    for path in ["/v1/calendar-accounts", "/v1/me/calendars"] {
        let reply = app.get(path, &b.owner_token).await;
        assert_eq!(reply.status, 200);
        assert!(
            !reply.body.to_string().contains(&account.to_string()),
            "{path}"
        );
    }
    assert!(events(&app, &b.owner_token, FROM, TO).await.is_empty());
    // B cannot link A's account either.
    let reply = app
        .post(
            "/v1/me/calendars",
            &b.owner_token,
            json!({"account_id": account, "path": "/a/cal/"}),
        )
        .await;
    assert_problem(&reply, 404, "not_found");
    let reply = app
        .get(&format!("/v1/calendar-accounts/{account}"), &b.owner_token)
        .await;
    assert_problem(&reply, 404, "not_found");
    // Nor list, add or revoke its grants.
    let grants = format!("/v1/calendar-accounts/{account}/grants");
    assert_problem(&app.get(&grants, &b.owner_token).await, 404, "not_found");
    let reply = app
        .post(&grants, &b.owner_token, json!({"path": "/a/cal/"}))
        .await;
    assert_problem(&reply, 404, "not_found");
    let reply = app
        .delete(&format!("{grants}/{grant}"), &b.owner_token)
        .await;
    assert_problem(&reply, 404, "not_found");
    let listed = app.get(&grants, &a.owner_token).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let _ = event;
}

/// A relocation moves the tenant's calendar accounts, grants, calendars and events to
/// the new home region (across jurisdictions: its keys are rewrapped), and the
/// account's sealed password still opens there: a sync from the new home works.
#[actix_web::test]
async fn a_relocation_carries_accounts_calendars_and_events() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/cal/").await;
    server
        .put(
            ALICE,
            "/alice/cal/a.ics",
            &ics("a", "Offsite", "20261210T090000Z", "20261210T170000Z", ""),
        )
        .await;
    let nodes = crate::regions::spawn_regions(&["us-east1", "europe-west1"]).await;
    let us = &nodes["us-east1"];
    let (tenant, token) = crate::regions::provision_in(us, "calmove", "us-east1", None).await;
    let t = Tenant {
        id: tenant,
        owner_id: Uuid::nil(),
        owner_token: token.clone(),
    };
    let account = connect(us, &t, &server.base, ALICE.1).await;
    link(us, &token, account, "/alice/cal/").await;
    assert_eq!(sync(us, &t, account).await["state"], "succeeded");
    assert_eq!(events(us, &token, FROM, TO).await.len(), 1);

    let admin = us.platform_token();
    let started = us
        .post(
            &format!("/v1/tenants/{tenant}/relocation"),
            &admin,
            json!({ "to_region": "europe-west1" }),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    crate::regions::eventually("relocation done", async || {
        us.get(&format!("/v1/tenants/{tenant}/relocation"), &admin)
            .await
            .body["status"]
            == "done"
    })
    .await;
    let db = us.superuser_client().await;
    for table in [
        "calendar_accounts",
        "calendar_grants",
        "calendar_links",
        "calendar_events",
    ] {
        let row = db
            .query_one(
                &format!("SELECT count(*), count(*) FILTER (WHERE home_region = 'europe-west1') FROM {table} WHERE tenant_id = $1"),
                &[&tenant],
            )
            .await
            .unwrap();
        let (all, moved): (i64, i64) = (row.get(0), row.get(1));
        assert!(all >= 1 && all == moved, "{table}: {moved} of {all} moved");
    }
    let eu = &nodes["europe-west1"];
    assert_eq!(
        summaries(&events(eu, &token, FROM, TO).await)[0].1,
        "Offsite"
    );
    // The password opens under the rewrapped key: a sync from the new home works.
    server
        .put(
            ALICE,
            "/alice/cal/b.ics",
            &ics("b", "Retro", "20261211T090000Z", "20261211T100000Z", ""),
        )
        .await;
    let job = sync(eu, &t, account).await;
    assert_eq!(job["result"]["accounts"][0]["status"], "ok", "{job}");
    assert_eq!(events(eu, &token, FROM, TO).await.len(), 2);
}
