//! How many tenants each region holds, for the console's region map
//! (`api::region_tenants`): one grouped read of the directory, never a row
//! per tenant.

use crate::db::PlatformTx;
use crate::ids::RegionId;
use crate::store::error::StoreError;
use crate::tenancy::TenantStatus;

/// Tenants per (home region, status).
pub struct Count {
    pub region: RegionId,
    pub status: TenantStatus,
    pub tenants: i64,
}

/// Every (home region, status) that has tenants, erased tombstones included
/// (the caller decides what to show).
pub async fn by_home_region(tx: &PlatformTx<'_>) -> Result<Vec<Count>, StoreError> {
    let rows = tx
        .query(
            "SELECT home_region, status, count(*) FROM tenants GROUP BY home_region, status",
            &[],
        )
        .await?;
    let corrupt =
        |what: &str| StoreError::internal(anyhow::anyhow!("tenant count: invalid {what}"));
    rows.iter()
        .map(|row| {
            let region: String = row.try_get(0).map_err(StoreError::internal)?;
            let status: String = row.try_get(1).map_err(StoreError::internal)?;
            Ok(Count {
                region: RegionId::parse(&region).map_err(|_| corrupt("home_region"))?,
                status: match status.as_str() {
                    "active" => TenantStatus::Active,
                    "suspended" => TenantStatus::Suspended,
                    "erased" => TenantStatus::Erased,
                    _ => return Err(corrupt("status")),
                },
                tenants: row.try_get(2).map_err(StoreError::internal)?,
            })
        })
        .collect()
}
