//! The job queue against the real database: claims under concurrency, lease
//! hand-over, round-robin fairness, retries/backoff/dead, cancellation,
//! idempotency, per-tenant concurrency, region-only claiming, schedules and the
//! `/v1/jobs` routes. Worker pools are built here ("nodes" of one process, each
//! with its own lease-owner name); the app under test runs without its own pool
//! so that only these pools claim.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian::db::Database;
use meridian::ids::{RegionId, TenantId};
use meridian::jobs::{
    self, JobContext, JobError, JobHandler, JobSettings, NewJob, Registry, Schedule, ScheduleScope,
    WorkerPool,
};
use meridian::tenancy::Directory;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app_with, test_settings,
};

/// One run of a job, as the test handler saw it.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) job: Uuid,
    pub(crate) tenant: Option<Uuid>,
    attempt: i32,
    node: &'static str,
}

/// (running now, most ever running at once).
type Concurrency = (u32, u32);

#[derive(Clone, Default)]
pub(crate) struct Log {
    runs: Arc<Mutex<Vec<Run>>>,
    /// Per tenant: (running now, most ever running at once), across all nodes.
    running: Arc<Mutex<HashMap<Option<Uuid>, Concurrency>>>,
}

impl Log {
    pub(crate) fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }
}

/// `test.work`: payload `{"sleep_ms": n, "fail": "retry" | "permanent"}`.
struct Work {
    node: &'static str,
    log: Log,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for Work {
    fn kind(&self) -> &'static str {
        "test.work"
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let tenant = ctx.tenant.map(|t| *t.as_uuid());
        self.log.runs.lock().unwrap().push(Run {
            job: *ctx.job_id.as_uuid(),
            tenant,
            attempt: ctx.attempt,
            node: self.node,
        });
        {
            let mut running = self.log.running.lock().unwrap();
            let entry = running.entry(tenant).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(entry.0);
        }
        let sleep = payload["sleep_ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(sleep)).await;
        self.log
            .running
            .lock()
            .unwrap()
            .entry(tenant)
            .or_default()
            .0 -= 1;
        match payload["fail"].as_str() {
            Some("retry") => Err(JobError::Retry(format!("attempt {} failed", ctx.attempt))),
            Some("permanent") => Err(JobError::Permanent("cannot ever work".into())),
            _ => Ok(json!({ "node": self.node })),
        }
    }
}

pub(crate) fn settings() -> JobSettings {
    JobSettings {
        enabled: true,
        workers: 8,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(2),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        platform_concurrent: 1,
        shutdown_grace: Duration::from_secs(1),
    }
}

pub(crate) struct Env {
    pub(crate) app: TestApp,
    pub(crate) db: Database,
}

pub(crate) async fn env() -> Env {
    if std::env::var("JOBS_TEST_LOG").is_ok() {
        meridian::telemetry::init(meridian::config::LogFormat::Pretty, "meridian=debug,warn");
    }
    let mut settings = test_settings(&fresh_database().await);
    settings.jobs.enabled = false;
    let db = Database::connect(&settings.database).unwrap();
    Env {
        app: spawn_app_with(settings).await,
        db,
    }
}

fn us() -> RegionId {
    RegionId::parse("us-east1").unwrap()
}

impl Env {
    pub(crate) fn pool(
        &self,
        node: &'static str,
        log: &Log,
        region: &str,
        settings: JobSettings,
    ) -> Arc<WorkerPool> {
        let registry = Registry::default().with(Work {
            node,
            log: log.clone(),
        });
        WorkerPool::new(
            self.db.clone(),
            Directory::new(self.db.clone(), 1_000),
            RegionId::parse(region).unwrap(),
            registry,
            settings,
            Default::default(),
        )
    }

