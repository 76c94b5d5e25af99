//! Channel summary rows, in the tenant's transaction (RLS, homed like every
//! tenant row). A tenant whose policy encrypts messages gets its summaries
//! sealed (`sealed`; `summary` and `sentences` NULL) and its jobs read sealed
//! bodies through the keyring (`crypto::messages`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::crypto::keyring::Keyring;
use crate::crypto::messages as sealing;
use crate::db::TenantTx;
use crate::ids::{ChannelId, JobId, SummaryId, UserId};
use crate::store::error::StoreError;

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub id: SummaryId,
    pub channel_id: ChannelId,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub state: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub max_sentences: i32,
    pub engine: String,
    /// The summary text (its sentences joined), once `succeeded`.
    pub summary: Option<String>,
    /// The chosen sentences with the id of the message each came from.
    #[schema(value_type = Option<Object>)]
    pub sentences: Option<Value>,
    /// AI tokens charged to the tenant's ledger.
    pub tokens_used: Option<i64>,
    pub error: Option<String>,
    pub job_id: Option<JobId>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, channel_id, state, since, until, max_sentences, engine, summary, \
    sentences, tokens_used, error, job_id, created_at, finished_at, sealed";

fn from_row(row: &Row) -> Summary {
    Summary {
        id: SummaryId::from_uuid(row.get("id")),
        channel_id: ChannelId::from_uuid(row.get("channel_id")),
        state: row.get("state"),
        since: row.get("since"),
        until: row.get("until"),
        max_sentences: row.get("max_sentences"),
        engine: row.get("engine"),
        summary: row.get("summary"),
        sentences: row.get("sentences"),
        tokens_used: row.get("tokens_used"),
        error: row.get("error"),
        job_id: row
            .get::<_, Option<uuid::Uuid>>("job_id")
            .map(JobId::from_uuid),
        created_at: row.get("created_at"),
        finished_at: row.get("finished_at"),
    }
}

pub struct NewSummary {
    pub id: SummaryId,
    pub channel: ChannelId,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub max_sentences: i32,
    pub engine: &'static str,
    pub requested_by: UserId,
}

pub async fn create(tx: &TenantTx<'_>, new: &NewSummary) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO channel_summaries (tenant_id, id, home_region, channel_id, since, until, \
            max_sentences, engine, requested_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            tx.tenant_id().as_uuid(),
            new.id.as_uuid(),
            &tx.home_region().as_str(),
            new.channel.as_uuid(),
            &new.since,
            &new.until,
            &new.max_sentences,
            &new.engine,
            new.requested_by.as_uuid(),
        ],
    )
    .await?;
    Ok(())
}

pub async fn set_job(tx: &TenantTx<'_>, id: SummaryId, job: JobId) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE channel_summaries SET job_id = $3 WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), id.as_uuid(), job.as_uuid()],
    )
    .await?;
    Ok(())
}

/// A summary row with its sealed text and sentences (if sealed) opened.
async fn opened(keyring: &Keyring, tx: &TenantTx<'_>, row: &Row) -> Result<Summary, StoreError> {
    let mut summary = from_row(row);
    let sealed: Option<Vec<u8>> = row.get("sealed");
    if let Some(sealed) = sealed {
        let (text, sentences) = sealing::open_summary(keyring, tx, summary.id, &sealed).await?;
        summary.summary = Some(text);
        summary.sentences = Some(sentences);
    }
    Ok(summary)
}

/// One summary of a channel; a missing channel answers as a missing channel.
pub async fn get(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    channel: ChannelId,
    id: SummaryId,
) -> Result<Summary, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM channel_summaries WHERE tenant_id = $1 AND channel_id = $2 AND id = \
            $3"
    );
    match tx
        .query_opt(
            &sql,
            &[tx.tenant_id().as_uuid(), channel.as_uuid(), id.as_uuid()],
        )
        .await?
    {
        Some(row) => opened(keyring, tx, &row).await,
        None => {
            crate::store::channels::ensure_exists(tx, channel).await?;
            Err(StoreError::not_found("summary", *id.as_uuid()))
        }
    }
}

/// The summary's request, for its job: `None` once it is finished (a rerun).
pub async fn pending(tx: &TenantTx<'_>, id: SummaryId) -> Result<Option<Summary>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM channel_summaries WHERE tenant_id = $1 AND id = $2 AND state IN \
            ('queued', 'running')"
    );
    Ok(tx
        .query_opt(&sql, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?
        .map(|r| from_row(&r)))
}

/// The channel's messages in the window, oldest first (at most `limit`, the
/// newest ones), sealed bodies opened.
pub async fn messages(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    s: &Summary,
    limit: i64,
) -> Result<Vec<(uuid::Uuid, String)>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, body, body_enc FROM (
                 SELECT id, body, body_enc, created_at FROM messages
                 WHERE tenant_id = $1 AND channel_id = $2
                   AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL \
                       OR created_at < $4)
                 ORDER BY created_at DESC, id DESC LIMIT $5) m
             ORDER BY created_at, id",
            &[
                tx.tenant_id().as_uuid(),
                s.channel_id.as_uuid(),
                &s.since,
                &s.until,
                &limit,
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: uuid::Uuid = row.get(0);
        let sealed: Option<Vec<u8>> = row.get(2);
        let body = match sealed {
            Some(sealed) => {
                let message = crate::ids::MessageId::from_uuid(id);
                sealing::open_body(keyring, tx, message, &sealed).await?
            }
            None => row.get(1),
        };
        out.push((id, body));
    }
    Ok(out)
}

/// Records the outcome of a summary still pending (a finished one never changes).
/// `seal`: the tenant's policy encrypts (read by the caller in this transaction):
/// the text and sentences are sealed, nothing of them stored in plaintext.
pub async fn finish(
    tx: &TenantTx<'_>,
    seal: Option<&Keyring>,
    id: SummaryId,
    outcome: Result<(String, Value, i64), String>,
) -> Result<(), StoreError> {
    let (state, mut summary, mut sentences, tokens, error) = match outcome {
        Ok((text, sentences, tokens)) => {
            ("succeeded", Some(text), Some(sentences), Some(tokens), None)
        }
        Err(why) => ("failed", None, None, None, Some(why)),
    };
    let sealed = match (seal, &summary, &sentences) {
        (Some(keyring), Some(text), Some(chosen)) => {
            let sealed = sealing::seal_summary(keyring, tx, id, text, chosen).await?;
            (summary, sentences) = (None, None);
            Some(sealed)
        }
        _ => None,
    };
    tx.execute(
        "UPDATE channel_summaries SET state = $3, summary = $4, sentences = $5, tokens_used = $6, \
            error = $7, sealed = $8, finished_at = now()
         WHERE tenant_id = $1 AND id = $2 AND state IN ('queued', 'running')",
        &[
            tx.tenant_id().as_uuid(),
            id.as_uuid(),
            &state,
            &summary,
            &sentences,
            &tokens,
            &error,
            &sealed,
        ],
    )
    .await?;
    Ok(())
}
