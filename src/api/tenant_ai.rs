//! `/v1/tenants/{id}/ai-engine`: which engine summarises the tenant's channels
//! and whether it may run outside the tenant's residency. Every user of the
//! tenant reads it; owners and compliance officers change it. Another tenant's
//! id answers like a missing tenant.

use actix_web::{get, patch, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::IdPath;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::ids::TenantId;
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::store::tenants::ai_engine::{self as tenant_ai, TenantAi};
use crate::tenancy::record::AiEngine;
use crate::topology::Jurisdiction;

#[derive(Serialize, ToSchema)]
pub struct AiEngineSettings {
    #[serde(flatten)]
    tenant: TenantAi,
    /// Whether this node has an external engine (`summaries.openai`).
    external_configured: bool,
    /// The region the node's external engine runs in, if configured with one.
    external_region: Option<String>,
    /// The jurisdiction (`us`, `eu`, `apac`) the node's external engine runs in,
    /// if configured with one instead of a region.
    external_jurisdiction: Option<Jurisdiction>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAiEngine {
    ai_engine: Option<AiEngine>,
    ai_external_outside_residency: Option<bool>,
}

fn settings(hooks: &Hooks, tenant: TenantAi) -> AiEngineSettings {
    let openai = &hooks.summaries.openai;
    AiEngineSettings {
        tenant,
        external_configured: openai.enabled(),
        external_region: (openai.enabled() && !openai.region.is_empty())
            .then(|| openai.region.clone()),
        external_jurisdiction: openai.jurisdiction.filter(|_| openai.enabled()),
    }
}

async fn own(scope: &TenantScope, path: &IdPath) -> Result<(), ApiError> {
    let id = TenantId::parse(path)?;
    if id == scope.tenant_id() {
        Ok(())
    } else {
        Err(scope.not_found("tenant", *id.as_uuid()).await)
    }
}

/// The tenant's summary engine settings.
#[utoipa::path(tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = AiEngineSettings)))]
#[get("/tenants/{id}/ai-engine")]
pub async fn get(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    hooks: web::Data<Hooks>,
    path: IdPath,
) -> Result<web::Json<AiEngineSettings>, ApiError> {
    own(&scope, &path).await?;
    let (tenant, _) = scope.read(async |tx| Ok(tenant_ai::get(tx).await?)).await?;
    Ok(web::Json(settings(&hooks, tenant)))
}

/// Choose the summary engine (owners and compliance officers).
#[utoipa::path(tag = "tenants", request_body = PatchAiEngine,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = AiEngineSettings)))]
#[patch("/tenants/{id}/ai-engine")]
pub async fn patch(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    hooks: web::Data<Hooks>,
    path: IdPath,
    body: super::JsonBody<PatchAiEngine>,
) -> Result<web::Json<AiEngineSettings>, ApiError> {
    own(&scope, &path).await?;
    if !matches!(scope.role(), Role::Owner | Role::Compliance) {
        return Err(ApiError::Forbidden(
            "the summary engine is chosen by owners or compliance officers",
        ));
    }
    let body = body.into_inner();
    if body.ai_engine.is_none() && body.ai_external_outside_residency.is_none() {
        return Err(ApiError::validation("nothing to change"));
    }
    let actor = scope.user_id().to_string();
    let tenant = scope
        .write(async |tx| {
            Ok(tenant_ai::set(
                tx,
                &actor,
                body.ai_engine,
                body.ai_external_outside_residency,
            )
            .await?)
        })
        .await?;
    Ok(web::Json(settings(&hooks, tenant)))
}
