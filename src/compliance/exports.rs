//! The SQL of `exports` (V22): one row per export, written in the requesting
//! tenant transaction, finished by the build job, expired by the sweep. Every
//! statement runs in the tenant's transaction (RLS) and names its tenant.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::TenantTx;
use crate::ids::{ExportId, JobId, RegionId, UserId};
use crate::pagination::{Keyset, Page};
use crate::store::error::StoreError;
use crate::store::page::keyset_page;

/// An export as its requester sees it (`GET /v1/exports/{id}`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Export {
    pub id: ExportId,
    /// `tenant` (everything of the tenant) or `user` (one user's data).
    pub scope: String,
    /// The user whose data a `user` export holds.
    pub user_id: Option<UserId>,
    pub requested_by: UserId,
    /// `queued`, `ready`, `failed` or `expired` (a ready export past `expires_at`).
    pub state: String,
    pub job_id: Option<JobId>,
    /// Bytes of the zip a download serves.
    pub size: Option<i64>,
    /// SHA-256 of the whole zip (hex).
    pub sha256: Option<String>,
    /// Rows per file of the archive.
    pub counts: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the job and the download also need.
#[derive(Clone, Debug)]
pub struct Stored {
    pub export: Export,
    pub storage_region: Option<String>,
    pub object_key: Option<String>,
    pub key_version: Option<i32>,
    pub chunk_size: Option<i32>,
}

macro_rules! columns {
    () => {
        "id, scope, subject_user, requested_by, state, job_id, size, sha256, counts, error, \
        created_at, ready_at, expires_at, storage_region, object_key, key_version, chunk_size, \
        (state = 'ready' AND expires_at <= now()) AS past_expiry"
    };
}
const COLUMNS: &str = columns!();

/// The tenant's exports, newest first (owners and compliance officers):
/// `exports_page_idx` (V31).
pub const LIST_SQL: &str = crate::store::page::keyset_sql!(columns!(), "exports", "");
/// The exports of one user's own data that they asked for, newest first (every
/// other role sees only those; an export they asked for under a role they no
/// longer hold is not theirs any more): `exports_requester_page_idx` (V31), so a
/// member with few exports in a tenant with many is not a walk over everyone's.
pub const LIST_MINE_SQL: &str = crate::store::page::keyset_sql!(
    columns!(),
    "exports",
    "AND requested_by = $5 AND subject_user = $5"
);

fn from_row(row: &Row) -> Stored {
    let state: String = row.get("state");
    let past: bool = row.get("past_expiry");
    Stored {
        export: Export {
            id: ExportId::from_uuid(row.get("id")),
            scope: row.get("scope"),
            user_id: row
                .get::<_, Option<Uuid>>("subject_user")
                .map(UserId::from_uuid),
            requested_by: UserId::from_uuid(row.get("requested_by")),
            state: if past { "expired".into() } else { state },
            job_id: row.get::<_, Option<Uuid>>("job_id").map(JobId::from_uuid),
            size: row.get("size"),
            sha256: row.get("sha256"),
            counts: row.get("counts"),
            error: row.get("error"),
            created_at: row.get("created_at"),
            ready_at: row.get("ready_at"),
            expires_at: row.get("expires_at"),
        },
        storage_region: row.get("storage_region"),
        object_key: row.get("object_key"),
        key_version: row.get("key_version"),
        chunk_size: row.get("chunk_size"),
    }
}

/// Records a requested export (the job is enqueued in the same transaction).
pub async fn create(
    tx: &TenantTx<'_>,
    id: ExportId,
    requested_by: UserId,
    subject: Option<UserId>,
) -> Result<(), StoreError> {
    let scope = if subject.is_some() { "user" } else { "tenant" };
    tx.execute(
        "INSERT INTO exports (tenant_id, id, home_region, requested_by, scope, subject_user)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            tx.tenant_id().as_uuid(),
            id.as_uuid(),
            &tx.home_region().as_str(),
            requested_by.as_uuid(),
            &scope,
            &subject.map(|s| *s.as_uuid()),
        ],
    )
    .await?;
    Ok(())
}

pub async fn set_job(tx: &TenantTx<'_>, id: ExportId, job: JobId) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE exports SET job_id = $3 WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), id.as_uuid(), job.as_uuid()],
    )
    .await?;
    Ok(())
}

