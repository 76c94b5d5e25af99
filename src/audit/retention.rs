//! Audit retention that keeps the trail verifiable: deleting a tenant's events
//! older than a cutoff first re-verifies the segment it would delete (from the
//! trail's current start — seq 1 or the anchor retention left last time — to
//! the new anchor), then signs an `anchor` checkpoint at the last deleted event
//! (its seq and recomputed hash) and deletes through it with
//! `audit_truncate_through` (V21: the service role has no DELETE on events; the
//! function deletes only up to a seq a checkpoint with that event's hash
//! anchors). Verification then starts from the anchor (`verify`).
//!
//! A segment that does not verify (an event edited, missing or inserted, a
//! checkpoint inside it that does not match or is forged) is never deleted:
//! deleting a tampered prefix would destroy the evidence of the tampering.
//! The refusal is audited in the tenant's trail and answered as `Refused`; the
//! retention job then fails (its error state) and logs it.
//!
//! The verification, the anchor, the deletion (or the refusal's event) share
//! one transaction, so what is deleted is exactly what was verified. A run
//! deletes at most `max_events` events (one bounded transaction); the caller
//! repeats until nothing is left before the cutoff.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::checkpoint::{self, Checkpoint};
use super::trail::TENANT;
use super::verify::{BrokenLink, Walk, stored};
use crate::crypto::signing::Signer;
use crate::db::{Database, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::store::error::StoreError;

/// Rows read per statement while re-verifying a segment.
const PAGE: i64 = 1000;

/// What a truncation did.
#[derive(Debug, Clone)]
pub enum Truncation {
    /// Deleted through `anchor_seq` (`None`: nothing was old enough).
    Done {
        anchor_seq: Option<i64>,
        deleted: i64,
    },
    /// The segment to delete does not verify: nothing was deleted.
    Refused {
        from: i64,
        through: i64,
        broken: BrokenLink,
    },
}

/// Deletes up to `max_events` of the tenant's oldest events created before
/// `before`, in `tx`, after re-verifying them, behind an anchor checkpoint.
pub async fn truncate_in(
    tx: &TenantTx<'_>,
    signer: &Signer,
    before: DateTime<Utc>,
    max_events: i64,
) -> Result<Truncation, StoreError> {
    let tenant = tx.tenant_id();
    let bounds = tx
        .query_one(
            "SELECT min(seq), (SELECT max(seq) FROM audit_events WHERE tenant_id = $1 \
                AND created_at < $2 AND seq IS NOT NULL) FROM audit_events WHERE tenant_id = $1",
            &[tenant.as_uuid(), &before],
        )
        .await?;
    let (Some(first), Some(last_old)) = (
        bounds.get::<_, Option<i64>>(0),
        bounds.get::<_, Option<i64>>(1),
    ) else {
        return Ok(Truncation::Done {
            anchor_seq: None,
            deleted: 0,
        });
    };
    let through = last_old.min(first.saturating_add(max_events.max(1) - 1));
    let hash = match verify_segment(tx, signer, first, through).await? {
        Ok(hash) => hash,
        Err(broken) => {
            tracing::error!(
                tenant = %tenant, from = first, through, seq = broken.seq, reason = %broken.reason,
                "audit retention refused: the segment it would delete does not verify"
            );
            super::record(
                tx,
                "retention",
                "audit_retention_refused",
                Some(("tenant", tenant.to_string())),
                serde_json::json!({ "from_seq": first, "through_seq": through, "broken": broken }),
            )
            .await?;
            return Ok(Truncation::Refused {
                from: first,
                through,
                broken,
            });
        }
    };
    super::checkpoint::sign_tenant_at(tx, signer, through, hash, "anchor").await?;
    let deleted: i64 = tx
        .query_one("SELECT audit_truncate_through($1)", &[&through])
        .await?
        .get(0);
    Ok(Truncation::Done {
        anchor_seq: Some(through),
        deleted,
    })
}

/// Walks seq `first..=through` of the tenant's trail in `tx`: from the anchor
/// at `first - 1` (which must exist and be validly signed) or the genesis
/// hash, every link recomputed, every checkpoint inside the segment matched.
/// The recomputed hash at `through`, or the first broken link.
async fn verify_segment(
    tx: &TenantTx<'_>,
    signer: &Signer,
    first: i64,
    through: i64,
) -> Result<Result<Vec<u8>, BrokenLink>, StoreError> {
    let trail = format!("tenant:{}", tx.tenant_id());
    let check = checkpoint::checker(signer);
    let checkpoints: BTreeMap<i64, Checkpoint> = tx
        .query(
            &format!(
                "SELECT {} FROM audit_checkpoints WHERE tenant_id = $1 AND seq BETWEEN $2 AND $3",
                checkpoint::COLUMNS
            ),
            &[tx.tenant_id().as_uuid(), &(first - 1), &through],
        )
        .await?
        .iter()
        .map(|row| (row.get("seq"), checkpoint::from_row(row)))
        .collect();
    let mut walk = Walk::new(trail.clone());
    if first > 1 {
        match checkpoints.get(&(first - 1)) {
            Some(anchor) if anchor.signature_valid(&trail, &check) => {
                walk.prev = anchor.hash.clone();
                walk.first_seq = first;
                walk.next_seq = first;
            }
            Some(_) => walk.fail(
                first,
                "a validly signed anchor".into(),
                format!("the checkpoint at seq {} does not verify", first - 1),
                "the checkpoint the trail starts from is forged",
            ),
            None => walk.fail(
                1,
                "seq 1".into(),
                format!("seq {first}"),
                "the events before this one are missing and no checkpoint anchors the start",
            ),
        }
    }
    let sql = format!(
        "SELECT {} FROM audit_events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 \
         ORDER BY seq LIMIT $4",
        TENANT.columns
    );
    let mut after = first - 1;
    while walk.broken.is_none() && after < through {
        let rows = tx
            .query(&sql, &[tx.tenant_id().as_uuid(), &after, &through, &PAGE])
            .await?;
        for row in &rows {
            walk.step(&stored(row), None);
            let seq = walk.next_seq - 1;
            if let Some(c) = checkpoints.get(&seq).filter(|_| walk.broken.is_none())
                && (c.hash != walk.prev || !c.signature_valid(&trail, &check))
            {
                walk.fail(
                    seq,
                    format!("the signed checkpoint's hash {}", checkpoint::hash_hex(c)),
                    super::chain::hex(&walk.prev),
                    "a checkpoint inside the segment does not match the chain or is forged",
                );
            }
            if walk.broken.is_some() {
                break;
            }
        }
        match rows.last() {
            Some(last) if (rows.len() as i64) == PAGE => after = last.get("seq"),
            _ => break,
        }
    }
    if walk.broken.is_none() && walk.next_seq != through + 1 {
        walk.fail(
            walk.next_seq,
            format!("seq {}", walk.next_seq),
            "no event".into(),
            "events inside the segment are missing",
        );
    }
    Ok(match walk.broken {
        Some(broken) => Err(broken),
        None => Ok(walk.prev),
    })
}

/// `truncate_in` in its own transaction of `tenant` (for a job or a tool).
pub async fn truncate_before(
    db: &Database,
    tenant: TenantId,
    home: &RegionId,
    signer: &Signer,
    before: DateTime<Utc>,
    max_events: i64,
) -> Result<Truncation, ApiError> {
    db.tenant_tx(tenant, home, None, TxMode::ReadWrite, async |tx| {
        Ok(truncate_in(tx, signer, before, max_events).await?)
    })
    .await
}
