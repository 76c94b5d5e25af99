//! `GET /v1/audit/export`: a trail as NDJSON an auditor verifies offline with
//! the public key alone (`file`, `meridian audit verify-file`): a header (trail,
//! the hash before the first exported event, the signing keys' ids), the events
//! with their seq and hash, then the signed checkpoints covering them. An export
//! first signs a checkpoint of the current head, so an export without `to`
//! always ends at a signed checkpoint. Streamed a page at a time (one read
//! transaction per page): memory stays flat however long the trail.
//! The format: docs/audit-format.md.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::chain;
use super::checkpoint::{self, Checkpoint};
use super::trail::Source;
use crate::error::ApiError;

pub const FORMAT: &str = "meridian-audit-export/v1";
const PAGE: i64 = 500;

/// The seq range of the events created in `[from, to)`: (first, last), or
/// `None` when there are none.
pub async fn range(
    source: &Source<'_>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Option<(i64, i64)>, ApiError> {
    let sql = source.sql();
    let rows = source
        .query(
            &format!(
                "SELECT min(seq), max(seq) FROM {} WHERE {} = {} AND seq IS NOT NULL \
                 AND ($2::timestamptz IS NULL OR created_at >= $2) \
                 AND ($3::timestamptz IS NULL OR created_at < $3)",
                sql.events, sql.key_column, sql.key_cast
            ),
            &[&source.key(), &from, &to],
        )
        .await?;
    Ok(rows.first().and_then(|r| {
        let (lo, hi) = (r.get::<_, Option<i64>>(0), r.get::<_, Option<i64>>(1));
        lo.zip(hi)
    }))
}

/// The header line: the trail, the range, and the hash the first exported event
/// links to (the genesis hash, or the stored hash of the event before it).
pub async fn header(
    source: &Source<'_>,
    range: Option<(i64, i64)>,
    key_ids: &[String],
) -> Result<Value, ApiError> {
    let sql = source.sql();
    let first = range.map_or(1, |(lo, _)| lo);
    let prev = if first <= 1 {
        Some(chain::GENESIS.to_vec())
    } else {
        let rows = source
            .query(
                &format!(
                    "SELECT hash FROM {} WHERE {} = {} AND seq = $2",
                    sql.events, sql.key_column, sql.key_cast
                ),
                &[&source.key(), &(first - 1)],
            )
            .await?;
        match rows.first() {
            Some(row) => row.get::<_, Option<Vec<u8>>>(0),
            // Deleted by retention: the anchor checkpoint holds it.
            None => checkpoint::at(source, first - 1).await?.map(|c| c.hash),
        }
    };
    Ok(json!({
        "type": "header",
        "format": FORMAT,
        "trail": source.name(),
        "first_seq": range.map(|(lo, _)| lo),
        "last_seq": range.map(|(_, hi)| hi),
        "prev_hash": prev.map(|h| chain::hex(&h)),
        "key_ids": key_ids,
    }))
}

/// Up to a page of events after `after`, through `last`, as lines.
pub async fn events(
    source: &Source<'_>,
    after: i64,
    last: i64,
) -> Result<Vec<(i64, Value)>, ApiError> {
    let sql = source.sql();
    let rows = source
        .query(
            &format!(
                "SELECT {} FROM {} WHERE {} = {} AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
                sql.columns, sql.events, sql.key_column, sql.key_cast
            ),
            &[&source.key(), &after, &last, &PAGE],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i64>("seq"), event_line(r)))
        .collect())
}

fn event_line(row: &tokio_postgres::Row) -> Value {
    let at: DateTime<Utc> = row.get("created_at");
    json!({
        "type": "event",
        "seq": row.get::<_, i64>("seq"),
        "hash": row.get::<_, Option<Vec<u8>>>("hash").map(|h| chain::hex(&h)),
        "id": row.get::<_, uuid::Uuid>("id"),
        "created_at": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "actor": row.get::<_, String>("actor"),
        "action": row.get::<_, String>("action"),
        "tenant_id": row.get::<_, Option<uuid::Uuid>>("tenant_id"),
        "target_kind": row.get::<_, Option<String>>("target_kind"),
        "target_id": row.get::<_, Option<String>>("target_id"),
        "details": row.get::<_, Value>("details"),
        "sealed": row.get::<_, Option<Vec<u8>>>("sealed").map(|s| B64.encode(s)),
    })
}

pub fn checkpoint_line(c: &Checkpoint) -> Value {
    json!({
        "type": "checkpoint",
        "seq": c.seq,
        "hash": chain::hex(&c.hash),
        "kind": c.kind,
        "signed_at": c.signed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "key_id": c.key_id,
        "signature": c.signature,
    })
}

/// The lines of `values`, each ending in a newline.
pub fn ndjson(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        // A Value always serialises.
        let _ = serde_json::to_writer(&mut out, v);
        out.push(b'\n');
    }
    out
}
