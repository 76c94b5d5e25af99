//! `/v1/tenants/{id}/impersonations`: platform admins start a time-boxed,
//! reason-required impersonation of a tenant (`crate::impersonation`); the
//! tenant's owners and compliance officers list the active ones; owners and
//! platform admins revoke one. `/v1/tenants/{id}/impersonation-policy`: whether
//! impersonations may write (owners change it; every user reads it).
//!
//! Starting and revoking are audited in the tenant's trail (and, by a platform
//! admin, in the platform trail). Another tenant's id answers like a missing one.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::audit;
use crate::auth::Role;
use crate::db::TenantTx;
use crate::error::ApiError;
use crate::ids::{ImpersonationId, TenantId};
use crate::impersonation::{self, Impersonation, Mode, Start, store};
use crate::pagination::Page;
use crate::scope::guard::{Policy, Principal};
use crate::scope::{Allow, Caller, Guarded, TenantOrPlatformAdmin, TenantScope, perm};
use crate::state::AppState;
use crate::store::tenants;

/// Owners and compliance officers: who watches the tenant's impersonations.
pub struct Overseers;

impl Policy for Overseers {
    const REFUSAL: &'static str = "impersonations are listed by owners and compliance officers";
    fn allows(principal: Principal) -> bool {
        matches!(principal, Principal::Tenant(Role::Owner | Role::Compliance))
    }
}

/// Owners and platform admins: who may end an impersonation.
pub struct Revokers;

