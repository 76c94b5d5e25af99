//! Per-tenant limits: request rate (tenant, user, anonymous IP), concurrency,
//! exact storage and AI quotas, their reporting, and changes taking effect at once.

use futures_util::future::join_all;
use meridian::ai_ledger::AiLedger;
use meridian::db::Database;
use meridian::ids::TenantId;
use meridian::tenancy::Directory;
use serde_json::{Value, json};

use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with, test_settings,
};

async fn set_limits(app: &TestApp, tenant: &Tenant, limits: Value) {
    let reply = app
        .patch(
            &format!("/v1/tenants/{}", tenant.id),
            &app.platform_token(),
            json!({ "limits": limits }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn header<'a>(reply: &'a crate::helpers::Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[actix_web::test]
async fn rate_limits_apply_per_user_and_tenant_and_change_at_once() {
    let app = spawn_app().await;
    let noisy = app.provision("noisy").await;
    let (_, admin) = app.add_user(&noisy, "admin").await;
    let quiet = app.provision("quiet").await;
    // Tenant bucket: burst 4; each user gets half: burst 2. Refill 1/s.
    set_limits(
        &app,
        &noisy,
        json!({ "requests_per_second": 1, "burst": 4 }),
    )
    .await;

    let mut statuses = Vec::new();
    let mut denied = None;
    for _ in 0..8 {
        let reply = app.get("/v1/channels", &noisy.owner_token).await;
        statuses.push(reply.status.as_u16());
        if reply.status == 429 && denied.is_none() {
            denied = Some(reply);
        }
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let denied = denied.expect("the user's bucket never ran dry");
    assert_problem(&denied, 429, "rate_limited");
    let retry_after: u64 = header(&denied, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header(&denied, "ratelimit-policy"), "\"user\";q=2;w=2");
    assert!(header(&denied, "ratelimit").starts_with("\"user\";r=0;t="));

    // The owner's spent requests came out of the tenant's bucket too: another
    // user of the same tenant runs into the tenant limit soon after.
    let mut admin_statuses = Vec::new();
    for _ in 0..4 {
        admin_statuses.push(app.get("/v1/channels", &admin).await);
    }
    let tenant_denial = admin_statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("tenant bucket never ran dry");
    assert_eq!(
        header(tenant_denial, "ratelimit-policy"),
        "\"tenant\";q=4;w=4"
    );

    // Other tenants are untouched.
    for _ in 0..20 {
        assert_eq!(
            app.get("/v1/channels", &quiet.owner_token).await.status,
            200
        );
    }

    // A new limit applies to the very next request, and the denials were counted.
    set_limits(
        &app,
        &noisy,
        json!({ "requests_per_second": 1000, "burst": 1000 }),
    )
    .await;
    let usage = app.get("/v1/usage", &noisy.owner_token).await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    assert!(
        usage.body["denials"]["rate_limited"].as_u64().unwrap() >= 2,
        "{}",
        usage.body
    );
    assert_eq!(usage.body["limits"]["requests_per_second"], 1000);

    // Summarised into the tenant's audit trail (one event per interval, not per request).
    let mut summary = None;
    for _ in 0..50 {
        let audit = app.get("/v1/audit", &noisy.owner_token).await;
        summary = audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "limits_denied")
            .cloned();
        if summary.is_some() {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let summary = summary.expect("no limits_denied audit event");
    assert!(
        summary["details"]["counts"]["rate_limited"]
            .as_u64()
            .unwrap()
            >= 2,
        "{summary}"
    );
}

#[actix_web::test]
async fn concurrency_limit_refuses_fast_instead_of_queueing() {
    let app = spawn_app().await;
    let t = app.provision("parallel").await;
    set_limits(&app, &t, json!({ "concurrent_requests": 1 })).await;
    let replies = join_all((0..24).map(|_| app.get("/v1/users", &t.owner_token))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(
        ok >= 1 && !refused.is_empty(),
        "ok {ok}, refused {}",
        refused.len()
    );
    assert_eq!(
        ok + refused.len(),
        replies.len(),
        "only 200 or 429 expected"
    );
    for reply in refused {
        assert_problem(reply, 429, "concurrency_limited");
        assert_eq!(header(reply, "retry-after"), "1");
    }
}

#[actix_web::test]
async fn storage_quota_is_exact_under_concurrent_writers_and_deletes_give_space_back() {
    let app = spawn_app().await;
    let t = app.provision("storage").await;
    set_limits(&app, &t, json!({ "storage_bytes": 1000 })).await;
    let channel = app.create_channel(&t, "uploads").await;
    let path = format!("/v1/channels/{channel}/messages");
    let body = "x".repeat(100);

    // 30 writers race for room for 10; then fill up one at a time.
    let mut accepted = 0;
    let replies =
        join_all((0..30).map(|_| app.post(&path, &t.owner_token, json!({ "body": body })))).await;
    for reply in &replies {
        match reply.status.as_u16() {
            201 => accepted += 1,
            403 => assert_problem(reply, 403, "quota_exceeded"),
            503 => assert_problem(reply, 503, "retry_exhausted"),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(accepted >= 1, "no writer got through");
    loop {
        let reply = app
            .post(&path, &t.owner_token, json!({ "body": body }))
            .await;
        if reply.status == 403 {
            assert_problem(&reply, 403, "quota_exceeded");
            break;
        }
        assert_eq!(reply.status, 201, "{}", reply.body);
        accepted += 1;
        assert!(accepted <= 10, "quota overshot");
    }
    assert_eq!(accepted, 10);
    let page = app.get(&format!("{path}?limit=200"), &t.owner_token).await;
    assert_eq!(
        page.body["items"].as_array().unwrap().len(),
        10,
        "a refused write left a row"
    );
    let usage = app.get("/v1/usage", &t.owner_token).await;
    assert_eq!(usage.body["storage_bytes"], 1000);
    assert!(usage.body["denials"]["quota_exceeded"].as_u64().unwrap() >= 1);

    // Deleting the channel gives the space back.
    assert_eq!(
        app.delete(&format!("/v1/channels/{channel}"), &t.owner_token)
            .await
            .status,
        204
    );
    assert_eq!(
        app.get("/v1/usage", &t.owner_token).await.body["storage_bytes"],
        0
    );
    let again = app.create_channel(&t, "again").await;
    let reply = app
        .post(
            &format!("/v1/channels/{again}/messages"),
            &t.owner_token,
            json!({ "body": body }),
        )
        .await;
    assert_eq!(reply.status, 201);
}

#[actix_web::test]
async fn ai_ledger_never_overspends_and_settles_exactly() {
    let db_name = fresh_database().await;
    let settings = test_settings(&db_name);
    let app = spawn_app_with(settings.clone()).await;
    let t = app.provision("ai").await;
    set_limits(&app, &t, json!({ "ai_tokens_per_month": 1000 })).await;
    let db = Database::connect(&settings.database).unwrap();
    let tenant = Directory::new(db.clone(), 10)
        .get(TenantId::from_uuid(t.id))
        .await
        .unwrap()
        .unwrap();
    let ledger = AiLedger::new(db);

    let attempts = join_all((0..20).map(|_| ledger.reserve(&tenant, 100))).await;
    let mut held: Vec<_> = attempts.into_iter().filter_map(Result::ok).collect();
    while held.len() < 10 {
        held.push(
            ledger
                .reserve(&tenant, 100)
                .await
                .expect("room left under the cap"),
        );
    }
    assert!(
        ledger.reserve(&tenant, 1).await.is_err(),
        "reserved past the cap"
    );
    assert_eq!(ledger.usage(&tenant).await.unwrap().reserved, 1000);

    // Commit 60 of one reservation's 100, release another: 140 tokens come back.
    let (first, second) = (held[0], held[1]);
    ledger.commit(&tenant, first, 60).await.unwrap();
    ledger.release(&tenant, second).await.unwrap();
    let usage = ledger.usage(&tenant).await.unwrap();
    assert_eq!((usage.used, usage.reserved), (60, 800));
    assert!(
        ledger.commit(&tenant, first, 10).await.is_err(),
        "settled twice"
    );
    assert!(
        ledger.commit(&tenant, held[2], 101).await.is_err(),
        "committed more than reserved"
    );
    assert!(ledger.reserve(&tenant, 141).await.is_err());
    ledger
        .reserve(&tenant, 140)
        .await
        .expect("exactly the freed tokens fit");

    let report = app.get("/v1/usage", &t.owner_token).await;
    assert_eq!(
        report.body["ai_tokens"],
        json!({ "used": 60, "reserved": 940 })
    );
}

#[actix_web::test]
async fn unauthenticated_traffic_has_a_stricter_per_ip_limit() {
    let mut settings = test_settings(&fresh_database().await);
    settings.limits.unauthenticated_per_second = 1;
    settings.limits.unauthenticated_burst = 3;
    let app = spawn_app_with(settings).await;
    let statuses: Vec<u16> =
        join_all((0..6).map(|_| app.request("GET", "/v1/channels", None, None)))
            .await
            .iter()
            .map(|r| r.status.as_u16())
            .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    // Public routes need no token and are not limited by it.
    assert_eq!(app.request("GET", "/healthz", None, None).await.status, 200);
}

#[actix_web::test]
async fn limit_overrides_are_validated() {
    let app = spawn_app().await;
    let t = app.provision("validated").await;
    let admin = app.platform_token();
    for bad in [
        json!({ "requests_per_second": 0 }),
        json!({ "burst": -1 }),
        json!({ "storage_bytes": "lots" }),
        json!({ "concurrent_requests": 100_000_000 }),
        json!({ "users": 0 }),
        json!({ "no_such_limit": 1 }),
        json!({ "no_such_limit": null }),
    ] {
        let reply = app
            .patch(
                &format!("/v1/tenants/{}", t.id),
                &admin,
                json!({ "limits": bad }),
            )
            .await;
        assert_problem(&reply, 400, "validation_failed");
    }
    let tenant = app.get(&format!("/v1/tenants/{}", t.id), &admin).await;
    assert_eq!(
        tenant.body["limits"]["storage_bytes"],
        100 * 1024 * 1024,
        "{}",
        tenant.body
    );
}

#[actix_web::test]
async fn a_null_override_goes_back_to_the_plan_and_leaves_the_others() {
    let app = spawn_app().await;
    let t = app.provision("cleared").await;
    let admin = app.platform_token();
    let path = format!("/v1/tenants/{}", t.id);
    let set = app
        .patch(
            &path,
            &admin,
            json!({ "limits": { "users": 3, "burst": 9 } }),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["limits"]["users"], 3);
    let rate = set.body["limits"]["requests_per_second"].clone();

    let cleared = app
        .patch(&path, &admin, json!({ "limits": { "users": null } }))
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    // The free plan's value again; the other overrides are untouched.
    assert_eq!(cleared.body["limits"]["users"], 10, "{}", cleared.body);
    assert_eq!(cleared.body["limits"]["burst"], 9);
    assert_eq!(cleared.body["limits"]["requests_per_second"], rate);
    assert_eq!(
        cleared.body["limit_overrides"].get("users"),
        None,
        "{}",
        cleared.body
    );
}
