//! The `exports.sweep` job: per tenant, on a schedule (`exports.sweep_interval_ms`),
//! removes the stored archives of ready exports past their expiry and marks
//! them `expired`, in batches. The file goes first, then the row: a crash in
//! between leaves a row that the next sweep finds again (removing a missing
//! file is no error). A download after expiry answers 410 `export_expired`
//! whether or not the sweep has run yet (the row's `expires_at` decides).

use serde_json::{Value, json};

use super::exports;
use super::storage::ExportStorage;
use crate::crypto::rotation::job_error;
use crate::db::TxMode;
use crate::jobs::{JobContext, JobError, JobHandler};

pub const KIND: &str = "exports.sweep";
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
