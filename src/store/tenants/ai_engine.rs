//! A tenant's summary-engine settings: the V12 columns `tenants.ai_engine` and
//! `tenants.ai_external_outside_residency`, read and changed in the tenant's own
//! transaction. Not part of the directory's `TenantRecord`: every decision that
//! uses them (the summary request, the job) reads them here, in its own
//! transaction, together with the residency they are judged against.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit;
use crate::db::TenantTx;
use crate::outbox::{self, Event};
use crate::store::error::StoreError;
use crate::tenancy::Residency;
use crate::tenancy::record::AiEngine;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TenantAi {
    /// `extractive` (in process, the default) or `external`.
    pub ai_engine: AiEngine,
    /// The tenant lets the external engine run outside its residency.
    pub ai_external_outside_residency: bool,
}

fn from_row(row: &tokio_postgres::Row) -> Result<TenantAi, StoreError> {
    let engine: String = row.try_get(0).map_err(StoreError::internal)?;
    Ok(TenantAi {
        ai_engine: AiEngine::parse(&engine)
            .ok_or_else(|| StoreError::internal(anyhow::anyhow!("invalid tenants.ai_engine")))?,
        ai_external_outside_residency: row.try_get(1).map_err(StoreError::internal)?,
    })
}

/// The tenant's settings and its residency policy, as this transaction reads them.
pub async fn get(tx: &TenantTx<'_>) -> Result<(TenantAi, Option<Residency>), StoreError> {
    let row = tx
        .query_one(
            "SELECT ai_engine, ai_external_outside_residency, residency FROM tenants WHERE id = $1",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    let residency: Option<serde_json::Value> = row.try_get(2).map_err(StoreError::internal)?;
    let residency = residency
        .map(serde_json::from_value)
        .transpose()
        .map_err(StoreError::internal)?;
    Ok((from_row(&row)?, residency))
}

/// Changes the settings (absent fields stay), audited and with a
/// `tenant.updated` event; the new settings.
pub async fn set(
    tx: &TenantTx<'_>,
    actor: &str,
    engine: Option<AiEngine>,
    outside_residency: Option<bool>,
) -> Result<TenantAi, StoreError> {
    let (before, _) = get(tx).await?;
    let row = tx
        .query_one(
            "UPDATE tenants SET ai_engine = COALESCE($2, ai_engine),
                    ai_external_outside_residency = COALESCE($3, ai_external_outside_residency),
                    config_version = config_version + 1, updated_at = now()
             WHERE id = $1 RETURNING ai_engine, ai_external_outside_residency",
            &[
                tx.tenant_id().as_uuid(),
                &engine.map(AiEngine::as_str),
                &outside_residency,
            ],
        )
        .await?;
    let after = from_row(&row)?;
    let details = json!({ "before": before, "after": after });
    let target = ("tenant", tx.tenant_id().to_string());
    outbox::record(
        tx,
        Event::new("tenant.updated", target.clone(), details.clone()),
    )
    .await?;
    audit::record(tx, actor, "tenant_ai_engine_changed", Some(target), details).await?;
    Ok(after)
}
