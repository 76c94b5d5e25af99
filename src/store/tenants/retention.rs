//! `tenants.retention` (V27): the tenant's retention policy as last set
//! (`{"messages_days": N|null, "audit_days": M}`), NULL for the plan's
//! defaults, with the plan it is judged against. Not in the directory cache:
//! the change and the retention job read it in their own transaction. The
//! rules are `compliance::retention`'s.

use crate::db::TenantTx;
use crate::limits::plans::Plan;
use crate::store::error::StoreError;

/// The tenant's plan and stored policy (`None`: never set), read in `tx`.
pub async fn get(tx: &TenantTx<'_>) -> Result<(Plan, Option<serde_json::Value>), StoreError> {
    let row = tx
        .query_one(
            "SELECT plan, retention FROM tenants WHERE id = $1",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    let plan: String = row.get(0);
    let plan = Plan::parse(&plan)
        .ok_or_else(|| StoreError::internal(anyhow::anyhow!("unknown plan {plan:?}")))?;
    Ok((plan, row.get(1)))
}

/// Stores the policy (the caller decided it may).
pub async fn set(tx: &TenantTx<'_>, policy: &serde_json::Value) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE tenants SET retention = $2, updated_at = now() WHERE id = $1",
        &[tx.tenant_id().as_uuid(), policy],
    )
    .await?;
    Ok(())
}
