//! Relocation: moving a tenant to another home region, online, in batches,
//! resumable, audited and verified.
//!
//! 1. `start` checks residency against the tenant's locked row and records the
//!    job (one active job per tenant), in one transaction.
//! 2. The worker takes a lease on the job, counts the tenant's rows per table
//!    (a read-only transaction of its own, so the switch conflicts with no
//!    writer over those reads), checks the target against the residency policy
//!    it finds then (locked row), switches `tenants.home_region` (new writes
//!    and routing go to the new region from here on), waits for every node's
//!    directory to see the switch,
//! 3. moves the remaining rows' `home_region` in batches of `batch_size`, one
//!    transaction per batch (on CockroachDB each updated row moves region),
//! 4. verifies that no row is left outside the new region, records the counts
//!    after, and audits. A crashed worker's lease expires and any node resumes:
//!    the batches are idempotent (they only touch rows not yet moved).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit;
use crate::compliance::{exports, sweep};
use crate::db::{Database, DbError, PlatformTx, TenantTx, Tx, TxMode};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{RegionId, TenantId};
use crate::outbox::{self, Event};
use crate::routing::decide::serving_region;
use crate::routing::health::RegionHealth;
use crate::store::tenants;
use crate::tenancy::{Directory, TenantRecord, residency};
use crate::topology::Topology;

/// Tenant-owned tables and the column (or column list) that, with `tenant_id`,
/// identifies a row.
const TABLES: &[(&str, &str)] = &[
    ("users", "id"),
    ("channels", "id"),
    ("messages", "id"),
    ("audit_events", "id"),
    ("tenant_usage", "tenant_id"),
    ("tenant_usage_shards", "shard"),
    ("ai_usage", "month"),
    ("ai_reservations", "id"),
    // Queued jobs move with the tenant and run in its new region; finished ones
    // move too (they are the tenant's rows, shown by /v1/jobs).
    ("jobs", "id"),
    ("outbox_events", "id"),
    ("outbox_heads", "tenant_id"),
    ("webhook_endpoints", "id"),
    ("webhook_deliveries", "id"),
    ("channel_summaries", "id"),
    ("impersonations", "id"),
    // Sign-in state (V13): providers, linked identities, refresh tokens and OIDC
    // sign-ins in flight are the tenant's rows and must live where it does.
    ("identity_providers", "id"),
    ("external_identities", "provider_id, subject"),
    ("refresh_tokens", "id"),
    ("oidc_sign_ins", "id"),
    // The tenant's data keys (V18): homed with it; a relocation across
    // jurisdictions also rewraps them under the new jurisdiction's KEK.
    ("tenant_keys", "version"),
    // The audit chain's head and signed checkpoints (V21) move with the events
    // they describe (home_region is not hashed or signed).
    ("audit_heads", "tenant_id"),
    ("audit_checkpoints", "seq"),
    // Where the tenant's requests were served, per day (V24): evidence about the
    // tenant, kept where the tenant lives.
    ("tenant_served_regions", "region, day"),
    // Members' accesses (V25).
    ("access_log", "first_at, id"),
    // Usage per hour (V29): the tenant's history, kept where the tenant lives.
    ("usage_samples", "bucket_start"),
    // GDPR exports and erasures (V22). Archives do not move: the switch
    // withdraws ready exports built elsewhere (`switch_home`).
    ("exports", "id"),
    ("erasures", "id"),
    // Calendar sync (V23): accounts, linked calendars and synced events.
    ("calendar_accounts", "id"),
    ("calendar_links", "id"),
    ("calendar_events", "id"),
    // Who may link which collection (V34).
    ("calendar_grants", "id"),
    // Tenant erasures (V26): a restored tenant's cancelled ones move with it (a
    // tenant with a pending, running or done erasure is not relocated).
    ("tenant_erasures", "id"),
    // Subject keys (V33): the keys of the personal details in the tenant's audit
    // events, homed with the events they open.
    ("subject_keys", "subject_id"),
];

