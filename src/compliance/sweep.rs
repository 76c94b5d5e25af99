//! The `exports.sweep` job: per tenant, on a schedule (`exports.sweep_interval_ms`),
//! removes the stored archives of ready exports past their expiry and marks
//! them `expired`, in batches. The file goes first, then the row: a crash in
//! between leaves a row that the next sweep finds again (removing a missing
//! file is no error). A download after expiry answers 410 `export_expired`
//! whether or not the sweep has run yet (the row's `expires_at` decides).
//!
//! The `exports.remove_archives` platform job: a relocation withdraws the
//! exports whose archives stay in another region's store
//! (`exports::withdraw_outside`) and enqueues one of these in each such region,
//! whose nodes alone reach that store; it removes the listed archives there.

use serde_json::{Value, json};

use super::exports;
use super::storage::ExportStorage;
use crate::crypto::rotation::job_error;
use crate::db::PlatformTx;
use crate::db::TxMode;
use crate::ids::RegionId;
use crate::jobs::{self, JobContext, JobError, JobHandler, NewJob};
use crate::store::error::StoreError;

pub const KIND: &str = "exports.sweep";
pub const REMOVE_ARCHIVES_KIND: &str = "exports.remove_archives";
/// Archive keys per removal job (a relocated tenant's ready exports).
const KEYS_PER_JOB: usize = 500;
const BATCH: i64 = 100;

pub struct SweepExports {
    pub storage: ExportStorage,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for SweepExports {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext, _payload: &Value) -> Result<Value, JobError> {
        let mut removed = 0usize;
        loop {
            let due = ctx
                .tenant_tx(TxMode::ReadOnly, async |tx| {
                    Ok(exports::past_expiry(tx, BATCH).await?)
                })
                .await
                .map_err(job_error)?;
            for (id, key) in &due {
                if !key.is_empty() {
                    self.storage
                        .remove(key)
                        .await
                        .map_err(|e| JobError::Retry(format!("export store: {e}")))?;
                }
                ctx.tenant_tx(TxMode::ReadWrite, async |tx| {
                    Ok(exports::mark_expired(tx, *id).await?)
                })
                .await
                .map_err(job_error)?;
                removed += 1;
            }
            if (due.len() as i64) < BATCH {
                break;
            }
        }
        Ok(json!({ "expired": removed }))
    }
}

/// Enqueues, in the relocation's transaction, the removal of `archives`
/// ((storage region, object key) pairs) by a platform job in each region.
pub async fn enqueue_archive_removal(
    tx: &PlatformTx<'_>,
    archives: Vec<(String, String)>,
) -> Result<usize, StoreError> {
    let mut by_region: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (region, key) in archives {
        by_region.entry(region).or_default().push(key);
    }
    let mut jobs = 0;
    for (region, keys) in by_region {
        let region = RegionId::parse(&region).map_err(|e| {
            StoreError::internal(anyhow::anyhow!("export stored in a bad region: {e}"))
        })?;
        for chunk in keys.chunks(KEYS_PER_JOB) {
            let job = NewJob::new(REMOVE_ARCHIVES_KIND, json!({ "keys": chunk }));
            jobs::enqueue_platform(tx, &region, job).await?;
            jobs += 1;
        }
    }
    Ok(jobs)
}

/// Removes the archives a relocation left in this region's store.
pub struct RemoveArchives {
    pub storage: ExportStorage,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for RemoveArchives {
    fn kind(&self) -> &'static str {
        REMOVE_ARCHIVES_KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let keys: Vec<String> = serde_json::from_value(payload["keys"].clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        // Keys start with the region that built them (`ExportStorage::key`):
        // a job only ever removes its own region's archives.
        let prefix = format!("{}/", ctx.region.as_str());
        if let Some(foreign) = keys.iter().find(|k| !k.starts_with(&prefix)) {
            return Err(JobError::Permanent(format!(
                "archive {foreign:?} is not in {}",
                ctx.region.as_str()
            )));
        }
        for key in &keys {
            self.storage
                .remove(key)
                .await
                .map_err(|e| JobError::Retry(format!("export store: {e}")))?;
        }
        Ok(json!({ "removed": keys.len() }))
    }
}
