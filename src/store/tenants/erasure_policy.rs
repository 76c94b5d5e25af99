//! `tenants.erasure_policy` (V22): what a user erasure does with the user's
//! messages (`anonymize`: kept under the tombstone; `delete`: removed). Not in
//! the directory cache: the erasure request reads it in its own transaction.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::db::TenantTx;
use crate::store::error::StoreError;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasurePolicy {
    /// `anonymize` (default) or `delete`.
    pub erasure: String,
}

pub async fn get(tx: &TenantTx<'_>) -> Result<ErasurePolicy, StoreError> {
    let row = tx
        .query_one(
            "SELECT erasure_policy FROM tenants WHERE id = $1",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    Ok(ErasurePolicy {
        erasure: row.get(0),
    })
}

/// Sets the policy (the caller validated it) and audits the change.
pub async fn set(tx: &TenantTx<'_>, actor: &str, to: &ErasurePolicy) -> Result<(), StoreError> {
    let before = get(tx).await?;
    tx.execute(
        "UPDATE tenants SET erasure_policy = $2, updated_at = now() WHERE id = $1",
        &[tx.tenant_id().as_uuid(), &to.erasure],
    )
    .await?;
    audit::record(
        tx,
        actor,
        "tenant_erasure_policy_changed",
        Some(("tenant", tx.tenant_id().to_string())),
        serde_json::json!({ "from": before.erasure, "to": to.erasure }),
    )
    .await?;
    Ok(())
}