/// Every table a relocation moves (the tables with a `home_region` per row).
pub fn relocated_tables() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(table, _)| *table)
}
const LEASE_SECS: f64 = 30.0;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Relocation {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub from_region: String,
    pub to_region: String,
    /// `pending` | `running` | `done` | `failed`
    pub status: String,
    /// Rows per table when the move started, and when it was verified.
    pub counts_before: Option<Value>,
    pub counts_after: Option<Value>,
    /// Rows moved so far, per table.
    pub moved: Value,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, tenant_id, from_region, to_region, status, counts_before, \
     counts_after, moved, error, created_at, updated_at, finished_at";

fn from_row(row: &tokio_postgres::Row) -> Relocation {
    Relocation {
        id: row.get("id"),
        tenant_id: TenantId::from_uuid(row.get("tenant_id")),
        from_region: row.get("from_region"),
        to_region: row.get("to_region"),
        status: row.get("status"),
        counts_before: row.get("counts_before"),
        counts_after: row.get("counts_after"),
        moved: row.get("moved"),
        error: row.get("error"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        finished_at: row.get("finished_at"),
    }
}

/// Records a relocation of `tenant` to `to`. The target is checked against the
/// tenant's row as locked by this transaction (not a cached copy): it must be
/// another known region that the residency policy allows. A residency change
/// racing this one either commits first (and the check sees it) or sees this job
/// and checks its target (`store::tenants`).
pub async fn start(
    tx: &PlatformTx<'_>,
    topology: &Topology,
    tenant: TenantId,
    to: &RegionId,
    actor: &str,
) -> Result<Relocation, ApiError> {
    let tenant = tenants::lock(tx, tenant).await?;
    // A tenant being erased is not moved: its erasure job runs in the home
    // region it recorded, and a tombstone has nothing left to move.
    if tenant.erase_after.is_some() || tenant.status == crate::tenancy::TenantStatus::Erased {
        return Err(ApiError::Conflict {
            code: ErrorCode::ErasurePending,
            detail: "this tenant has an erasure pending, running or done; it is not relocated"
                .into(),
        });
    }
    if *to == tenant.home_region {
        return Err(ApiError::validation(format!(
            "the tenant already lives in `{to}`"
        )));
    }
    residency::check_placement(topology, to, tenant.residency.as_ref())?;
    let sql = format!(
        "INSERT INTO relocations (id, tenant_id, from_region, to_region, requested_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    let row = tx
        .query_one(
            &sql,
            &[
                &Uuid::now_v7(),
                tenant.id.as_uuid(),
                &tenant.home_region.as_str(),
                &to.as_str(),
                &actor,
            ],
        )
        .await
        .map_err(|err| match err {
            DbError::UniqueViolation { .. } => ApiError::Conflict {
                code: ErrorCode::RelocationInProgress,
                detail: "this tenant is already being relocated".into(),
            },
            other => other.into(),
        })?;
    let relocation = from_row(&row);
    let details = json!({ "relocation_id": relocation.id, "from": tenant.home_region, "to": to });
    audit::record_platform(tx, actor, "relocation_requested", Some(tenant.id), details).await?;
    Ok(relocation)
}

/// The region a relocation request names (`to_region`).
pub fn target(raw: &str) -> Result<RegionId, ApiError> {
    RegionId::parse(raw).map_err(ApiError::validation)
}

/// Where an evacuation of `region` sends `tenant`: the region that would serve
/// it were `region` down, among the healthy ones its residency allows; the
/// reason when there is none.
pub fn evacuation_target(
    topology: &Topology,
    health: &RegionHealth,
    tenant: &TenantRecord,
    region: &RegionId,
) -> Result<RegionId, &'static str> {
    serving_region(topology, tenant, |r| r != region && health.is_healthy(r))
        .map(|r| r.id.clone())
        .ok_or("its residency allows no other healthy region")
}

/// The tenant's pending or running relocation, if any.
pub async fn active<S>(tx: &Tx<'_, S>, tenant: TenantId) -> Result<Option<Relocation>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM relocations
         WHERE tenant_id = $1 AND status IN ('pending', 'running')"
    );
    Ok(tx
        .query_opt(&sql, &[tenant.as_uuid()])
        .await?
        .as_ref()
        .map(from_row))
}

pub async fn latest<S>(tx: &Tx<'_, S>, tenant: TenantId) -> Result<Option<Relocation>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM relocations WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 1"
    );
    Ok(tx
        .query_opt(&sql, &[tenant.as_uuid()])
        .await?
        .as_ref()
        .map(from_row))
}

