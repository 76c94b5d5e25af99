//! User erasure (GDPR, issue 16 part 3): owners and compliance officers ask for
//! it (`POST /v1/users/{id}/erasure`, 202 and a job under the tenant's policy)
//! and read its progress and, once done, its signed receipt
//! (`GET /v1/erasures/{id}`), and set the tenant's policy
//! (`GET`/`PATCH /v1/tenants/{id}/erasure-policy`). What it does:
//! `compliance::erasure`.

use actix_web::http::header;
use actix_web::{HttpResponse, get, patch, post, web};

use super::IdPath;
use crate::audit;
use crate::compliance::erasure::{self, Erasure, KIND};
use crate::error::ApiError;
use crate::ids::{ErasureId, TenantId, UserId};
use crate::jobs::{self, NewJob};
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::store::tenants::erasure_policy::{self, ErasurePolicy};

/// Erase a user under the tenant's policy (`anonymize` or `delete`).
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer" = [])), responses((status = 202, body = Erasure)))]
#[post("/users/{id}/erasure")]
pub async fn erase_user(
    scope: Guarded<Allow<perm::ManageCompliance>, TenantScope>,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&path)?;
    let id = ErasureId::new_random();
    let caller = scope.user_id().to_string();
    let erasure = scope
        .write(async |tx| {
            let policy = erasure::create(tx, id, user, &caller).await?;
            let mut job = NewJob::new(KIND, serde_json::json!({ "erasure_id": id }));
            job.idempotency_key = Some(format!("erasure:{id}"));
            job.max_attempts = 100;
            let job = jobs::enqueue(tx, job).await?;
            erasure::set_job(tx, id, job).await?;
            audit::record(
                tx,
                &caller,
                "user.erasure_requested",
                Some(("user", user.to_string())),
                serde_json::json!({ "erasure_id": id, "policy": policy }),
            )
            .await?;
            Ok(erasure::get(tx, id).await?)
        })
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/erasures/{id}")))
        .json(erasure))
}

/// An erasure: progress per table and, once done, its signed receipt.
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "Erasure id")),
    security(("bearer" = [])), responses((status = 200, body = Erasure)))]
#[get("/erasures/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::ManageCompliance>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Erasure>, ApiError> {
    let id = ErasureId::parse(&path)?;
    Ok(web::Json(
        scope
            .read(async |tx| Ok(erasure::get(tx, id).await?))
            .await?,
    ))
}

/// The caller's own tenant (another tenant's id answers like a missing one).
async fn own(scope: &TenantScope, path: &IdPath) -> Result<(), ApiError> {
    let id = TenantId::parse(path)?;
    if id != scope.tenant_id() {
        return Err(scope.not_found("tenant", *id.as_uuid()).await);
    }
    Ok(())
}

/// The tenant's user erasure policy.
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = ErasurePolicy)))]
#[get("/tenants/{id}/erasure-policy")]
pub async fn get_policy(
    scope: Guarded<Allow<perm::ManageCompliance>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<ErasurePolicy>, ApiError> {
    own(&scope, &path).await?;
    Ok(web::Json(
        scope
            .read(async |tx| Ok(erasure_policy::get(tx).await?))
            .await?,
    ))
}

/// Sets what a user erasure does with the user's messages: `anonymize` (kept,
/// attributed to the tombstone) or `delete`. Audited.
#[utoipa::path(tag = "compliance", request_body = ErasurePolicy,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = ErasurePolicy)))]
#[patch("/tenants/{id}/erasure-policy")]
pub async fn set_policy(
    scope: Guarded<Allow<perm::ManageCompliance>, TenantScope>,
    path: IdPath,
    body: super::JsonBody<ErasurePolicy>,
) -> Result<web::Json<ErasurePolicy>, ApiError> {
    own(&scope, &path).await?;
    if !matches!(body.erasure.as_str(), "anonymize" | "delete") {
        return Err(ApiError::validation(
            "`erasure` must be `anonymize` or `delete`",
        ));
    }
    let actor = scope.user_id().to_string();
    let to = body.into_inner();
    scope
        .write(async |tx| Ok(erasure_policy::set(tx, &actor, &to).await?))
        .await?;
    Ok(web::Json(to))
}
