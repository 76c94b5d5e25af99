//! Region operator state (drained flags) and the tenants a region change affects.
//! Platform data: these functions take a `PlatformTx`.

use crate::db::PlatformTx;
use crate::error::ApiError;
use crate::ids::RegionId;
use crate::tenancy::TenantRecord;
use crate::tenancy::record::TENANT_COLUMNS;

pub async fn drained(tx: &PlatformTx<'_>) -> Result<Vec<RegionId>, ApiError> {
    let rows = tx
        .query("SELECT region FROM region_state WHERE drained", &[])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| RegionId::parse(r.get(0)).ok())
        .collect())
}

pub async fn set_drained(
    tx: &PlatformTx<'_>,
    region: &RegionId,
    drained: bool,
    actor: &str,
) -> Result<(), ApiError> {
    tx.execute(
        "INSERT INTO region_state (region, drained, updated_at, updated_by) VALUES ($1, $2, now(), $3)
         ON CONFLICT (region) DO UPDATE SET drained = $2, updated_at = now(), updated_by = $3",
        &[&region.as_str(), &drained, &actor],
    )
    .await?;
    Ok(())
}

pub async fn tenants_homed_in(
    tx: &PlatformTx<'_>,
    regions: &[RegionId],
) -> Result<Vec<TenantRecord>, ApiError> {
    let sql =
        format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE home_region = ANY($1) ORDER BY slug");
    let regions: Vec<&str> = regions.iter().map(RegionId::as_str).collect();
    let rows = tx.query(&sql, &[&regions]).await?;
    rows.iter().map(TenantRecord::from_row).collect()
}
