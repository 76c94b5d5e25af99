//! `/v1/tenants/{id}/relocation` (move a tenant to another home region) and
//! `/v1/regions/{id}/evacuate` (move every tenant out of a region). Platform admins
//! start them; a tenant's owners and admins may watch their own tenant's progress.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::IdPath;
use crate::auth::Permission;
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::relocation::{self, Relocation};
use crate::scope::{
    Authenticated, Caller, Guarded, PlatformOperator, PlatformScope, TenantOrPlatformAdmin,
};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelocationRequest {
    to_region: String,
}

/// Records the job and starts it in the background on this node. `start` checks
/// the target (known, not the current home, allowed by the residency policy)
/// against the tenant's row in its own transaction: the tenant as read by the
/// caller may be stale by then.
async fn launch(
    scope: &PlatformScope,
    state: &web::Data<AppState>,
    tenant: TenantId,
    to: &RegionId,
) -> Result<Relocation, ApiError> {
    let topology = &state.topology;
    let job = scope
        .write(async |tx| relocation::start(tx, topology, tenant, to, scope.admin()).await)
        .await?;
    let (relocator, id) = (state.relocator.clone(), job.id);
    actix_web::rt::spawn(async move {
        if let Err(err) = relocator.run(id).await {
            tracing::error!(relocation = %id, error = %err, "relocation failed");
        }
    });
    Ok(job)
}

/// Move a tenant to another home region (platform admin): online and batched.
#[utoipa::path(
    tag = "relocation",
    request_body = RelocationRequest,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 202, body = Relocation)),
)]
#[post("/tenants/{id}/relocation")]
pub async fn start(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    path: IdPath,
    body: super::JsonBody<RelocationRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = TenantId::parse(&path)?;
    let scope = caller
        .into_inner()
        .platform_only(id, "relocations are started by platform admins")
        .await?;
    let to = relocation::target(&body.to_region)?;
    let job = launch(&scope, &state, id, &to).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/tenants/{id}/relocation"),
        ))
        .json(job))
}

/// The tenant's latest relocation and its progress (platform admins and
/// operators: any tenant's; tenant admins: their own).
#[utoipa::path(
    tag = "relocation",
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, body = Relocation)),
)]
#[get("/tenants/{id}/relocation")]
pub async fn status(
    caller: Guarded<Authenticated, Caller>,
    path: IdPath,
) -> Result<web::Json<Relocation>, ApiError> {
    let id = TenantId::parse(&path)?;
    let latest = match caller.into_inner() {
        Caller::Platform(scope) => {
            scope
                .read(async |tx| Ok(relocation::latest(tx, id).await?))
                .await?
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            scope.require(Permission::ReadUsage)?;
            scope
                .read(async |tx| Ok(relocation::latest(tx, tx.tenant_id()).await?))
                .await?
        }
        Caller::Tenant(scope) => return Err(scope.not_found("tenant", *id.as_uuid()).await),
    };
    latest.map(web::Json).ok_or(ApiError::NotFound {
        kind: "relocation",
        id: None,
    })
}

#[derive(Serialize, ToSchema)]
pub struct EvacuationEntry {
    tenant_id: TenantId,
    slug: String,
    to: Option<RegionId>,
    relocation_id: Option<uuid::Uuid>,
    /// Why the tenant could not be moved.
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Evacuation {
    region: RegionId,
    started: Vec<EvacuationEntry>,
    refused: Vec<EvacuationEntry>,
}

/// Relocate every tenant homed in a region to its next allowed healthy region.
#[utoipa::path(
    tag = "relocation",
    params(("id" = String, Path, description = "Region id")),
    security(("bearer" = [])),
    responses((status = 200, body = Evacuation)),
)]
#[post("/regions/{id}/evacuate")]
pub async fn evacuate(
    scope: Guarded<PlatformOperator, PlatformScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<Evacuation>, ApiError> {
    let region = super::regions::known_region(&state, &path)?;
    let homed = scope
        .read(async |tx| {
            Ok(crate::store::tenants::homed_in(tx, std::slice::from_ref(&region)).await?)
        })
        .await?;
    let health = &state.routing.health;
    let (mut started, mut refused) = (Vec::new(), Vec::new());
    for tenant in homed {
        let entry = |to: Option<RegionId>, relocation_id, reason: Option<String>| EvacuationEntry {
            tenant_id: tenant.id,
            slug: tenant.slug.clone(),
            to,
            relocation_id,
            reason,
        };
        let to = match relocation::evacuation_target(&state.topology, health, &tenant, &region) {
            Ok(to) => to,
            Err(reason) => {
                refused.push(entry(None, None, Some(reason.into())));
                continue;
            }
        };
        match launch(&scope, &state, tenant.id, &to).await {
            Ok(job) => started.push(entry(Some(to), Some(job.id), None)),
            Err(err) => refused.push(entry(Some(to), None, Some(err.to_string()))),
        }
    }
    Ok(web::Json(Evacuation {
        region,
        started,
        refused,
    }))
}
