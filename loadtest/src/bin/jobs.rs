//! Job-queue fairness and scale benchmark (issue 13 item 5; `loadtest/jobs.sh`).
//!
//! `jobs run` seeds tenants, starts `--nodes` worker processes (`jobs worker`, each
//! a `meridian::jobs::WorkerPool` of region us-east1, like a node's), and measures
//! two phases: *quiet* (every tenant enqueues small jobs at a steady rate) and
//! *flood* (the same, while one tenant has `--flood` jobs queued at once). It
//! reports the other tenants' start latency (first run's start minus enqueue
//! time) p50/p99 per phase, jobs/s per node during the flood, and with `--kill`
//! SIGKILLs one node mid-flood and checks that every job still reaches
//! `succeeded` and which ran more than once.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use meridian::config::DatabaseSettings;
use meridian::db::{Database, Dialect, TxMode};
use meridian::ids::RegionId;
use meridian::jobs::{JobContext, JobError, JobHandler, JobSettings, Registry, WorkerPool};
use meridian::tenancy::Directory;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One worker node (started by `run`).
    Worker {
        #[arg(long)]
        app_url: String,
        #[arg(long)]
        node: String,
        #[arg(long, default_value_t = 16)]
        workers: usize,
        #[arg(long, default_value_t = 5)]
        job_ms: u64,
        #[arg(long, default_value_t = 3_000)]
        lease_ms: u64,
    },
    /// The benchmark.
    Run {
        /// Superuser URL of a migrated database (seeding, figures).
        #[arg(long)]
        admin_url: String,
        /// Service-role URL (the nodes).
        #[arg(long)]
        app_url: String,
        #[arg(long, default_value_t = 1_000)]
        tenants: usize,
        #[arg(long, default_value_t = 100_000)]
        flood: usize,
        /// Small jobs per second, all quiet tenants together (round robin).
        #[arg(long, default_value_t = 100)]
        rate: usize,
        /// Seconds of enqueueing per phase.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        #[arg(long, default_value_t = 16)]
        workers: usize,
        #[arg(long, default_value_t = 5)]
        job_ms: u64,
        /// Every tenant's jobs_concurrent.
        #[arg(long, default_value_t = 4)]
        jobs_concurrent: u32,
        /// SIGKILL node 0 halfway through the flood phase.
        #[arg(long)]
        kill: bool,
    },
}

/// `bench.work`: sleeps, then records the run (job, node, start) in `bench_runs`.
struct Work {
    node: String,
    job_ms: u64,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for Work {
    fn kind(&self) -> &'static str {
        "bench.work"
    }