/// The export `id` of the transaction's tenant.
pub async fn get(tx: &TenantTx<'_>, id: ExportId) -> Result<Stored, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM exports WHERE tenant_id = $1 AND id = $2");
    tx.query_opt(&sql, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?
        .map(|row| from_row(&row))
        .ok_or(StoreError::not_found("export", *id.as_uuid()))
}

/// A page of the tenant's exports after `after`, newest first: all of them,
/// or only those of `requester`'s own data that `requester` asked for.
pub async fn list(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
    requester: Option<UserId>,
) -> Result<Page<Export>, StoreError> {
    let read = |row: &Row| Ok(from_row(row).export);
    let key = |e: &Export| Keyset {
        at: e.created_at,
        id: *e.id.as_uuid(),
    };
    match requester {
        None => keyset_page(tx, LIST_SQL, &[], limit, after, read, key).await,
        Some(user) => {
            keyset_page(
                tx,
                LIST_MINE_SQL,
                &[user.as_uuid()],
                limit,
                after,
                read,
                key,
            )
            .await
        }
    }
}

/// What a finished build records.
pub struct Finished<'a> {
    pub storage_region: &'a str,
    pub object_key: &'a str,
    pub key_version: i32,
    pub chunk_size: i32,
    pub size: i64,
    pub sha256: &'a str,
    pub counts: serde_json::Value,
    pub ttl_secs: f64,
}

/// Marks a queued export ready; false if it was not queued any more.
pub async fn mark_ready(
    tx: &TenantTx<'_>,
    id: ExportId,
    f: &Finished<'_>,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE exports SET state = 'ready', storage_region = $3, object_key = $4,
                key_version = $5, chunk_size = $6, size = $7, sha256 = $8, counts = $9,
                ready_at = now(), expires_at = now() + $10::float8 * interval '1 second'
             WHERE tenant_id = $1 AND id = $2 AND state = 'queued'",
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &f.storage_region,
                &f.object_key,
                &f.key_version,
                &f.chunk_size,
                &f.size,
                &f.sha256,
                &f.counts,
                &f.ttl_secs,
            ],
        )
        .await?;
    Ok(n == 1)
}

pub async fn mark_failed(tx: &TenantTx<'_>, id: ExportId, error: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE exports SET state = 'failed', error = $3
         WHERE tenant_id = $1 AND id = $2 AND state = 'queued'",
        &[tx.tenant_id().as_uuid(), id.as_uuid(), &error],
    )
    .await?;
    Ok(())
}

/// Ready exports past their expiry, oldest first (the sweep, in batches).
pub async fn past_expiry(
    tx: &TenantTx<'_>,
    limit: i64,
) -> Result<Vec<(ExportId, String)>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, object_key FROM exports
             WHERE tenant_id = $1 AND state = 'ready' AND expires_at <= now()
             ORDER BY expires_at LIMIT $2",
            &[tx.tenant_id().as_uuid(), &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                ExportId::from_uuid(r.get("id")),
                r.get::<_, Option<String>>("object_key").unwrap_or_default(),
            )
        })
        .collect())
}

/// Records that the stored file of `id` is gone.
pub async fn mark_expired(tx: &TenantTx<'_>, id: ExportId) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE exports SET state = 'expired', deleted_at = now()
         WHERE tenant_id = $1 AND id = $2 AND state = 'ready'",
        &[tx.tenant_id().as_uuid(), id.as_uuid()],
    )
    .await?;
    Ok(())
}

/// Whether the transaction's tenant is (still) homed in `region`.
pub async fn tenant_lives_in(tx: &TenantTx<'_>, region: &RegionId) -> Result<bool, StoreError> {
    let home: String = tx
        .query_one(
            "SELECT home_region FROM tenants WHERE id = $1",
            &[tx.tenant_id().as_uuid()],
        )
        .await?
        .get(0);
    Ok(home == region.as_str())
}

/// Withdraws the tenant's ready exports whose archive is not in `region`'s
/// store, in the transaction that makes `region` the tenant's home: each is
/// expired now (its download answers `410 export_expired`, and `error` says
/// why), and its (storage region, object key) is returned so that a job of
/// that region removes the archive. Every other region's nodes cannot reach
/// that store, and the archive must not outlive the tenant's move there.
pub async fn withdraw_outside(
    tx: &TenantTx<'_>,
    region: &RegionId,
) -> Result<Vec<(String, String)>, StoreError> {
    let why = format!(
        "the tenant was relocated to {region}; this archive was removed from the region that \
            built it: request a new export"
    );
    let rows = tx
        .query(
            "UPDATE exports SET state = 'expired', expires_at = now(), error = $3
             WHERE tenant_id = $1 AND state = 'ready' AND storage_region IS DISTINCT FROM $2
             RETURNING storage_region, object_key",
            &[tx.tenant_id().as_uuid(), &region.as_str(), &why],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let region: Option<String> = r.get("storage_region");
            let key: Option<String> = r.get("object_key");
            region.zip(key)
        })
        .collect())
}

/// Every ready export of the tenant (a user erasure expires them all: any may
/// hold the user's data).
pub async fn all_ready(tx: &TenantTx<'_>) -> Result<Vec<(ExportId, String)>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, object_key FROM exports WHERE tenant_id = $1 AND state = 'ready'",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                ExportId::from_uuid(r.get("id")),
                r.get::<_, Option<String>>("object_key").unwrap_or_default(),
            )
        })
        .collect())
}
