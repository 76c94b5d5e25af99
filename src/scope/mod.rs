//! Request scopes: the only way a handler reaches the database.
//!
//! `AppState` holds the pool privately; only this module (and `extract`, which
//! builds scopes from verified tokens) can read it. A handler asks for a
//! `TenantScope` (tenant roles), a `PlatformScope` (platform admins) or a `Caller`
//! (either) and runs its queries through them; tenant queries get a `TenantTx`,
//! whose tenant and RLS setting come from the token, never from the request.

mod extract;

use std::sync::Arc;

use uuid::Uuid;

use crate::audit;
use crate::auth::{Permission, Role, TokenVerifier};
use crate::db::{Database, PlatformTx, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId, UserId};
use crate::tenancy::{Directory, TenantRecord};
use crate::topology::Topology;

/// Shared by every worker of a node.
pub struct AppState {
    db: Database,
    pub directory: Directory,
    pub topology: Arc<Topology>,
    pub region: RegionId,
    pub verifier: Arc<TokenVerifier>,
}

impl AppState {
    pub fn new(
        db: Database,
        directory: Directory,
        topology: Arc<Topology>,
        region: RegionId,
        verifier: Arc<TokenVerifier>,
    ) -> Self {
        Self {
            db,
            directory,
            topology,
            region,
            verifier,
        }
    }

    /// Stops handing out connections (shutdown).
    pub fn close_database(&self) {
        self.db.close();
    }

    /// Readiness: can this node reach the database?
    pub async fn database_ready(&self) -> bool {
        self.db.ping().await.is_ok()
    }
}

/// A request made with a tenant role: the tenant, the user and the role, all from
/// the verified token and the directory.
pub struct TenantScope {
    db: Database,
    tenant: Arc<TenantRecord>,
    user: UserId,
    role: Role,
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

    /// Checks that the token's user is still active (for routes that need no query).
    pub async fn verify_user(&self) -> Result<(), ApiError> {
        self.read(async |_| Ok(())).await
    }

    async fn run<T>(
        &self,
        mode: TxMode,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let tenant = &self.tenant;
        let result = self
            .db
            .tenant_tx(tenant.id, &tenant.home_region, Some(self.user), mode, body)
            .await;
        match result {
            Err(ApiError::NotFound { kind, id: Some(id) }) => Err(self.not_found(kind, id).await),
            other => other,
        }
    }

    /// The 404 for `id`, identical whether it is missing or another tenant's; in the
    /// second case a `cross_tenant_denied` event goes to the platform audit.
    pub async fn not_found(&self, kind: &'static str, id: Uuid) -> ApiError {
        let me = self.tenant.id;
        let actor = self.user;
        let probe = self
            .db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                let owner: Option<Uuid> = tx
                    .query_one("SELECT resource_owner($1, $2)", &[&kind, &id])
                    .await?
                    .get(0);
                match owner {
                    Some(owner) if owner != *me.as_uuid() => {
                        let details = serde_json::json!({
                            "actor_tenant_id": me, "actor_user_id": actor,
                            "target_tenant_id": owner, "target_kind": kind, "target_id": id,
                        });
                        audit::record_platform(
                            tx,
                            &actor.to_string(),
                            "cross_tenant_denied",
                            Some(TenantId::from_uuid(owner)),
                            details,
                        )
                        .await?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
            .await;
        match probe {
            Ok(true) => tracing::warn!(tenant_id = %me, kind, "cross-tenant access denied"),
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, "auditing a cross-tenant probe failed"),
        }
        ApiError::NotFound { kind, id: None }
    }
}

/// A request made by a verified platform admin.
pub struct PlatformScope {
    db: Database,
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
        self.db.platform_tx(TxMode::ReadOnly, body).await
    }

    pub async fn write<T>(
        &self,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.db.platform_tx(TxMode::ReadWrite, body).await
    }
}

/// Either kind of caller, for routes both may use.
pub enum Caller {
    Platform(PlatformScope),
    Tenant(TenantScope),
}
