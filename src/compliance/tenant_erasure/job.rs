//! The `tenants.erase` job: a platform job of the tenant's home region, due at
//! the end of the grace period. In order:
//!
//! 1. **Start** (one platform transaction, the tenant's and the erasure's rows
//!    locked in the order `request` and `restore` take them): a `cancelled`
//!    erasure ends the job; a `pending` one whose grace is over becomes
//!    `running`, the tenant a tombstone (status `erased`, name replaced), and
//!    its data keys are destroyed in the same transaction. Keys go first:
//!    whatever a later step has not yet deleted (or a backup holds) is
//!    ciphertext nobody can open any more.
//! 2. The tenant's stored export archives are removed from the region's store.
//! 3. Every table of `tables::ERASED`, in batches of `exports.batch_rows` rows,
//!    one transaction per batch that also adds the batch to the erasure's
//!    counts: a crashed run is resumed by any node of the region from where it
//!    stopped, and the counts stay exact.
//! 4. **Finish** (one platform transaction): `running` → `done` with the signed
//!    receipt, recorded in the region's platform trail in the same
//!    transaction, so a retried finish changes nothing.
//!
//! Caches: every node's directory takes the tombstone on its next refresh
//! (`directory.refresh_interval_ms`) and then refuses the tenant's tokens with
//! 410 `tenant_erased`; this node evicts the tenant's data keys, other nodes'
//! copies expire after `encryption.dek_cache_ttl_ms` and open nothing (the
//! tenant's requests are refused since the erasure was requested).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::tables::{self, Via};
use crate::audit;
use crate::compliance::receipt;
use crate::compliance::storage::ExportStorage;
use crate::crypto::keyring::Keyring;
use crate::crypto::rotation::{destroy_tenant_keys, job_error};
use crate::crypto::signing::Signer;
use crate::db::{PlatformTx, Tx, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantErasureId, TenantId};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::store::error::StoreError;

pub const KIND: &str = "tenants.erase";

/// The tombstone's name (the slug stays: `tenant_erasure`).
const ERASED_NAME: &str = "erased tenant";

pub struct EraseTenant {
    pub signer: Arc<Signer>,
    pub keyring: Arc<Keyring>,
    pub storage: ExportStorage,
    pub batch: u32,
}

/// What the start found.
enum Start {
    Cancelled,
    Done,
    /// Pending, the grace not over yet (the job ran early: a clock or a retry).
    NotYet,
    /// `newest`: the newest key version destroyed now (0: a resumed run).
    Running {
        home: RegionId,
        newest: u32,
    },
}

/// Step 1: see the module doc.
async fn start(
    tx: &PlatformTx<'_>,
    keyring: &Keyring,
    id: TenantErasureId,
    tenant: TenantId,
) -> Result<Start, ApiError> {
    crate::store::tenants::lock(tx, tenant).await?;
    let stored = super::lock(tx, id).await?;
    let home =
        RegionId::parse(&stored.home_region).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    match stored.erasure.state.as_str() {
        "cancelled" => return Ok(Start::Cancelled),
        "done" => return Ok(Start::Done),
        "running" => return Ok(Start::Running { home, newest: 0 }),
        _ => {}
    }
    let due: bool = tx
        .query_one(
            "SELECT now() >= $1::timestamptz",
            &[&stored.erasure.erase_after],
        )
        .await?
        .get(0);
    if !due {
        return Ok(Start::NotYet);
    }
    tx.execute(
        "UPDATE tenant_erasures SET state = 'running', started_at = now() WHERE id = $1",
        &[id.as_uuid()],
    )
    .await?;
    tx.execute(
        "UPDATE tenants SET status = 'erased', name = $2, config_version = config_version + 1,
             updated_at = now()
         WHERE id = $1",
        &[tenant.as_uuid(), &ERASED_NAME],
    )
    .await?;
    audit::record_platform(
        tx,
        "system",
        "tenant.erasure_started",
        Some(tenant),
        json!({ "erasure_id": id }),
    )
    .await?;
    let scoped = tx.enter_tenant(tenant, home.clone()).await?;
    let versions = destroy_tenant_keys(keyring, &scoped).await?;
    add_count(&scoped, id, "tenant_keys", versions.len() as u64).await?;
    let newest = versions.iter().copied().max().unwrap_or(1);
    Ok(Start::Running { home, newest })
}

