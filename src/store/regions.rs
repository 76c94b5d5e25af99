//! Region operator state (drained flags); the tenants a region change affects
//! are read by `tenants::homed_in`.
//! Platform data: these functions take a `PlatformTx`.

use super::error::StoreError;
use crate::db::PlatformTx;
use crate::ids::RegionId;

pub async fn drained(tx: &PlatformTx<'_>) -> Result<Vec<RegionId>, StoreError> {
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
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO region_state (region, drained, updated_at, updated_by) VALUES ($1, $2, now(), \
            $3)
         ON CONFLICT (region) DO UPDATE SET drained = $2, updated_at = now(), updated_by = $3",
        &[&region.as_str(), &drained, &actor],
    )
    .await?;
    Ok(())
}
