//! The `messages.seal` job: when a tenant turns message encryption on, seals
//! the message bodies and summaries it stored in plaintext before
//! (`crypto::messages`). Enqueued by the policy change, in its transaction.
//!
//! Batches of `encryption.reencrypt_batch` rows, one transaction each: rows
//! locked (`FOR UPDATE`), sealed with the tenant's active DEK, written back
//! with `body` = '' (summaries: `summary`, `sentences` NULL). Each batch re-reads
//! the policy in its own transaction and stops when it is off again (the rows
//! left stay plaintext, as the policy now says). A batch only picks plaintext
//! rows, so a rerun (crash, second enqueue) is harmless and resumes where the
//! last one stopped. Rows sealed here are ordinary sealed rows from then on:
//! rotation re-encrypts them (`rotation::ENCRYPTED`).

use serde_json::{Value, json};

use super::keyring::Keyring;
use super::messages as sealing;
use crate::db::{TenantTx, TxMode};
use crate::ids::{MessageId, SummaryId};
use crate::jobs::{JobContext, JobError, JobHandler, NewJob};
use crate::store::error::StoreError;
use crate::store::tenants::encryption;

pub const KIND: &str = "messages.seal";

/// The job for a policy just turned on. Two of them (on, off, on) are
/// harmless: each seals only what is still plaintext.
pub fn job() -> NewJob {
    NewJob {
        max_attempts: 20,
        ..NewJob::new(KIND, json!({}))
    }
}

pub struct SealMessages {
    pub keyring: std::sync::Arc<Keyring>,
    pub batch: u32,
}

/// Seals up to `limit` plaintext message bodies; how many.
async fn bodies(keyring: &Keyring, tx: &TenantTx<'_>, limit: i64) -> Result<u64, StoreError> {
    let rows = tx
        .query(
            "SELECT id, body FROM messages WHERE tenant_id = $1 AND body_enc IS NULL AND body <> ''
             ORDER BY id LIMIT $2 FOR UPDATE",
            &[tx.tenant_id().as_uuid(), &limit],
        )
        .await?;
    for row in &rows {
        let id = MessageId::from_uuid(row.get(0));
        let body: String = row.get(1);
        let sealed = sealing::seal_body(keyring, tx, id, &body).await?;
        tx.execute(
            "UPDATE messages SET body = '', body_enc = $3 WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid(), &sealed],
        )
        .await?;
    }
    Ok(rows.len() as u64)
}

/// Seals up to `limit` plaintext summaries; how many.
async fn summaries(keyring: &Keyring, tx: &TenantTx<'_>, limit: i64) -> Result<u64, StoreError> {
    let rows = tx
        .query(
            "SELECT id, summary, sentences FROM channel_summaries
             WHERE tenant_id = $1 AND sealed IS NULL AND summary IS NOT NULL
             ORDER BY id LIMIT $2 FOR UPDATE",
            &[tx.tenant_id().as_uuid(), &limit],
        )
        .await?;
    for row in &rows {
        let id = SummaryId::from_uuid(row.get(0));
        let text: String = row.get(1);
        let sentences: Option<Value> = row.get(2);
        let sentences = sentences.unwrap_or(Value::Null);
        let sealed = sealing::seal_summary(keyring, tx, id, &text, &sentences).await?;
        tx.execute(
            "UPDATE channel_summaries SET summary = NULL, sentences = NULL, sealed = $3
             WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid(), &sealed],
        )
        .await?;
    }
    Ok(rows.len() as u64)
}

#[async_trait::async_trait(?Send)]
impl JobHandler for SealMessages {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext, _payload: &Value) -> Result<Value, JobError> {
        let keyring = &self.keyring;
        let limit = i64::from(self.batch.max(1));
        let (mut messages, mut summary_rows) = (0u64, 0u64);
        loop {
            let done = ctx
                .tenant_tx(TxMode::ReadWrite, async |tx| {
                    // The policy as committed now: turned off since, nothing more.
                    if !encryption::get(tx).await?.messages {
                        return Ok(None);
                    }
                    let m = bodies(keyring, tx, limit).await?;
                    let s = summaries(keyring, tx, limit).await?;
                    Ok(Some((m, s)))
                })
                .await
                .map_err(super::rotation::job_error)?;
            match done {
                Some((0, 0)) => break,
                Some((m, s)) => {
                    messages += m;
                    summary_rows += s;
                }
                None => return Ok(json!({ "stopped": "policy off", "messages": messages })),
            }
        }
        Ok(json!({ "messages": messages, "summaries": summary_rows }))
    }
}
