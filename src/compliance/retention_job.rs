//! The `retention.enforce` job: per tenant, in its home region, on a schedule
//! (`retention.interval_ms`), enforces the policy in force
//! (`compliance::retention`, read in the job's own transaction).
//!
//! Messages older than `messages_days` go in batches of `retention.batch_rows`,
//! one transaction each (the oldest first, through `messages_retention_idx`,
//! V27): each batch refunds the bytes it freed to the storage quota in the
//! same transaction. What copied them goes too: search entries live in the
//! message row (`body_tsv`, its GIN index) and go with it; summaries whose
//! window holds a message about to go (they may quote it) are deleted first;
//! outbox events and webhook deliveries older than the cutoff that
//! carry a message are emptied like an erasure empties them. No other table
//! references messages (no reactions or attachments exist). Every step is
//! idempotent and ordered by age, so a job that dies half-way is resumed by the
//! next run: there is nothing to remember between runs.
//!
//! The audit trail is then truncated before now − `audit_days` through
//! `audit::retention::truncate_in`, at most `retention.audit_batch` events per
//! transaction; a segment that does not verify is refused (audited there) and
//! the job ends `failed` with the broken link — its error state.
//!
//! Last, the tenant's access log (V25) older than `access_log_days` (the
//! shorter of `audit_days` and the node's `access_log.retention_days`) goes in
//! batches through V28's `prune_tenant_access_log`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::retention::{Truncation, truncate_in};
use crate::crypto::rotation::job_error;
use crate::crypto::signing::Signer;
use crate::db::{TenantTx, TxMode};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::limits::storage;
use crate::store::error::StoreError;

pub const KIND: &str = "retention.enforce";

/// `retention.*` settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// How often each tenant's retention job runs.
    #[serde(rename = "interval_ms", with = "crate::config::millis")]
    pub interval: Duration,
    /// Rows one transaction deletes (or empties) at most.
    pub batch_rows: u32,
    /// Audit events one truncating transaction re-verifies and deletes at most.
    pub audit_batch: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            batch_rows: 1000,
            audit_batch: 10_000,
        }
    }
}

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100_000).contains(&self.batch_rows) || !(1..=1_000_000).contains(&self.audit_batch)
        {
            return Err(
                "retention.batch_rows must be 1..=100000 and retention.audit_batch 1..=1000000"
                    .into(),
            );
        }
        if self.interval.is_zero() {
            return Err("retention.interval_ms must be positive".into());
        }
        Ok(())
    }
}

/// One batch step over the tenant's rows before the cutoff: `$1` tenant, `$2`
/// cutoff, `$3` batch size; answers the rows changed.
struct Step {
    table: &'static str,
    sql: &'static str,
}

/// Before the messages: summaries whose window holds a message about to be
/// deleted (they may quote it).
const SUMMARIES: Step = Step {
    table: "channel_summaries",
    sql: "DELETE FROM channel_summaries WHERE tenant_id = $1 AND id IN (
            SELECT s.id FROM channel_summaries s WHERE s.tenant_id = $1
              AND (s.since IS NULL OR s.since < $2)
              AND EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = $1
                AND m.channel_id = s.channel_id AND m.created_at < $2
                AND (s.since IS NULL OR m.created_at >= s.since)
                AND m.created_at <= COALESCE(s.until, s.created_at))
            LIMIT $3)",
};

/// After the messages: the event copies of posts older than the cutoff.
const COPIES: [Step; 2] = [
    Step {
        table: "webhook_deliveries",
        sql: "UPDATE webhook_deliveries SET payload = '{\"erased\":true}'
              WHERE tenant_id = $1 AND id IN (
                SELECT d.id FROM webhook_deliveries d JOIN outbox_events e
                  ON e.tenant_id = d.tenant_id AND e.id = d.event_id
                WHERE d.tenant_id = $1 AND e.created_at < $2
                  AND d.payload <> '{\"erased\":true}' AND e.data -> 'message' IS NOT NULL
                LIMIT $3)",
    },
    Step {
        table: "outbox_events",
        sql: "UPDATE outbox_events SET data = '{\"erased\":true}'::jsonb
              WHERE tenant_id = $1 AND id IN (
                SELECT id FROM outbox_events WHERE tenant_id = $1 AND created_at < $2
                  AND data -> 'message' IS NOT NULL LIMIT $3)",
    },
];

/// The messages batch: the oldest `$3` messages before `$2`, and the bytes
/// they were charged (a sealed body: its plaintext's, as `store::channels`).
pub const DELETE_MESSAGES_SQL: &str = "WITH gone AS (
        DELETE FROM messages WHERE tenant_id = $1 AND id IN (
            SELECT id FROM messages WHERE tenant_id = $1 AND created_at < $2
            ORDER BY created_at LIMIT $3)
        RETURNING COALESCE(octet_length(body_enc) - $4, octet_length(body)) AS bytes)
    SELECT count(*)::bigint, COALESCE(sum(bytes), 0)::bigint FROM gone";

