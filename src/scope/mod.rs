//! Request scopes: the only way a handler reaches the database.
//!
//! `AppState` holds the pool privately; only this module (and `extract`, which
//! builds scopes from verified tokens) can read it. A handler asks for a
//! `TenantScope` (tenant roles), a `PlatformScope` (platform admins) or a `Caller`
//! (either) and runs its queries through them; tenant queries get a `TenantTx`,
//! whose tenant and RLS setting come from the token, never from the request.

mod confirm;
mod extract;
pub mod probes;

pub use confirm::confirm_user;
pub use extract::{resolved_tenant, tenant_of};

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::web;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use self::confirm::UserCheck;
use self::probes::{Probe, ProbeAuditor};
use crate::audit;
use crate::auth::{Permission, Role, TokenVerifier};
use crate::db::{Database, PlatformTx, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId, UserId};
use crate::limits::{DenialKind, NodeLimits};
use crate::relocation::Relocator;
use crate::routing::middleware::RoutingState;
use crate::tenancy::{Directory, TenantRecord};
use crate::topology::Topology;

/// Shared by every worker of a node.
pub struct AppState {
    db: Database,
    shutting_down: std::sync::atomic::AtomicBool,
    pub directory: Directory,
    pub limits: NodeLimits,
    pub routing: RoutingState,
    pub relocator: Relocator,
    pub topology: Arc<Topology>,
    pub region: RegionId,
    pub verifier: Arc<TokenVerifier>,
    pub metrics: crate::metrics::RequestMetrics,
    /// The worker pool's instruments (`jobs::WorkerPool`).
    pub job_metrics: crate::metrics::jobs::JobMetrics,
    /// Cross-tenant 404s, audited after the response.
    pub probes: ProbeAuditor,
}

impl AppState {
    // One argument per node service; the pool must stay private to this module.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Database,
        directory: Directory,
        limits: NodeLimits,
        routing: RoutingState,
        relocator: Relocator,
        topology: Arc<Topology>,
        region: RegionId,
        verifier: Arc<TokenVerifier>,
    ) -> Self {
        Self {
            probes: ProbeAuditor::spawn(db.clone()),
            db,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            directory,
            limits,
            routing,
            relocator,
            topology,
            region,
            verifier,
            metrics: crate::metrics::RequestMetrics::default(),
            job_metrics: crate::metrics::jobs::JobMetrics::default(),
        }
    }

    /// The pool's state, for `/metrics`.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.db.pool_status()
    }

    /// Time spent waiting for pooled connections, for `/metrics`.
    pub fn pool_wait_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.db.pool_wait_histogram()
    }

    /// Stops handing out connections (shutdown).
    pub fn close_database(&self) {
        self.db.close();
    }

    /// Writes each tenant's pending denial counts to its audit trail as one
    /// `limits_denied` event; counts that fail to be written are kept for next time.
    pub async fn summarise_denials(&self, window_ms: u64) {
        for (tenant_id, counts) in self.limits.denials.take_pending() {
            let written = match self.directory.get(tenant_id).await {
                Ok(Some(tenant)) => {
                    let details = serde_json::json!({
                        "counts": counts, "window_ms": window_ms, "region": self.region,
                    });
                    self.db
                        .tenant_tx(
                            tenant.id,
                            &tenant.home_region,
                            None,
                            TxMode::ReadWrite,
                            async |tx| {
                                audit::record(
                                    tx,
                                    "meridian",
                                    "limits_denied",
                                    None,
                                    details.clone(),
                                )
                                .await
                            },
                        )
                        .await
                }
                Ok(None) => Ok(()),
                Err(err) => Err(err),
            };
            if let Err(err) = written {
                tracing::warn!(%tenant_id, error = %err, "writing a denial summary failed; keeping the counts");
                self.limits.denials.restore(tenant_id, counts);
            }
        }
    }

    /// From now on `/readyz` fails: the node is shutting down.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Readiness: can this node reach the database?
    pub async fn database_ready(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    /// Re-reads the drained flags every node shares.
    pub async fn refresh_region_state(&self) -> Result<(), ApiError> {
        let drained = self
            .db
            .platform_tx(TxMode::ReadOnly, async |tx| {
                crate::store::regions::drained(tx).await
            })
            .await?;
        self.routing.health.set_drained(&drained);
        Ok(())
    }
}

/// A request made with a tenant role: the tenant, the user and the role, all from
/// the verified token and the directory.
pub struct TenantScope {
    state: web::Data<AppState>,
    tenant: Arc<TenantRecord>,
    user: UserId,
    role: Role,
    /// The tenant's concurrency slot, taken by the request's first transaction and
    /// held until the scope is dropped. Not taken by the extractor: a request still
    /// waiting for its body, or refused for its role, must not occupy one.
    slot: OnceCell<OwnedSemaphorePermit>,
    /// Whether the token's user has been confirmed active in this request.
    check: Rc<UserCheck>,
}

