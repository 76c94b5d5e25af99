//! Request scopes: the only way a handler reaches the database.
//!
//! `AppState` (`crate::state`) holds the pool behind `ScopedDatabase`, which only
//! this module opens. A handler asks for a `Guarded<Policy, _>` (`guard`) of a
//! `TenantScope` (tenant roles), a `PlatformScope` (platform admins) or a `Caller`
//! (either) and runs its queries through it; tenant queries get a `TenantTx`,
//! whose tenant and RLS setting come from the token, never from the request.
//! A token with `act` (an impersonation) gets a `TenantScope` whose transactions
//! check the impersonation's row instead of a user (`impersonated`).

mod confirm;
mod extract;
pub mod guard;
mod host_binding;
mod impersonated;
mod platform_signin;
pub mod post_lanes;
pub mod probes;
pub mod signin;

pub use confirm::confirm_user;
pub use extract::{carries_platform_token, resolved_tenant, tenant_of};
pub use guard::{
    Allow, Authenticated, Guarded, PlatformAdmin, PlatformOperator, TenantOrPlatformAdmin, perm,
};
pub use host_binding::check_host;
pub use impersonated::audit_impersonated;
pub use platform_signin::PlatformSignIn;
pub use signin::{SignInScope, SignInTenant};

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::web;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use self::confirm::UserCheck;
use self::probes::Probe;
use crate::auth::{Permission, Role};
use crate::db::{Database, PlatformTx, TenantTx, TokenCheck, TxMode};
use crate::error::ApiError;
use crate::ids::{ImpersonationId, TenantId, UserId};
use crate::limits::{ExpensivePermit, NodeLimits, RequestClass};
use crate::state::AppState;
use crate::tenancy::TenantRecord;

/// The pool as `AppState` holds it: a door only this module opens. Handlers and
/// middleware can reach `state.db` but get nothing out of it but its gauges; a
/// transaction needs a scope.
#[derive(Clone)]
pub struct ScopedDatabase(Database);

impl ScopedDatabase {
    pub fn new(db: Database) -> Self {
        Self(db)
    }

    /// The pool's state, for `/metrics`.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.0.pool_status()
    }

    /// Time spent waiting for pooled connections, for `/metrics`.
    pub fn pool_wait_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.0.pool_wait_histogram()
    }

    /// Readiness: can this node reach the database?
    pub async fn ready(&self) -> bool {
        self.0.ping().await.is_ok()
    }

    /// Stops handing out connections (shutdown).
    pub fn close(&self) {
        self.0.close();
    }

    /// Which database the node talks to (reports say so).
    pub fn dialect(&self) -> crate::db::Dialect {
        self.0.dialect()
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
    /// The expensive-work permits (tenant's and node's) of an expensive request
    /// class, taken with its first such transaction and held until the scope is
    /// dropped (`limits::cost`).
    expensive: OnceCell<ExpensivePermit>,
    /// Whether a metered class (`limits::db_time`) was admitted: a request is
    /// refused up front or not at all, never between two of its transactions.
    metered: std::cell::Cell<bool>,
    /// Whether the token's user has been confirmed active in this request.
    check: Rc<UserCheck>,
    /// Set when the token is an impersonation's (`act`): its row replaces the
    /// user check, and its writes are audited in their own transaction.
    impersonation: Option<Impersonating>,
    /// What this request does, recorded in the access log by its first
    /// transaction (none under an impersonation: audited one by one instead).
    access: std::cell::Cell<Option<Box<crate::access_log::Access>>>,
}

/// The impersonation a tenant scope acts under (`impersonated`).
#[derive(Clone, Debug)]
pub struct Impersonating {
    pub id: ImpersonationId,
    /// The platform admin (`act.sub`).
    pub actor: String,
    /// The request's method and matched route, for the audit trail.
    pub method: String,
    pub route: String,
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

    /// The impersonation this request acts under, if its token has `act`.
    pub fn impersonation(&self) -> Option<&Impersonating> {
        self.impersonation.as_ref()
    }

