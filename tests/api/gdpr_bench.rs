//! Export throughput and memory, and user erasure time (issue 16, "Tests and
//! benchmarks"), not a test: `#[ignore]`d, it asserts only that the work
//! finished, never a time. Run (`loadtest/gdpr.sh` does):
//! `GDPR_BENCH_ROWS=1000000 cargo test --test api gdpr_bench -- --ignored --nocapture`
//! The server runs in the test process, so the process's peak RSS (VmHWM) is
//! the node's plus the harness's; the figure printed is the growth of the peak
//! over the resident size before the export (the harness's own share is flat).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{fresh_database, spawn_app_with, test_settings};

/// `name` from the environment as a row count, else `default`.
pub(crate) fn env_rows(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Inserts `rows` messages of about 200 bytes into `channel` in one statement
/// (as the superuser: setup, not what is measured) and analyzes the table.
pub(crate) async fn bulk_messages(
    db: &tokio_postgres::Client,
    tenant: &crate::helpers::Tenant,
    channel: uuid::Uuid,
    rows: i64,
) {
    let insert = Instant::now();
    db.execute(
        "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
         SELECT $1, gen_random_uuid(), 'us-east1', $2, $3,
                'bulk message ' || g || ' ' || repeat('x', 180)
         FROM generate_series(1, $4::bigint) g",
        &[&tenant.id, &channel, &tenant.owner_id, &rows],
    )
    .await
    .unwrap();
    db.execute("ANALYZE messages", &[]).await.unwrap();
    println!("inserted {rows} messages in {:?}", insert.elapsed());
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
#[ignore]
async fn export_and_erasure_bench() {
    // MERIDIAN_BENCH_LOG=<filter> (e.g. `meridian::jobs=info`): the node's log on stderr.
    if let Ok(filter) = std::env::var("MERIDIAN_BENCH_LOG") {
        meridian::telemetry::init(meridian::config::LogFormat::Pretty, &filter);
    }
    let rows = env_rows("GDPR_BENCH_ROWS", 1_000_000);
    let erase_rows = env_rows("GDPR_BENCH_ERASE_ROWS", 100_000);
    let settings = test_settings(&fresh_database().await);
    let app = spawn_app_with(settings).await;
    let t = app.provision("bench").await;
    let channel = app.create_channel(&t, "bulk").await;
    let db = app.superuser_client().await;
    bulk_messages(&db, &t, channel, rows).await;

    let (rss_before, hwm_before) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    let start = Instant::now();
    let id = crate::exports::request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    let deadline = Instant::now() + Duration::from_secs(3600);
    let export = loop {
        let e = app
            .get(&format!("/v1/exports/{id}"), &t.owner_token)
            .await
            .body;
        if e["state"] != "queued" || Instant::now() > deadline {
            break e;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    };
    let took = start.elapsed();
    // Every attempt of the build job and why an earlier one ended, if it did.
    for job in db
        .query(
            "SELECT attempts, state, error FROM jobs WHERE tenant_id = $1 AND kind = 'exports.build'",
            &[&t.id],
        )
        .await
        .unwrap()
    {
        let (attempts, state, error): (i32, String, Option<String>) =
            (job.get(0), job.get(1), job.get(2));
        println!("exports.build job: {attempts} attempt(s), {state}, last error {error:?}");
    }
    assert_eq!(export["state"], "ready", "{export}");
    let hwm_after = status_kib("VmHWM:");
    println!(
        "export: {rows} messages, {} bytes in {took:?} = {:.0} rows/s; RSS before {} MiB, \
         peak before {} MiB, peak after {} MiB (growth of the peak over RSS before: {} MiB)",
        export["size"],
        rows as f64 / took.as_secs_f64(),
        rss_before / 1024,
        hwm_before / 1024,
        hwm_after / 1024,
        hwm_after.saturating_sub(rss_before) / 1024
    );

    // User erasure (delete policy) of a user with `erase_rows` messages.
    let (user, _) = app.add_user(&t, "member").await;
    db.execute(
        "UPDATE tenants SET erasure_policy = 'delete' WHERE id = $1",
        &[&t.id],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
         SELECT $1, gen_random_uuid(), 'us-east1', $2, $3, 'to erase ' || g
         FROM generate_series(1, $4::bigint) g",
        &[&t.id, &channel, &user, &erase_rows],
    )
    .await
    .unwrap();
    let start = Instant::now();
    let reply = app
        .post(
            &format!("/v1/users/{user}/erasure"),
            &t.owner_token,
            json!(null),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let erasure = reply.body["id"].as_str().unwrap().to_owned();
    let done = loop {
        let e = app
            .get(&format!("/v1/erasures/{erasure}"), &t.owner_token)
            .await
            .body;
        if e["state"] == "done" || Instant::now() > deadline {
            break e;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["messages"], erase_rows);
    println!(
        "user erasure (delete): {erase_rows} messages in {:?}",
        start.elapsed()
    );
}
