//! Fairness of the job queue under one tenant's flood (issue 13 item 5; V16 and
//! docs/jobs.md, "Fairness under a flood"): the queue's statements read one index
//! probe per tenant whatever the table's statistics say, and a pass never waits
//! behind another node's claim of the flooding tenant.
//!
//! Costs are asserted as buffers read (`EXPLAIN (ANALYZE, BUFFERS)`), never as
//! time: the same plan reads the same pages on a loaded machine.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::jobs::{Log, env, settings, work};

/// Shared buffers (hit + read) the statement's execution touched, nested
/// statements of the functions it calls included.
async fn buffers(client: &tokio_postgres::Client, sql: &str, params: &[&Uuid]) -> i64 {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| *p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let row = client
        .query_one(
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"),
            &params,
        )
        .await
        .unwrap();
    let plan: Value = row.get(0);
    let node = &plan[0]["Plan"];
    node["Shared Hit Blocks"].as_i64().unwrap() + node["Shared Read Blocks"].as_i64().unwrap()
}

/// The planner chose the probes' index from `jobs`' statistics: analyzed while
/// the table held only finished jobs, then flooded with 20,000 queued jobs of one
/// tenant (autovacuum off, so no ANALYZE catches up), the old functions read
/// `jobs_ready_idx` — every ready job of the region — and sorted it, per probe:
/// ~1,700 buffers per heads call, ~400 per claim of a quiet tenant, growing with
/// the flood. V16 pins `jobs_queue_idx`: a few buffers per tenant.
#[actix_web::test]
async fn heads_and_claims_read_one_probe_per_tenant_even_with_stale_statistics() {
    let env = env().await;
    let flood = env.tenant("flood", 16).await;
    let mut quiet = Vec::new();
    for t in 0..3 {
        quiet.push(env.tenant(&format!("quiet{t}"), 4).await);
    }
    let db = env.app.superuser_client().await;
    db.batch_execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
        .await
        .unwrap();
    // History: finished jobs only, analyzed (the statistics say "nothing queued").
    for tenant in &quiet {
        db.execute(
            "INSERT INTO jobs (id, tenant_id, home_region, kind, state, attempts, finished_at)
             SELECT gen_random_uuid(), $1, 'us-east1', 'test.work', 'succeeded', 1, now()
               FROM generate_series(1, 1000)",
            &[&tenant.id],
        )
        .await
        .unwrap();
    }
    db.batch_execute("ANALYZE jobs").await.unwrap();
    // The flood, then one ready job per quiet tenant, after the flood's run_after.
    db.execute(
        "INSERT INTO jobs (id, tenant_id, home_region, kind)
         SELECT gen_random_uuid(), $1, 'us-east1', 'test.work' FROM generate_series(1, 20000)",
        &[&flood.id],
    )
    .await
    .unwrap();
    for tenant in &quiet {
        env.enqueue(tenant, work(json!({}))).await;
    }

    let nil = Uuid::nil();
    let heads = "SELECT * FROM job_queue_heads('us-east1', $1, 64)";
    // The first call of a session also reads the catalog to plan; measure the second.
    buffers(&db, heads, &[&nil]).await;
    let heads_cost = buffers(&db, heads, &[&nil]).await;
    let found: i64 = db
        .query_one(
            "SELECT count(*) FROM job_queue_heads('us-east1', $1, 64)",
            &[&nil],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 4, "the flood and the three quiet tenants have work");
    assert!(
        heads_cost < 200,
        "job_queue_heads read {heads_cost} buffers for 4 tenants: not a skip scan of \
         jobs_queue_idx"
    );

    db.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .unwrap();
    let claim = "SELECT * FROM claim_job_locked('us-east1', $1, 'test-node', 60, 4)";
    buffers(&db, claim, &[&quiet[0].id]).await;
    let claim_cost = buffers(&db, claim, &[&quiet[1].id]).await;
    db.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        claim_cost < 150,
        "claiming a quiet tenant's one job read {claim_cost} buffers: it walked the flood"
    );
}

/// A pass claims tenant after tenant. When another node's claim holds the
/// flooding tenant's row lock (`FOR NO KEY UPDATE`), the V14 claim waited for it,
/// and every tenant after it in the pass waited too. Since V16 that tenant is
/// "busy, next pass": the pass goes on and leases the quiet tenant's job.
#[actix_web::test]
async fn a_pass_does_not_wait_behind_another_claim_of_a_busy_tenant() {
    let env = env().await;
    let flood = env.tenant("flood", 16).await;
    let quiet = env.tenant("quiet", 4).await;
    for _ in 0..5 {
        env.enqueue(&flood, work(json!({}))).await;
    }
    let quiet_job = env.enqueue(&quiet, work(json!({}))).await;
    // Another node's claim of the flooding tenant, in flight.
    let other = env.app.superuser_client().await;
    other
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED;
             SELECT 1 FROM tenants WHERE id = '{}' FOR NO KEY UPDATE",
            flood.id
        ))
        .await
        .unwrap();

    let log = Log::default();
    let pool = env.pool("a", &log, "us-east1", settings());
    // A liveness bound, not a timing: the old claim blocks until the lock is
    // released, which here is never.
    let started = tokio::time::timeout(Duration::from_secs(30), pool.poll_once())
        .await
        .expect("the pass waited behind the other claim's tenant lock")
        .unwrap();
    pool.idle().await;
    assert_eq!(started, 1, "only the quiet tenant's job: the flood is busy");
    let runs = log.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].job, quiet_job);
    assert_eq!(env.state(quiet_job).await.0, "succeeded");

    // Once the other claim ends, the flooding tenant is claimed again.
    other.batch_execute("COMMIT").await.unwrap();
    assert!(pool.poll_once().await.unwrap() >= 1);
    pool.idle().await;
    assert!(log.runs().iter().any(|r| r.tenant == Some(flood.id)));
}