    /// What the prologue of this scope's transactions checks.
    fn token_check(&self) -> TokenCheck {
        match &self.impersonation {
            Some(imp) => TokenCheck::Impersonation(imp.id),
            None => TokenCheck::User(self.user, self.role.as_str()),
        }
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

    /// A read of the `Page` class.
    pub async fn read<T>(
        &self,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.run(TxMode::ReadOnly, RequestClass::Page, body).await
    }

    /// A read of a costlier class (a big page, a search): it holds that class's
    /// weight of the tenant's slots, its expensive-work permits and timeout.
    pub async fn read_as<T>(
        &self,
        class: RequestClass,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.run(TxMode::ReadOnly, class, body).await
    }

    pub async fn write<T>(
        &self,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.run(TxMode::ReadWrite, RequestClass::Write, body).await
    }

    /// A write whose body may decide a refusal that must be committed rather than
    /// rolled back (the storage quota, `limits::storage`): the inner error is
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

    /// `write_or_refuse` for a body that checks the token's user itself: its
    /// first write goes out through `TenantTx::execute_guarded_and_commit`, and
    /// it fails (`DbError::UserRefused`, 401) unless the user is active with the
    /// token's role. The prologue then sends no user check of its own (the post:
    /// one statement fewer, `TokenCheck::UserGuardedByWrite`). Under an
    /// impersonation the prologue checks the impersonation as usual.
    pub async fn write_guarded_or_refuse<T>(
        &self,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<Result<T, ApiError>, ApiError>,
    ) -> Result<T, ApiError> {
        let result = self
            .transaction_checked(TxMode::ReadWrite, RequestClass::Write, true, body)
            .await;
        match result {
            Err(ApiError::NotFound { kind, id: Some(id) }) => Err(self.not_found(kind, id).await),
            Err(err) => Err(self.refused(err)),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.refused(err)),
        }
    }

    /// Checks that the token's user is still active (for routes that need no query).
    pub async fn verify_user(&self) -> Result<(), ApiError> {
        self.transaction(TxMode::ReadOnly, RequestClass::Page, async |_| Ok(()))
            .await
    }

    /// Takes the tenant's concurrency slots (the class's weight) for the rest of
    /// the request, or refuses at once (never queued behind the tenant's other
    /// requests); then, for an expensive class, waits a bounded time for the
    /// tenant's and the node's expensive-work permits. A metered class is first
    /// refused if its tenant spent its database time on this node.
    /// A refusal must stay cheap: no user check is run for it.
    async fn occupy_slot(&self, class: RequestClass) -> Result<(), ApiError> {
        let limits = &self.state.limits;
        if class.metered() && !self.metered.get() {
            limits
                .check_db_time(&self.tenant, class)
                .inspect_err(|_| self.check.waive())?;
            self.metered.set(true);
        }
        if self.slot.get().is_none() {
            let permit = limits
                .take_slots(&self.tenant, class)
                .inspect_err(|_| self.check.waive())?;
            let _ = self.slot.set(permit);
            // The request's first transaction: it is served here, with the
            // tenant's data (the residency report's evidence).
            self.state.served.record(self.tenant.id);
            if let Some(access) = self.access.take() {
                self.state.access_log.record(*access);
            }
        }
        if class.expensive() && self.expensive.get().is_none() {
            let permit = limits
                .take_expensive(&self.tenant)
                .await
                .inspect_err(|_| self.check.waive())?;
            let _ = self.expensive.set(permit);
        }
        Ok(())
    }

    /// A transaction in the tenant's scope, under its concurrency slot, checking
    /// the token's user in its prologue.
    async fn transaction<T>(
        &self,
        mode: TxMode,
        class: RequestClass,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.transaction_checked(mode, class, false, body).await
    }

