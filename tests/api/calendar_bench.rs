//! Calendar sync benchmarks (issue 17, "Benchmarks"), not tests: `#[ignore]`d,
//! they assert only that the work finished, never a time. Run:
//! `cargo test --test api calendar_bench -- --ignored --nocapture --test-threads 1`
//! (against Radicale on loopback; `CAL_BENCH_TENANTS` tenants for the health
//! check, default 1000, over `CAL_BENCH_SERVERS` Radicale processes, default 4).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::calendar::{connect, link, sync};
use crate::helpers::spawn_app;
use crate::radicale::Radicale;

const ALICE: (&str, &str) = ("alice", "pw-alice");
const CALENDARS: usize = 5;
const EVENTS: usize = 2000;

fn vevent(uid: &str, day: usize, summary: &str) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:202612{:02}T{:02}0000Z\r\n\
         DTEND:202612{:02}T{:02}3000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n",
        1 + day % 28,
        day % 24,
        1 + day % 28,
        day % 24
    )
}

/// First and incremental sync of 5 calendars × 2,000 events.
#[actix_web::test]
#[ignore]
async fn calendar_bench_sync_5_calendars_of_2000_events() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    let app = spawn_app().await;
    let a = app.provision("calbench").await;
    let account = connect(&app, &a, &server.base, ALICE.1).await;
    for c in 0..CALENDARS {
        // One PUT of a whole VCALENDAR makes the collection with its objects.
        let mut body = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n");
        for e in 0..EVENTS {
            body.push_str(&vevent(&format!("c{c}-e{e}"), e, &format!("Event {e}")));
        }
        body.push_str("END:VCALENDAR\r\n");
        let put = server
            .request(
                "PUT",
                &format!("/alice/c{c}/"),
                ALICE,
                &[("Content-Type", "text/calendar")],
                &body,
            )
            .await;
        assert!(
            matches!(put.status, 201 | 204),
            "{} {}",
            put.status,
            put.body
        );
        link(&app, &a.owner_token, account, &format!("/alice/c{c}/")).await;
    }
    // Let the syncs the links queued finish, then measure a full one from scratch.
    sync(&app, &a, account).await;
    let db = app.superuser_client().await;
    db.execute(
        "UPDATE calendar_links SET sync_token = NULL, ctag = NULL",
        &[],
    )
    .await
    .unwrap();
    db.execute("DELETE FROM calendar_events", &[])
        .await
        .unwrap();
    let started = Instant::now();
    let job = sync(&app, &a, account).await;
    let first = started.elapsed();
    assert_eq!(job["state"], "succeeded", "{job}");
    let stored: i64 = db
        .query_one("SELECT count(*) FROM calendar_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, (CALENDARS * EVENTS) as i64);
    // 10 edits per calendar, then an incremental sync.
    for c in 0..CALENDARS {
        for e in 0..10 {
            let uid = format!("c{c}-e{e}");
            let ics = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n{}END:VCALENDAR\r\n",
                vevent(&uid, e, "Edited")
            );
            // Radicale names uploaded objects by uid.
            let listing = server
                .request(
                    "PUT",
                    &format!("/alice/c{c}/{uid}.ics"),
                    ALICE,
                    &[("Content-Type", "text/calendar")],
                    &ics,
                )
                .await;
            assert!(matches!(listing.status, 201 | 204), "{}", listing.status);
        }
    }
    let started = Instant::now();
    let job = sync(&app, &a, account).await;
    let incremental = started.elapsed();
    assert_eq!(job["state"], "succeeded", "{job}");
    println!(
        "calendar sync, {CALENDARS} calendars x {EVENTS} events: first {:.2} s, incremental (50 changed) {:.3} s",
        first.as_secs_f64(),
        incremental.as_secs_f64()
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Bridge creation time and memory per 100 bridges (each holding one opened
/// account), measured in this process.
#[actix_web::test]
#[ignore]
async fn calendar_bench_bridges() {
    let settings = meridian::calendar::CalendarSettings::default();
    let outbound = meridian::outbound::OutboundSettings {
        allow_loopback: true,
        ..Default::default()
    };
    let client = meridian::outbound::Client::new(outbound).unwrap();
    let pool = meridian::calendar::bridge::BridgePool::new(client, &settings);
    let n = 10_000u32;
    let tenants: Vec<_> = (0..n)
        .map(|_| meridian::ids::TenantId::new_random())
        .collect();
    let before = rss_kib();
    let started = Instant::now();
    for tenant in &tenants {
        let bridge = pool.get(*tenant);
        let credentials = meridian::calendar::store::Credentials {
            base_url: "http://127.0.0.1:5232/alice/".into(),
            username: "alice".into(),
            auth_kind: "password".into(),
            secret: meridian::secret::Secret::new("pw-alice"),
        };
        bridge.insert(
            meridian::ids::CalendarAccountId::new_random(),
            meridian::calendar::bridge::Remote::new(&credentials).unwrap(),
        );
    }
    let elapsed = started.elapsed();
    let grown = rss_kib().saturating_sub(before);
    assert_eq!(pool.len(), u64::from(n));
    println!(
        "bridges: {n} created (with one opened account each) in {:.1} ms, {:.2} µs each; RSS +{} KiB: {:.1} KiB per 100 bridges",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / f64::from(n),
        grown,
        grown as f64 / (f64::from(n) / 100.0)
    );
}

/// The active health check of `CAL_BENCH_TENANTS` tenants' accounts (one each)
/// against `CAL_BENCH_SERVERS` (default 4) local Radicale processes standing
/// for that many CalDAV servers, each in Radicale's default configuration
/// (`max_connections = 8`), the accounts spread over them round-robin.
#[actix_web::test]
#[ignore]
async fn calendar_bench_health_check() {
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (tenants, servers) = (env("CAL_BENCH_TENANTS", 1000), env("CAL_BENCH_SERVERS", 4));
    let Some(first) = Radicale::start(&[ALICE]) else {
        return;
    };
    let mut radicales = vec![first];
    for _ in 1..servers.max(1) {
        radicales.push(Radicale::start(&[ALICE]).expect("radicale"));
    }
    let mut settings = crate::helpers::test_settings(&crate::helpers::fresh_database().await);
    settings.calendar.sync_interval = Duration::ZERO;
    settings.jobs.enabled = false;
    let (concurrency, per_host) = (
        settings.calendar.health_concurrency,
        settings.calendar.health_per_host,
    );
    let app = crate::helpers::spawn_app_with(settings).await;
    let started = Instant::now();
    for i in 0..tenants {
        let t = app.provision(&format!("hc{i}")).await;
        let base = &radicales[i % radicales.len()].base;
        let reply = app
            .post(
                "/v1/calendar-accounts",
                &t.owner_token,
                json!({ "base_url": format!("{base}/alice/"), "username": "alice", "password": ALICE.1 }),
            )
            .await;
        assert_eq!(reply.status, 201);
    }
    println!(
        "provisioned {tenants} tenants with an account on {} servers in {:.1} s \
         (health_concurrency {concurrency}, health_per_host {per_host})",
        radicales.len(),
        started.elapsed().as_secs_f64()
    );
    let platform = app.platform_token();
    for round in ["cold (credentials opened)", "warm (bridges pooled)"] {
        let started = Instant::now();
        let check = app
            .post("/v1/calendar-health/check", &platform, json!({}))
            .await;
        let took = started.elapsed();
        assert_eq!(check.status, 200, "{}", check.body);
        assert_eq!(check.body["checked"], tenants);
        // Printed, not asserted: how many answered, and the first failure.
        let failure = check.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ok"] != true)
            .cloned();
        println!(
            "health check, {tenants} accounts, {round}: {:.2} s, {} ok, first failure: {failure:?}",
            took.as_secs_f64(),
            check.body["ok"]
        );
    }
    let started = Instant::now();
    let stored = app.get("/v1/calendar-health", &platform).await;
    assert_eq!(stored.status, 200);
    println!(
        "stored health of {tenants} accounts: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
}
