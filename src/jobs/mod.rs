//! Background jobs: a tenant-fair queue in each region (issue 13).
//!
//! A job is a row of `jobs` (sql/*/V8__jobs.sql), homed like every tenant row.
//! Code that wants work done later calls [`enqueue`] inside its own tenant
//! transaction, so the job exists iff the change that asked for it committed. Each
//! node runs a [`worker::WorkerPool`] that leases jobs of its own region only,
//! round-robin across tenants, within each tenant's `jobs_concurrent` and the
//! node's `jobs.workers`, and runs them with the [`JobHandler`] registered for
//! their kind. The interface, the states and the claiming on both dialects are
//! described in `docs/jobs.md`.

pub mod schedule;
pub mod store;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{Database, PlatformTx, TenantTx, TxMode};
use crate::error::ApiError;
pub use crate::ids::JobId;
use crate::ids::{RegionId, TenantId};
pub use schedule::{Schedule, ScheduleScope};
pub use worker::WorkerPool;

/// What enqueueing can fail with: the store's error, which `?` converts inside
/// a `TenantScope::write` body (and a failure rolls back the change that asked
/// for the job).
pub type JobStoreError = crate::store::error::StoreError;

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Which handler runs it (`JobHandler::kind`).
    pub kind: &'static str,
    pub payload: serde_json::Value,
    /// Same key (per tenant; per region for platform jobs) → the existing job.
    pub idempotency_key: Option<String>,
    /// Not before this time (default: now).
    pub run_after: Option<DateTime<Utc>>,
    /// Attempts before the job is `dead` (1..=100).
    pub max_attempts: i32,
}

impl NewJob {
    /// A job of `kind` with 5 attempts, no key, runnable now.
    pub fn new(kind: &'static str, payload: serde_json::Value) -> Self {
        Self {
            kind,
            payload,
            idempotency_key: None,
            run_after: None,
            max_attempts: 5,
        }
    }
}

/// Enqueues `job` in the caller's tenant transaction (RLS: the transaction's
/// tenant; the row is homed in the tenant's home region). Same idempotency key →
/// the existing job's id, whatever its state.
pub async fn enqueue(tx: &TenantTx<'_>, job: NewJob) -> Result<JobId, JobStoreError> {
    store::enqueue(tx, job).await
}

/// Enqueues a platform job (no tenant) that belongs to `region` and runs there.
pub async fn enqueue_platform(
    tx: &PlatformTx<'_>,
    region: &RegionId,
    job: NewJob,
) -> Result<JobId, JobStoreError> {
    store::enqueue_platform(tx, region, job).await
}

/// Enqueues a job for `tenant` as the node itself (schedules, node-internal
/// producers), in a transaction of its own scoped to that tenant.
pub async fn enqueue_for(
    db: &Database,
    tenant: TenantId,
    home_region: &RegionId,
    job: NewJob,
) -> Result<JobId, ApiError> {
    db.tenant_tx(tenant, home_region, None, TxMode::ReadWrite, async |tx| {
        Ok(store::enqueue(tx, job.clone()).await?)
    })
    .await
}

/// What a handler knows about the job it runs.
pub struct JobContext {
    pub job_id: JobId,
    /// `None` for a platform job.
    pub tenant: Option<TenantId>,
    /// The job's (and this node's) region.
    pub region: RegionId,
    pub kind: &'static str,
    /// 1 on the first run.
    pub attempt: i32,
    pub max_attempts: i32,
    db: Database,
    /// This node's lease-owner name (`holds_lease`).
    owner: String,
}

impl JobContext {
    /// Whether this run still holds its job's lease, read in the caller's tenant
    /// transaction with the job row locked: a handler makes its final state
    /// change in that same transaction only when this is true, so a stale run
    /// (its lease expired and the job handed on, or cancelled) changes nothing.
    /// The lock makes a concurrent lease expiry wait for the transaction (or, if
    /// it committed first, makes this read see it).
    pub async fn holds_lease(&self, tx: &TenantTx<'_>) -> Result<bool, ApiError> {
        Ok(store::holds_lease(tx, self.job_id, &self.owner).await?)
    }

