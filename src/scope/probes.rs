//! Cross-tenant probes, audited after the response.
//!
//! A tenant that asks for an id it may not see gets the same 404 whether the id
//! is another tenant's or nobody's. Finding out which (and recording a
//! `cross_tenant_denied` platform event for the first) costs a lookup and an
//! insert; done before answering, that cost made foreign ids measurably slower
//! than random ones. So every such 404 hands its probe to this queue, answered or
//! not, and one writer task per node does the lookup and the insert afterwards:
//! both kinds of id cost the request the same. Nor does the write follow its
//! request closely enough to slow the prober's next one: the writer waits a
//! random 100–500 ms after a probe arrives and writes everything queued by then
//! in one transaction, so when an insert happens says nothing about which
//! request caused it (measured by `loadtest/probe-timing.sh`).
//!
//! Nothing is dropped silently: a failed write is retried with backoff, a write
//! that keeps failing is logged with the whole probe, a full queue makes the
//! probing requests wait (backpressure on the prober, not on other tenants), and
//! a graceful stop waits for the queue to drain before the pool closes. A node
//! killed outright loses the probes still queued (at most the queue's length).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::audit;
use crate::db::{Database, TxMode};
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};

/// Probes waiting for the writer; a prober beyond this waits for room.
const QUEUE: usize = 4096;
/// Probes written per transaction at most.
const BATCH: usize = 256;
const ATTEMPTS: u32 = 5;

/// A tenant user's request for `kind` `id` that answered 404.
#[derive(Clone, Debug)]
pub struct Probe {
    pub actor_tenant: TenantId,
    pub actor_user: UserId,
    pub kind: &'static str,
    pub id: Uuid,
}

pub struct ProbeAuditor {
    queue: mpsc::Sender<Probe>,
    /// Submitted and not yet written (or given up on).
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl ProbeAuditor {
    /// The queue, and its writer for `tasks` to run (on the node's main arbiter).
    pub fn new(db: Database) -> (Self, impl std::future::Future<Output = ()> + 'static) {
        let (queue, mut incoming) = mpsc::channel::<Probe>(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(Notify::new());
        let (left, notify) = (pending.clone(), drained.clone());
        let writer = async move {
            while let Some(first) = incoming.recv().await {
                tokio::time::sleep(jitter()).await;
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match incoming.try_recv() {
                        Ok(probe) => batch.push(probe),
                        Err(_) => break,
                    }
                }
                write_with_retries(&db, &batch).await;
                left.fetch_sub(batch.len(), Ordering::AcqRel);
                notify.notify_waiters();
            }
        };
        let auditor = Self {
            queue,
            pending,
            drained,
        };
        (auditor, writer)
    }

    pub async fn submit(&self, probe: Probe) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError(probe)) = self.queue.send(probe).await {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(?probe, "the probe auditor has stopped; probe not audited");
        }
    }

    /// Probes submitted and not yet written.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Waits until every submitted probe is written, or `limit` passes.
    pub async fn drain(&self, limit: Duration) {
        let wait = async {
            loop {
                let drained = self.drained.notified();
                if self.pending() == 0 {
                    return;
                }
                drained.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            tracing::error!(
                pending = self.pending(),
                "stopping with cross-tenant probes not yet audited"
            );
        }
    }
}

/// 100–500 ms, uniformly.
fn jitter() -> Duration {
    Duration::from_millis(100 + (Uuid::new_v4().as_u128() % 401) as u64)
}

async fn write_with_retries(db: &Database, batch: &[Probe]) {
    for attempt in 1..=ATTEMPTS {
        match write(db, batch).await {
            Ok(()) => return,
            Err(err) if attempt < ATTEMPTS => {
                let what = "auditing cross-tenant probes failed; retrying";
                tracing::warn!(attempt, error = %err, "{what}");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(err) => {
                let what = "auditing cross-tenant probes failed; giving up";
                tracing::error!(?batch, error = %err, "{what}");
            }
        }
    }
}

/// Records each probe whose id belongs to another tenant as `cross_tenant_denied`.
async fn write(db: &Database, batch: &[Probe]) -> Result<(), ApiError> {
    let foreign = db
        .platform_tx(TxMode::ReadWrite, async |tx| {
            let mut foreign = Vec::new();
            for probe in batch {
                let owner: Option<Uuid> = tx
                    .query_one("SELECT resource_owner($1, $2)", &[&probe.kind, &probe.id])
                    .await?
                    .get(0);
                let Some(owner) = owner.filter(|o| o != probe.actor_tenant.as_uuid()) else {
                    continue;
                };
                let details = serde_json::json!({
                    "actor_tenant_id": probe.actor_tenant, "actor_user_id": probe.actor_user,
                    "target_tenant_id": owner, "target_kind": probe.kind, "target_id": probe.id,
                });
                audit::record_platform(
                    tx,
                    &probe.actor_user.to_string(),
                    "cross_tenant_denied",
                    Some(TenantId::from_uuid(owner)),
                    details,
                )
                .await?;
                foreign.push(probe);
            }
            Ok(foreign)
        })
        .await?;
    for probe in foreign {
        let tenant_id = probe.actor_tenant;
        tracing::warn!(%tenant_id, kind = probe.kind, "cross-tenant access denied");
    }
    Ok(())
}
