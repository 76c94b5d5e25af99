//! Liveness, readiness and the OpenAPI document.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::OpenApiJson;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    region: String,
}

/// Liveness: the process answers.
#[utoipa::path(tag = "ops", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        region: state.region.to_string(),
    })
}

/// Readiness: the region is not drained and the database answers. Load balancers,
/// GeoDNS and peer nodes probe this.
#[utoipa::path(tag = "ops", responses((status = 200, body = Health)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::Unavailable("this node is shutting down"));
    }
    if state.routing.health.is_drained_here() {
        return Err(ApiError::Unavailable("this region is drained"));
    }
    if state.db.ready().await {
        Ok(HttpResponse::Ok().json(Health {
            status: "ready",
            region: state.region.to_string(),
        }))
    } else {
        Err(ApiError::Unavailable("database unreachable"))
    }
}

/// This document.
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 \
        document", content_type = "application/json", body = Object)),
)]
#[get("/openapi.json")]
pub async fn openapi_json(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}

/// The public keys that verify what this deployment signs (audit checkpoints,
/// erasure receipts, residency reports): this node's key first, then the keys it
/// trusts (`signing.trusted_keys`).
#[derive(Serialize, ToSchema)]
pub struct SigningKeys {
    keys: Vec<crate::crypto::signing::PublicKey>,
}

/// Public keys for verifying signed documents offline.
#[utoipa::path(tag = "ops", responses((status = 200, body = SigningKeys)))]
#[get("/signing-keys")]
pub async fn signing_keys(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(SigningKeys {
        keys: state.signer.public_keys(),
    })
}