    async fn run(&self, ctx: &JobContext, _: &Value) -> Result<Value, JobError> {
        let started = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(self.job_ms)).await;
        ctx.tenant_tx(TxMode::ReadWrite, async |tx| {
            Ok(tx
                .execute(
                    "INSERT INTO bench_runs (job_id, node, started_at) VALUES ($1, $2, $3)",
                    &[ctx.job_id.as_uuid(), &self.node, &started],
                )
                .await?)
        })
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(json!({}))
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Worker {
            app_url,
            node,
            workers,
            job_ms,
            lease_ms,
        } => {
            let db = Database::connect(&DatabaseSettings {
                url: app_url.into(),
                pool_size: workers + 4,
                connect_timeout: std::time::Duration::from_secs(5),
                max_retries: 8,
                dialect: Dialect::Postgres,
                tls: Default::default(),
                // No posts here: the job queue only.
                post_batch_max: 0,
                post_writers_per_tenant: 1,
                post_lane_wait: std::time::Duration::from_millis(100),
            })?;
            let settings = JobSettings {
                workers,
                poll_interval: Duration::from_millis(50),
                lease: Duration::from_millis(lease_ms),
                ..JobSettings::default()
            };
            let registry = Registry::default().with(Work {
                node: node.clone(),
                job_ms,
            });
            let region = RegionId::parse("us-east1").map_err(anyhow::Error::msg)?;
            let pool = WorkerPool::new(
                db.clone(),
                Directory::new(db, 100_000),
                region,
                registry,
                settings,
                Default::default(),
            );
            let _ = pool.spawn().await;
            Ok(())
        }
        Cmd::Run {
            admin_url,
            app_url,
            tenants,
            flood,
            rate,
            seconds,
            nodes,
            workers,
            job_ms,
            jobs_concurrent,
            kill,
        } => {
            let (db, conn) = tokio_postgres::connect(&admin_url, NoTls).await?;
            actix_rt::spawn(conn);
            seed(&db, tenants, jobs_concurrent).await?;
            let me = std::env::current_exe()?;
            let start_node = |i: usize| -> anyhow::Result<Child> {
                Command::new(&me)
                    .args([
                        "worker",
                        "--app-url",
                        &app_url,
                        "--node",
                        &format!("n{i}"),
                        "--workers",
                        &workers.to_string(),
                        "--job-ms",
                        &job_ms.to_string(),
                    ])
                    .spawn()
                    .context("starting a worker node")
            };
            let mut children: Vec<Child> = (0..nodes).map(start_node).collect::<Result<_, _>>()?;
            let quiet_ids: Vec<uuid::Uuid> = db
                .query(
                    "SELECT id FROM tenants WHERE slug LIKE 'jb-quiet-%' ORDER BY slug",
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let flood_id: uuid::Uuid = db
                .query_one("SELECT id FROM tenants WHERE slug = 'jb-flood'", &[])
                .await?
                .get(0);

            // Warm-up (not measured): every tenant's first job loads it into the
            // nodes' directory caches and opens their pools' connections.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let warm_rate = quiet_ids.len().max(1) / 5;
            pace(&db, &quiet_ids, warm_rate, 6, "warm", None).await?;
            drain(&db).await?;
            eprintln!(
                "== quiet: {rate} jobs/s over {} tenants for {seconds} s, \
                 {nodes} nodes x {workers} workers, {job_ms} ms jobs",
                quiet_ids.len()
            );
            pace(&db, &quiet_ids, rate, seconds, "quiet", None).await?;
            drain(&db).await?;
            let quiet = latency(&db, "quiet").await?;

            eprintln!("== flood: {flood} jobs of one tenant queued at once, same quiet load");
            db.execute(
                "INSERT INTO jobs (id, tenant_id, home_region, kind, payload)
                 SELECT gen_random_uuid(), $1, 'us-east1', 'bench.work',
                        '{\"phase\":\"flood-tenant\"}'
                 FROM generate_series(1, $2::int)",
                &[&flood_id, &(flood as i32)],
            )
            .await?;
            let t0 = Instant::now();
            let killer = kill.then(|| Duration::from_secs(seconds / 2));
            let killed = pace(
                &db,
                &quiet_ids,
                rate,
                seconds,
                "flood",
                killer.map(|d| (d, &mut children[0])),
            )
            .await?;
            drain(&db).await?;
            let elapsed = t0.elapsed().as_secs_f64();
            let during = latency(&db, "flood").await?;
            let total_sql =
                "SELECT count(*) FROM jobs WHERE payload->>'phase' IN ('flood', 'flood-tenant')";
            let total: i64 = db.query_one(total_sql, &[]).await?.get(0);
            let not_ok: i64 = db
                .query_one("SELECT count(*) FROM jobs WHERE state <> 'succeeded'", &[])
                .await?
                .get(0);
            let twice_sql = "SELECT count(*) FROM (SELECT job_id FROM bench_runs \
                             GROUP BY job_id HAVING count(*) > 1) t";
            let twice: i64 = db.query_one(twice_sql, &[]).await?.get(0);
            let never_sql = "SELECT count(*) FROM jobs j WHERE NOT EXISTS \
                             (SELECT 1 FROM bench_runs r WHERE r.job_id = j.id)";
            let never: i64 = db.query_one(never_sql, &[]).await?.get(0);
            for child in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            let p99_ratio = during["p99_ms"].as_f64().unwrap_or(0.0)
                / quiet["p99_ms"].as_f64().unwrap_or(1.0).max(0.001);
            let report = json!({
                "tenants": quiet_ids.len() + 1, "flood_jobs": flood,
                "quiet_rate_per_s": rate, "seconds": seconds,
                "nodes": nodes, "workers_per_node": workers, "job_ms": job_ms,
                "jobs_concurrent": jobs_concurrent,
                "quiet": quiet, "flood": during,
                "p99_ratio": p99_ratio,
                "flood_phase_jobs": total, "flood_phase_seconds": elapsed,
                "jobs_per_s_per_node": total as f64 / elapsed / nodes as f64,
                "killed_node": killed, "jobs_not_succeeded": not_ok, "jobs_never_run": never,
                "jobs_run_more_than_once": twice,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

async fn seed(db: &tokio_postgres::Client, tenants: usize, cap: u32) -> anyhow::Result<()> {
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS bench_runs
             (job_id uuid NOT NULL, node text NOT NULL, started_at timestamptz NOT NULL);
         GRANT INSERT ON bench_runs TO meridian_app;",
    )
    .await?;
    let limits = json!({ "jobs_concurrent": cap });
    db.execute(
        "INSERT INTO tenants (id, slug, name, home_region, plan, limits)
         SELECT gen_random_uuid(), 'jb-quiet-' || lpad(i::text, 6, '0'), 'q', 'us-east1', 'free',
                $2::jsonb
         FROM generate_series(1, $1::int) i
         UNION ALL SELECT gen_random_uuid(), 'jb-flood', 'f', 'us-east1', 'free', $2::jsonb",
        &[&(tenants as i32), &limits],
    )
    .await?;
    Ok(())
}

/// Enqueues `rate` jobs a second round robin over `tenants` for `seconds`, in
/// batches every 50 ms; optionally kills a node after a while. True if it did.
async fn pace(
    db: &tokio_postgres::Client,
    tenants: &[uuid::Uuid],
    rate: usize,
    seconds: u64,
    phase: &str,
    mut kill: Option<(Duration, &mut Child)>,
) -> anyhow::Result<bool> {
    let start = Instant::now();
    let mut sent = 0usize;
    let mut killed = false;
    let payload = json!({ "phase": phase });
    while start.elapsed() < Duration::from_secs(seconds) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as usize;
        let batch: Vec<uuid::Uuid> = (sent..due).map(|i| tenants[i % tenants.len()]).collect();
        if !batch.is_empty() {
            // The embedded PostgreSQL runs SERIALIZABLE by default: an autocommit
            // INSERT can meet 40001 beside the claims; it is retried.
            for attempt in 1.. {
                match db
                    .execute(
                        "INSERT INTO jobs (id, tenant_id, home_region, kind, payload)
                 SELECT gen_random_uuid(), t, 'us-east1', 'bench.work', $2
                   FROM unnest($1::uuid[]) t",
                        &[&batch, &payload],
                    )
                    .await
                {
                    Ok(_) => break,
                    Err(e)
                        if attempt < 10
                            && e.code()
                                == Some(
                                    &tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE,
                                ) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            sent = due;
        }
        if let Some((after, child)) = kill.as_mut()
            && !killed
            && start.elapsed() >= *after
        {
            child.kill()?; // SIGKILL: no graceful anything
            killed = true;
            eprintln!("killed node n0 at {:?}", start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(killed)
}

/// Waits until no job is queued or running.
async fn drain(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    loop {
        // The database runs SERIALIZABLE: this count can lose to the workers'
        // claims (40001); it is only a progress check, so it is asked again.
        let open: i64 = match db
            .query_one(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
                &[],
            )
            .await
        {
            Ok(row) => row.get(0),
            Err(err)
                if err.code()
                    == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        if open == 0 {
            return Ok(());
        }
        eprintln!("  {open} jobs open");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Start latency of the quiet tenants' jobs of `phase`: first run's start minus
/// enqueue time, in ms.
async fn latency(db: &tokio_postgres::Client, phase: &str) -> anyhow::Result<Value> {
    let row = db
        .query_one(
            "WITH first AS (SELECT j.id,
                                   EXTRACT(EPOCH FROM min(r.started_at) - j.created_at) * 1000 AS ms
                              FROM jobs j JOIN bench_runs r ON r.job_id = j.id
                             WHERE j.payload->>'phase' = $1 GROUP BY j.id, j.created_at)
             SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::float8,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::float8, max(ms)::float8
               FROM first",
            &[&phase],
        )
        .await?;
    let (n, p50, p99, max): (i64, Option<f64>, Option<f64>, Option<f64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    Ok(json!({ "jobs": n, "p50_ms": p50, "p99_ms": p99, "max_ms": max }))
}
