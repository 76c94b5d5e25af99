//! Tenant erasure time for a tenant of many messages (issue 16, "Tests and
//! benchmarks"), not a test: `#[ignore]`d, it asserts only that the erasure
//! finished and deleted every message, never a time. Run (`loadtest/tenant-erasure.sh`
//! does): `TENANT_ERASE_BENCH_ROWS=100000 cargo test --test api tenant_erasure_bench
//! -- --ignored --nocapture`. The grace is 100 ms, so the time is the job's.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{fresh_database, spawn_app_with, test_settings};

#[actix_web::test]
#[ignore]
async fn tenant_erasure_bench() {
    let rows = crate::gdpr_bench::env_rows("TENANT_ERASE_BENCH_ROWS", 100_000);
    let mut settings = test_settings(&fresh_database().await);
    settings.erasure.tenant_grace = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;
    let t = app.provision("benchgone").await;
    let channel = app.create_channel(&t, "bulk").await;
    let db = app.superuser_client().await;
    crate::gdpr_bench::bulk_messages(&db, &t, channel, rows).await;

    let admin = app.platform_token();
    let start = Instant::now();
    let reply = app
        .request(
            "DELETE",
            &format!("/v1/tenants/{}", t.id),
            Some(&admin),
            Some(json!({ "confirm": "benchgone" })),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let deadline = Instant::now() + Duration::from_secs(3600);
    let done = loop {
        let e = app
            .get(&format!("/v1/tenants/{}/erasure", t.id), &admin)
            .await
            .body;
        if e["state"] == "done" || Instant::now() > deadline {
            break e;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    let took = start.elapsed();
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["messages"], rows);
    let job: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = {
        let parse = |v: &serde_json::Value| v.as_str().unwrap().parse().unwrap();
        (parse(&done["started_at"]), parse(&done["finished_at"]))
    };
    println!(
        "tenant erasure: {rows} messages; request to done {took:?} (grace 100 ms, job poll \
         included); job start to receipt {} ms; counts {}",
        (job.1 - job.0).num_milliseconds(),
        done["counts"]
    );
}