impl Policy for Revokers {
    const REFUSAL: &'static str = "impersonations are revoked by owners and platform admins";
    fn allows(principal: Principal) -> bool {
        matches!(
            principal,
            Principal::PlatformAdmin | Principal::Tenant(Role::Owner)
        )
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartImpersonation {
    /// Why (a ticket, an incident): recorded in the tenant's trail.
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
    /// How long it lasts, 1–60 (default 15).
    #[schema(minimum = 1, maximum = 60)]
    minutes: Option<u32>,
    /// Ask for writes too; refused (403 `impersonation_writes_not_allowed`)
    /// unless the tenant's policy allows them.
    write: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct ImpersonationStarted {
    #[serde(flatten)]
    impersonation: Impersonation,
    /// An access token for the tenant with `act` = the platform admin; it
    /// expires with the impersonation.
    access_token: String,
    token_type: &'static str,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpersonationPolicy {
    /// May an impersonation started with `write: true` write? (Default false.)
    writes_allowed: bool,
}

fn started_details(imp: &Impersonation) -> serde_json::Value {
    json!({
        "impersonation_id": imp.id,
        "reason": imp.reason,
        "mode": imp.mode,
        "expires_at": imp.expires_at,
    })
}

/// Start impersonating a tenant (platform admins).
#[utoipa::path(tag = "impersonations", request_body = StartImpersonation,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 201, body = ImpersonationStarted)))]
#[post("/tenants/{id}/impersonations")]
pub async fn start(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    path: IdPath,
    body: super::JsonBody<StartImpersonation>,
) -> Result<HttpResponse, ApiError> {
    let id = TenantId::parse(&path)?;
    let scope = caller
        .into_inner()
        .platform_only(id, "impersonations are started by platform admins")
        .await?;
    let body = body.into_inner();
    let start = Start::new(&body.reason, body.minutes, body.write.unwrap_or(false))?;
    let admin = scope.admin().to_owned();
    let imp = scope
        .write(async |tx| {
            let tenant = tenants::get(tx, id).await?;
            if let Some(refused) = tenant.refusal() {
                return Err(refused);
            }
            let scoped = tx.enter_tenant(id, tenant.home_region.clone()).await?;
            // The policy is read in the transaction that writes the row.
            if start.mode == Mode::Write && !store::writes_allowed(&scoped).await? {
                return Err(ApiError::ImpersonationWritesNotAllowed);
            }
            let imp = store::insert(&scoped, &admin, &start).await?;
            let details = started_details(&imp);
            let target = Some(("impersonation", imp.id.to_string()));
            audit::record(
                &scoped,
                &admin,
                "impersonation_started",
                target,
                details.clone(),
            )
            .await?;
            // The reason is the admin's free text (it may name people): the
            // platform trail, which outlives a tenant erasure, keeps it sealed
            // with the tenant's keyring.
            let mut clear = details;
            let reason = clear
                .as_object_mut()
                .and_then(|d| d.remove("reason"))
                .unwrap_or_default();
            audit::record_platform_personal(
                tx,
                &scoped,
                &state.keyring,
                &admin,
                "impersonation_started",
                clear,
                &json!({ "reason": reason }),
            )
            .await?;
            Ok(imp)
        })
        .await?;
    let access_token = impersonation::token(&state.verifier, &imp)?;
    let location = format!("/v1/tenants/{id}/impersonations/{}", imp.id);
    Ok(created(
        location,
        &ImpersonationStarted {
            impersonation: imp,
            access_token,
            token_type: "Bearer",
        },
    ))
}

/// 404 unless the path's tenant is the caller's.
async fn own(scope: &TenantScope, id: TenantId) -> Result<(), ApiError> {
    if id == scope.tenant_id() {
        Ok(())
    } else {
        Err(scope.not_found("tenant", *id.as_uuid()).await)
    }
}

/// The tenant's active impersonations (owners and compliance officers): neither
/// revoked nor expired, newest first, at most 100 (one page; `next_cursor` is
/// always null).
#[utoipa::path(tag = "impersonations",
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = Page<Impersonation>)))]
#[get("/tenants/{id}/impersonations")]
pub async fn list(
    scope: Guarded<Overseers, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Page<Impersonation>>, ApiError> {
    own(&scope, TenantId::parse(&path)?).await?;
    let items = scope
        .read(async |tx| Ok(store::list_active(tx).await?))
        .await?;
    Ok(web::Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Revokes in `tx`, audited there when this call ended it.
async fn revoke_in(
    tx: &TenantTx<'_>,
    id: ImpersonationId,
    by: &str,
) -> Result<(Impersonation, bool), ApiError> {
    let (imp, ended) = store::revoke(tx, id, by).await?;
    if ended {
        let details = json!({ "impersonation_id": imp.id, "actor": imp.actor });
        let target = Some(("impersonation", imp.id.to_string()));
        audit::record(tx, by, "impersonation_revoked", target, details).await?;
    }
    Ok((imp, ended))
}

/// End an impersonation at once (owners and platform admins): its token gets
/// 401 from its next request. Revoking an ended one changes nothing. The row
/// stays (revoked), as evidence.
#[utoipa::path(tag = "impersonations",
    params(("id" = uuid::Uuid, Path, description = "Tenant id"),
        ("impersonation_id" = uuid::Uuid, Path, description = "Impersonation id")),
    security(("bearer" = [])), responses((status = 204)))]
#[delete("/tenants/{id}/impersonations/{impersonation_id}")]
pub async fn revoke(
    caller: Guarded<Revokers, Caller>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = TenantId::parse(&path.0)?;
    let imp_id = ImpersonationId::parse(&path.1)?;
    let imp = match caller.into_inner() {
        Caller::Platform(scope) => {
            let admin = scope.admin().to_owned();
            scope
                .write(async |tx| {
                    let tenant = tenants::get(tx, id).await?;
                    let scoped = tx.enter_tenant(id, tenant.home_region.clone()).await?;
                    let (imp, ended) = revoke_in(&scoped, imp_id, &admin).await?;
                    if ended {
                        let details = json!({ "impersonation_id": imp.id });
                        audit::record_platform(
                            tx,
                            &admin,
                            "impersonation_revoked",
                            Some(id),
                            details,
                        )
                        .await?;
                    }
                    Ok(imp)
                })
                .await?
        }
        Caller::Tenant(scope) => {
            own(&scope, id).await?;
            let by = scope.user_id().to_string();
            scope
                .write(async |tx| Ok(revoke_in(tx, imp_id, &by).await?.0))
                .await?
        }
    };
    tracing::info!(impersonation = %imp.id, tenant = %id, "impersonation revoked");
    Ok(HttpResponse::NoContent().finish())
}

/// Whether impersonations may write in this tenant (every user reads it).
#[utoipa::path(tag = "impersonations",
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = ImpersonationPolicy)))]
#[get("/tenants/{id}/impersonation-policy")]
pub async fn get_policy(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<ImpersonationPolicy>, ApiError> {
    own(&scope, TenantId::parse(&path)?).await?;
    let writes_allowed = scope
        .read(async |tx| Ok(store::writes_allowed(tx).await?))
        .await?;
    Ok(web::Json(ImpersonationPolicy { writes_allowed }))
}

/// Allow or forbid impersonations that write (owners only; audited). Forbidding
/// takes effect on the next write of an impersonation already running.
#[utoipa::path(tag = "impersonations", request_body = ImpersonationPolicy,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = ImpersonationPolicy)))]
#[patch("/tenants/{id}/impersonation-policy")]
pub async fn set_policy(
    scope: Guarded<Allow<perm::ManageTenant>, TenantScope>,
    path: IdPath,
    body: super::JsonBody<ImpersonationPolicy>,
) -> Result<web::Json<ImpersonationPolicy>, ApiError> {
    own(&scope, TenantId::parse(&path)?).await?;
    let allowed = body.into_inner().writes_allowed;
    let actor = scope.user_id().to_string();
    scope
        .write(async |tx| {
            let before = store::set_writes_allowed(tx, allowed).await?;
            let details = json!({ "before": before, "after": allowed });
            let target = Some(("tenant", tx.tenant_id().to_string()));
            audit::record(tx, &actor, "impersonation_policy_changed", target, details).await?;
            Ok(())
        })
        .await?;
    Ok(web::Json(ImpersonationPolicy {
        writes_allowed: allowed,
    }))
}