    /// Runs `body` in a transaction of the job's tenant (RLS on that tenant, 40001
    /// retried). A platform job has no tenant: `ApiError::internal`.
    pub async fn tenant_tx<T>(
        &self,
        mode: TxMode,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let Some(tenant) = self.tenant else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "job {} of kind {} is a platform job: it has no tenant transaction",
                self.job_id,
                self.kind
            )));
        };
        self.db
            .tenant_tx(tenant, &self.region, None, mode, body)
            .await
    }

    /// Runs `body` in a transaction of `tenant` (RLS on it, 40001 retried): a
    /// platform job that works on one tenant's rows (tenant erasure, whose tenant
    /// no longer runs jobs of its own).
    pub async fn tenant_tx_for<T>(
        &self,
        tenant: TenantId,
        home_region: &RegionId,
        mode: TxMode,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.db
            .tenant_tx(tenant, home_region, None, mode, body)
            .await
    }

    /// Runs `body` in a platform transaction (platform jobs: directory, region
    /// state; it sees no tenant's rows under RLS).
    pub async fn platform_tx<T>(
        &self,
        mode: TxMode,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.db.platform_tx(mode, body).await
    }
}

/// How a run ended well.
#[derive(Clone, Debug)]
pub enum JobOutcome {
    /// Stored as the job's `result`.
    Succeeded(serde_json::Value),
}

/// How a run ended badly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobError {
    /// Try again after exponential backoff with jitter; `dead` after `max_attempts`.
    Retry(String),
    /// Never try again: `failed`.
    Permanent(String),
}

/// Runs jobs of one kind. Handlers must tolerate running a job more than once
/// (a lease can expire while a slow run is still going, or the node can die after
/// the work but before recording it): make the effect idempotent, or check in the
/// job's tenant transaction whether it already happened.
#[async_trait::async_trait(?Send)]
pub trait JobHandler: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    async fn run(
        &self,
        ctx: &JobContext,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, JobError>;
}

/// The handlers (and schedules) a node's worker pool runs.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn JobHandler>>,
    schedules: Vec<Schedule>,
}

impl Registry {
    /// Adds `handler` for its kind (a second handler of one kind replaces the first).
    pub fn with(mut self, handler: impl JobHandler) -> Self {
        self.handlers.insert(handler.kind(), Arc::new(handler));
        self
    }

    /// Adds a recurring job (`schedule`).
    pub fn every(mut self, schedule: Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }

    /// The registered kinds: the only values of the `kind` metric label.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }
}

/// The node's registry: every job kind Meridian runs. Add a handler here.
pub fn node_registry() -> Registry {
    Registry::default()
}

/// `jobs.*` settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSettings {
    /// Run a worker pool on this node.
    pub enabled: bool,
    /// Jobs this node runs at once (all tenants together): the global worker cap.
    pub workers: usize,
    /// How often the pool looks for work when idle (it also looks as soon as a
    /// job finishes).
    #[serde(rename = "poll_interval_ms", with = "crate::config::millis")]
    pub poll_interval: Duration,
    /// How long a claimed job is leased; renewed every third of it while running.
    /// A job whose lease expires (its node died) is run again by another node.
    #[serde(rename = "lease_ms", with = "crate::config::millis")]
    pub lease: Duration,
    /// Backoff after the n-th failed attempt: up to base · 2^(n-1), full jitter.
    #[serde(rename = "backoff_base_ms", with = "crate::config::millis")]
    pub backoff_base: Duration,
    #[serde(rename = "backoff_max_ms", with = "crate::config::millis")]
    pub backoff_max: Duration,
    /// Platform jobs (no tenant) of the region running at once.
    pub platform_concurrent: u32,
    /// On shutdown: how long running jobs may go on to finish (no new claims);
    /// those still running then are abandoned and their leases released at once,
    /// the attempt not counted, so another node takes them without waiting out
    /// the lease.
    #[serde(rename = "shutdown_grace_ms", with = "crate::config::millis")]
    pub shutdown_grace: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            workers: 8,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            platform_concurrent: 2,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl JobSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > 1024 {
            return Err("jobs.workers must be between 1 and 1024".into());
        }
        if self.poll_interval.is_zero() || self.lease < Duration::from_millis(100) {
            return Err("jobs.poll_interval_ms must be positive and jobs.lease_ms >= 100".into());
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return Err("jobs.backoff_base_ms must be positive and <= jobs.backoff_max_ms".into());
        }
        if self.platform_concurrent == 0 {
            return Err("jobs.platform_concurrent must be positive".into());
        }
        Ok(())
    }
}
