//! Retention of a region's rows through a `SECURITY DEFINER` prune function
//! `f(region, before, limit) → deleted` (the service role has no DELETE on
//! those tables): called a batch per transaction until a batch comes back short.

use chrono::{DateTime, Utc};

use super::{Database, TxMode};
use crate::ids::RegionId;

/// Runs `statement` (`SELECT f($1, $2, $3)`) for `region` and rows before
/// `before`, `batch` rows at a time; how many it deleted. A failure is logged
/// (naming `what`) and ends the run: the next run goes on from there.
pub async fn in_batches(
    db: &Database,
    statement: &str,
    what: &str,
    region: &RegionId,
    before: DateTime<Utc>,
    batch: u32,
) -> u64 {
    let batch = i32::try_from(batch).unwrap_or(i32::MAX);
    let mut total = 0u64;
    loop {
        let deleted = db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                let row = tx
                    .query_one(statement, &[&region.as_str(), &before, &batch])
                    .await?;
                Ok(row.get::<_, i64>(0))
            })
            .await;
        match deleted {
            Ok(n) => {
                total += n.max(0) as u64;
                if n < i64::from(batch) {
                    return total;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "pruning {what} failed");
                return total;
            }
        }
    }
}
