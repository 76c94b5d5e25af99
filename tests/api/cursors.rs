//! Cursors are client input: every field decoded from one is validated, so a
//! hostile cursor on any cursor-taking route is a `400 invalid_cursor`, never a
//! database error (a 500) or a silently widened page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn b64(text: &str) -> String {
    B64.encode(text)
}

/// The earliest instant PostgreSQL and CockroachDB can store (4714-11-24 BC, Julian
/// day 0), in Unix microseconds.
fn database_min_micros() -> i64 {
    NaiveDate::from_ymd_opt(-4713, 11, 24)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

/// Keyset cursors (`k1:<micros>:<uuid>`) that no page of this API ever issues.
fn hostile_keysets() -> Vec<(String, String)> {
    let id = "0190a0a0-0000-7000-8000-000000000001";
    let min = database_min_micros();
    let chrono_max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
    let texts = [
        // The report: a timestamp before PostgreSQL's minimum date.
        format!("k1:-300000000000000000:{id}"),
        format!("k1:{}:{id}", min - 1),
        format!("k1:{}:{id}", i64::MIN),
        format!("k1:{}:{id}", i64::MAX),
        format!("k1:{}:{id}", chrono_max + 1),
        format!("k1:99999999999999999999999:{id}"),
        format!("k1:NaN:{id}"),
        format!("k1:inf:{id}"),
        format!("k1:-inf:{id}"),
        format!("k1:1e15:{id}"),
        format!("k1:1700000000000000.5:{id}"),
        format!("k1:+1700000000000000:{id}"),
        format!("k1:01700000000000000:{id}"),
        format!("k1: 1700000000000000:{id}"),
        format!("k1::{id}"),
        format!("k1:1700000000000000:{id}:extra"),
        format!("k1:1700000000000000:{id}:"),
        format!("k1:1700000000000000:{}", id.to_uppercase()),
        format!("k1:1700000000000000:{}", id.replace('-', "")),
        format!("k1:1700000000000000:{{{id}}}"),
        format!("k1:1700000000000000:urn:uuid:{id}"),
        "k1:1700000000000000".to_owned(),
        "k1:1700000000000000:".to_owned(),
        format!("k2:1700000000000000:{id}"),
        format!("K1:1700000000000000:{id}"),
        format!("k1:1700000000000000:{id}\0"),
        "o1:5".to_owned(),
        format!("k1:{}:{id}", "9".repeat(5000)),
    ];
    let mut cursors: Vec<(String, String)> = texts.iter().map(|t| (t.clone(), b64(t))).collect();
    let valid = b64(&format!("k1:1700000000000000:{id}"));
    cursors.extend([
        ("padded".to_owned(), format!("{valid}==")),
        ("trailing character".to_owned(), format!("{valid}A")),
        (
            "percent-encoded standard alphabet".to_owned(),
            format!("%2B{valid}"),
        ),
        ("not base64".to_owned(), "!!!".to_owned()),
        ("empty".to_owned(), String::new()),
        (
            "not UTF-8".to_owned(),
            B64.encode([0x6b, 0x31, 0x3a, 0xff, 0xfe]),
        ),
        ("huge".to_owned(), "A".repeat(8 * 1024)),
    ]);
    cursors
}

/// Offset cursors (`o1:<n>`, search) that no page of this API ever issues.
fn hostile_offsets() -> Vec<(String, String)> {
    let texts = [
        "o1:-1".to_owned(),
        "o1:4294967296".to_owned(),
        format!("o1:{}", i64::MIN),
        format!("o1:{}", u64::MAX),
        "o1:NaN".to_owned(),
        "o1:inf".to_owned(),
        "o1:1e3".to_owned(),
        "o1:1.5".to_owned(),
        "o1:+50".to_owned(),
        "o1:050".to_owned(),
        "o1:50:extra".to_owned(),
        "o1:".to_owned(),
        "o1:10001".to_owned(),
        "k1:1700000000000000:0190a0a0-0000-7000-8000-000000000001".to_owned(),
        format!("o1:{}", "9".repeat(5000)),
    ];
    let mut cursors: Vec<(String, String)> = texts.iter().map(|t| (t.clone(), b64(t))).collect();
    cursors.extend([
        ("huge".to_owned(), "A".repeat(8 * 1024)),
        ("padded".to_owned(), format!("{}==", b64("o1:50"))),
    ]);
    cursors
}

fn with_cursor(path: &str, cursor: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}cursor={cursor}")
}

async fn assert_refused(app: &TestApp, path: &str, token: &str, what: &str, cursor: &str) {
    let reply = app.get(&with_cursor(path, cursor), token).await;
    assert_eq!(
        reply.status.as_u16(),
        400,
        "{path} with cursor {:.80?}: {}",
        what,
        reply.body
    );
    assert_problem(&reply, 400, "invalid_cursor");
}

#[actix_web::test]
async fn every_cursor_route_refuses_hostile_cursors() {
    let app = spawn_app().await;
    let t = app.provision("cursors").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "hello cursor").await;
    let admin = app.platform_token();
    let keyset_routes = [
        ("/v1/channels".to_owned(), &t.owner_token),
        (format!("/v1/channels/{channel}/messages"), &t.owner_token),
        ("/v1/users".to_owned(), &t.owner_token),
        ("/v1/audit".to_owned(), &t.owner_token),
        ("/v1/audit".to_owned(), &admin),
        ("/v1/tenants".to_owned(), &admin),
    ];
    for (path, token) in &keyset_routes {
        for (what, cursor) in hostile_keysets() {
            assert_refused(&app, path, token, &what, &cursor).await;
        }
        // The boundaries themselves are positions the databases can hold: a page
        // (empty before the oldest instant, everything before the newest).
        let id = "0190a0a0-0000-7000-8000-000000000001";
        for micros in [
            database_min_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros(),
        ] {
            let cursor = b64(&format!("k1:{micros}:{id}"));
            let reply = app.get(&with_cursor(path, &cursor), token).await;
            assert_eq!(reply.status, 200, "{path} at {micros}: {}", reply.body);
        }
    }
    let search = "/v1/search?q=hello";
    for (what, cursor) in hostile_offsets() {
        assert_refused(&app, search, &t.owner_token, &what, &cursor).await;
    }
    let reply = app
        .get(&with_cursor(search, &b64("o1:10000")), &t.owner_token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["items"], json!([]));
}
