//! Fairness by cost (`limits::cost`): the expensive-work budget per tenant and per
//! node, per-class statement timeouts, the bound on a search's work, and each
//! tenant's database time for costly classes (`limits::db_time`).
//!
//! Searches are held in flight deterministically: a superuser transaction holds
//! an ACCESS EXCLUSIVE lock on `messages`, so a search blocks inside the database
//! (its permits held) until the test lets it go; the test waits for the blocked
//! backends in `pg_stat_activity` rather than sleeping.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::helpers::{
    Reply, Tenant, TestApp, assert_problem, fresh_database, spawn_app_with, test_settings,
};

fn retry_after(reply: &Reply) -> &str {
    reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn search(app: &TestApp, tenant: &Tenant, q: &str) -> Reply {
    app.get(&format!("/v1/search?q={q}&limit=50"), &tenant.owner_token)
        .await
}

/// A search that may stay blocked for as long as the test holds the lock (the
/// harness client gives up after 5 s, which a loaded machine can reach).
async fn held_search(app: &TestApp, tenant: &Tenant, q: &str) -> (u16, serde_json::Value) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish();
    let mut res = client
        .get(format!("{}/v1/search?q={q}&limit=50", app.base))
        .insert_header(("Authorization", format!("Bearer {}", tenant.owner_token)))
        .send()
        .await
        .unwrap();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (res.status().as_u16(), body)
}

/// Holds `LOCK TABLE messages` in an open transaction of its own connection.
async fn lock_messages(app: &TestApp) -> tokio_postgres::Client {
    let client = app.superuser_client().await;
    client
        .batch_execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    client
}

/// Waits until `n` service-role searches are blocked on the lock.
async fn blocked_searches(app: &TestApp, n: i64) {
    let watcher = app.superuser_client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%search_messages%'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} searches never blocked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_tenants_excess_expensive_work_is_refused_while_other_tenants_get_through() {
    let db = fresh_database().await;
    let mut settings = test_settings(&db);
    settings.limits.cost.expensive_per_tenant = 1;
    settings.limits.cost.expensive_per_node = 2;
    settings.limits.cost.expensive_queue = Duration::from_millis(300);
    settings.limits.cost.search_timeout = Duration::from_secs(60);
    // The permits are under test, not the database time the held searches
    // spend (`db_time`, the last test).
    settings.limits.cost.db_ms_per_second = 0;
    settings.limits.cost.db_node_ms_per_second = 0;
    let app = spawn_app_with(settings).await;
    let (noisy, quiet, third) = (
        app.provision("noisy").await,
        app.provision("quiet").await,
        app.provision("third").await,
    );
    for t in [&noisy, &quiet, &third] {
        let channel = app.create_channel(t, "general").await;
        app.post_message(t, channel, "a needle in the haystack")
            .await;
    }

    let lock = lock_messages(&app).await;
    // The noisy tenant's first search runs (blocked in the database, holding the
    // tenant's permit and one of the node's two).
    let held = held_search(&app, &noisy, "needle");
    let rest = async {
        blocked_searches(&app, 1).await;
        // Its second one queues for the tenant's permit, then is refused: the
        // node's second permit stays free for other tenants.
        let excess = search(&app, &noisy, "needle").await;
        assert_problem(&excess, 429, "expensive_limited");
        assert_eq!(retry_after(&excess), "1");
        // Another tenant's search takes the node's second permit...
        let quiet_search = held_search(&app, &quiet, "needle");
        let more = async {
            blocked_searches(&app, 2).await;
            // ...after which a third tenant's search finds the node full.
            let busy = search(&app, &third, "needle").await;
            assert_problem(&busy, 503, "node_busy");
            assert_eq!(retry_after(&busy), "1");
            // Cheap work of every tenant, the noisy one's too, is not queued.
            for t in [&quiet, &third, &noisy] {
                let page = app.get("/v1/channels?limit=50", &t.owner_token).await;
                assert_eq!(page.status, 200, "{:?}", page.body);
            }
            lock.batch_execute("ROLLBACK").await.unwrap();
        };
        let (quiet_search, ()) = futures_util::join!(quiet_search, more);
        quiet_search
    };
    let (held, quiet_search) = futures_util::join!(held, rest);
    assert_eq!(held.0, 200, "{:?}", held.1);
    assert_eq!(quiet_search.0, 200, "{:?}", quiet_search.1);
    assert_eq!(held.1["items"].as_array().unwrap().len(), 1);

    // The refusals are counted as the tenants' denials.
    let usage = app.get("/v1/usage", &noisy.owner_token).await;
    assert_eq!(
        usage.body["denials"]["expensive_limited"], 1,
        "{:?}",
        usage.body
    );
    let usage = app.get("/v1/usage", &third.owner_token).await;
    assert_eq!(
        usage.body["denials"]["expensive_limited"], 1,
        "{:?}",
        usage.body
    );
    // The permits came back: the noisy tenant may search again.
    assert_eq!(search(&app, &noisy, "needle").await.status, 200);
}

