//! The SQL of jobs. Tenant-side functions take the tenant's transaction (RLS on
//! that tenant) and put its id in their predicate; the worker's cross-tenant
//! steps go through `SECURITY DEFINER` functions (`job_queue_heads`,
//! `claim_job_locked` of V14, `claim_platform_job`, `expire_job_leases`,
//! `job_region_stats`), which hand out ids and counts, never a payload. V8's
//! `claim_job` stays for nodes of the previous release during a rolling upgrade.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{JobId, NewJob};
use crate::db::{PlatformTx, TenantTx, Tx};
use crate::ids::{RegionId, TenantId};
use crate::pagination::{Keyset, Page, keyset_page};
use crate::store::error::StoreError;

/// A job as its tenant sees it (`/v1/jobs`). The payload is not shown: it is
/// the enqueuing code's input, not the tenant's.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    /// queued, running, succeeded, failed, dead or cancelled.
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, state, attempts, max_attempts, run_after, result, error, \
    created_at, updated_at, started_at, finished_at";

/// The tenant's jobs, newest first (ids are time-ordered).
pub const LIST_SQL: &str = "SELECT id, kind, state, attempts, max_attempts, run_after, result, \
    error, created_at, updated_at, started_at, finished_at
     FROM jobs WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3";

fn from_row(row: &Row) -> Job {
    Job {
        id: JobId::from_uuid(row.get("id")),
        kind: row.get("kind"),
        state: row.get("state"),
        attempts: row.get("attempts"),
        max_attempts: row.get("max_attempts"),
        run_after: row.get("run_after"),
        result: row.get("result"),
        error: row.get("error"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
    }
}

fn check(job: &NewJob) -> Result<(), StoreError> {
    let ok_kind = !job.kind.is_empty() && job.kind.len() <= 100;
    let ok_key = job
        .idempotency_key
        .as_ref()
        .is_none_or(|k| !k.is_empty() && k.len() <= 200);
    if ok_kind && ok_key && (1..=100).contains(&job.max_attempts) {
        Ok(())
    } else {
        Err(StoreError::internal(anyhow::anyhow!(
            "invalid job: kind 1..=100 bytes, key 1..=200 bytes, max_attempts 1..=100 ({}, {:?}, \
                {})",
            job.kind,
            job.idempotency_key,
            job.max_attempts
        )))
    }
}

const INSERT_SQL: &str = "INSERT INTO jobs (id, tenant_id, home_region, kind, payload, \
    idempotency_key, run_after, max_attempts)
     VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()), $8) ON CONFLICT DO NOTHING RETURNING id";

pub async fn enqueue(tx: &TenantTx<'_>, job: NewJob) -> Result<JobId, StoreError> {
    let tenant = tx.tenant_id();
    let region = tx.home_region().clone();
    insert(tx, Some(*tenant.as_uuid()), &region, job).await
}

/// Makes platform jobs (tenant_id NULL) visible to this transaction (RLS).
pub async fn enter_platform_jobs<S>(tx: &Tx<'_, S>) -> Result<(), StoreError> {
    tx.query_one("SELECT set_config('app.platform_jobs', 'on', true)", &[])
        .await?;
    Ok(())
}

pub async fn enqueue_platform(
    tx: &PlatformTx<'_>,
    region: &RegionId,
    job: NewJob,
) -> Result<JobId, StoreError> {
    enter_platform_jobs(tx).await?;
    insert(tx, None, region, job).await
}

/// The job with this idempotency key: the tenant's, or the region's platform
/// job's (two statements, so each uses the key's index).
const EXISTING_SQL: &str = "SELECT id FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2";
const EXISTING_PLATFORM_SQL: &str = "SELECT id FROM jobs
     WHERE tenant_id IS NULL AND home_region = $1 AND idempotency_key = $2";

/// Inserts the job, or answers the existing one with its idempotency key (the
/// only unique constraint an insert with a fresh v7 id can hit).
async fn insert<S>(
    tx: &Tx<'_, S>,
    tenant: Option<Uuid>,
    region: &RegionId,
    job: NewJob,
) -> Result<JobId, StoreError> {
    check(&job)?;
    let id = JobId::new_random();
    let region = region.as_str();
    let inserted = tx
        .query_opt(
            INSERT_SQL,
            &[
                id.as_uuid(),
                &tenant,
                &region,
                &job.kind,
                &job.payload,
                &job.idempotency_key,
                &job.run_after,
                &job.max_attempts,
            ],
        )
        .await?;
    if inserted.is_some() {
        return Ok(id);
    }
    let key = &job.idempotency_key;
    let row = match &tenant {
        Some(tenant) => tx.query_one(EXISTING_SQL, &[tenant, key]).await?,
        None => tx.query_one(EXISTING_PLATFORM_SQL, &[&region, key]).await?,
    };
    Ok(JobId::from_uuid(row.get(0)))
}

