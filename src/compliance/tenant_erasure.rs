//! Tenant erasure (issue 16 item 3): `DELETE /v1/tenants/{id}` (platform admin,
//! the slug as confirmation) suspends the tenant with `erase_after` = now +
//! `erasure.tenant_grace_ms` and schedules the erasure job in its home region;
//! `POST /v1/tenants/{id}/restore` cancels it until then. Each of these is one
//! platform transaction on the locked `tenants` row and the locked
//! `tenant_erasures` row, and the job's first transaction takes the same locks
//! and re-checks `pending` and the grace before it moves the erasure to
//! `running` (`job::start`): a restore and the start of the deletion cannot both
//! happen. What the job deletes and keeps: `tenant_erasure::job`.
//!
//! The tenants row stays as a tombstone (status `erased`, name replaced, slug
//! kept): ids and slugs are never reused, so an old token, sign-in link or
//! trail entry can never name a new tenant, and the receipt stays findable by
//! the tenant's id (the platform trail already names the slug, hash-chained).

pub mod job;
pub mod tables;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::receipt::SignedReceipt;
use crate::audit;
use crate::db::PlatformTx;
use crate::error::ErrorCode;
use crate::ids::{JobId, TenantErasureId, TenantId};
use crate::jobs::{self, NewJob};
use crate::relocation;
use crate::store::error::StoreError;
use crate::store::tenants;
use crate::tenancy::{TenantRecord, TenantStatus};

pub use job::{EraseTenant, KIND};

/// `erasure.*` settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantErasureSettings {
    /// How long a tenant stays suspended and restorable before its erasure
    /// starts (default 7 days).
    #[serde(rename = "tenant_grace_ms", with = "crate::config::millis")]
    pub tenant_grace: Duration,
}

impl Default for TenantErasureSettings {
    fn default() -> Self {
        Self {
            tenant_grace: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl TenantErasureSettings {
    pub fn validate(&self) -> Result<(), String> {
        // At most a year: a longer grace is a suspension, not an erasure.
        if self.tenant_grace.is_zero() || self.tenant_grace > Duration::from_secs(366 * 24 * 3600) {
            return Err("erasure.tenant_grace_ms must be between 1 ms and 366 days".into());
        }
        Ok(())
    }
}

/// A tenant erasure as the platform admin sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TenantErasure {
    pub id: TenantErasureId,
    pub tenant_id: TenantId,
    /// `pending` (suspended, restorable until `erase_after`), `cancelled`
    /// (restored), `running` or `done`.
    pub state: String,
    pub erase_after: DateTime<Utc>,
    pub requested_by: String,
    pub cancelled_by: Option<String>,
    pub job_id: Option<JobId>,
    /// Rows deleted so far, per table (`tenant_keys`: versions destroyed).
    #[schema(value_type = Object)]
    pub counts: Value,
    /// The signed receipt, once done.
    pub receipt: Option<SignedReceipt>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, tenant_id, home_region, state, previous_status, erase_after, \
     requested_by, cancelled_by, job_id, counts, receipt, created_at, started_at, finished_at";

/// An erasure row and what only the job needs of it.
pub(crate) struct Stored {
    pub erasure: TenantErasure,
    pub home_region: String,
    pub previous_status: String,
}

fn from_row(row: &Row) -> Result<Stored, StoreError> {
    let receipt = row
        .get::<_, Option<Value>>("receipt")
        .map(serde_json::from_value)
        .transpose()
        .map_err(StoreError::internal)?;
    Ok(Stored {
        erasure: TenantErasure {
            id: TenantErasureId::from_uuid(row.get("id")),
            tenant_id: TenantId::from_uuid(row.get("tenant_id")),
            state: row.get("state"),
            erase_after: row.get("erase_after"),
            requested_by: row.get("requested_by"),
            cancelled_by: row.get("cancelled_by"),
            job_id: row.get::<_, Option<Uuid>>("job_id").map(JobId::from_uuid),
            counts: row.get("counts"),
            receipt,
            created_at: row.get("created_at"),
            started_at: row.get("started_at"),
            finished_at: row.get("finished_at"),
        },
        home_region: row.get("home_region"),
        previous_status: row.get("previous_status"),
    })
}

/// The tenant's newest erasure (any state), if any.
pub async fn latest(
    tx: &PlatformTx<'_>,
    tenant: TenantId,
) -> Result<Option<TenantErasure>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tenant_erasures WHERE tenant_id = $1
         ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    let row = tx.query_opt(&sql, &[tenant.as_uuid()]).await?;
    Ok(row.as_ref().map(from_row).transpose()?.map(|s| s.erasure))
}

/// The tenant's pending, running or done erasure, locked until the
/// transaction ends (restore and the job's start serialise on it).
async fn live_locked(tx: &PlatformTx<'_>, tenant: TenantId) -> Result<Option<Stored>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tenant_erasures
         WHERE tenant_id = $1 AND state IN ('pending', 'running', 'done') FOR UPDATE"
    );
    let row = tx.query_opt(&sql, &[tenant.as_uuid()]).await?;
    row.as_ref().map(from_row).transpose()
}

/// The erasure `id`, locked until the transaction ends (the job).
pub(crate) async fn lock(tx: &PlatformTx<'_>, id: TenantErasureId) -> Result<Stored, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tenant_erasures WHERE id = $1 FOR UPDATE");
    let row = tx
        .query_opt(&sql, &[id.as_uuid()])
        .await?
        .ok_or(StoreError::not_found("tenant erasure", *id.as_uuid()))?;
    from_row(&row)
}

/// Whether the erasure was newly requested (202 either way).
pub struct Requested {
    pub erasure: TenantErasure,
    pub tenant: TenantRecord,
    pub created: bool,
}

/// `DELETE /v1/tenants/{id}`: checks the confirmation against the locked row,
/// then suspends the tenant until `erase_after` and schedules the job there.
/// A tenant whose erasure is pending, running or done answers that erasure
/// (idempotent: the grace is not extended).
pub async fn request(
    tx: &PlatformTx<'_>,
    tenant: TenantId,
    confirm: &str,
    admin: &str,
    grace: Duration,
) -> Result<Requested, StoreError> {
    let record = tenants::lock(tx, tenant).await?;
    if confirm != record.slug {
        return Err(StoreError::Conflict {
            code: ErrorCode::ConfirmationMismatch,
            detail: "`confirm` must be the tenant's slug".into(),
        });
    }
    if let Some(live) = live_locked(tx, tenant).await? {
        return Ok(Requested {
            erasure: live.erasure,
            tenant: record,
            created: false,
        });
    }
    if relocation::active(tx, tenant).await?.is_some() {
        return Err(StoreError::Conflict {
            code: ErrorCode::RelocationInProgress,
            detail: "the tenant is being relocated; erase it once the relocation has ended".into(),
        });
    }
    let id = TenantErasureId::new_random();
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let home = record.home_region.clone();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO tenant_erasures (id, tenant_id, home_region, state, previous_status,
                     erase_after, requested_by)
                 VALUES ($1, $2, $3, 'pending', $4, now() + $5::bigint * interval '1 millisecond', $6)
                 RETURNING {COLUMNS}"
            ),
            &[
                id.as_uuid(),
                tenant.as_uuid(),
                &home.as_str(),
                &record.status.as_str(),
                &grace_ms,
                &admin,
            ],
        )
        .await?;
    let stored = from_row(&row)?;
    let erase_after = stored.erasure.erase_after;
    let suspended = set_status(tx, tenant, TenantStatus::Suspended, Some(erase_after)).await?;
    let mut job = NewJob::new(
        KIND,
        json!({ "tenant_erasure_id": id, "tenant_id": tenant }),
    );
    job.idempotency_key = Some(format!("tenant-erasure:{id}"));
    job.run_after = Some(erase_after);
    job.max_attempts = 100;
    let job = jobs::enqueue_platform(tx, &home, job).await?;
    tx.execute(
        "UPDATE tenant_erasures SET job_id = $2 WHERE id = $1",
        &[id.as_uuid(), job.as_uuid()],
    )
    .await?;
    audit::record_platform(
        tx,
        admin,
        "tenant.erasure_requested",
        Some(tenant),
        json!({ "erasure_id": id, "erase_after": erase_after, "job_id": job }),
    )
    .await?;
    let mut erasure = stored.erasure;
    erasure.job_id = Some(job);
    Ok(Requested {
        erasure,
        tenant: suspended,
        created: true,
    })
}

