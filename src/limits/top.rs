//! The tenants of a region that use the most (`GET /v1/regions/{id}/top-tenants`,
//! the console's "Top tenants"): who is the noisy neighbour, from the hourly
//! usage samples (`history`, V29) rather than from live limiter state, which is
//! per node and forgets idle tenants.
//!
//! The samples are tenant-owned under forced RLS and a platform transaction has
//! no tenant, so the read goes through `top_tenants` (V32, SECURITY DEFINER),
//! which returns counters and slugs only. It is one grouped read of the
//! region's samples in the window through `usage_samples_prune_idx
//! (home_region, bucket_start)`: its cost grows with the region's active
//! tenants times the hours asked for (idle hours have no rows), not with the
//! whole table; `tests/api/plans.rs` checks the index is used.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::PlatformTx;
use crate::ids::{RegionId, TenantId};
use crate::store::error::StoreError;

/// The statement (a hot statement: `store::hot_statements`).
pub const TOP_TENANTS_SQL: &str = "SELECT tenant_id, slug, requests, jobs, storage_bytes, ai_tokens FROM top_tenants($1, $2, $3, $4)";

/// What the tenants are ranked by.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// Member requests in the window (summed).
    #[default]
    Requests,
    /// Background jobs created in the window (summed).
    Jobs,
    /// Stored message bytes, the highest sample in the window.
    Storage,
    /// AI tokens of the month, the highest sample in the window.
    AiTokens,
}

impl Load {
    /// The name `top_tenants` ranks by.
    fn sql_name(self) -> &'static str {
        match self {
            Load::Requests => "requests",
            Load::Jobs => "jobs",
            Load::Storage => "storage",
            Load::AiTokens => "ai_tokens",
        }
    }
}

/// One tenant's load in the window: ids and counters, no name or plan (the
/// view operators get too).
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct TenantLoad {
    pub id: TenantId,
    pub slug: String,
    pub home_region: RegionId,
    /// Member requests in the window.
    pub requests: u64,
    /// Background jobs created in the window.
    pub jobs: u64,
    /// Stored message bytes: the highest sample in the window.
    pub storage_bytes: u64,
    /// AI tokens of the month: the highest sample in the window.
    pub ai_tokens: u64,
}

/// The `limit` tenants homed in `region` with the most `by` since `from`,
/// largest first (ties by tenant id). Tenants without a sample in the window
/// (idle ones) are not listed.
pub async fn top(
    tx: &PlatformTx<'_>,
    region: &RegionId,
    from: DateTime<Utc>,
    by: Load,
    limit: u32,
) -> Result<Vec<TenantLoad>, StoreError> {
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    let rows = tx
        .query(
            TOP_TENANTS_SQL,
            &[&region.as_str(), &from, &by.sql_name(), &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let n = |i: usize| -> Result<u64, StoreError> {
                let v: i64 = row.try_get(i).map_err(StoreError::internal)?;
                Ok(u64::try_from(v).unwrap_or_default())
            };
            Ok(TenantLoad {
                id: TenantId::from_uuid(row.try_get(0).map_err(StoreError::internal)?),
                slug: row.try_get(1).map_err(StoreError::internal)?,
                home_region: region.clone(),
                requests: n(2)?,
                jobs: n(3)?,
                storage_bytes: n(4)?,
                ai_tokens: n(5)?,
            })
        })
        .collect()
}
