//! Per-tenant limits: request rate (tenant, user, anonymous IP), concurrency,
//! exact storage and AI quotas, their reporting, and changes taking effect at once.

use futures_util::future::join_all;
use meridian::db::Database;
use meridian::ids::TenantId;
use meridian::limits::ledger::AiLedger;
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

/// Counts the 200s among `n` GETs of `/v1/channels` with `token`; every other
/// answer must be a 429 `rate_limited`. Returns (200s, the last refusal).
async fn count_ok(app: &TestApp, token: &str, n: usize) -> (usize, Option<crate::helpers::Reply>) {
    let (mut ok, mut refusal) = (0, None);
    for _ in 0..n {
        let reply = app.get("/v1/channels", token).await;
        if reply.status == 200 {
            ok += 1;
        } else {
            assert_problem(&reply, 429, "rate_limited");
            refusal = Some(reply);
        }
    }
    (ok, refusal)
}

/// GETs until the first 429 (at most `max` tries); returns it.
async fn spend(app: &TestApp, token: &str, max: usize) -> crate::helpers::Reply {
    for _ in 0..max {
        let reply = app.get("/v1/channels", token).await;
        if reply.status == 429 {
            assert_problem(&reply, 429, "rate_limited");
            return reply;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    panic!("no 429 after {max} requests");
}

async fn rename(app: &TestApp, tenant: &Tenant, token: &str, name: &str) -> crate::helpers::Reply {
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        token,
        json!({ "name": name }),
    )
    .await
}

// Security issue 10, finding 2: buckets were keyed on the config version, so a
// rename (owner) or residency change (compliance) handed out fresh ones.
#[actix_web::test]
async fn renaming_the_tenant_does_not_refill_its_rate_buckets() {
    let app = spawn_app().await;
    let t = app.provision("renamer").await;
    let (_, member) = app.add_user(&t, "member").await;
    let (_, other) = app.add_user(&t, "member").await;
    // Tenant burst 20, each user 10; a refill of 1/s is slow against the test.
    set_limits(&app, &t, json!({ "requests_per_second": 1, "burst": 20 })).await;

    // The member's own bucket runs dry; the owner renames the tenant.
    let denied = spend(&app, &member, 15).await;
    assert_eq!(header(&denied, "ratelimit-policy"), "\"user\";q=10;w=10");
    let renamed = rename(&app, &t, &t.owner_token, "Renamed by the owner").await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    // Still dry: at most one cell can have refilled meanwhile (1/s).
    let (ok, refusal) = count_ok(&app, &member, 5).await;
    assert!(ok <= 1, "{ok} of 5 requests passed right after a rename");
    let refusal = refusal.unwrap();
    assert_eq!(header(&refusal, "ratelimit-policy"), "\"user\";q=10;w=10");

    // The tenant's bucket runs dry too (another user); a rename by a platform
    // admin (the owner is refused now) leaves it dry as well.
    let denied = spend(&app, &other, 30).await;
    assert_eq!(header(&denied, "ratelimit-policy"), "\"tenant\";q=20;w=20");
    let renamed = rename(&app, &t, &app.platform_token(), "Renamed by the platform").await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    let (ok, refusal) = count_ok(&app, &other, 5).await;
    assert!(ok <= 1, "{ok} of 5 requests passed right after a rename");
    assert_eq!(
        header(&refusal.unwrap(), "ratelimit-policy"),
        "\"tenant\";q=20;w=20"
    );
}

/// The reproduction of the finding: 400 GETs with a rename by the owner every
/// 40 requests, against the free plan's 20/s (a user: 10/s, burst 50).
#[actix_web::test]
async fn a_rename_every_40_requests_does_not_lift_the_rate_limit() {
    let app = spawn_app().await;
    let t = app.provision("loop").await;
    let (_, member) = app.add_user(&t, "member").await;
    set_limits(&app, &t, json!({ "requests_per_second": 20, "burst": 100 })).await;
    let started = std::time::Instant::now();
    let (mut ok, mut renames_ok) = (0, 0);
    for i in 0..400 {
        if i % 40 == 0 {
            let name = format!("Loop {i}");
            if rename(&app, &t, &t.owner_token, &name).await.status == 200 {
                renames_ok += 1;
            }
        }
        let reply = app.get("/v1/channels", &member).await;
        match reply.status.as_u16() {
            200 => ok += 1,
            _ => assert_problem(&reply, 429, "rate_limited"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "rename loop: {ok} x 200, {} x 429 of 400 in {elapsed:.2} s ({:.0} req/s); {renames_ok} of 10 renames accepted",
        400 - ok,
        400.0 / elapsed
    );
    // The member's bucket: a burst of 50, then 10/s.
    let allowed = 50.0 + 10.0 * elapsed + 2.0;
    assert!(
        f64::from(ok) <= allowed,
        "{ok} requests passed in {elapsed:.2} s; at most {allowed:.0} allowed"
    );
}

/// Holds an ACCESS EXCLUSIVE lock on `channels` (as the superuser) until
/// `COMMIT`: requests reading channels wait in the database while holding their
/// concurrency slot, so a test controls exactly how many are in flight.
async fn lock_channels(app: &TestApp) -> tokio_postgres::Client {
    let url = crate::helpers::cluster().superuser_url(&app.db_name);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    client
        .batch_execute("BEGIN; LOCK TABLE channels IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    client
}

/// Waits until `n` statements of the test database wait for a lock.
async fn wait_blocked(lock: &tokio_postgres::Client, n: i64) {
    for _ in 0..500 {
        // The lock's transaction would otherwise see its first snapshot of the
        // statistics views forever.
        lock.batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let row = lock
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap();
        let blocked: i64 = row.get(0);
        assert!(blocked <= n, "{blocked} requests blocked, expected {n}");
        if blocked == n {
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{n} requests never reached the lock");
}

/// An app whose pool has room for every blocked request plus the test's own.
async fn spawn_app_with_a_large_pool() -> TestApp {
    let mut settings = test_settings(&fresh_database().await);
    settings.database.pool_size = 32;
    spawn_app_with(settings).await
}

#[actix_web::test]
async fn renaming_the_tenant_does_not_free_its_concurrency_slots() {
    let app = spawn_app_with_a_large_pool().await;
    let t = app.provision("slots").await;
    set_limits(&app, &t, json!({ "concurrent_requests": 10 })).await;
    let lock = lock_channels(&app).await;
    let slow = join_all((0..10).map(|_| app.get("/v1/channels", &t.owner_token)));
    let probe = async {
        wait_blocked(&lock, 10).await;
        // All ten slots are held; `/v1/users` does not touch the locked table.
        let full = app.get("/v1/users", &t.owner_token).await;
        assert_problem(&full, 429, "concurrency_limited");
        let renamed = rename(&app, &t, &app.platform_token(), "Renamed").await;
        assert_eq!(renamed.status, 200, "{}", renamed.body);
        let after = app.get("/v1/users", &t.owner_token).await;
        let status = after.status;
        lock.batch_execute("COMMIT").await.unwrap();
        assert_eq!(
            status, 429,
            "a rename handed out fresh slots while ten were held: {}",
            after.body
        );
        assert_problem(&after, 429, "concurrency_limited");
    };
    let (replies, ()) = futures_util::join!(slow, probe);
    assert!(replies.iter().all(|r| r.status == 200));
    // The slots come back when the slow requests finish.
    assert_eq!(app.get("/v1/users", &t.owner_token).await.status, 200);
}

#[actix_web::test]
async fn a_lower_concurrency_limit_applies_at_once_and_a_higher_adds_only_the_difference() {
    let app = spawn_app_with_a_large_pool().await;
    let t = app.provision("resize").await;
    set_limits(&app, &t, json!({ "concurrent_requests": 10 })).await;
    let lock = lock_channels(&app).await;
    let first = join_all((0..3).map(|_| app.get("/v1/channels", &t.owner_token)));
    let probe = async {
        wait_blocked(&lock, 3).await;
        // 3 in flight, limit lowered to 3: full at once.
        set_limits(&app, &t, json!({ "concurrent_requests": 3 })).await;
        let lowered = app.get("/v1/users", &t.owner_token).await;
        // Raised to 5: exactly two more slots, taken by two more slow requests.
        set_limits(&app, &t, json!({ "concurrent_requests": 5 })).await;
        let more = join_all((0..2).map(|_| app.get("/v1/channels", &t.owner_token)));
        let check = async {
            wait_blocked(&lock, 5).await;
            let raised = app.get("/v1/users", &t.owner_token).await;
            lock.batch_execute("COMMIT").await.unwrap();
            raised
        };
        let (more, raised) = futures_util::join!(more, check);
        assert!(more.iter().all(|r| r.status == 200));
        (lowered, raised)
    };
    let (first, (lowered, raised)) = futures_util::join!(first, probe);
    assert!(first.iter().all(|r| r.status == 200));
    assert_eq!(
        lowered.status, 429,
        "a lowered limit did not apply to the requests in flight: {}",
        lowered.body
    );
    assert_problem(&lowered, 429, "concurrency_limited");
    assert_eq!(
        raised.status, 429,
        "a raised limit gave more than the difference: {}",
        raised.body
    );
    assert_problem(&raised, 429, "concurrency_limited");

    // Every slot came back: five requests can be in flight again, not a sixth.
    let lock = lock_channels(&app).await;
    let slow = join_all((0..5).map(|_| app.get("/v1/channels", &t.owner_token)));
    let probe = async {
        wait_blocked(&lock, 5).await;
        let sixth = app.get("/v1/users", &t.owner_token).await;
        lock.batch_execute("COMMIT").await.unwrap();
        sixth
    };
    let (slow, sixth) = futures_util::join!(slow, probe);
    assert!(slow.iter().all(|r| r.status == 200));
    assert_problem(&sixth, 429, "concurrency_limited");
}

#[actix_web::test]
async fn a_lower_rate_limit_applies_at_once_and_a_higher_adds_only_the_difference() {
    let app = spawn_app().await;
    let t = app.provision("rerate").await;
    let (_, member) = app.add_user(&t, "member").await;
    // Tenant burst 20, the member 10; a refill of 1/s is slow against the test.
    set_limits(&app, &t, json!({ "requests_per_second": 1, "burst": 20 })).await;
    let (ok, _) = count_ok(&app, &member, 3).await;
    assert_eq!(ok, 3);
    // Lowered to a burst of 10 (the member: 5) with 3 spent: 2 more, not 5.
    set_limits(&app, &t, json!({ "burst": 10 })).await;
    let (ok, refusal) = count_ok(&app, &member, 5).await;
    assert!(
        (2..=3).contains(&ok),
        "{ok} passed after lowering the burst"
    );
    assert_eq!(
        header(&refusal.unwrap(), "ratelimit-policy"),
        "\"user\";q=5;w=5"
    );
    // Raised to 40 (the member: 20) with its 5 spent: 15 more, not a fresh 20.
    set_limits(&app, &t, json!({ "burst": 40 })).await;
    let (ok, refusal) = count_ok(&app, &member, 20).await;
    assert!(
        (15..=16).contains(&ok),
        "{ok} passed after raising the burst"
    );
    assert_eq!(
        header(&refusal.unwrap(), "ratelimit-policy"),
        "\"user\";q=20;w=20"
    );
}
