//! Exact storage accounting. Every change to stored content adjusts
//! `tenant_usage.storage_bytes` in the same transaction; the increment carries its
//! own guard, so a write that would pass the cap changes nothing.

use crate::db::TenantTx;
use crate::error::ApiError;

/// Creates the tenant's usage row (at provisioning).
pub async fn open(tx: &TenantTx<'_>) -> Result<(), ApiError> {
    tx.execute(
        "INSERT INTO tenant_usage (tenant_id, home_region) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING",
        &[tx.tenant_id().as_uuid(), &tx.home_region().as_str()],
    )
    .await?;
    Ok(())
}

/// Adds `bytes`, or fails with `quota_exceeded` when the total would pass `cap`.
pub async fn charge_storage(tx: &TenantTx<'_>, bytes: u64, cap: u64) -> Result<u64, ApiError> {
    let (bytes, cap) = (to_i64(bytes), to_i64(cap));
    let row = tx
        .query_opt(
            "UPDATE tenant_usage SET storage_bytes = storage_bytes + $2
             WHERE tenant_id = $1 AND storage_bytes + $2 <= $3 RETURNING storage_bytes",
            &[tx.tenant_id().as_uuid(), &bytes, &cap],
        )
        .await?;
    match row {
        Some(row) => Ok(row.get::<_, i64>(0) as u64),
        None => Err(ApiError::QuotaExceeded {
            detail: format!(
                "storing {bytes} more bytes would exceed the storage quota of {cap} bytes"
            ),
        }),
    }
}

/// Gives back `bytes` after a delete.
pub async fn refund_storage(tx: &TenantTx<'_>, bytes: u64) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE tenant_usage SET storage_bytes = GREATEST(storage_bytes - $2, 0) WHERE tenant_id = $1",
        &[tx.tenant_id().as_uuid(), &to_i64(bytes)],
    )
    .await?;
    Ok(())
}

/// The tenant's stored bytes (`storage_bytes`).
pub const STORAGE_BYTES_SQL: &str = "SELECT storage_bytes FROM tenant_usage WHERE tenant_id = $1";

pub async fn storage_bytes(tx: &TenantTx<'_>) -> Result<u64, ApiError> {
    let row = tx
        .query_opt(STORAGE_BYTES_SQL, &[tx.tenant_id().as_uuid()])
        .await?;
    Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
