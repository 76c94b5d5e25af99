//! The sealer: chains a tenant's events after the transactions that wrote them
//! have committed. A write inserts its event with `seq` and `hash` NULL (one
//! plain INSERT, no head row, so a tenant's audited writes do not serialise on
//! anything); every `audit.seal_interval_ms` each node asks which tenants of its
//! region have unchained events (`audit_unsealed_trails`, V30) and, per tenant,
//! in one transaction of at most `audit.seal_batch` events: reads them in
//! (created_at, id) order, locks the head, links them after it
//! (`chain::link`) and records the links and the new head with `audit_seal`.
//!
//! Two nodes sealing one trail at once: the second waits on the head's lock and
//! then fails serialization (40001, retried) and finds nothing left, or
//! `audit_seal` chains fewer events than asked (it only sets `seq` where it is
//! NULL, and only while the head is where this batch read it) and the batch
//! rolls back. So seqs stay gapless and each event is linked once.
//!
//! What this changes in the evidence: an event is chained within about one
//! interval of its commit instead of at it. Until then it is listed (without
//! `seq`) and counted as `pending` by verification; it is not yet covered by a
//! hash. Nobody but the database's owner can edit it meanwhile (the service role
//! has no UPDATE or DELETE on events), and the owner can rewrite any chain up to
//! its last signed checkpoint anyway (hourly), so the window adds no new power.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use uuid::Uuid;

use super::chain;
use super::verify;
use crate::db::{Database, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::store::error::StoreError;

/// Trails one pass looks at, at most (the rest wait for the next pass).
const TRAILS_PER_PASS: i32 = 1000;

/// `audit.*` settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditSettings {
    /// How often a node chains its region's new events (the longest an event
    /// waits for its link, plus a batch's time).
    #[serde(rename = "seal_interval_ms", with = "crate::config::millis")]
    pub seal_interval: Duration,
    /// Events chained per transaction, at most.
    pub seal_batch: i64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            seal_interval: Duration::from_secs(1),
            seal_batch: 1000,
        }
    }
}

impl AuditSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&self.seal_interval) {
            return Err("audit.seal_interval_ms must be 10..=60000".into());
        }
        if !(1..=10_000).contains(&self.seal_batch) {
            return Err("audit.seal_batch must be 1..=10000".into());
        }
        Ok(())
    }
}

const UNSEALED_SQL: &str = "SELECT id, created_at, actor, action, tenant_id, target_kind, \
    target_id, details, sealed, seq, hash FROM audit_events
     WHERE tenant_id = $1 AND seq IS NULL ORDER BY created_at, id LIMIT $2";

/// Chains up to `batch` of the transaction's tenant's unchained events; how many.
pub async fn seal_trail(tx: &TenantTx<'_>, batch: i64) -> Result<u64, StoreError> {
    let tenant = tx.tenant_id();
    let rows = tx.query(UNSEALED_SQL, &[tenant.as_uuid(), &batch]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    tx.execute(
        "INSERT INTO audit_heads (tenant_id, home_region, seq, hash) VALUES ($1, $2, 0, $3)
         ON CONFLICT (tenant_id) DO NOTHING",
        &[
            tenant.as_uuid(),
            &tx.home_region().as_str(),
            &chain::GENESIS.as_slice(),
        ],
    )
    .await?;
    let head = tx
        .query_one(
            "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE",
            &[tenant.as_uuid()],
        )
        .await?;
    let (prev_seq, prev_hash): (i64, Vec<u8>) = (head.get(0), head.get(1));
    let links = link_after(prev_seq, prev_hash, &rows);
    let chained: i64 = tx
        .query_one(
            "SELECT audit_seal($1, $2, $3, $4)",
            &[&links.ids, &links.seqs, &links.hashes, &prev_seq],
        )
        .await?
        .get(0);
    if chained != rows.len() as i64 {
        return Err(StoreError::internal(anyhow::anyhow!(
            "audit_seal chained {chained} of {} events of tenant {tenant}: another sealer moved \
                the head",
            rows.len()
        )));
    }
    Ok(rows.len() as u64)
}

struct Links {
    ids: Vec<Uuid>,
    seqs: Vec<i64>,
    hashes: Vec<Vec<u8>>,
}

/// Each row's seq and hash after the head (`prev_seq`, `prev_hash`).
fn link_after(prev_seq: i64, prev_hash: Vec<u8>, rows: &[Row]) -> Links {
    let mut links = Links {
        ids: Vec::with_capacity(rows.len()),
        seqs: Vec::with_capacity(rows.len()),
        hashes: Vec::with_capacity(rows.len()),
    };
    let (mut seq, mut hash) = (prev_seq, prev_hash);
    for row in rows {
        let stored = verify::stored(row);
        seq += 1;
        hash = chain::link(&hash, &stored.canonical).to_vec();
        links.ids.push(row.get("id"));
        links.seqs.push(seq);
        links.hashes.push(hash.clone());
    }
    links
}

/// Chains the tenant's events until none is left (each batch its own transaction).
pub async fn seal_tenant(
    db: &Database,
    tenant: TenantId,
    home: &RegionId,
    batch: i64,
) -> Result<u64, ApiError> {
    let mut total = 0;
    loop {
        let n = db
            .tenant_tx(tenant, home, None, TxMode::ReadWrite, async |tx| {
                Ok(seal_trail(tx, batch).await?)
            })
            .await?;
        total += n;
        if (n as i64) < batch {
            return Ok(total);
        }
    }
}

/// What a pass chained.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub trails: u64,
    pub events: u64,
    pub failed: u64,
}

/// One pass over `region`: every tenant with unchained events, each to the
/// end. A tenant whose sealing fails is logged and left for the next pass; the
/// others go on.
pub async fn seal_region(db: &Database, region: &RegionId, batch: i64) -> Result<Pass, ApiError> {
    let trails: Vec<Uuid> = db
        .platform_tx(TxMode::ReadOnly, async |tx| {
            Ok(tx
                .query(
                    "SELECT tenant_id FROM audit_unsealed_trails($1, $2)",
                    &[&region.as_str(), &TRAILS_PER_PASS],
                )
                .await?)
        })
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut pass = Pass::default();
    for tenant in trails {
        match seal_tenant(db, TenantId::from_uuid(tenant), region, batch).await {
            Ok(n) => {
                pass.trails += 1;
                pass.events += n;
            }
            Err(err) => {
                pass.failed += 1;
                tracing::warn!(%tenant, error = %err, "chaining a tenant's audit events failed");
            }
        }
    }
    Ok(pass)
}