/// Runs relocations; any node may, one at a time per job (lease).
#[derive(Clone)]
pub struct Relocator {
    db: Database,
    directory: Directory,
    /// For the residency check at the switch.
    topology: Arc<Topology>,
    node: String,
    batch_size: i64,
    /// How long every node needs to see a directory change.
    settle: Duration,
    /// Rewraps the tenant's data keys when it changes jurisdiction.
    keyring: Arc<crate::crypto::keyring::Keyring>,
}

impl Relocator {
    pub fn new(
        db: Database,
        directory: Directory,
        topology: Arc<Topology>,
        node: String,
        batch_size: i64,
        settle: Duration,
        keyring: Arc<crate::crypto::keyring::Keyring>,
    ) -> Self {
        Self {
            db,
            directory,
            topology,
            node,
            batch_size,
            settle,
            keyring,
        }
    }

    async fn claim(&self, id: Uuid) -> Result<Option<Relocation>, ApiError> {
        let sql = format!(
            "UPDATE relocations SET lease_owner = $2, lease_until = now() + $3::float8 * interval \
                '1 second', updated_at = now()
             WHERE id = $1 AND status IN ('pending', 'running')
               AND (lease_until IS NULL OR lease_until < now())
             RETURNING {COLUMNS}"
        );
        let row = self
            .db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                Ok(tx.query_opt(&sql, &[&id, &self.node, &LEASE_SECS]).await?)
            })
            .await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Resumes relocations whose worker died (their lease expired).
    pub async fn resume_abandoned(&self) {
        let abandoned = self
            .db
            .platform_tx(TxMode::ReadOnly, async |tx| {
                Ok(tx
                    .query(
                        "SELECT id FROM relocations WHERE status IN ('pending', 'running') AND \
                        (lease_until IS NULL OR lease_until < now())",
                        &[],
                    )
                    .await?)
            })
            .await;
        for row in abandoned.unwrap_or_default() {
            let id: Uuid = row.get(0);
            if let Err(err) = self.run(id).await {
                tracing::warn!(relocation = %id, error = %err, "resuming a relocation failed");
            }
        }
    }

    /// Runs (or resumes) relocation `id` to the end; records failures in the job.
    pub async fn run(&self, id: Uuid) -> Result<(), ApiError> {
        let Some(job) = self.claim(id).await? else {
            return Ok(());
        };
        let outcome = self.drive(&job).await;
        if let Err(err) = &outcome {
            tracing::error!(relocation = %id, error = ?err, "relocation failed");
            let message = match err {
                ApiError::Internal(cause) => format!("{cause:#}"),
                other => other.to_string(),
            };
            let _ =
                self.db
                    .platform_tx(TxMode::ReadWrite, async |tx| {
                        tx.execute(
                        "UPDATE relocations SET status = 'failed', error = $2, updated_at = now(),
                                finished_at = now()
                         WHERE id = $1",
                        &[&id, &message],
                    )
                    .await?;
                        let details = json!({ "relocation_id": id, "error": message });
                        let tenant = Some(job.tenant_id);
                        Ok(audit::record_platform(
                            tx,
                            "meridian",
                            "relocation_failed",
                            tenant,
                            details,
                        )
                        .await?)
                    })
                    .await;
        }
        outcome
    }

    async fn drive(&self, job: &Relocation) -> Result<(), ApiError> {
        let to = RegionId::parse(&job.to_region).map_err(ApiError::validation)?;
        if job.status == "pending" {
            // Counted before, in a read-only transaction of its own: counting every
            // table inside the switch's SERIALIZABLE transaction made each of the
            // tenant's concurrent inserts a read-write conflict with the switch, so
            // a busy tenant's switch kept exhausting its retries. `counts_before` is
            // a record for the audit trail, not what is moved: a row written
            // between this count and the switch still carries the old home region,
            // so `move_rows` moves it like any other, `verify` refuses to finish
            // while any row is outside the target, and `counts_after` is taken
            // from the rows as they are then. Nothing written in between is lost
            // or left behind; it only makes `counts_after` larger than the count.
            let before = self.count_before(job).await?;
            self.switch_home(job, &to, &before).await?;
        }
        // Rows written by nodes that had not yet seen the switch are caught by the
        // later passes; each pass waits for the directories to settle.
        for _ in 0..5 {
            tokio::time::sleep(self.settle).await;
            // A pass whose batch kept losing serialization conflicts to the
            // tenant's writers moved nothing in that batch (it rolled back); the
            // next pass takes it again, so it does not fail the relocation.
            match self.move_rows(job, &to).await {
                Err(ApiError::RetryExhausted) => continue,
                other => other?,
            }
            self.rewrap_keys(job, &to).await?;
            if let Some(after) = self.verify(job.tenant_id, &to).await? {
                return self.finish(job, after).await;
            }
        }
        Err(ApiError::internal(anyhow::anyhow!(
            "rows kept appearing outside {to} after five passes"
        )))
    }

    /// Rewraps the tenant's data keys under the KEK of the target's jurisdiction
    /// (a no-op within one jurisdiction, and for versions already rewrapped: a
    /// resumed relocation repeats it safely). After the switch, so a key created
    /// meanwhile already takes the new jurisdiction (`Keyring::insert_version`
    /// reads the tenant's home region in its transaction).
    async fn rewrap_keys(&self, job: &Relocation, to: &RegionId) -> Result<(), ApiError> {
        let jurisdiction = self.keyring.jurisdiction_of(to.as_str())?;
        let keyring = &self.keyring;
        let rewrapped = self
            .db
            .tenant_tx(job.tenant_id, to, None, TxMode::ReadWrite, async |tx| {
                Ok(crate::crypto::rotation::rewrap(keyring, tx, jurisdiction).await?)
            })
            .await?;
        if rewrapped > 0 {
            tracing::info!(relocation = %job.id, rewrapped, jurisdiction, "data keys rewrapped");
        }
        Ok(())
    }

    /// Switches the home region, if the residency policy still allows the target:
    /// the policy may have changed since `start` (a writer that skipped the
    /// relocation check, e.g. a node of an older version), so it is read again
    /// from the locked row, in the transaction that writes the switch.
    async fn switch_home(
        &self,
        job: &Relocation,
        to: &RegionId,
        before: &Value,
    ) -> Result<(), ApiError> {
        let record = self
            .db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                let current = tenants::lock(tx, job.tenant_id).await?;
                if current.home_region.as_str() != job.from_region {
                    return Err(ApiError::Conflict {
                        code: ErrorCode::RelocationStale,
                        detail: "the tenant's home region changed since the relocation was \
                            requested"
                            .into(),
                    });
                }
                let allowed = self
                    .topology
                    .get(to)
                    .is_some_and(|target| residency::allows(current.residency.as_ref(), target));
                if !allowed {
                    return Err(ApiError::ResidencyConflict(format!(
                        "the tenant's residency policy no longer allows `{to}`; the home region \
                            was not switched"
                    )));
                }
                let record = tenants::switch_home(tx, job.tenant_id, to).await?;
                let scoped = tx.enter_tenant(job.tenant_id, to.clone()).await?;
                tx.execute(
                    "UPDATE relocations SET status = 'running', counts_before = $2, updated_at = \
                        now()
                     WHERE id = $1",
                    &[&job.id, before],
                )
                .await?;
                // Ready exports whose archives only the old region's nodes can
                // reach are withdrawn in this same transaction, and that
                // region's nodes remove the archives (README "Compliance").
                let withdrawn = exports::withdraw_outside(&scoped, to).await?;
                let exports_withdrawn = withdrawn.len();
                sweep::enqueue_archive_removal(tx, withdrawn).await?;
                let details = json!({
                    "relocation_id": job.id,
                    "from": job.from_region,
                    "to": to,
                    "counts_before": before,
                    "exports_withdrawn": exports_withdrawn,
                });
                let (action, tenant) = ("relocation_started", Some(job.tenant_id));
                let subject = ("tenant", job.tenant_id.to_string());
                let event = Event::new("tenant.relocated", subject.clone(), details.clone());
                outbox::record(&scoped, event).await?;
                let target = Some(subject);
                audit::record(&scoped, "meridian", action, target, details.clone()).await?;
                audit::record_platform(tx, "meridian", action, tenant, details).await?;
                Ok(record)
            })
            .await?;
        self.directory.put(record).await;
        Ok(())
    }

    /// The tenant's rows per table before the switch (see `drive`), read in the
    /// old home region's scope.
    async fn count_before(&self, job: &Relocation) -> Result<Value, ApiError> {
        let from = RegionId::parse(&job.from_region).map_err(ApiError::validation)?;
        self.db
            .tenant_tx(job.tenant_id, &from, None, TxMode::ReadOnly, async |tx| {
                counts(tx).await
            })
            .await
    }

    async fn move_rows(&self, job: &Relocation, to: &RegionId) -> Result<(), ApiError> {
        for (table, key) in TABLES {
            let sql = format!(
                "UPDATE {table} SET home_region = $2 WHERE tenant_id = $1 AND ({key}) IN
                   (SELECT {key} FROM {table} WHERE tenant_id = $1 AND home_region <> $2 LIMIT $3)"
            );
            loop {
                let moved = self
                    .db
                    .tenant_tx(job.tenant_id, to, None, TxMode::ReadWrite, async |tx| {
                        Ok(tx
                            .execute(
                                &sql,
                                &[tx.tenant_id().as_uuid(), &to.as_str(), &self.batch_size],
                            )
                            .await?)
                    })
                    .await?;
                if moved == 0 {
                    break;
                }
                self.db
                    .platform_tx(TxMode::ReadWrite, async |tx| {
                        Ok(tx
                            .execute(
                                "UPDATE relocations SET moved = jsonb_set(moved, ARRAY[$2::text], \
                                to_jsonb(COALESCE((moved->>$2)::bigint, 0) + $3)),
                                    lease_until = now() + $4::float8 * interval '1 second', \
                                        updated_at = now()
                             WHERE id = $1",
                                &[&job.id, table, &(moved as i64), &LEASE_SECS],
                            )
                            .await?)
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// The counts per table when every row is in `to`; `None` while some are not.
    async fn verify(&self, tenant: TenantId, to: &RegionId) -> Result<Option<Value>, ApiError> {
        self.db
            .tenant_tx(tenant, to, None, TxMode::ReadOnly, async |tx| {
                for (table, _) in TABLES {
                    let sql = format!(
                        "SELECT count(*) FROM {table} WHERE tenant_id = $1 AND home_region <> $2"
                    );
                    let outside: i64 = tx
                        .query_one(&sql, &[tx.tenant_id().as_uuid(), &to.as_str()])
                        .await?
                        .get(0);
                    if outside > 0 {
                        return Ok(None);
                    }
                }
                Ok(Some(counts(tx).await?))
            })
            .await
    }

    async fn finish(&self, job: &Relocation, after: Value) -> Result<(), ApiError> {
        self.db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                tx.execute(
                    "UPDATE relocations SET status = 'done', counts_after = $2, updated_at = now(),
                            finished_at = now(), lease_until = NULL
                     WHERE id = $1",
                    &[&job.id, &after],
                )
                .await?;
                let details = json!({
                    "relocation_id": job.id,
                    "to": job.to_region,
                    "counts_after": after,
                });
                let tenant = Some(job.tenant_id);
                Ok(
                    audit::record_platform(tx, "meridian", "relocation_done", tenant, details)
                        .await?,
                )
            })
            .await
    }
}

/// Rows per tenant-owned table, inside a tenant transaction.
async fn counts(tx: &TenantTx<'_>) -> Result<Value, ApiError> {
    let mut counts = serde_json::Map::new();
    for (table, _) in TABLES {
        let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
        let n: i64 = tx
            .query_one(&sql, &[tx.tenant_id().as_uuid()])
            .await?
            .get(0);
        counts.insert((*table).to_owned(), json!(n));
    }
    Ok(Value::Object(counts))
}
