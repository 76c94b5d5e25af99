//! Tenant erasure (issue 16 item 3), platform admins only: `DELETE
//! /v1/tenants/{id}` with the slug as confirmation (202: suspended until
//! `erase_after`, then erased by a job of its home region), `POST
//! /v1/tenants/{id}/restore` during the grace, and `GET
//! /v1/tenants/{id}/erasure` (state, counts and, once done, the signed
//! receipt). A tenant token gets 403 for its own tenant and 404 for another's,
//! like every platform-only tenant route. What happens: `compliance::tenant_erasure`.

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::IdPath;
use crate::compliance::tenant_erasure::{self, TenantErasure};
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::ids::TenantId;
use crate::scope::{Caller, Guarded, TenantOrPlatformAdmin};
use crate::state::AppState;

const PLATFORM_ONLY: &str = "tenants are erased and restored by platform admins";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseTenant {
    /// The tenant's slug, exactly: a mistyped id erases nothing.
    #[schema(min_length = 1, max_length = 63)]
    confirm: String,
}

/// Erase a tenant (platform admin): suspended at once, restorable until
/// `erase_after`, then every row of it deleted and its keys destroyed. A second
/// request answers the same erasure (the grace is not extended).
#[utoipa::path(tag = "compliance", request_body = EraseTenant,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 202, body = TenantErasure)))]
#[delete("/tenants/{id}")]
pub async fn erase(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    hooks: web::Data<Hooks>,
    path: IdPath,
    body: super::JsonBody<EraseTenant>,
) -> Result<HttpResponse, ApiError> {
    let id = TenantId::parse(&path)?;
    let scope = caller.into_inner().platform_only(id, PLATFORM_ONLY).await?;
    let grace = hooks.compliance.erasure.tenant_grace;
    let confirm = body.into_inner().confirm;
    let requested = scope
        .write(async |tx| {
            Ok(tenant_erasure::request(tx, id, &confirm, scope.admin(), grace).await?)
        })
        .await?;
    state.directory.put(requested.tenant).await;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/tenants/{id}/erasure")))
        .json(requested.erasure))
}

/// Restore a tenant whose erasure is pending (platform admin): back to its
/// status before the request, the erasure `cancelled`. After the grace: 409
/// `erasure_grace_over`.
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = TenantErasure)))]
#[post("/tenants/{id}/restore")]
pub async fn restore(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    path: IdPath,
) -> Result<web::Json<TenantErasure>, ApiError> {
    let id = TenantId::parse(&path)?;
    let scope = caller.into_inner().platform_only(id, PLATFORM_ONLY).await?;
    let (erasure, tenant) = scope
        .write(async |tx| Ok(tenant_erasure::restore(tx, id, scope.admin()).await?))
        .await?;
    state.directory.put(tenant).await;
    Ok(web::Json(erasure))
}

/// The tenant's newest erasure: state, rows deleted per table and, once done,
/// the signed receipt (platform admin).
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = TenantErasure)))]
#[get("/tenants/{id}/erasure")]
pub async fn get(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    path: IdPath,
) -> Result<web::Json<TenantErasure>, ApiError> {
    let id = TenantId::parse(&path)?;
    let scope = caller.into_inner().platform_only(id, PLATFORM_ONLY).await?;
    let erasure = scope
        .read(async |tx| Ok(tenant_erasure::latest(tx, id).await?))
        .await?
        .ok_or(ApiError::NotFound {
            kind: "tenant erasure",
            id: None,
        })?;
    Ok(web::Json(erasure))
}