/// Adds `n` to `counts[table]` (in the transaction that deleted the rows).
async fn add_count<S>(
    tx: &Tx<'_, S>,
    id: TenantErasureId,
    table: &str,
    n: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE tenant_erasures SET counts = jsonb_set(counts, ARRAY[$2::text],
            to_jsonb(COALESCE((counts ->> $2::text)::bigint, 0) + $3::bigint))
         WHERE id = $1",
        &[id.as_uuid(), &table, &i64::try_from(n).unwrap_or(i64::MAX)],
    )
    .await?;
    Ok(())
}

/// Step 4: the receipt, once (`running` → `done`).
async fn finish(
    tx: &PlatformTx<'_>,
    signer: &Signer,
    id: TenantErasureId,
    tenant: TenantId,
) -> Result<(), ApiError> {
    let stored = super::lock(tx, id).await?;
    if stored.erasure.state != "running" {
        return Ok(());
    }
    let tombstone = crate::store::tenants::get(tx, tenant).await?;
    let finished: DateTime<Utc> = tx.query_one("SELECT now()", &[]).await?.get(0);
    let e = &stored.erasure;
    let kept: Vec<&str> = tables::KEPT.iter().map(|(t, _)| *t).collect();
    let signed = receipt::sign(
        signer,
        json!({
            "type": "meridian.tenant_erasure",
            "receipt_id": id,
            "tenant_id": tenant,
            "slug": tombstone.slug,
            "home_region": stored.home_region,
            "counts": e.counts,
            "kept": kept,
            "export_store": "the tenant's archives removed from the home region's store",
            "requested_by": e.requested_by,
            "requested_at": e.created_at,
            "erase_after": e.erase_after,
            "started_at": e.started_at,
            "completed_at": finished,
        }),
    );
    let value = serde_json::to_value(&signed).map_err(ApiError::internal)?;
    tx.execute(
        "UPDATE tenant_erasures SET state = 'done', receipt = $2, finished_at = $3 WHERE id = $1",
        &[id.as_uuid(), &value, &finished],
    )
    .await?;
    audit::record_platform(tx, "system", "tenant.erasure_receipt", Some(tenant), value).await?;
    Ok(())
}

fn payload_id(payload: &Value, field: &str) -> Result<Uuid, JobError> {
    payload[field]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::Permanent(format!("payload has no {field}")))
}

#[async_trait::async_trait(?Send)]
impl JobHandler for EraseTenant {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let id = TenantErasureId::from_uuid(payload_id(payload, "tenant_erasure_id")?);
        let tenant = TenantId::from_uuid(payload_id(payload, "tenant_id")?);
        let keyring = &self.keyring;
        let started = ctx
            .platform_tx(TxMode::ReadWrite, async |tx| {
                start(tx, keyring, id, tenant).await
            })
            .await
            .map_err(job_error)?;
        let (home, newest) = match started {
            Start::Cancelled => {
                return Ok(json!({ "tenant_erasure_id": id, "state": "cancelled" }));
            }
            Start::Done => return Ok(json!({ "tenant_erasure_id": id, "state": "done" })),
            Start::NotYet => return Err(JobError::Retry("the grace period has not ended".into())),
            Start::Running { home, newest } => (home, newest),
        };
        // Evicted again after the commit: no read in between re-cached a key here.
        keyring.evict_tenant(tenant, newest);
        self.storage
            .remove_tenant(&home, tenant)
            .await
            .map_err(|e| JobError::Retry(format!("export store: {e}")))?;
        let limit = i64::from(self.batch);
        let limit32 = i32::try_from(self.batch).unwrap_or(i32::MAX);
        for &(table, via) in tables::ERASED {
            let sql = match via {
                Via::Delete { key } => tables::delete_sql(table, key),
                Via::Definer => String::new(),
            };
            loop {
                let n = ctx
                    .tenant_tx_for(tenant, &home, TxMode::ReadWrite, async |tx| {
                        let n = match via {
                            Via::Delete { .. } => {
                                tx.execute(&sql, &[tenant.as_uuid(), &limit]).await?
                            }
                            Via::Definer => tx
                                .query_one("SELECT erase_tenant_rows($1, $2)", &[&table, &limit32])
                                .await?
                                .get::<_, i64>(0)
                                .unsigned_abs(),
                        };
                        if n > 0 {
                            add_count(tx, id, table, n).await?;
                        }
                        Ok(n)
                    })
                    .await
                    .map_err(job_error)?;
                if n == 0 {
                    break;
                }
            }
        }
        let signer = &self.signer;
        ctx.platform_tx(TxMode::ReadWrite, async |tx| {
            finish(tx, signer, id, tenant).await
        })
        .await
        .map_err(job_error)?;
        Ok(json!({ "tenant_erasure_id": id, "state": "done" }))
    }
}