    pub(crate) async fn tenant(&self, slug: &str, jobs_concurrent: u32) -> Tenant {
        let tenant = self.app.provision(slug).await;
        let reply = self
            .app
            .patch(
                &format!("/v1/tenants/{}", tenant.id),
                &self.app.platform_token(),
                json!({ "limits": { "jobs_concurrent": jobs_concurrent } }),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        tenant
    }

    pub(crate) async fn enqueue(&self, tenant: &Tenant, job: NewJob) -> Uuid {
        *jobs::enqueue_for(&self.db, TenantId::from_uuid(tenant.id), &us(), job)
            .await
            .unwrap()
            .as_uuid()
    }

    /// (state, attempts, error) of a job.
    pub(crate) async fn state(&self, job: Uuid) -> (String, i32, Option<String>) {
        let row = self
            .app
            .superuser_client()
            .await
            .query_one(
                "SELECT state, attempts, error FROM jobs WHERE id = $1",
                &[&job],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }

    /// Polls `pools` until no job is queued or running (or 120 s pass: a loaded CI machine).
    async fn drive(&self, pools: &[&Arc<WorkerPool>]) {
        let db = self.app.superuser_client().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            for pool in pools {
                pool.expire_leases().await.unwrap();
                pool.poll_once().await.unwrap();
            }
            let open: i64 = db
                .query_one(
                    "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if open == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{open} jobs still open after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        for pool in pools {
            pool.idle().await;
        }
    }
}

pub(crate) fn work(payload: Value) -> NewJob {
    NewJob::new("test.work", payload)
}

/// Used by the isolation and security suites: a job of `tenant`, enqueued as the node.
pub(crate) async fn enqueue_as_node(app: &TestApp, tenant: Uuid, kind: &'static str) -> Uuid {
    let db = Database::connect(&test_settings(&app.db_name).database).unwrap();
    let id = jobs::enqueue_for(
        &db,
        TenantId::from_uuid(tenant),
        &us(),
        NewJob::new(kind, json!({})),
    )
    .await
    .unwrap();
    *id.as_uuid()
}

#[actix_web::test]
async fn two_nodes_claiming_at_once_never_run_one_job_twice() {
    let env = env().await;
    let log = Log::default();
    let mut jobs = Vec::new();
    for t in 0..4 {
        let tenant = env.tenant(&format!("claims{t}"), 50).await;
        for _ in 0..50 {
            jobs.push(env.enqueue(&tenant, work(json!({ "sleep_ms": 2 }))).await);
        }
    }
    // Leases far longer than any run, even on a loaded machine: a second run
    // here could only come from a second claim, not from an expired lease.
    let long_lease = || JobSettings {
        lease: Duration::from_secs(120),
        ..settings()
    };
    let a = env.pool("a", &log, "us-east1", long_lease());
    let b = env.pool("b", &log, "us-east1", long_lease());
    let (ha, hb) = (a.spawn(), b.spawn());
    env.drive(&[]).await;
    ha.abort();
    hb.abort();
    a.idle().await;
    b.idle().await;

    let runs = log.runs();
    let mut per_job: HashMap<Uuid, usize> = HashMap::new();
    for run in &runs {
        *per_job.entry(run.job).or_default() += 1;
    }
    assert_eq!(per_job.len(), jobs.len());
    let twice: Vec<_> = runs.iter().filter(|r| per_job[&r.job] > 1).collect();
    assert!(twice.is_empty(), "a job ran twice: {twice:?}");
    let nodes: std::collections::HashSet<_> = runs.iter().map(|r| r.node).collect();
    assert_eq!(nodes.len(), 2, "both nodes should have claimed work");
    for job in jobs {
        assert_eq!(env.state(job).await.0, "succeeded");
    }
}

#[actix_web::test]
async fn an_expired_lease_hands_the_job_to_another_node() {
    let env = env().await;
    let tenant = env.tenant("lease", 4).await;
    let job = env.enqueue(&tenant, work(json!({}))).await;
    // A node claims the job and dies: nobody renews its 0.2 s lease.
    let app_db = env.app.app_role_client().await;
    let claimed = app_db
        .query(
            "SELECT id FROM claim_job('us-east1', $1, 'dead-node', 0.2, 4)",
            &[&tenant.id],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let log = Log::default();
    let b = env.pool("b", &log, "us-east1", settings());
    // While the lease holds, nobody else may take the job.
    assert_eq!(b.expire_leases().await.unwrap(), 0);
    assert_eq!(b.poll_once().await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.drive(&[&b]).await;

    let runs = log.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0].job, runs[0].node, runs[0].attempt), (job, "b", 2));
    assert_eq!(env.state(job).await.0, "succeeded");
}

#[actix_web::test]
async fn tenants_take_turns_instead_of_first_in_first_out() {
    let env = env().await;
    let flood = env.tenant("flood", 100).await;
    for _ in 0..20 {
        env.enqueue(&flood, work(json!({}))).await;
    }
    let mut quiet = Vec::new();
    for t in 0..3 {
        let tenant = env.tenant(&format!("quiet{t}"), 100).await;
        env.enqueue(&tenant, work(json!({}))).await;
        quiet.push(tenant.id);
    }
    let log = Log::default();
    // One worker: the order of starts is the scheduling order.
    let pool = env.pool(
        "a",
        &log,
        "us-east1",
        JobSettings {
            workers: 1,
            ..settings()
        },
    );
    env.drive(&[&pool]).await;

    let order: Vec<Uuid> = log.runs().iter().map(|r| r.tenant.unwrap()).collect();
    assert_eq!(order.len(), 23);
    // FIFO would run the flood's 20 first; round robin starts every tenant
    // with work within the first four runs.
    let first: std::collections::HashSet<_> = order[..4].iter().collect();
    assert_eq!(first.len(), 4, "first four starts: {order:?}");
    for tenant in &quiet {
        assert!(
            first.contains(tenant),
            "{tenant} waited behind the flood: {order:?}"
        );
    }
}

#[actix_web::test]
async fn failures_retry_with_backoff_then_die_and_permanent_errors_fail_at_once() {
    let env = env().await;
    let tenant = env.tenant("retries", 4).await;
    let retried = env
        .enqueue(
            &tenant,
            NewJob {
                max_attempts: 3,
                ..work(json!({ "fail": "retry" }))
            },
        )
        .await;
    let permanent = env
        .enqueue(&tenant, work(json!({ "fail": "permanent" })))
        .await;
    let log = Log::default();
    let pool = env.pool("a", &log, "us-east1", settings());
    env.drive(&[&pool]).await;

    let (state, attempts, error) = env.state(retried).await;
    assert_eq!((state.as_str(), attempts), ("dead", 3));
    assert_eq!(error.as_deref(), Some("attempt 3 failed"));
    let attempts: Vec<i32> = log
        .runs()
        .iter()
        .filter(|r| r.job == retried)
        .map(|r| r.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let (state, attempts, error) = env.state(permanent).await;
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    assert_eq!(error.as_deref(), Some("cannot ever work"));
}

#[actix_web::test]
async fn a_retry_waits_for_its_backoff() {
    let env = env().await;
    let tenant = env.tenant("backoff", 4).await;
    let job = env
        .enqueue(
            &tenant,
            NewJob {
                max_attempts: 2,
                ..work(json!({ "fail": "retry" }))
            },
        )
        .await;
    let log = Log::default();
    let slow = JobSettings {
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(60),
        ..settings()
    };
    let pool = env.pool("a", &log, "us-east1", slow);
    assert_eq!(pool.poll_once().await.unwrap(), 1);
    pool.idle().await;
    // Queued again, with run_after in the future (full jitter: within 60 s).
    let db = env.app.superuser_client().await;
    let row = db
        .query_one(
            "SELECT state, EXTRACT(EPOCH FROM run_after - now())::float8 FROM jobs WHERE id = $1",
            &[&job],
        )
        .await
        .unwrap();
    let (state, wait): (String, f64) = (row.get(0), row.get(1));
    assert_eq!(state, "queued");
    assert!(wait <= 60.0, "{wait}");
    if wait > 0.5 {
        assert_eq!(pool.poll_once().await.unwrap(), 0, "ran before its backoff");
    }
    assert_eq!(log.runs().len(), 1);
}

#[test]
fn backoff_grows_exponentially_with_full_jitter() {
    let s = JobSettings {
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        ..settings()
    };
    for (attempt, ceiling) in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (30, 60.0)] {
        let samples: Vec<f64> = (0..200)
            .map(|_| jobs::worker::backoff_secs(&s, attempt))
            .collect();
        assert!(
            samples.iter().all(|w| (0.0..=ceiling).contains(w)),
            "{attempt}: {samples:?}"
        );
        let max = samples.iter().cloned().fold(0.0, f64::max);
        let min = samples.iter().cloned().fold(f64::MAX, f64::min);
        // Spread over the range, not one value.
        assert!(
            max > ceiling * 0.8 && min < ceiling * 0.2,
            "{attempt}: {min}..{max}"
        );
    }
}

#[actix_web::test]
async fn cancelling_stops_queued_and_running_jobs() {
    let env = env().await;
    let tenant = env.tenant("cancel", 4).await;
    let queued = env
        .enqueue(
            &tenant,
            NewJob {
                run_after: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
                ..work(json!({}))
            },
        )
        .await;
    let running = env
        .enqueue(&tenant, work(json!({ "sleep_ms": 5_000 })))
        .await;
    let log = Log::default();
    let fast_lease = JobSettings {
        lease: Duration::from_millis(300),
        ..settings()
    };
    let pool = env.pool("a", &log, "us-east1", fast_lease);
    assert_eq!(pool.poll_once().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(env.state(running).await.0, "running");

    for job in [queued, running] {
        let reply = env
            .app
            .post(
                &format!("/v1/jobs/{job}/cancel"),
                &tenant.owner_token,
                json!(null),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["state"], "cancelled");
    }
    // The running job's next renewal (every 100 ms) finds it cancelled and stops it.
    let stopped = Instant::now();
    pool.idle().await;
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "the run was not stopped"
    );
    assert_eq!(env.state(running).await.0, "cancelled");
    assert_eq!(env.state(queued).await.0, "cancelled");
    // Cancelling again: the job has ended.
    let again = env
        .app
        .post(
            &format!("/v1/jobs/{queued}/cancel"),
            &tenant.owner_token,
            json!(null),
        )
        .await;
    assert_problem(&again, 409, "job_finished");
    assert_eq!(log.runs().len(), 1);
}

#[actix_web::test]
async fn the_same_idempotency_key_gives_the_same_job() {
    let env = env().await;
    let a = env.tenant("idem-a", 4).await;
    let b = env.tenant("idem-b", 4).await;
    let keyed = || NewJob {
        idempotency_key: Some("export:2026-11".into()),
        ..work(json!({}))
    };
    let first = env.enqueue(&a, keyed()).await;
    let second = env.enqueue(&a, keyed()).await;
    assert_eq!(first, second);
    // Keys are per tenant.
    let other = env.enqueue(&b, keyed()).await;
    assert_ne!(first, other);
    let n: i64 = env
        .app
        .superuser_client()
        .await
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[actix_web::test]
async fn a_tenants_running_jobs_never_pass_its_jobs_concurrent() {
    let env = env().await;
    let capped = env.tenant("capped", 2).await;
    for _ in 0..10 {
        env.enqueue(&capped, work(json!({ "sleep_ms": 150 }))).await;
    }
    let log = Log::default();
    // Long leases: an expired lease would let a second run start beside a
    // slow first one, which is not what this test is about.
    let long_lease = || JobSettings {
        lease: Duration::from_secs(120),
        ..settings()
    };
    let a = env.pool("a", &log, "us-east1", long_lease());
    let b = env.pool("b", &log, "us-east1", long_lease());
    let (ha, hb) = (a.spawn(), b.spawn());
    env.drive(&[]).await;
    ha.abort();
    hb.abort();
    a.idle().await;
    b.idle().await;
    let (_, most) = log.running.lock().unwrap()[&Some(capped.id)];
    // Two nodes with eight free workers each ran at most two at once, and did
    // use both.
    assert_eq!(most, 2);
    assert_eq!(log.runs().len(), 10);
}

/// Issue 13 item 5: one tenant's concurrent claims (`claim_job_locked`, READ
/// COMMITTED, as the worker runs it) never abort each other with 40001 (V8's
/// SERIALIZABLE claim did, several times per job), and together lease exactly the
/// tenant's cap, never more. Since V16 a claim that finds the tenant's lock held
/// by another claim leases nothing instead of waiting, so each session claims in
/// several rounds.
#[actix_web::test]
async fn concurrent_claims_of_one_tenant_lease_exactly_its_cap_without_conflicts() {
    let env = env().await;
    let tenant = env.tenant("flood", 4).await;
    for _ in 0..20 {
        env.enqueue(&tenant, work(json!({}))).await;
    }
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(env.app.app_role_client().await);
    }
    let claims = clients.iter().enumerate().map(|(i, client)| {
        let owner = format!("node-{i}");
        async move {
            let mut leased = 0;
            for _ in 0..5 {
                client
                    .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await?;
                let rows = client
                    .query(
                        "SELECT id FROM claim_job_locked('us-east1', $1, $2, 60, 4)",
                        &[&tenant.id, &owner],
                    )
                    .await?;
                // Hold the lock a while, so the other claims meet it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                client.batch_execute("COMMIT").await?;
                leased += rows.len();
            }
            Ok::<_, tokio_postgres::Error>(leased)
        }
    });
    let mut leased = 0;
    for result in futures_util::future::join_all(claims).await {
        leased += result.expect("a claim failed (a serialization conflict?)");
    }
    assert_eq!(leased, 4);
    let running: i64 = env
        .app
        .superuser_client()
        .await
        .query_one(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND state = 'running'",
            &[&tenant.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(running, 4);
}

#[actix_web::test]
async fn a_node_claims_only_its_own_regions_jobs() {
    let env = env().await;
    let reply = env
        .app
        .post(
            "/v1/tenants",
            &env.app.platform_token(),
            json!({ "slug": "euro", "name": "Euro", "home_region": "europe-west1",
                    "owner": { "email": "o@euro.example", "display_name": "O" } }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let eu_tenant = TenantId::from_uuid(reply.body["id"].as_str().unwrap().parse().unwrap());
    let eu = RegionId::parse("europe-west1").unwrap();
    let job = jobs::enqueue_for(&env.db, eu_tenant, &eu, work(json!({})))
        .await
        .unwrap();
    let log = Log::default();
    let us_node = env.pool("us", &log, "us-east1", settings());
    assert_eq!(us_node.poll_once().await.unwrap(), 0);
    let eu_node = env.pool("eu", &log, "europe-west1", settings());
    env.drive(&[&us_node, &eu_node]).await;
    let runs = log.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].job, runs[0].node), (*job.as_uuid(), "eu"));
}

#[actix_web::test]
async fn schedules_make_one_job_per_period_without_a_leader() {
    let env = env().await;
    let tenant = env.tenant("scheduled", 4).await;
    let log = Log::default();
    let every_hour = |scope| Schedule {
        kind: "test.work",
        every: Duration::from_secs(3_600),
        scope,
        max_attempts: 3,
    };
    let node = |name| {
        WorkerPool::new(
            env.db.clone(),
            Directory::new(env.db.clone(), 1_000),
            us(),
            Registry::default()
                .with(Work {
                    node: name,
                    log: log.clone(),
                })
                .every(every_hour(ScheduleScope::Region))
                .every(Schedule {
                    kind: "test.work",
                    ..every_hour(ScheduleScope::EachTenant)
                }),
            settings(),
            Default::default(),
        )
    };
    let (a, b) = (node("a"), node("b"));
    // Both nodes, twice each, at once.
    futures_util::join!(
        a.housekeeping(),
        b.housekeeping(),
        a.housekeeping(),
        b.housekeeping()
    );
    env.drive(&[&a, &b]).await;
    let rows = env
        .app
        .superuser_client()
        .await
        .query(
            "SELECT tenant_id, idempotency_key, home_region FROM jobs ORDER BY tenant_id",
            &[],
        )
        .await
        .unwrap();
    let made: Vec<(Option<Uuid>, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(made.len(), 2, "{made:?}");
    assert_eq!(made[0].0, Some(tenant.id));
    assert_eq!(made[1].0, None, "the region's platform job");
    assert!(made[1].1.starts_with("test.work@"), "{made:?}");
    assert_eq!(log.runs().len(), 2);
}

#[actix_web::test]
async fn jobs_are_listed_read_and_cancelled_by_owners_and_admins_only() {
    let env = env().await;
    let tenant = env.tenant("listing", 4).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(env.enqueue(&tenant, work(json!({ "n": i }))).await);
    }
    let (_, admin) = env.app.add_user(&tenant, "admin").await;
    let (_, member) = env.app.add_user(&tenant, "member").await;
    let first = env.app.get("/v1/jobs?limit=2", &admin).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], ids[2].to_string(), "newest first");
    assert_eq!(items[0]["state"], "queued");
    assert!(items[0].get("payload").is_none());
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = env
        .app
        .get(&format!("/v1/jobs?limit=2&cursor={cursor}"), &admin)
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["items"][0]["id"], ids[0].to_string());
    assert!(rest.body["next_cursor"].is_null());