#[actix_web::test]
async fn a_statement_over_its_class_timeout_answers_503_statement_timeout() {
    let db = fresh_database().await;
    let mut settings = test_settings(&db);
    settings.limits.cost.search_timeout = Duration::from_millis(200);
    let app = spawn_app_with(settings).await;
    let t = app.provision("slow").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "a needle").await;

    let lock = lock_messages(&app).await;
    // Blocked on the lock past its class's 200 ms: cancelled, not left hanging.
    let slow = search(&app, &t, "needle").await;
    assert_problem(&slow, 503, "statement_timeout");
    assert_eq!(retry_after(&slow), "1");
    lock.batch_execute("ROLLBACK").await.unwrap();

    // The timeout was the transaction's own (SET LOCAL): the same connections
    // serve the next requests normally.
    for _ in 0..10 {
        assert_eq!(search(&app, &t, "needle").await.status, 200);
    }
    let usage = app.get("/v1/usage", &t.owner_token).await;
    assert_eq!(
        usage.body["denials"]["statement_timeout"], 1,
        "{:?}",
        usage.body
    );
}

#[actix_web::test]
async fn search_ranks_a_bounded_number_of_matches_and_stays_exact_for_a_selective_term() {
    let db = fresh_database().await;
    let mut settings = test_settings(&db);
    settings.limits.cost.search_candidates = 10;
    let app = spawn_app_with(settings).await;
    let t = app.provision("bounded").await;
    let channel = app.create_channel(&t, "general").await;
    let mut rare = HashSet::new();
    for i in 0..25 {
        let body = match i {
            // The best match of `rare` has it three times.
            3 => "rare rare rare common".to_owned(),
            11 | 20 => format!("common rare line {i}"),
            _ => format!("common line {i}"),
        };
        let id = app.post_message(&t, channel, &body).await;
        if body.contains("rare") {
            rare.insert(id);
        }
    }

    // A term with fewer matches than the bound: every match, best first.
    let reply = search(&app, &t, "rare").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let items = reply.body["items"].as_array().unwrap();
    let got: HashSet<Uuid> = items
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, rare);
    assert!(
        items[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("rare rare rare")
    );
    let ranks: Vec<f64> = items.iter().map(|m| m["rank"].as_f64().unwrap()).collect();
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "{ranks:?}");

    // A word in all 25: only 10 are ranked and answered, and the pages end there.
    let reply = search(&app, &t, "common").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 10);
    assert!(reply.body["next_cursor"].is_null(), "{:?}", reply.body);
    for item in reply.body["items"].as_array().unwrap() {
        assert!(item["body"].as_str().unwrap().contains("common"));
    }
}

/// A search of `tenant` that stays blocked in the database until `hold` has
/// passed after it blocked: it is charged at least `hold` of database time.
async fn costly_search(app: &TestApp, tenant: &Tenant, hold: Duration) {
    let lock = lock_messages(app).await;
    let held = held_search(app, tenant, "needle");
    let release = async {
        blocked_searches(app, 1).await;
        tokio::time::sleep(hold).await;
        lock.batch_execute("ROLLBACK").await.unwrap();
    };
    let ((status, body), ()) = futures_util::join!(held, release);
    assert_eq!(status, 200, "{body:?}");
}

