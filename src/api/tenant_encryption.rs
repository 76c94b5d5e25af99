//! `/v1/tenants/{id}/encryption`: the tenant's encryption policy
//! (`{"messages": bool}`: message bodies and channel summaries sealed with the
//! tenant's data key). Owners and compliance officers read and change it;
//! another tenant's id answers like a missing tenant. What turning it on or off
//! does to existing rows: `crate::crypto::messages`.

use actix_web::{get, patch, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::IdPath;
use crate::auth::Role;
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::state::AppState;
use crate::store::tenants::encryption;
use crate::tenancy::record::Encryption;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEncryption {
    /// Encrypt message bodies and channel summaries.
    messages: bool,
}

/// The caller's own tenant, as owner or compliance officer.
async fn own(scope: &TenantScope, path: &IdPath) -> Result<(), ApiError> {
    let id = TenantId::parse(path)?;
    if id != scope.tenant_id() {
        return Err(scope.not_found("tenant", *id.as_uuid()).await);
    }
    if !matches!(scope.role(), Role::Owner | Role::Compliance) {
        return Err(ApiError::Forbidden(
            "the encryption policy is for owners or compliance officers",
        ));
    }
    Ok(())
}

/// The tenant's encryption policy.
#[utoipa::path(tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = Encryption)))]
#[get("/tenants/{id}/encryption")]
pub async fn get(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Encryption>, ApiError> {
    own(&scope, &path).await?;
    Ok(web::Json(
        scope
            .read(async |tx| Ok(encryption::get(tx).await?))
            .await?,
    ))
}

/// Turn message encryption on or off (owners and compliance officers). On: new
/// posts and summaries are sealed at once, and a re-encryption job seals the
/// existing ones. Off: new ones are stored in plaintext; sealed ones stay sealed.
#[utoipa::path(tag = "tenants", request_body = PatchEncryption,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = Encryption)))]
#[patch("/tenants/{id}/encryption")]
pub async fn patch(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    state: web::Data<AppState>,
    path: IdPath,
    body: super::JsonBody<PatchEncryption>,
) -> Result<web::Json<Encryption>, ApiError> {
    own(&scope, &path).await?;
    let to = Encryption {
        messages: body.messages,
    };
    let actor = scope.user_id().to_string();
    let (record, _) = scope
        .write(async |tx| Ok(encryption::set(tx, &actor, to).await?))
        .await?;
    let now = record.encryption;
    // This node's next post decides from the new policy at once; other nodes
    // catch up with the directory refresh, and until then their posts' INSERT
    // refuses plaintext (`crypto::messages`).
    state.directory.put(record).await;
    Ok(web::Json(now))
}
