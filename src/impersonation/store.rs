//! SQL of `impersonations` (V17) and the tenant's `impersonation_writes`
//! policy. Every function runs in a tenant transaction (RLS on
//! `app.tenant_id`); the policy is read in the transaction it guards.

use tokio_postgres::Row;
use uuid::Uuid;

use super::{Impersonation, Mode, Start};
use crate::db::TenantTx;
use crate::ids::{ImpersonationId, TenantId};
use crate::store::error::StoreError;

const COLUMNS: &str =
    "id, tenant_id, actor, reason, mode, created_at, expires_at, revoked_at, revoked_by";

/// At most this many active impersonations are listed (a platform starts a
/// handful per tenant, each ending within the hour).
pub const LIST_LIMIT: i64 = 100;

fn from_row(row: &Row) -> Result<Impersonation, StoreError> {
    let mode: String = row.try_get("mode").map_err(StoreError::internal)?;
    Ok(Impersonation {
        id: ImpersonationId::from_uuid(row.try_get("id").map_err(StoreError::internal)?),
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(StoreError::internal)?),
        actor: row.try_get("actor").map_err(StoreError::internal)?,
        reason: row.try_get("reason").map_err(StoreError::internal)?,
        mode: Mode::parse(&mode)
            .ok_or_else(|| StoreError::internal(anyhow::anyhow!("invalid impersonations.mode")))?,
        created_at: row.try_get("created_at").map_err(StoreError::internal)?,
        expires_at: row.try_get("expires_at").map_err(StoreError::internal)?,
        revoked_at: row.try_get("revoked_at").map_err(StoreError::internal)?,
        revoked_by: row.try_get("revoked_by").map_err(StoreError::internal)?,
    })
}

/// The tenant's policy: may impersonations write?
pub async fn writes_allowed(tx: &TenantTx<'_>) -> Result<bool, StoreError> {
    let row = tx
        .query_opt(
            "SELECT impersonation_writes FROM tenants WHERE id = $1",
            &[tx.tenant_id().as_uuid()],
        )
        .await?
        .ok_or(StoreError::NotFound {
            kind: "tenant",
            id: None,
        })?;
    row.try_get(0).map_err(StoreError::internal)
}

/// Sets the policy; the value before and after.
pub async fn set_writes_allowed(tx: &TenantTx<'_>, allowed: bool) -> Result<bool, StoreError> {
    let before = writes_allowed(tx).await?;
    tx.execute(
        "UPDATE tenants SET impersonation_writes = $2, updated_at = now() WHERE id = $1",
        &[tx.tenant_id().as_uuid(), &allowed],
    )
    .await?;
    Ok(before)
}

/// A new impersonation by `actor`, ending `start.minutes` from now.
pub async fn insert(
    tx: &TenantTx<'_>,
    actor: &str,
    start: &Start,
) -> Result<Impersonation, StoreError> {
    let id = Uuid::new_v4();
    let minutes = f64::from(start.minutes);
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO impersonations (tenant_id, id, home_region, actor, reason, mode, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + $7 * interval '1 minute') \
                 RETURNING {COLUMNS}"
            ),
            &[
                tx.tenant_id().as_uuid(),
                &id,
                &tx.home_region().as_str(),
                &actor,
                &start.reason,
                &start.mode.as_str(),
                &minutes,
            ],
        )
        .await?;
    from_row(&row)
}

/// The tenant's impersonation `id`, whatever its state (`None` if not the tenant's).
pub async fn get(
    tx: &TenantTx<'_>,
    id: ImpersonationId,
) -> Result<Option<Impersonation>, StoreError> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM impersonations WHERE tenant_id = $1 AND id = $2"),
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The tenant's impersonations that are neither revoked nor expired, newest first.
pub async fn list_active(tx: &TenantTx<'_>) -> Result<Vec<Impersonation>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM impersonations WHERE tenant_id = $1 AND revoked_at IS NULL \
                 AND expires_at > now() ORDER BY created_at DESC, id DESC LIMIT $2"
            ),
            &[tx.tenant_id().as_uuid(), &LIST_LIMIT],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Revokes `id` (idempotent: an ended one stays as it was); the row, or
/// `NotFound` (with the id, so a probe of another tenant's id is audited).
/// `Ok((row, true))` when this call revoked it.
pub async fn revoke(
    tx: &TenantTx<'_>,
    id: ImpersonationId,
    by: &str,
) -> Result<(Impersonation, bool), StoreError> {
    let revoked = tx
        .query_opt(
            &format!(
                "UPDATE impersonations SET revoked_at = now(), revoked_by = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
            ),
            &[tx.tenant_id().as_uuid(), id.as_uuid(), &by],
        )
        .await?;
    if let Some(row) = revoked {
        return Ok((from_row(&row)?, true));
    }
    let existing = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM impersonations WHERE tenant_id = $1 AND id = $2"),
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?
        .ok_or(StoreError::NotFound {
            kind: "impersonation",
            id: Some(*id.as_uuid()),
        })?;
    Ok((from_row(&existing)?, false))
}