    let one = env.app.get(&format!("/v1/jobs/{}", ids[1]), &admin).await;
    assert_eq!(one.body["kind"], "test.work");
    for path in ["/v1/jobs".to_owned(), format!("/v1/jobs/{}", ids[1])] {
        assert_problem(&env.app.get(&path, &member).await, 403, "forbidden");
    }
    let refused = env
        .app
        .post(&format!("/v1/jobs/{}/cancel", ids[1]), &member, json!(null))
        .await;
    assert_problem(&refused, 403, "forbidden");
    assert_eq!(env.state(ids[1]).await.0, "queued");
    let missing = env
        .app
        .get(&format!("/v1/jobs/{}", Uuid::new_v4()), &admin)
        .await;
    assert_problem(&missing, 404, "not_found");
    assert_problem(
        &env.app.get("/v1/jobs/not-a-uuid", &admin).await,
        400,
        "invalid_id",
    );
}

#[actix_web::test]
async fn the_service_role_sees_only_the_current_tenants_jobs() {
    let env = env().await;
    let a = env.tenant("rls-a", 4).await;
    let b = env.tenant("rls-b", 4).await;
    env.enqueue(&a, work(json!({}))).await;
    env.enqueue(&b, work(json!({}))).await;
    let client = env.app.app_role_client().await;
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let rows = client.simple_query(sql).await.unwrap();
            rows.iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
                .unwrap()
        }
    };
    assert_eq!(count("SELECT count(*) FROM jobs").await, "0");
    let scoped = format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{}', true); SELECT count(*) FROM jobs WHERE tenant_id = '{}'",
        a.id, b.id
    );
    let rows = client.simple_query(&scoped).await.unwrap();
    let last = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(last, "0", "tenant A's transaction saw B's job");
    client.simple_query("ROLLBACK").await.unwrap();
    // Platform jobs are not tenant rows and a tenant transaction does not see them.
    assert_eq!(
        count("SELECT count(*) FROM jobs WHERE tenant_id IS NULL").await,
        "0"
    );
}

