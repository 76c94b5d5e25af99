//! `GET /v1/auth/{tenant_slug}/origin`: where a browser should sign in to a
//! tenant. The console asks it before sign-in and, when the answer is another
//! region's address, moves the browser there, so the session's cookie and every
//! later API call stay on one origin that may serve the tenant: never a
//! cross-origin redirect, which `api.js` refuses (`redirect: "error"`) and
//! which would drop the bearer token anyway.
//!
//! Answered by the node asked, never routed (the path is not a sign-in route to
//! `routing::middleware`). An unknown slug answers as if served here, so the
//! route tells no more about which tenants exist than the sign-in's own
//! `307 served_elsewhere` does. Without a token, it counts against the client
//! address's anonymous rate limit before the lookup.

use actix_web::{HttpRequest, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::ids::RegionId;
use crate::routing::{Decision, decide};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct SignInOrigin {
    /// The region whose node should serve the tenant's sign-in and API calls:
    /// this node's when `served_here`.
    region: RegionId,
    /// Sign in here: this node serves the tenant itself.
    served_here: bool,
    /// The base URL to sign in at instead (absent when `served_here`): that
    /// region's address, or on a tenant host the tenant's host at that region.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
}

/// Where to sign in to the tenant: here, or the base URL of a region that
/// serves it (its home, or where it fails over to).
#[utoipa::path(tag = "sessions",
    params(("tenant_slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, body = SignInOrigin)))]
#[get("/auth/{tenant_slug}/origin")]
pub async fn origin(
    req: HttpRequest,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<web::Json<SignInOrigin>, ApiError> {
    // No token, and a database lookup per slug: counted against the client
    // address's limit for requests without a valid token (`hop::client_ip`), as
    // a sign-in is, so a flood of slugs costs 429s, not transactions.
    crate::scope::signin::take_anonymous(crate::routing::hop::client_ip(&req), &state)?;
    let here = state.region.clone();
    let tenant = match crate::validate::slug(&slug) {
        Ok(slug) => state.directory.get_by_slug(&slug).await?,
        Err(_) => None,
    };
    let Some(tenant) = tenant else {
        return Ok(web::Json(SignInOrigin {
            region: here,
            served_here: true,
            origin: None,
        }));
    };
    let health = &state.routing.health;
    let region = match decide(&state.topology, &here, &tenant, |r| health.is_healthy(r)) {
        Decision::Serve => {
            return Ok(web::Json(SignInOrigin {
                region: here,
                served_here: true,
                origin: None,
            }));
        }
        // Forwarding would serve it from here too, one hop per request: the
        // browser is better off at the serving region itself.
        Decision::Forward(region) | Decision::Redirect(region) => region,
        Decision::Unavailable => return Err(ApiError::ResidencyUnavailable),
    };
    // On this tenant's own host, its host at the serving region (the host
    // binding holds there too); another tenant's host names no one here.
    let host_slug = state
        .routing
        .tenant_host_slug(&req, &state.topology)
        .filter(|host_slug| *host_slug == tenant.slug);
    let origin = state
        .routing
        .client_base(&state.topology, &region, host_slug.as_deref())
        .ok_or(ApiError::ResidencyUnavailable)?;
    Ok(web::Json(SignInOrigin {
        region,
        served_here: false,
        origin: Some(origin),
    }))
}