/// `POST /v1/tenants/{id}/restore`: within the grace, the tenant goes back to
/// its status before the request and the erasure is `cancelled`, in one
/// transaction holding the rows the job's start locks.
pub async fn restore(
    tx: &PlatformTx<'_>,
    tenant: TenantId,
    admin: &str,
) -> Result<(TenantErasure, TenantRecord), StoreError> {
    tenants::lock(tx, tenant).await?;
    let Some(live) = live_locked(tx, tenant).await? else {
        return Err(StoreError::Conflict {
            code: ErrorCode::NoPendingErasure,
            detail: "the tenant has no pending erasure".into(),
        });
    };
    let in_grace: bool = tx
        .query_one(
            "SELECT now() < $1::timestamptz",
            &[&live.erasure.erase_after],
        )
        .await?
        .get(0);
    if live.erasure.state != "pending" || !in_grace {
        return Err(StoreError::Conflict {
            code: ErrorCode::ErasureGraceOver,
            detail: format!(
                "the grace period ended at {}: the erasure is {} and cannot be undone",
                live.erasure.erase_after,
                if live.erasure.state == "pending" {
                    "due"
                } else {
                    live.erasure.state.as_str()
                }
            ),
        });
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE tenant_erasures SET state = 'cancelled', cancelled_by = $2,
                     finished_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[live.erasure.id.as_uuid(), &admin],
        )
        .await?;
    let previous = match live.previous_status.as_str() {
        "suspended" => TenantStatus::Suspended,
        _ => TenantStatus::Active,
    };
    let restored = set_status(tx, tenant, previous, None).await?;
    audit::record_platform(
        tx,
        admin,
        "tenant.erasure_cancelled",
        Some(tenant),
        json!({ "erasure_id": live.erasure.id, "status": previous }),
    )
    .await?;
    Ok((from_row(&row)?.erasure, restored))
}

/// Sets the tenant's status and `erase_after`, bumping its version so every
/// node's directory takes the change on its next refresh.
async fn set_status(
    tx: &PlatformTx<'_>,
    tenant: TenantId,
    status: TenantStatus,
    erase_after: Option<DateTime<Utc>>,
) -> Result<TenantRecord, StoreError> {
    let sql = format!(
        "UPDATE tenants SET status = $2, erase_after = $3, config_version = config_version + 1,
             updated_at = now()
         WHERE id = $1 RETURNING {}",
        crate::tenancy::record::TENANT_COLUMNS
    );
    let row = tx
        .query_one(&sql, &[tenant.as_uuid(), &status.as_str(), &erase_after])
        .await?;
    TenantRecord::from_row(&row)
}
