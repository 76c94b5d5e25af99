//! A node's worker pool: leases jobs of its own region, round-robin across
//! tenants, and runs them.
//!
//! Fairness: each pass walks the tenants that have ready work in tenant-id order
//! from where the previous pass stopped (the node's cursor) and leases at most one
//! job per tenant, skipping tenants already at their `jobs_concurrent`; passes
//! repeat while slots are free and something was leased. A tenant with 100,000
//! queued jobs thus gets one job per pass, like a tenant with one. The node's
//! cap (`jobs.workers`) is a semaphore: a job is leased only with a permit in hand.
//! Per-tenant concurrency is counted from running rows in the claiming statement
//! (no counter row), so it holds across nodes.
//!
//! Leases: a running job's lease is renewed every third of `jobs.lease_ms`; a
//! renewal that finds the job cancelled or taken over stops the run. Any node
//! hands expired leases back to the queue (`expire_job_leases`).
//!
//! Shutdown (`shutdown`): the pool stops claiming, waits up to
//! `jobs.shutdown_grace_ms` for running jobs, then abandons the rest: each run is
//! dropped, its lease ended now with the attempt not counted, and the region's
//! expired leases handed back at once (which also releases their AI
//! reservations), so another node picks them up on its next poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use uuid::Uuid;

use super::store::{self, Claimed, Finish};
use super::{JobContext, JobError, JobSettings, Registry};
use crate::db::{Database, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::metrics::jobs::JobMetrics;
use crate::tenancy::Directory;

/// Runs `$body` in the job's own scope: its tenant's transaction (RLS on that
/// tenant), or for a platform job a platform transaction that may see platform
/// jobs. A macro because the two transactions are different types.
macro_rules! in_job_scope {
    ($pool:expr, $job:expr, $mode:expr, $body:expr) => {
        match $job.tenant {
            Some(tenant) => {
                $pool
                    .db
                    .tenant_tx(tenant, &$pool.region, None, $mode, $body)
                    .await
            }
            None => {
                $pool
                    .db
                    .platform_tx($mode, async |tx| {
                        store::enter_platform_jobs(tx).await?;
                        ($body)(tx).await
                    })
                    .await
            }
        }
    };
}

/// Tenants looked at per pass at most.
const HEADS_PER_PASS: i32 = 64;

/// How long a job of a kind this node cannot run waits before it is claimable
/// again (see `WorkerPool::hand_back`).
const UNREGISTERED_KIND_DELAY: Duration = Duration::from_secs(30);

pub struct WorkerPool {
    db: Database,
    directory: Directory,
    region: RegionId,
    /// This node's lease-owner name (region/uuid).
    owner: String,
    registry: Registry,
    settings: JobSettings,
    slots: Arc<Semaphore>,
    /// The last tenant a pass looked at.
    cursor: Mutex<Uuid>,
    wake: Notify,
    /// Set when the node stops: no new claims.
    stopping: AtomicBool,
    /// Sent `true` when the grace is over: running jobs are abandoned.
    abandon: watch::Sender<bool>,
    metrics: JobMetrics,
    /// Last period enqueued per schedule (index in the registry; `schedule`).
    pub(super) schedule_marks: Mutex<std::collections::HashMap<usize, i64>>,
}

impl WorkerPool {
    pub fn new(
        db: Database,
        directory: Directory,
        region: RegionId,
        registry: Registry,
        settings: JobSettings,
        metrics: JobMetrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            owner: format!("{region}/{}", Uuid::now_v7()),
            db,
            directory,
            region,
            registry,
            slots: Arc::new(Semaphore::new(settings.workers)),
            settings,
            cursor: Mutex::new(Uuid::nil()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            abandon: watch::Sender::new(false),
            metrics,
            schedule_marks: Mutex::default(),
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }

    pub(super) fn db(&self) -> &Database {
        &self.db
    }

    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    fn lease_secs(&self) -> f64 {
        self.settings.lease.as_secs_f64()
    }

    /// Jobs running on this node now.
    pub fn running(&self) -> usize {
        self.settings.workers - self.slots.available_permits()
    }

    /// Waits until no job runs on this node (tests, benchmarks, shutdown).
    pub async fn idle(&self) {
        let all = u32::try_from(self.settings.workers).unwrap_or(u32::MAX);
        if let Ok(permits) = self.slots.acquire_many(all).await {
            drop(permits);
        }
    }

    /// Polls until the node stops: schedules, expired leases, then as many jobs as
    /// free slots allow; again after `poll_interval_ms` or as soon as a job ends.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let pool = self.clone();
        actix_web::rt::spawn(async move {
            let interval = pool.settings.poll_interval;
            let mut ticks: u64 = 0;
            while !pool.stopping.load(Ordering::SeqCst) {
                if ticks.is_multiple_of(10) {
                    pool.housekeeping().await;
                }
                ticks += 1;
                if let Err(err) = pool.poll_once().await {
                    tracing::warn!(error = %err, "job poll failed");
                }
                let _ = tokio::time::timeout(interval, pool.wake.notified()).await;
            }
        })
    }

    /// Stops the pool: no new claims; running jobs get `jobs.shutdown_grace_ms`
    /// to finish, then are abandoned (leases released, attempts not counted) and
    /// handed back to the queue. Returns how many were abandoned.
    pub async fn shutdown(&self) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if tokio::time::timeout(self.settings.shutdown_grace, self.idle())
            .await
            .is_ok()
        {
            return 0;
        }
        let abandoned = self.running();
        tracing::info!(
            jobs = abandoned,
            "jobs still running after the shutdown grace: releasing their leases"
        );
        self.abandon.send_replace(true);
        // Each abandoned run ends at its next await and releases its lease; a
        // run stuck in a database call is bounded by the statement timeouts.
        if tokio::time::timeout(Duration::from_secs(5), self.idle())
            .await
            .is_err()
        {
            tracing::warn!("abandoned jobs did not end in 5 s; their leases will expire");
        }
        if let Err(err) = self.expire_leases().await {
            tracing::warn!(error = %err, "handing abandoned jobs back failed; their leases expire");
        }
        abandoned
    }

    /// Due schedules, expired leases, the region's totals for `/metrics`.
    pub async fn housekeeping(&self) {
        if let Err(err) = super::schedule::enqueue_due(self).await {
            tracing::warn!(error = %err, "enqueueing scheduled jobs failed");
        }
        if let Err(err) = self.expire_leases().await {
            tracing::warn!(error = %err, "expiring job leases failed");
        }
        let stats = self
            .db
            .platform_tx(TxMode::ReadOnly, async |tx| {
                Ok(store::region_stats(tx, &self.region).await?)
            })
            .await;
        match stats {
            Ok((queued, running, oldest)) => {
                self.metrics.set_region_totals(queued, running, oldest)
            }
            Err(err) => tracing::warn!(error = %err, "reading job totals failed"),
        }
    }

    /// Hands this region's expired leases back to the queue (or to `dead`).
    pub async fn expire_leases(&self) -> Result<i64, ApiError> {
        let n = self
            .db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                Ok(store::expire_leases(tx, &self.region).await?)
            })
            .await?;
        if n > 0 {
            tracing::info!(jobs = n, "expired job leases returned to the queue");
        }
        Ok(n)
    }

    /// Leases as many jobs as free slots allow, round-robin across tenants, and
    /// starts them. Returns how many it started.
    pub async fn poll_once(self: &Arc<Self>) -> Result<usize, ApiError> {
        let mut started = 0;
        if let Some(permit) = self.slots.clone().try_acquire_owned().ok()
            && let Some(job) = self
                .claim(None, i64::from(self.settings.platform_concurrent))
                .await?
        {
            self.start(job, permit);
            started += 1;
        }
        loop {
            let pass = self.pass().await?;
            started += pass;
            if pass == 0 || self.slots.available_permits() == 0 {
                return Ok(started);
            }
        }
    }

    /// One round: at most one job per tenant with ready work.
    async fn pass(self: &Arc<Self>) -> Result<usize, ApiError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let n = HEADS_PER_PASS.min(i32::try_from(free * 4).unwrap_or(HEADS_PER_PASS));
        let after = *self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let mut heads = self.heads(after, n).await?;
        if heads.len() < n as usize && !after.is_nil() {
            // Wrap around: the tenants before the cursor come after it.
            let seen: std::collections::HashSet<_> = heads.iter().map(|(t, _)| *t).collect();
            let wrapped = self.heads(Uuid::nil(), n - heads.len() as i32).await?;
            heads.extend(wrapped.into_iter().filter(|(t, _)| !seen.contains(t)));
        }
        let mut started = 0;
        for (tenant, running) in heads {
            let cap = self.tenant_cap(tenant).await?;
            if running < cap {
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                match self.claim(Some(tenant), cap).await {
                    Ok(Some(job)) => {
                        self.start(job, permit);
                        started += 1;
                    }
                    Ok(None) => {}
                    // Claims of one tenant from several nodes conflicted past the
                    // retries: the next pass tries again; other tenants go on.
                    Err(ApiError::RetryExhausted) => {
                        tracing::debug!(%tenant, "job claim kept conflicting; next pass")
                    }
                    Err(err) => return Err(err),
                }
            }
            *self.cursor.lock().unwrap_or_else(PoisonError::into_inner) = *tenant.as_uuid();
        }
        Ok(started)
    }

    async fn heads(&self, after: Uuid, n: i32) -> Result<Vec<(TenantId, i64)>, ApiError> {
        self.db
            .platform_tx(TxMode::ReadOnly, async |tx| {
                Ok(store::queue_heads(tx, &self.region, after, n).await?)
            })
            .await
    }

    /// The tenant's `jobs_concurrent` (from the directory cache; the claim counts
    /// running rows against it in the database). A tenant that no longer exists
    /// or is suspended runs nothing.
    async fn tenant_cap(&self, tenant: TenantId) -> Result<i64, ApiError> {
        Ok(match self.directory.get(tenant).await? {
            Some(record) if record.status == crate::tenancy::TenantStatus::Active => {
                i64::from(record.limits().jobs_concurrent)
            }
            _ => 0,
        })
    }

    async fn claim(&self, tenant: Option<TenantId>, cap: i64) -> Result<Option<Claimed>, ApiError> {
        let lease = self.lease_secs();
        // A tenant's claim is exact at READ COMMITTED (V14 `claim_job_locked`: the
        // tenant's row lock, then count and lease); under SERIALIZABLE one tenant's
        // concurrent claims aborted each other several times per job. Platform
        // claims (few) keep V8's SERIALIZABLE count.
        let mode = match tenant {
            Some(_) => TxMode::ReadCommitted,
            None => TxMode::ReadWrite,
        };
        let job = self
            .db
            .platform_tx(mode, async |tx| {
                Ok(store::claim(tx, &self.region, tenant, &self.owner, lease, cap).await?)
            })
            .await?;
        if job.is_some() {
            self.metrics.observe_claim();
        }
        Ok(job)
    }

    fn start(self: &Arc<Self>, job: Claimed, permit: OwnedSemaphorePermit) {
        let pool = self.clone();
        actix_web::rt::spawn(async move {
            let id = job.id;
            if let Err(err) = pool.run(job).await {
                // The lease expires and another attempt follows.
                tracing::warn!(job_id = %id, error = %err, "recording a job run failed");
            }
            drop(permit);
            pool.wake.notify_one();
        });
    }

    async fn run(&self, job: Claimed) -> Result<(), ApiError> {
        let owner = self.owner.as_str();
        let Some(handler) = self.registry.get(&job.kind) else {
            return self.hand_back(&job).await;
        };
        let kind = handler.kind();
        let Some(payload) = in_job_scope!(self, job, TxMode::ReadOnly, async |tx| {
            Ok(store::leased_payload(tx, job.id, owner).await?)
        })?
        else {
            // Cancelled (or taken over) between the claim and now.
            self.metrics.observe_run(kind, "lost");
            return Ok(());
        };
        let ctx = JobContext {
            job_id: job.id,
            tenant: job.tenant,
            region: self.region.clone(),
            kind,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            db: self.db.clone(),
            owner: self.owner.clone(),
        };
        let outcome = self.run_leased(&job, handler.run(&ctx, &payload)).await?;
        let Some(outcome) = outcome else {
            self.metrics.observe_run(kind, "lost");
            return Ok(());
        };
        let finish = match outcome {
            Ok(value) => Finish::Succeeded(value),
            Err(error) => next_state(&self.settings, error, job.attempt, job.max_attempts),
        };
        // Recording the outcome must not be lost to a burst of serialization
        // conflicts with other nodes' claims: a job left `running` would wait out
        // its whole lease and then run again.
        let mut tries = 0;
        let recorded = loop {
            tries += 1;
            // READ COMMITTED: `finish` is one UPDATE guarded by `state = 'running'
            // AND lease_owner = <this node>`, re-checked on the locked latest row
            // version, so a lost lease still changes nothing; under SERIALIZABLE
            // finishes of neighbouring jobs aborted each other and the claims.
            match in_job_scope!(self, job, TxMode::ReadCommitted, async |tx| {
                Ok(store::finish(tx, job.id, owner, &finish).await?)
            }) {
                Err(ApiError::RetryExhausted) if tries < 5 => {
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                other => break other?,
            }
        };
        let label = match (&finish, recorded) {
            (_, false) => "lost",
            (Finish::Succeeded(_), _) => "succeeded",
            (Finish::Retry { .. }, _) => "retry",
            (Finish::Failed(_), _) => "failed",
            (Finish::Dead(_), _) => "dead",
        };
        self.metrics.observe_run(kind, label);
        Ok(())
    }

    /// A kind this node's build has no handler for (a node of an older or newer
    /// build enqueued it during a rolling deploy): handed back unrun, its
    /// attempt not counted, so it neither dies here nor loses the attempts a
    /// node that knows it will need. Delayed by `UNREGISTERED_KIND_DELAY` so
    /// this node does not claim it again at once.
    async fn hand_back(&self, job: &Claimed) -> Result<(), ApiError> {
        let owner = self.owner.as_str();
        let note = format!("no handler for kind `{}` on node {owner}", job.kind);
        let after = UNREGISTERED_KIND_DELAY.as_secs_f64();
        let handed = in_job_scope!(self, job, TxMode::ReadCommitted, async |tx| {
            Ok(store::hand_back(tx, job.id, owner, after, &note).await?)
        })?;
        tracing::warn!(job_id = %job.id, kind = %job.kind, "no handler for the job's kind: handed back");
        self.metrics
            .observe_run("unregistered", if handed { "handed_back" } else { "lost" });
        Ok(())
    }

    /// Drives the handler while renewing the lease every third of it. `None` when
    /// a renewal found the lease gone (cancelled or taken over): the run is
    /// dropped at that await point.
    async fn run_leased<T>(
        &self,
        job: &Claimed,
        run: impl Future<Output = T>,
    ) -> Result<Option<T>, ApiError> {
        let every = (self.settings.lease / 3).max(Duration::from_millis(10));
        let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let lease = self.lease_secs();
        let owner = self.owner.as_str();
        let mut run = std::pin::pin!(run);
        let mut abandon = self.abandon.subscribe();
        loop {
            tokio::select! {
                done = &mut run => return Ok(Some(done)),
                _ = abandon.wait_for(|now| *now) => {
                    let released = in_job_scope!(self, job, TxMode::ReadWrite, async |tx| {
                        Ok(store::abandon(tx, job.id, owner).await?)
                    })?;
                    tracing::info!(job_id = %job.id, released, "job abandoned at shutdown");
                    return Ok(None);
                }
                _ = renewals.tick() => {
                    let renewed = in_job_scope!(self, job, TxMode::ReadWrite, async |tx| {
                        Ok(store::renew(tx, job.id, owner, lease).await?)
                    });
                    // A renewal that failed (the database busy or briefly away)
                    // does not end the run: the lease still has two thirds of its
                    // time, the next tick tries again, and a run whose lease did
                    // lapse is refused when it records its result.
                    let held = match renewed {
                        Ok(held) => held,
                        Err(err) => {
                            tracing::warn!(job_id = %job.id, error = %err, "renewing the job's \
                                lease failed; trying again at the next tick");
                            true
                        }
                    };
                    if !held {
                        tracing::info!(job_id = %job.id, "job cancelled or lease lost; stopping \
                            its run");
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Backoff before attempt `attempt + 1`: uniformly random in
/// [0, min(max, base · 2^(attempt-1))] ("full jitter"), so retries of many jobs
/// that failed together spread out.
pub fn backoff_secs(settings: &JobSettings, attempt: i32) -> f64 {
    let exp = 2f64.powi(attempt.clamp(1, 30) - 1);
    let ceiling = (settings.backoff_base.as_millis() as f64 * exp)
        .min(settings.backoff_max.as_millis() as f64);
    let unit = (Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
    ceiling * unit / 1000.0
}

/// Which state a handler's error leads to, given the attempt just made.
pub fn next_state(settings: &JobSettings, error: JobError, attempt: i32, max: i32) -> Finish {
    match error {
        JobError::Permanent(e) => Finish::Failed(e),
        JobError::Retry(e) if attempt >= max => Finish::Dead(e),
        JobError::Retry(e) => Finish::Retry {
            error: e,
            after_secs: backoff_secs(settings, attempt),
        },
    }
}
