//! Calendar servers that are down, never answer, or answer slowly: CalDAV's
//! own bounds (`calendar.connect_timeout_ms`, `calendar.request_timeout_ms`,
//! `calendar.sync_budget_ms`, `calendar.check_timeout_ms`) — not the outbound
//! client's webhook bound — fail the sync, show on the account and back off;
//! the active health check says `timeout` and never sends one server more
//! than `calendar.health_per_host` checks at once.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::calendar::{account_state, connect, link, sync};
use crate::helpers::free_port;
use crate::helpers::{Tenant, TestApp, fresh_database, spawn_app_with, test_settings};

/// A loopback server that answers every request after `delay` with an empty
/// `207 Multi-Status` (`hold`: never answers); counts the most connections it
/// had open at once.
struct Sluggish {
    port: u16,
    most: Arc<AtomicUsize>,
}

fn sluggish(delay: Duration, hold: bool) -> Sluggish {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let most = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let counted = most.clone();
    // Detached: the test process ends it.
    std::thread::spawn(move || {
        for conn in listener.incoming().take(200).flatten() {
            let (open, most) = (open.clone(), counted.clone());
            std::thread::spawn(move || answer(conn, delay, hold, (&open, &most)));
        }
    });
    Sluggish { port, most }
}

/// Counts a request as in flight from when it is read to just before its
/// answer is written: the client holds its slot at least that long, so the
/// count never includes a connection the client is already done with (closing
/// and draining happen after it, while the client may already send the next).
fn answer(
    mut conn: TcpStream,
    delay: Duration,
    hold: bool,
    (open, most): (&AtomicUsize, &AtomicUsize),
) {
    let mut buf = [0u8; 65536];
    let _ = conn.read(&mut buf);
    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
    most.fetch_max(now, Ordering::SeqCst);
    if hold {
        std::thread::sleep(Duration::from_secs(30));
        open.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    std::thread::sleep(delay);
    open.fetch_sub(1, Ordering::SeqCst);
    let body = r#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:sync-token>t1</d:sync-token></d:multistatus>"#;
    let _ = write!(
        conn,
        "HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    // Close our side, then drain: closing with unread request bytes would reset.
    let _ = conn.shutdown(Shutdown::Write);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
}

async fn check(app: &TestApp) -> Value {
    let check = app
        .post(
            "/v1/calendar-health/check",
            &app.platform_token(),
            json!({}),
        )
        .await;
    assert_eq!(check.status, 200, "{}", check.body);
    check.body
}

fn outcome(report: &Value, account: Uuid) -> Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account_id"] == account.to_string())
        .cloned()
        .unwrap_or(Value::Null)
}

async fn assert_failing_with(app: &TestApp, a: &Tenant, account: Uuid, why: &str) {
    let job = sync(app, a, account).await;
    assert_eq!(job["result"]["accounts"][0]["status"], "failing", "{job}");
    let state = account_state(app, a, account).await;
    assert_eq!(state["status"], "failing", "{state}");
    assert!(
        state["last_error"].as_str().unwrap().contains(why),
        "{why}: {state}"
    );
    assert!(state["failure_streak"].as_i64().unwrap() >= 1);
    let next: chrono::DateTime<chrono::Utc> =
        state["next_sync_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next > chrono::Utc::now() + chrono::Duration::seconds(30),
        "no backoff: {state}"
    );
}

#[actix_web::test]
async fn a_server_that_is_down_or_slow_fails_the_sync_by_calendar_bounds_and_backs_off() {
    let mut settings = test_settings(&fresh_database().await);
    // The outbound (webhook) bound stays at its default 10 s: only the
    // calendar's own bounds can end these exchanges this soon.
    settings.calendar.connect_timeout = Duration::from_millis(500);
    settings.calendar.request_timeout = Duration::from_millis(1500);
    settings.calendar.sync_budget = Duration::from_millis(2000);
    settings.calendar.check_timeout = Duration::from_millis(1000);
    settings.calendar.sync_interval = Duration::ZERO;
    let app = spawn_app_with(settings).await;
    let a = app.provision("caldown").await;
    let down_url = format!("http://127.0.0.1:{}/", free_port());
    let down = connect(&app, &a, &down_url, "pw").await;
    link(&app, &a.owner_token, down, "/alice/cal/").await;
    // Accepts, never answers: the request bound.
    let silent = sluggish(Duration::ZERO, true);
    let slow = connect(
        &app,
        &a,
        &format!("http://127.0.0.1:{}/", silent.port),
        "pw",
    )
    .await;
    link(&app, &a.owner_token, slow, "/alice/cal/").await;
    // Answers each request in 500 ms (within the request and check bounds),
    // but five calendars of it take longer than the whole-sync budget.
    let plodding = sluggish(Duration::from_millis(500), false);
    let long = connect(
        &app,
        &a,
        &format!("http://127.0.0.1:{}/", plodding.port),
        "pw",
    )
    .await;
    for c in 0..5 {
        link(&app, &a.owner_token, long, &format!("/alice/c{c}/")).await;
    }

    assert_failing_with(&app, &a, down, "connecting failed").await;
    assert_failing_with(&app, &a, slow, "timeout: no answer within 1500 ms").await;
    assert_failing_with(
        &app,
        &a,
        long,
        "the sync did not finish within 2000 ms (calendar.sync_budget_ms)",
    )
    .await;

    let report = check(&app).await;
    assert_eq!(outcome(&report, down)["outcome"], "unreachable", "{report}");
    let timed_out = outcome(&report, slow);
    assert_eq!(timed_out["outcome"], "timeout", "{report}");
    assert!(
        timed_out["detail"]
            .as_str()
            .unwrap()
            .contains("calendar.check_timeout_ms"),
        "{timed_out}"
    );
    // 500 ms is within the check bound.
    assert_eq!(outcome(&report, long)["outcome"], "ok", "{report}");
    assert_eq!(account_state(&app, &a, slow).await["last_check_ok"], false);
}

/// Many accounts on one server: the active check sends it at most
/// `calendar.health_per_host` requests at once, and still checks them all.
#[actix_web::test]
async fn the_health_check_bounds_its_requests_per_server() {
    let mut settings = test_settings(&fresh_database().await);
    settings.calendar.sync_interval = Duration::ZERO;
    settings.calendar.health_per_host = 2;
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings).await;
    let server = sluggish(Duration::from_millis(150), false);
    let other = sluggish(Duration::from_millis(150), false);
    let mut accounts = Vec::new();
    for i in 0..8 {
        let t = app.provision(&format!("calhost{i}")).await;
        let port = if i < 6 { server.port } else { other.port };
        accounts.push(connect(&app, &t, &format!("http://127.0.0.1:{port}/"), "pw").await);
    }
    let report = check(&app).await;
    assert_eq!(report["checked"], 8, "{report}");
    assert_eq!(report["ok"], 8, "{report}");
    for account in accounts {
        assert_eq!(outcome(&report, account)["outcome"], "ok");
    }
    let most = server.most.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} connections at once");
    assert!(other.most.load(Ordering::SeqCst) <= 2);
}