/// Deletes one batch of messages before `cutoff` and refunds their bytes.
pub async fn delete_messages(
    tx: &TenantTx<'_>,
    cutoff: chrono::DateTime<Utc>,
    batch: i64,
) -> Result<i64, StoreError> {
    let row = tx
        .query_one(
            DELETE_MESSAGES_SQL,
            &[
                tx.tenant_id().as_uuid(),
                &cutoff,
                &batch,
                &crate::crypto::messages::SEALED_OVERHEAD,
            ],
        )
        .await?;
    let (deleted, bytes): (i64, i64) = (row.get(0), row.get(1));
    if bytes > 0 {
        storage::refund_storage(tx, bytes as u64).await?;
    }
    Ok(deleted)
}

pub struct EnforceRetention {
    pub signer: Arc<Signer>,
    pub settings: RetentionSettings,
    /// The node's `access_log.retention_days`: the access log's ceiling.
    pub access_log_days: u32,
}

/// Days the tenant's access log is kept: it is a record of actions like the
/// audit trail, so it follows `audit_days` (and the floor that protects it),
/// never longer than the platform's `access_log.retention_days`.
pub fn access_log_days(audit_days: u32, platform_days: u32) -> u32 {
    audit_days.min(platform_days)
}

/// One batch of the tenant's access-log rows before `cutoff` (V28
/// `prune_tenant_access_log`: the service role has no DELETE on the table).
async fn prune_access_log(
    tx: &TenantTx<'_>,
    cutoff: chrono::DateTime<Utc>,
    batch: i64,
) -> Result<i64, StoreError> {
    let batch = i32::try_from(batch).unwrap_or(i32::MAX);
    Ok(tx
        .query_one("SELECT prune_tenant_access_log($1, $2)", &[&cutoff, &batch])
        .await?
        .get(0))
}

impl EnforceRetention {
    /// Repeats `step` in its own transaction until a batch is short.
    async fn drain(
        &self,
        ctx: &JobContext,
        mut step: impl AsyncFnMut(&TenantTx<'_>) -> Result<i64, StoreError>,
    ) -> Result<i64, JobError> {
        let batch = i64::from(self.settings.batch_rows);
        let mut total = 0;
        loop {
            let n = ctx
                .tenant_tx(TxMode::ReadWrite, async |tx| Ok(step(tx).await?))
                .await
                .map_err(job_error)?;
            total += n;
            if n < batch {
                return Ok(total);
            }
        }
    }
}

#[async_trait::async_trait(?Send)]
impl JobHandler for EnforceRetention {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext, _payload: &Value) -> Result<Value, JobError> {
        let policy = ctx
            .tenant_tx(TxMode::ReadOnly, async |tx| super::retention::get(tx).await)
            .await
            .map_err(job_error)?;
        let now = Utc::now();
        let batch = i64::from(self.settings.batch_rows);
        let mut counts = serde_json::Map::new();
        if let Some(days) = policy.messages_days {
            let cutoff = now - chrono::Duration::days(i64::from(days));
            let step = async |step: &Step| {
                self.drain(ctx, async |tx| {
                    let tenant = tx.tenant_id();
                    let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [tenant.as_uuid(), &cutoff, &batch];
                    Ok(tx.execute(step.sql, &args).await? as i64)
                })
                .await
            };
            counts.insert(SUMMARIES.table.into(), json!(step(&SUMMARIES).await?));
            let n = self
                .drain(ctx, async |tx| delete_messages(tx, cutoff, batch).await)
                .await?;
            counts.insert("messages".into(), json!(n));
            for copy in &COPIES {
                counts.insert(copy.table.into(), json!(step(copy).await?));
            }
        }
        let cutoff = now - chrono::Duration::days(i64::from(policy.audit_days));
        let max = i64::from(self.settings.audit_batch);
        let mut audit_deleted = 0;
        loop {
            let done = ctx
                .tenant_tx(TxMode::ReadWrite, async |tx| {
                    Ok(truncate_in(tx, &self.signer, cutoff, max).await?)
                })
                .await
                .map_err(job_error)?;
            match done {
                Truncation::Done { deleted, .. } if deleted >= max => audit_deleted += deleted,
                Truncation::Done { deleted, .. } => {
                    audit_deleted += deleted;
                    break;
                }
                Truncation::Refused {
                    from,
                    through,
                    broken,
                } => {
                    return Err(JobError::Permanent(format!(
                        "audit retention refused: seq {from}..={through} does not verify \
                         (broken at seq {}: {}); {} deleted before this: {counts:?}",
                        broken.seq, broken.reason, audit_deleted
                    )));
                }
            }
        }
        counts.insert("audit_events".into(), json!(audit_deleted));
        let access_days = access_log_days(policy.audit_days, self.access_log_days);
        let cutoff = now - chrono::Duration::days(i64::from(access_days));
        let n = self
            .drain(ctx, async |tx| prune_access_log(tx, cutoff, batch).await)
            .await?;
        counts.insert("access_log".into(), json!(n));
        Ok(json!({
            "messages_days": policy.messages_days,
            "audit_days": policy.audit_days,
            "access_log_days": access_days,
            "deleted": counts,
        }))
    }
}