/// A rolling deploy: a node of an older build claims a job whose kind only the
/// newer build knows. It must hand it back unrun, without spending an attempt
/// (before, it retried the job as a failure: a few such claims killed it).
#[actix_web::test]
async fn a_job_of_a_kind_the_node_cannot_run_is_handed_back_without_spending_an_attempt() {
    let env = env().await;
    let tenant = env.tenant("unknown-kind", 4).await;
    let job = env.enqueue(&tenant, work(json!({}))).await;
    let older = WorkerPool::new(
        env.db.clone(),
        Directory::new(env.db.clone(), 1_000),
        us(),
        Registry::default(),
        settings(),
        Default::default(),
    );
    assert_eq!(older.poll_once().await.unwrap(), 1);
    older.idle().await;
    let (state, attempts, error) = env.state(job).await;
    assert_eq!((state.as_str(), attempts), ("queued", 0));
    assert!(
        error
            .unwrap_or_default()
            .contains("no handler for kind `test.work`")
    );
    // Not claimable again at once, by this node or any other.
    assert_eq!(older.poll_once().await.unwrap(), 0);
    let log = Log::default();
    let newer = env.pool("newer", &log, "us-east1", settings());
    assert_eq!(newer.poll_once().await.unwrap(), 0);
    // Once its delay is over, a node that knows the kind runs it as attempt 1.
    env.app
        .superuser_client()
        .await
        .execute("UPDATE jobs SET run_after = now() WHERE id = $1", &[&job])
        .await
        .unwrap();
    env.drive(&[&newer]).await;
    let runs = log.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].job, runs[0].node, runs[0].attempt),
        (job, "newer", 1)
    );
    assert_eq!(env.state(job).await.0, "succeeded");
}
