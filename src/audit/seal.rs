//! The sealer: chains a tenant's events after the transactions that wrote them
//! have committed. A write inserts its event with `seq` and `hash` NULL (one
//! plain INSERT, no head row, so a tenant's audited writes do not serialise on
//! anything); every `audit.seal_interval_ms` each node chains its region's
//! unchained events, at most `audit.seal_batch` per transaction across tenants
//! (`seal_region`: `audit_unsealed_batch` reads them by tenant in (created_at,
//! id) order with each trail's head, the node links them (`chain::link`) and
//! `audit_seal_batch` records the links and moves the heads, V30). A checkpoint
//! chains its own tenant's pending events first, in its transaction
//! (`seal_trail`: the head locked, `audit_seal`).
//!
//! Two sealers on one trail at once (two nodes of a region, or a pass and a
//! checkpoint): the second's updates of the same rows fail serialization (40001,
//! retried) and it finds nothing left, or it chains fewer events or moves fewer
//! heads than it read (the functions set `seq` only where it is NULL, and move a
//! head only from where the batch read it) and rolls back. So seqs stay gapless
//! and each event is linked once.
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
use crate::db::{Database, PlatformTx, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::RegionId;
use crate::store::error::StoreError;

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
    /// How often each trail's head gets a signed `periodic` checkpoint
    /// (`audit::jobs`): the longest a rewrite of the newest events by the
    /// database's owner stays undetectable by the signature.
    #[serde(rename = "checkpoint_interval_ms", with = "crate::config::millis")]
    pub checkpoint_interval: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            seal_interval: Duration::from_secs(1),
            seal_batch: 1000,
            checkpoint_interval: Duration::from_secs(3600),
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
        if !(Duration::from_secs(60)..=Duration::from_secs(86_400))
            .contains(&self.checkpoint_interval)
        {
            return Err("audit.checkpoint_interval_ms must be 60000..=86400000".into());
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
        seq += 1;
        hash = chain::link(&hash, &verify::canonical_of(row)).to_vec();
        links.ids.push(row.get("id"));
        links.seqs.push(seq);
        links.hashes.push(hash.clone());
    }
    links
}

/// What a pass chained.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub trails: u64,
    pub events: u64,
}

/// One pass over `region`: every unchained event of its tenants, `batch` at a
/// time, each batch one transaction for as many tenants as it holds
/// (`audit_unsealed_batch`, `audit_seal_batch`): a quiet tenant's single event
/// costs a share of a statement, not a transaction of its own.
pub async fn seal_region(db: &Database, region: &RegionId, batch: i64) -> Result<Pass, ApiError> {
    let mut pass = Pass::default();
    loop {
        let done = db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                Ok(seal_batch(tx, region, batch).await?)
            })
            .await?;
        pass.trails += done.trails;
        pass.events += done.events;
        if (done.events as i64) < batch {
            return Ok(pass);
        }
    }
}

/// Up to `n` of the region's unchained events, linked after their trails'
/// heads and recorded, in `tx`.
async fn seal_batch(tx: &PlatformTx<'_>, region: &RegionId, n: i64) -> Result<Pass, StoreError> {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    let rows = tx
        .query(
            "SELECT tenant_id, id, created_at, actor, action, target_kind, target_id, details, \
                sealed, head_seq, head_hash FROM audit_unsealed_batch($1, $2)",
            &[&region.as_str(), &n],
        )
        .await?;
    let mut events = EventLinks::default();
    let mut heads = HeadMoves::default();
    // Rows come by tenant: each run of one tenant's rows continues its head.
    let mut current: Option<(Uuid, i64, Vec<u8>)> = None;
    for row in &rows {
        let tenant: Uuid = row.get("tenant_id");
        let (mut seq, mut hash) = match current.take() {
            Some((t, seq, hash)) if t == tenant => (seq, hash),
            other => {
                if let Some(done) = other {
                    heads.close(done);
                }
                let prev: i64 = row.get("head_seq");
                let hash: Option<Vec<u8>> = row.get("head_hash");
                heads.open(tenant, region, prev);
                (prev, hash.unwrap_or_else(|| chain::GENESIS.to_vec()))
            }
        };
        let id: Uuid = row.get("id");
        let canonical = verify::canonical_of(row);
        seq += 1;
        hash = chain::link(&hash, &canonical).to_vec();
        events.push(tenant, id, seq, hash.clone());
        current = Some((tenant, seq, hash));
    }
    let Some(last) = current else {
        return Ok(Pass::default());
    };
    heads.close(last);
    let counts = tx
        .query_one(
            "SELECT chained, moved FROM audit_seal_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &events.tenants,
                &events.ids,
                &events.seqs,
                &events.hashes,
                &heads.tenants,
                &heads.regions,
                &heads.prevs,
                &heads.tops,
                &heads.top_hashes,
            ],
        )
        .await?;
    let (chained, moved): (i64, i64) = (counts.get(0), counts.get(1));
    if chained != events.ids.len() as i64 || moved != heads.tenants.len() as i64 {
        return Err(StoreError::internal(anyhow::anyhow!(
            "audit_seal_batch chained {chained} of {} events and moved {moved} of {} heads: \
                another sealer got there first",
            events.ids.len(),
            heads.tenants.len()
        )));
    }
    Ok(Pass {
        trails: heads.tenants.len() as u64,
        events: events.ids.len() as u64,
    })
}

#[derive(Default)]
struct EventLinks {
    tenants: Vec<Uuid>,
    ids: Vec<Uuid>,
    seqs: Vec<i64>,
    hashes: Vec<Vec<u8>>,
}

impl EventLinks {
    fn push(&mut self, tenant: Uuid, id: Uuid, seq: i64, hash: Vec<u8>) {
        self.tenants.push(tenant);
        self.ids.push(id);
        self.seqs.push(seq);
        self.hashes.push(hash);
    }
}

/// Each trail's head before (`prevs`) and after (`tops`, `top_hashes`) a pass.
#[derive(Default)]
struct HeadMoves {
    tenants: Vec<Uuid>,
    regions: Vec<String>,
    prevs: Vec<i64>,
    tops: Vec<i64>,
    top_hashes: Vec<Vec<u8>>,
}

impl HeadMoves {
    fn open(&mut self, tenant: Uuid, region: &RegionId, prev: i64) {
        self.tenants.push(tenant);
        self.regions.push(region.as_str().to_owned());
        self.prevs.push(prev);
    }

    fn close(&mut self, (_, seq, hash): (Uuid, i64, Vec<u8>)) {
        self.tops.push(seq);
        self.top_hashes.push(hash);
    }
}
