//! A tenant's encryption policy: the V19 column `tenants.encrypt_messages`,
//! read and changed in the tenant's own transaction. Part of the directory's
//! `TenantRecord` (the post path decides from the cached copy); the post's
//! INSERT re-reads the column, so a stale copy cannot land plaintext
//! (`crate::crypto::messages`).

use serde_json::json;

use crate::audit;
use crate::db::TenantTx;
use crate::outbox::{self, Event};
use crate::store::error::StoreError;
use crate::tenancy::TenantRecord;
use crate::tenancy::record::{Encryption, tenant_columns};

/// The policy as this transaction reads it.
pub async fn get(tx: &TenantTx<'_>) -> Result<Encryption, StoreError> {
    let row = tx
        .query_one(
            "SELECT encrypt_messages FROM tenants WHERE id = $1",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    Ok(Encryption {
        messages: row.try_get(0).map_err(StoreError::internal)?,
    })
}

/// Sets the policy, audited (`tenant_encryption_changed`) with a
/// `tenant.updated` event; the tenant as committed (for the directory cache)
/// and whether the value changed. An unchanged value writes nothing.
pub async fn set(
    tx: &TenantTx<'_>,
    actor: &str,
    to: Encryption,
) -> Result<(TenantRecord, bool), StoreError> {
    let before = get(tx).await?;
    let changed = before != to;
    let sql = if changed {
        concat!(
            "UPDATE tenants SET encrypt_messages = $2, config_version = config_version + 1, \
                updated_at = now() WHERE id = $1 RETURNING ",
            tenant_columns!()
        )
    } else {
        concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenants WHERE id = $1 AND $2::bool IS NOT NULL"
        )
    };
    let row = tx
        .query_one(sql, &[tx.tenant_id().as_uuid(), &to.messages])
        .await?;
    let record = TenantRecord::from_row(&row)?;
    if changed {
        let details = json!({ "before": before, "after": to });
        let target = ("tenant", tx.tenant_id().to_string());
        outbox::record(
            tx,
            Event::new("tenant.updated", target.clone(), details.clone()),
        )
        .await?;
        audit::record(
            tx,
            actor,
            "tenant_encryption_changed",
            Some(target),
            details,
        )
        .await?;
        if to.messages {
            // What was stored in plaintext before is sealed by a job; it
            // commits with the change, so it is never lost.
            crate::jobs::enqueue(tx, crate::crypto::seal_messages::job()).await?;
        }
    }
    Ok((record, changed))
}
