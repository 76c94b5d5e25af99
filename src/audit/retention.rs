//! Audit retention that keeps the trail verifiable: deleting a tenant's events
//! older than a cutoff first signs an `anchor` checkpoint at the last deleted
//! event (its seq and hash), then deletes through it with
//! `audit_truncate_through` (V21: the service role has no DELETE on events; the
//! function deletes only up to a seq a checkpoint with that event's hash
//! anchors). Verification then starts from the anchor (`verify`). The anchor,
//! the deletion and nothing else share one transaction.
//!
//! What decides the cutoff (plan defaults, the floor only a platform admin may
//! lower) is the retention job's (issue 16 item 4); this is what it calls.

use chrono::{DateTime, Utc};

use crate::crypto::signing::Signer;
use crate::db::{Database, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::store::error::StoreError;

/// What a truncation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    /// The anchor's seq (the last deleted event), if anything was deleted.
    pub anchor_seq: Option<i64>,
    pub deleted: i64,
}

/// Deletes the tenant's events created before `before`, in `tx`, behind an
/// anchor checkpoint.
pub async fn truncate_in(
    tx: &TenantTx<'_>,
    signer: &Signer,
    before: DateTime<Utc>,
) -> Result<Truncated, StoreError> {
    let last = tx
        .query_opt(
            "SELECT seq, hash FROM audit_events WHERE tenant_id = $1 AND created_at < $2 \
             AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
            &[tx.tenant_id().as_uuid(), &before],
        )
        .await?;
    let Some((seq, hash)) = last.map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1))) else {
        return Ok(Truncated {
            anchor_seq: None,
            deleted: 0,
        });
    };
    super::checkpoint::sign_tenant_at(tx, signer, seq, hash, "anchor").await?;
    let deleted: i64 = tx
        .query_one("SELECT audit_truncate_through($1)", &[&seq])
        .await?
        .get(0);
    Ok(Truncated {
        anchor_seq: Some(seq),
        deleted,
    })
}

/// `truncate_in` in its own transaction of `tenant` (for a job or a tool).
pub async fn truncate_before(
    db: &Database,
    tenant: TenantId,
    home: &RegionId,
    signer: &Signer,
    before: DateTime<Utc>,
) -> Result<Truncated, ApiError> {
    db.tenant_tx(tenant, home, None, TxMode::ReadWrite, async |tx| {
        Ok(truncate_in(tx, signer, before).await?)
    })
    .await
}