    /// `transaction`; with `by_write`, a user's token is checked by the body's
    /// guarded write instead of the prologue (`write_guarded_or_refuse`).
    async fn transaction_checked<T>(
        &self,
        mode: TxMode,
        class: RequestClass,
        by_write: bool,
        mut body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.occupy_slot(class).await?;
        let tenant = &self.tenant;
        let timeout = class.statement_timeout(&self.state.limits.cost);
        // A write under an impersonation records itself in the same transaction
        // (`impersonated_write`): committed with the change or not at all, so no
        // write is ever left without its audit event, whatever happens after.
        let writing_as = self
            .impersonation
            .as_ref()
            .filter(|_| mode != TxMode::ReadOnly);
        // When the body first runs, the connection is ours (its prologue is on
        // the wire with the body's first statement): a metered class (only: no
        // clock read for the others) is charged
        // from then to the end, COMMIT included, not for its wait for the pool.
        let connected = std::cell::Cell::new(None);
        let result = self
            .state
            .db
            .0
            .tenant_tx_timed(
                tenant.id,
                &tenant.home_region,
                Some(match self.token_check() {
                    TokenCheck::User(user, role) if by_write => {
                        TokenCheck::UserGuardedByWrite(user, role)
                    }
                    check => check,
                }),
                Some(timeout),
                mode,
                async |tx| {
                    if class.metered() && connected.get().is_none() {
                        connected.set(Some(std::time::Instant::now()));
                    }
                    let value = body(tx).await?;
                    if let Some(imp) = writing_as {
                        impersonated::record_write(tx, imp).await?;
                    }
                    Ok(value)
                },
            )
            .await;
        if let Some(since) = connected.get() {
            self.state
                .limits
                .charge_db_time(&self.tenant, class, since.elapsed());
        }
        if let Err(ApiError::StatementTimeout) = result {
            self.state.limits.count_timeout(&self.tenant);
        }
        // Checked by the guarded write: only its success shows the user valid
        // (any other answer is confirmed after the handler, `confirm_user`).
        let confirmed = if by_write {
            result.is_ok()
        } else {
            UserCheck::prologue_passed(&result)
        };
        if confirmed {
            self.check.confirm();
        }
        result
    }

    async fn run<T>(
        &self,
        mode: TxMode,
        class: RequestClass,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        match self.transaction(mode, class, body).await {
            Err(ApiError::NotFound { kind, id: Some(id) }) => Err(self.not_found(kind, id).await),
            Err(err) => Err(self.refused(err)),
            other => other,
        }
    }

    /// Counts a quota refusal among the tenant's denials.
    fn refused(&self, err: ApiError) -> ApiError {
        if let ApiError::QuotaExceeded { .. } = err {
            self.state.limits.count_quota_refusal(&self.tenant);
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

/// A request made with a verified platform role (a platform admin or an
/// operator; the handler's policy says which it admits).
pub struct PlatformScope {
    state: web::Data<AppState>,
    admin: String,
    role: Role,
}

impl PlatformScope {
    /// The caller's name (the token's `sub`), for the audit trail.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// `Role::PlatformAdmin` or `Role::Operator`.
    pub fn role(&self) -> Role {
        self.role
    }

    pub async fn read<T>(
        &self,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.state.db.0.platform_tx(TxMode::ReadOnly, body).await
    }

    pub async fn write<T>(
        &self,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.state.db.0.platform_tx(TxMode::ReadWrite, body).await
    }
}

/// Either kind of caller, for routes both may use.
pub enum Caller {
    Platform(PlatformScope),
    Tenant(TenantScope),
}

impl Caller {
    /// The platform scope of a route about tenant `id` that only platform staff
    /// may use. A tenant's user gets the answer every such route gives: 403
    /// (`refusal`) about its own tenant, 404 (audited as a probe) about another.
    pub async fn platform_only(
        self,
        id: TenantId,
        refusal: &'static str,
    ) -> Result<PlatformScope, ApiError> {
        match self {
            Caller::Platform(scope) => Ok(scope),
            Caller::Tenant(scope) if scope.tenant_id() == id => Err(ApiError::Forbidden(refusal)),
            Caller::Tenant(scope) => Err(scope.not_found("tenant", *id.as_uuid()).await),
        }
    }
}