pub async fn list(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<Job>, StoreError> {
    let after_id = after.map(|k| k.id);
    let rows = tx
        .query(
            LIST_SQL,
            &[tx.tenant_id().as_uuid(), &after_id, &(i64::from(limit) + 1)],
        )
        .await?;
    let items = rows.iter().map(from_row).collect();
    Ok(keyset_page(items, limit, |j: &Job| Keyset {
        at: j.created_at,
        id: *j.id.as_uuid(),
    }))
}

fn not_found(id: JobId) -> StoreError {
    StoreError::not_found("job", *id.as_uuid())
}

pub async fn get(tx: &TenantTx<'_>, id: JobId) -> Result<Job, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2");
    tx.query_opt(&sql, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| not_found(id))
}

/// Kinds no tenant user may cancel. `/v1/jobs/{id}/cancel` is for owners and
/// admins, but these jobs carry a decision an admin may not make (a compliance
/// officer's user erasure or export, a platform admin's key rotation) or
/// protective work the tenant must not be able to stop (retention, audit
/// checkpoints, sealing messages once encryption is on, removing expired
/// archives). Cancelling one would undo that decision without a trace of it in
/// its own record (the erasure or export would stay `queued` for good).
pub const UNCANCELLABLE: &[&str] = &[
    crate::compliance::erasure::KIND,
    crate::compliance::export_job::KIND,
    crate::compliance::retention_job::KIND,
    crate::compliance::sweep::KIND,
    crate::compliance::sweep::REMOVE_ARCHIVES_KIND,
    crate::compliance::tenant_erasure::job::KIND,
    crate::crypto::rotation::REENCRYPT_KIND,
    crate::crypto::rotation::ROTATE_CHECK_KIND,
    crate::crypto::seal_messages::KIND,
    crate::audit::jobs::TENANT_KIND,
    crate::audit::jobs::PLATFORM_KIND,
];

/// Cancels a queued or running job (a running one's worker notices at its next
/// lease renewal and its result is discarded). A finished job: 409; a job of
/// an `UNCANCELLABLE` kind: 403, decided by the statement that would cancel it.
pub async fn cancel(tx: &TenantTx<'_>, id: JobId) -> Result<Job, StoreError> {
    let sql = format!(
        "UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_until = NULL,
                updated_at = now(), finished_at = now()
          WHERE tenant_id = $1 AND id = $2 AND state IN ('queued', 'running')
            AND kind <> ALL($3::text[]) RETURNING {COLUMNS}"
    );
    if let Some(row) = tx
        .query_opt(
            &sql,
            &[tx.tenant_id().as_uuid(), id.as_uuid(), &UNCANCELLABLE],
        )
        .await?
    {
        return Ok(from_row(&row));
    }
    let job = get(tx, id).await?;
    if UNCANCELLABLE.contains(&job.kind.as_str()) {
        return Err(StoreError::NotAllowed);
    }
    Err(StoreError::JobFinished(format!(
        "job {id} is {} and can no longer be cancelled",
        job.state
    )))
}

// ---- the worker's side ----

/// A job leased to this node.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: JobId,
    pub tenant: Option<TenantId>,
    pub kind: String,
    pub attempt: i32,
    pub max_attempts: i32,
}

fn claimed(row: &Row) -> Claimed {
    Claimed {
        id: JobId::from_uuid(row.get(0)),
        tenant: row.get::<_, Option<Uuid>>(1).map(TenantId::from_uuid),
        kind: row.get(2),
        attempt: row.get(3),
        max_attempts: row.get(4),
    }
}

/// Tenants of `region` with ready work after `after` in id order, with their
/// running counts.
pub async fn queue_heads(
    tx: &PlatformTx<'_>,
    region: &RegionId,
    after: Uuid,
    n: i32,
) -> Result<Vec<(TenantId, i64)>, StoreError> {
    let rows = tx
        .query(
            "SELECT tenant_id, running FROM job_queue_heads($1, $2, $3)",
            &[&region.as_str(), &after, &n],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (TenantId::from_uuid(r.get(0)), r.get(1)))
        .collect())
}

pub async fn claim(
    tx: &PlatformTx<'_>,
    region: &RegionId,
    tenant: Option<TenantId>,
    owner: &str,
    lease_secs: f64,
    cap: i64,
) -> Result<Option<Claimed>, StoreError> {
    let row = match tenant {
        Some(t) => {
            tx.query_opt(
                "SELECT id, tenant_id, kind, attempts, max_attempts FROM claim_job_locked($1, $2, \
                    $3, $4, $5)",
                &[&region.as_str(), t.as_uuid(), &owner, &lease_secs, &cap],
            )
            .await?
        }
        None => {
            tx.query_opt(
                "SELECT id, tenant_id, kind, attempts, max_attempts FROM claim_platform_job($1, \
                    $2, $3, $4)",
                &[&region.as_str(), &owner, &lease_secs, &cap],
            )
            .await?
        }
    };
    Ok(row.as_ref().map(claimed))
}

