//! Re-encryption throughput (issue 15, "Benchmarks"), not a test: `#[ignore]`d,
//! it asserts only that the work finished, never a time. Run:
//! `cargo test --test api encryption_bench -- --ignored --nocapture`
//! (`ROWS` webhook secrets; batches of `encryption.reencrypt_batch`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, fresh_database, spawn_app_with, test_settings};

const ROWS: i64 = 2000;

async fn keys(app: &TestApp, tenant: uuid::Uuid) -> Value {
    app.get(&format!("/v1/tenants/{tenant}/keys"), &app.platform_token())
        .await
        .body
}

/// Rotates and waits until the job's work is done; the elapsed time.
async fn rotate_and_wait(
    app: &TestApp,
    tenant: uuid::Uuid,
    done: impl AsyncFn() -> bool,
) -> Duration {
    let start = Instant::now();
    // The previous rotation's job may still be finishing (409 `rotation_in_progress`).
    let reply = loop {
        let reply = app
            .post(
                &format!("/v1/tenants/{tenant}/keys/rotate"),
                &app.platform_token(),
                json!({}),
            )
            .await;
        if reply.status != 409 {
            break reply;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(reply.status, 202, "{}", reply.body);
    while !done().await {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "not done in 10 min"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[actix_web::test]
#[ignore = "benchmark: run with --ignored"]
async fn reencryption_rows_per_second() {
    let mut settings = test_settings(&fresh_database().await);
    settings.jobs.poll_interval = Duration::from_millis(20);
    let app = spawn_app_with(settings).await;
    let t = app.provision("bench-keys").await;
    let db = app.superuser_client().await;
    db.execute(
        "INSERT INTO webhook_endpoints (tenant_id, id, home_region, url, secret)
         SELECT $1, gen_random_uuid(), 'us-east1', 'http://127.0.0.1:9/h', 'whsec_' || md5(i::text)
         FROM generate_series(1, $2::bigint) AS i",
        &[&t.id, &ROWS],
    )
    .await
    .unwrap();
    // First rotation: version 1, and the job seals the plaintext rows.
    let sealing = rotate_and_wait(&app, t.id, async || {
        db.query_one(
            "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1 AND secret IS NOT NULL",
            &[&t.id],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
            == 0
    })
    .await;
    // Second: every row re-encrypted from version 1 to 2.
    let reencrypting = rotate_and_wait(&app, t.id, async || {
        let k = keys(&app, t.id).await;
        k["pending_reencryption"] == 0 && !k["versions"][0]["drained_at"].is_null()
    })
    .await;
    let k = keys(&app, t.id).await;
    assert_eq!(k["versions"][1]["rewritten"], ROWS, "{k}");
    let rate = |d: Duration| ROWS as f64 / d.as_secs_f64();
    println!(
        "rows {ROWS}: plaintext sealed in {:.2} s ({:.0} rows/s); re-encrypted v1->v2 in {:.2} s ({:.0} rows/s), batch {}",
        sealing.as_secs_f64(),
        rate(sealing),
        reencrypting.as_secs_f64(),
        rate(reencrypting),
        meridian::crypto::settings::EncryptionSettings::default().reencrypt_batch,
    );
}
