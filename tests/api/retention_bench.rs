//! The retention job's delete rate and the delete batch's query plan (issue 16
//! item 4), not a test: `#[ignore]`d, it asserts only what the job did, never a
//! time. Run (`loadtest/retention.sh` does):
//! `RETENTION_BENCH_ROWS=200000 cargo test --test api retention_bench -- --ignored --nocapture`
//! Tenant A has ROWS old messages and 1,000 recent ones; tenant B has ROWS old
//! messages its policy keeps. The plan of the batch is printed as the service
//! role sees it (RLS on, `app.tenant_id` set), from EXPLAIN (ANALYZE) inside a
//! rolled-back transaction.

use std::time::Instant;

use serde_json::json;

use crate::helpers::{fresh_database, spawn_app_with, test_settings};

#[actix_web::test]
#[ignore]
async fn retention_bench() {
    let rows: i64 = std::env::var("RETENTION_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut settings = test_settings(&fresh_database().await);
    // Only the job this bench enqueues runs retention.
    settings.retention.interval = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    let batch = settings.retention.batch_rows;
    let app = spawn_app_with(settings).await;
    let (a, b) = (
        app.provision("bench-a").await,
        app.provision("bench-b").await,
    );
    let db = app.superuser_client().await;
    for (t, recent) in [(&a, 1_000i64), (&b, 0)] {
        let channel = app.create_channel(t, "bulk").await;
        db.execute(
            "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
             SELECT $1::uuid, gen_random_uuid(), 'us-east1', $2::uuid, $3::uuid,
                    'old message ' || g || ' ' || repeat('x', 180),
                    now() - interval '60 days' + g * interval '1 ms'
             FROM generate_series(1, $4::bigint) g
             UNION ALL
             SELECT $1::uuid, gen_random_uuid(), 'us-east1', $2::uuid, $3::uuid, 'recent ' || g, now()
             FROM generate_series(1, $5::bigint) g",
            &[&t.id, &channel, &t.owner_id, &rows, &recent],
        )
        .await
        .unwrap();
    }
    db.execute("ANALYZE messages", &[]).await.unwrap();
    let set = app
        .request(
            "PUT",
            &format!("/v1/tenants/{}/retention", a.id),
            Some(&a.owner_token),
            Some(json!({ "messages_days": 30, "audit_days": 365 })),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);

    let app_role = app.app_role_client().await;
    app_role
        .batch_execute(&format!("BEGIN; SET LOCAL app.tenant_id = '{}'", a.id))
        .await
        .unwrap();
    let plan = app_role
        .query(
            &format!(
                "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) {}",
                meridian::compliance::retention_job::DELETE_MESSAGES_SQL
                    .replace("$1", &format!("'{}'::uuid", a.id))
                    .replace("$2", "now() - interval '30 days'")
                    .replace("$3", &batch.to_string())
                    .replace("$4", "33")
            ),
            &[],
        )
        .await
        .unwrap();
    app_role.batch_execute("ROLLBACK").await.unwrap();
    println!("the delete batch as meridian_app, RLS on:");
    for line in &plan {
        println!("  {}", line.get::<_, String>(0));
    }

    let start = Instant::now();
    let job = crate::retention::run_retention(&app, &a).await;
    let took = start.elapsed();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["deleted"]["messages"], rows, "{job}");
    let left = |t: uuid::Uuid| {
        let db = &db;
        async move {
            db.query_one("SELECT count(*) FROM messages WHERE tenant_id = $1", &[&t])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(left(a.id).await, 1_000);
    assert_eq!(left(b.id).await, rows);
    println!(
        "retention: {rows} old messages deleted in batches of {batch} in {took:?} = {:.0} rows/s \
         (job enqueue to end, polled every 50 ms)",
        rows as f64 / took.as_secs_f64()
    );
}