/// Gives up this node's lease of a running job on shutdown: the attempt is not
/// counted and the lease ends now, so the next `expire_job_leases` (run right
/// after by the stopping node, or by any node) queues it at once.
pub async fn abandon<S>(tx: &Tx<'_, S>, id: JobId, owner: &str) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE jobs SET attempts = attempts - 1,
                             lease_until = now() - interval '1 millisecond', updated_at = now()
             WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            &[id.as_uuid(), &owner],
        )
        .await?;
    Ok(n == 1)
}

pub async fn expire_leases(tx: &PlatformTx<'_>, region: &RegionId) -> Result<i64, StoreError> {
    Ok(tx
        .query_one("SELECT expire_job_leases($1)", &[&region.as_str()])
        .await?
        .get(0))
}

/// (queued, running, age of the oldest ready queued job in seconds) of `region`.
pub async fn region_stats(
    tx: &PlatformTx<'_>,
    region: &RegionId,
) -> Result<(i64, i64, f64), StoreError> {
    let row = tx
        .query_one(
            "SELECT queued, running, oldest_queued_secs FROM job_region_stats($1)",
            &[&region.as_str()],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// The payload of a job this node holds the lease of; `None` when it no longer
/// does (cancelled, or the lease expired and another node took it).
pub async fn leased_payload<S>(
    tx: &Tx<'_, S>,
    id: JobId,
    owner: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT payload FROM jobs WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            &[id.as_uuid(), &owner],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Whether `owner` holds the lease of the running job `id`; locks the job row
/// until the transaction ends (`JobContext::holds_lease`).
pub async fn holds_lease<S>(tx: &Tx<'_, S>, id: JobId, owner: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM jobs WHERE id = $1 AND state = 'running' AND lease_owner = $2 FOR UPDATE",
            &[id.as_uuid(), &owner],
        )
        .await?
        .is_some())
}

/// Extends the lease; false when this node no longer holds it.
pub async fn renew<S>(
    tx: &Tx<'_, S>,
    id: JobId,
    owner: &str,
    lease_secs: f64,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "UPDATE jobs SET lease_until = now() + $3::float8 * interval '1 second', updated_at = \
                now()
              WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            &[id.as_uuid(), &owner, &lease_secs],
        )
        .await?
        == 1)
}

/// How a run is recorded.
#[derive(Clone, Debug)]
pub enum Finish {
    Succeeded(serde_json::Value),
    /// Back to the queue, not before `after_secs`.
    Retry {
        error: String,
        after_secs: f64,
    },
    Failed(String),
    Dead(String),
}

impl Finish {
    pub fn state(&self) -> &'static str {
        match self {
            Finish::Succeeded(_) => "succeeded",
            Finish::Retry { .. } => "queued",
            Finish::Failed(_) => "failed",
            Finish::Dead(_) => "dead",
        }
    }
}

/// Hands a leased job back unrun (a kind this node has no handler for): queued
/// again after `after_secs`, the claim's attempt not counted, so nodes of
/// another build that know the kind run it with its full attempts. False when
/// this node no longer holds the lease.
pub async fn hand_back<S>(
    tx: &Tx<'_, S>,
    id: JobId,
    owner: &str,
    after_secs: f64,
    note: &str,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, error = $4, \
                lease_owner = NULL, lease_until = NULL, \
                run_after = now() + $3::float8 * interval '1 second', updated_at = now() \
              WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            &[id.as_uuid(), &owner, &after_secs, &note],
        )
        .await?
        == 1)
}

/// Records the end of a run of a job this node holds the lease of; false when it
/// no longer does (the outcome is then dropped: someone else owns the job now).
pub async fn finish<S>(
    tx: &Tx<'_, S>,
    id: JobId,
    owner: &str,
    outcome: &Finish,
) -> Result<bool, StoreError> {
    let (result, error, after_secs) = match outcome {
        Finish::Succeeded(v) => (Some(v.clone()), None, 0.0),
        Finish::Retry { error, after_secs } => (None, Some(error.clone()), *after_secs),
        Finish::Failed(e) | Finish::Dead(e) => (None, Some(e.clone()), 0.0),
    };
    let state = outcome.state();
    Ok(tx
        .execute(
            "UPDATE jobs SET state = $3, result = $4, error = $5, lease_owner = NULL, lease_until \
                = NULL,
                    run_after = CASE WHEN $3 = 'queued' THEN now() + $6::float8 * interval '1 \
                        second' ELSE run_after END,
                    updated_at = now(), finished_at = CASE WHEN $3 = 'queued' THEN NULL ELSE now() \
                        END
              WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            &[id.as_uuid(), &owner, &state, &result, &error, &after_secs],
        )
        .await?
        == 1)
}