impl TenantScope {
    pub fn tenant(&self) -> &TenantRecord {
        &self.tenant
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    pub fn user_id(&self) -> UserId {
        self.user
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// This node's limit state (in-flight requests, denial counts).
    pub fn limits(&self) -> &NodeLimits {
        &self.state.limits
    }

    /// 403 unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("your role does not allow this action"))
        }
    }

    pub async fn read<T>(
        &self,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.run(TxMode::ReadOnly, body).await
    }

    pub async fn write<T>(
        &self,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.run(TxMode::ReadWrite, body).await
    }

    /// A write whose body may decide a refusal that must be committed rather than
    /// rolled back (the storage quota, `store::usage`): the inner error is
    /// answered after COMMIT.
    pub async fn write_or_refuse<T>(
        &self,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<Result<T, ApiError>, ApiError>,
    ) -> Result<T, ApiError> {
        match self.write(body).await? {
            Ok(value) => Ok(value),
            Err(err) => Err(self.refused(err)),
        }
    }

    /// Checks that the token's user is still active (for routes that need no query).
    pub async fn verify_user(&self) -> Result<(), ApiError> {
        self.transaction(TxMode::ReadOnly, async |_| Ok(())).await
    }

    /// Takes the tenant's concurrency slot for the rest of the request, or refuses
    /// at once (never queued behind the tenant's other requests).
    fn occupy_slot(&self) -> Result<(), ApiError> {
        if self.slot.get().is_some() {
            return Ok(());
        }
        match self.state.limits.concurrency.try_acquire(&self.tenant) {
            Some(permit) => {
                let _ = self.slot.set(permit);
                Ok(())
            }
            None => {
                let denials = &self.state.limits.denials;
                denials.record(self.tenant.id, DenialKind::ConcurrencyLimited);
                // A refusal must stay cheap: no user check is run for it.
                self.check.waive();
                Err(ApiError::ConcurrencyLimited)
            }
        }
    }

    /// A transaction in the tenant's scope, under its concurrency slot, checking
    /// the token's user in its prologue.
    async fn transaction<T>(
        &self,
        mode: TxMode,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.occupy_slot()?;
        let tenant = &self.tenant;
        let result = self
            .state
            .db
            .tenant_tx(
                tenant.id,
                &tenant.home_region,
                Some((self.user, self.role.as_str())),
                mode,
                body,
            )
            .await;
        if UserCheck::prologue_passed(&result) {
            self.check.confirm();
        }
        result
    }

    async fn run<T>(
        &self,
        mode: TxMode,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        match self.transaction(mode, body).await {
            Err(ApiError::NotFound { kind, id: Some(id) }) => Err(self.not_found(kind, id).await),
            Err(err) => Err(self.refused(err)),
            other => other,
        }
    }

    /// Counts a quota refusal among the tenant's denials.
    fn refused(&self, err: ApiError) -> ApiError {
        if let ApiError::QuotaExceeded { .. } = err {
            let denials = &self.state.limits.denials;
            denials.record(self.tenant.id, DenialKind::QuotaExceeded);
        }
        err
    }

    /// The 404 for `id`, identical whether it is missing or another tenant's, in
    /// content and in time: the user is confirmed first (a disabled user gets 401
    /// and records nothing), then the probe is queued and audited after the
    /// response (`cross_tenant_denied` in the platform trail when the id is
    /// another tenant's).
    pub async fn not_found(&self, kind: &'static str, id: Uuid) -> ApiError {
        if let Err(err) = self.verify_user().await {
            return err;
        }
        let probe = Probe {
            actor_tenant: self.tenant.id,
            actor_user: self.user,
            kind,
            id,
        };
        self.state.probes.submit(probe).await;
        ApiError::NotFound { kind, id: None }
    }
}

/// A request made by a verified platform admin.
pub struct PlatformScope {
    state: web::Data<AppState>,
    admin: String,
}

impl PlatformScope {
    /// The admin's name (the token's `sub`), for the audit trail.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    pub async fn read<T>(
        &self,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.state.db.platform_tx(TxMode::ReadOnly, body).await
    }

    pub async fn write<T>(
        &self,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.state.db.platform_tx(TxMode::ReadWrite, body).await
    }
}

/// Either kind of caller, for routes both may use.
pub enum Caller {
    Platform(PlatformScope),
    Tenant(TenantScope),
}