#[actix_web::test]
async fn a_tenant_that_spent_its_database_time_is_refused_costly_work_but_not_pages() {
    let db = fresh_database().await;
    let mut settings = test_settings(&db);
    // 1 ms a second, 1 s when full: ordinary searches and big pages fit, one
    // search held 1.5 s in the database leaves a debt the refill takes minutes
    // to pay back.
    settings.limits.cost.db_ms_per_second = 1;
    settings.limits.cost.db_burst_ms = 1_000;
    // The tenant's own budget is under test, not the node's.
    settings.limits.cost.db_node_ms_per_second = 0;
    settings.limits.cost.search_timeout = Duration::from_secs(60);
    let app = spawn_app_with(settings).await;
    let (noisy, quiet) = (app.provision("spender").await, app.provision("quiet").await);
    let mut channels = Vec::new();
    for t in [&noisy, &quiet] {
        let channel = app.create_channel(t, "general").await;
        app.post_message(t, channel, "a needle in the haystack")
            .await;
        channels.push(channel);
    }

    costly_search(&app, &noisy, Duration::from_millis(1_500)).await;

    // The next search and the next big page are refused up front, with the time
    // the refill needs (at least 500 s at 1 ms/s, minus what this test took).
    let refused = search(&app, &noisy, "needle").await;
    assert_problem(&refused, 429, "expensive_limited");
    let wait: u64 = retry_after(&refused).parse().unwrap();
    assert!(wait > 60, "Retry-After {wait}");
    let big = format!("/v1/channels/{}/messages?limit=200", channels[0]);
    assert_problem(
        &app.get(&big, &noisy.owner_token).await,
        429,
        "expensive_limited",
    );
    // Its pages and posts are not metered.
    let page = format!("/v1/channels/{}/messages?limit=50", channels[0]);
    let reply = app.get(&page, &noisy.owner_token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    app.post_message(&noisy, channels[0], "still posting").await;
    // Another tenant's budget is its own.
    assert_eq!(search(&app, &quiet, "needle").await.status, 200);
    let big = format!("/v1/channels/{}/messages?limit=200", channels[1]);
    assert_eq!(app.get(&big, &quiet.owner_token).await.status, 200);

    // Nothing the tenant changes refills it: a rename by its owner, a new limit
    // from the platform (each a new config version).
    let path = format!("/v1/tenants/{}", noisy.id);
    let renamed = app
        .patch(
            &path,
            &noisy.owner_token,
            serde_json::json!({ "name": "Renamed" }),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    let limits = serde_json::json!({ "limits": { "concurrent_requests": 40 } });
    let changed = app.patch(&path, &app.platform_token(), limits).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_problem(
        &search(&app, &noisy, "needle").await,
        429,
        "expensive_limited",
    );

    let usage = app.get("/v1/usage", &noisy.owner_token).await;
    assert_eq!(
        usage.body["denials"]["expensive_limited"], 3,
        "{:?}",
        usage.body
    );
    let usage = app.get("/v1/usage", &quiet.owner_token).await;
    assert_eq!(
        usage.body["denials"]["expensive_limited"], 0,
        "{:?}",
        usage.body
    );
}

#[actix_web::test]
async fn database_time_settings_are_checked_at_start() {
    let db = fresh_database().await;
    let mut settings = test_settings(&db);
    settings.limits.cost.db_ms_per_second = 20;
    settings.limits.cost.db_burst_ms = 0;
    let err = settings.clone().validate().err().unwrap().to_string();
    assert!(err.contains("db_burst_ms"), "{err}");
    // Off (a zero rate) needs no burst.
    settings.limits.cost.db_ms_per_second = 0;
    assert!(settings.clone().validate().is_ok());
    settings.limits.cost.db_ms_per_second = 2_000_000;
    settings.limits.cost.db_burst_ms = 1_000;
    let err = settings.clone().validate().err().unwrap().to_string();
    assert!(err.contains("db_ms_per_second"), "{err}");
    settings.limits.cost.db_ms_per_second = 100;
    settings.limits.cost.db_node_ms_per_second = 250;
    settings.limits.cost.db_node_burst_ms = 0;
    let err = settings.clone().validate().err().unwrap().to_string();
    assert!(err.contains("db_node_burst_ms"), "{err}");
    settings.limits.cost.db_node_ms_per_second = 0;
    assert!(settings.validate().is_ok());
}

#[actix_web::test]
async fn tenants_within_their_own_database_time_are_held_by_the_nodes() {
    let db = fresh_database().await;
    let mut settings = test_settings(&db);
    // Every tenant's own budget is far from reached; the node's is 1 ms a
    // second, 1 s when full, so one search held 1.5 s spends it for minutes.
    settings.limits.cost.db_ms_per_second = 1_000_000;
    settings.limits.cost.db_burst_ms = 3_600_000;
    settings.limits.cost.db_node_ms_per_second = 1;
    settings.limits.cost.db_node_burst_ms = 1_000;
    settings.limits.cost.search_timeout = Duration::from_secs(60);
    let app = spawn_app_with(settings).await;
    let (first, second) = (app.provision("first").await, app.provision("second").await);
    let mut channels = Vec::new();
    for t in [&first, &second] {
        let channel = app.create_channel(t, "general").await;
        app.post_message(t, channel, "a needle in the haystack")
            .await;
        channels.push(channel);
    }

    costly_search(&app, &first, Duration::from_millis(1_500)).await;

    // The other tenant, with its own budget whole, is refused by the node's,
    // with the node's refill time; so is the first tenant.
    for t in [&second, &first] {
        let refused = search(&app, t, "needle").await;
        assert_problem(&refused, 503, "node_busy");
        let wait: u64 = retry_after(&refused).parse().unwrap();
        assert!(wait > 60, "Retry-After {wait}");
    }
    let big = format!("/v1/channels/{}/messages?limit=200", channels[1]);
    assert_problem(&app.get(&big, &second.owner_token).await, 503, "node_busy");
    // Cheap classes are not metered.
    let page = format!("/v1/channels/{}/messages?limit=50", channels[1]);
    let reply = app.get(&page, &second.owner_token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // A tenant's own denial count is for its own budget only.
    let usage = app.get("/v1/usage", &second.owner_token).await;
    assert_eq!(
        usage.body["denials"]["expensive_limited"], 0,
        "{:?}",
        usage.body
    );
}
