//! `/v1/regions`: the topology and its health as this node sees it; drains
//! (platform admins). A drain is stored in the database, so every node routes
//! around the region and its `/readyz` fails (GeoDNS stops sending users there).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{RegionId, TenantId};
use crate::routing::decide::serving_region;
use crate::scope::{Authenticated, Caller, Guarded, PlatformOperator, PlatformScope};
use crate::state::AppState;
use crate::store::regions;
use crate::topology::Jurisdiction;

/// What a region is doing, as this node sees it. A drained region fails its
/// readiness probe on purpose, so `reachable` alone would call it down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionState {
    /// Not drained, and its node answers its readiness probe.
    Serving,
    /// Drained by an operator (whether or not its node still runs).
    Drained,
    /// Not drained, but its node does not answer its readiness probe.
    Unreachable,
}

impl RegionState {
    fn of(drained: bool, reachable: bool) -> Self {
        match (drained, reachable) {
            (true, _) => Self::Drained,
            (false, true) => Self::Serving,
            (false, false) => Self::Unreachable,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RegionView {
    id: RegionId,
    jurisdiction: Jurisdiction,
    public_endpoint: String,
    failover: Vec<RegionId>,
    state: RegionState,
    drained: bool,
    /// The node answered its last readiness probe (a drained node does not).
    reachable: bool,
    healthy: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Regions {
    /// The region of the node that answered.
    region: RegionId,
    regions: Vec<RegionView>,
}

#[utoipa::path(
    tag = "regions",
    security(("bearer" = [])),
    responses((status = 200, body = Regions)),
)]
#[get("/regions")]
pub async fn list(
    _caller: Guarded<Authenticated, Caller>,
    state: web::Data<AppState>,
) -> web::Json<Regions> {
    let health = &state.routing.health;
    let regions = state
        .topology
        .regions()
        .map(|r| {
            let status = health.status(&r.id).unwrap_or_default();
            RegionView {
                id: r.id.clone(),
                jurisdiction: r.jurisdiction,
                public_endpoint: r.public_endpoint.clone(),
                failover: r.failover.clone(),
                // This node is reachable to itself whatever its last self-probe said.
                state: RegionState::of(status.drained, status.reachable || r.id == state.region),
                drained: status.drained,
                reachable: status.reachable,
                healthy: health.is_healthy(&r.id),
            }
        })
        .collect();
    web::Json(Regions {
        region: state.region.clone(),
        regions,
    })
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Drain even when some tenants would have no region to go to.
    #[serde(default)]
    force: bool,
    /// Only report the impact.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TenantMove {
    tenant_id: TenantId,
    slug: String,
    /// Where the tenant is served while the region is drained.
    to: Option<RegionId>,
}

#[derive(Serialize, ToSchema)]
pub struct DrainReport {
    region: RegionId,
    drained: bool,
    failover: Vec<TenantMove>,
    /// Tenants whose residency allows no other healthy region: they get 503.
    unavailable: Vec<TenantMove>,
}

/// The topology's region named `raw`, else `404` (a region, not a tenant's id).
pub(crate) fn known_region(state: &AppState, raw: &str) -> Result<RegionId, ApiError> {
    state
        .topology
        .find(raw)
        .map(|r| r.id.clone())
        .ok_or(ApiError::NotFound {
            kind: "region",
            id: None,
        })
}

/// Drain a region: its tenants fail over to the next region their residency allows.
#[utoipa::path(
    tag = "regions",
    request_body = Option<DrainRequest>,
    params(("id" = String, Path, description = "Region id")),
    security(("bearer" = [])),
    responses((status = 200, body = DrainReport)),
)]
#[post("/regions/{id}/drain")]
pub async fn drain(
    scope: Guarded<PlatformOperator, PlatformScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    body: Result<super::JsonBody<Option<DrainRequest>>, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    let region = known_region(&state, &path)?;
    // The body is optional (absent or `null`), but one that was sent must be
    // valid: an `Option<Json>` would take a malformed body for an absent one, so a
    // typo in `{"dry_run": true}` would drain the region for real.
    let request = match body {
        Ok(body) => body.into_inner().unwrap_or_default(),
        Err(_) if !crate::body_deadline::announces_body(req.headers()) => DrainRequest::default(),
        Err(refused) => return Err(refused),
    };
    let health = &state.routing.health;
    // Served in `region` now: its own tenants, and tenants failed over into it
    // (homed in a region that is down or drained).
    let candidates: Vec<RegionId> = std::iter::once(region.clone())
        .chain(
            state
                .topology
                .regions()
                .map(|r| r.id.clone())
                .filter(|r| *r != region && !health.is_healthy(r)),
        )
        .collect();
    let tenants = scope
        .read(async |tx| Ok(crate::store::tenants::homed_in(tx, &candidates).await?))
        .await?;
    let (mut failover, mut unavailable) = (Vec::new(), Vec::new());
    for tenant in tenants {
        let served_here = serving_region(&state.topology, &tenant, |r| health.is_healthy(r))
            .is_some_and(|r| r.id == region);
        if !served_here {
            continue;
        }
        let to = serving_region(&state.topology, &tenant, |r| {
            *r != region && health.is_healthy(r)
        })
        .map(|r| r.id.clone());
        let entry = TenantMove {
            tenant_id: tenant.id,
            slug: tenant.slug.clone(),
            to: to.clone(),
        };
        if to.is_some() {
            failover.push(entry)
        } else {
            unavailable.push(entry)
        }
    }
    let mut report = DrainReport {
        region: region.clone(),
        drained: false,
        failover,
        unavailable,
    };
    if request.dry_run {
        return Ok(HttpResponse::Ok().json(report));
    }
    if !report.unavailable.is_empty() && !request.force {
        let slugs: Vec<&str> = report.unavailable.iter().map(|t| t.slug.as_str()).collect();
        return Err(ApiError::Conflict {
            code: ErrorCode::DrainStrandsTenants,
            detail: format!(
                "draining {region} leaves these tenants no allowed region: {}; use force to drain \
                    anyway",
                slugs.join(", ")
            ),
        }
        .into());
    }
    let details = json!({
        "region": region,
        "force": request.force,
        "failover": report.failover.len(),
        "unavailable": report.unavailable.len(),
    });
    scope
        .write(async |tx| {
            regions::set_drained(tx, &region, true, scope.admin()).await?;
            Ok(
                audit::record_platform(tx, scope.admin(), "region_drained", None, details.clone())
                    .await?,
            )
        })
        .await?;
    refresh_drained(&scope, &state).await?;
    report.drained = true;
    Ok(HttpResponse::Ok().json(report))
}

/// Applies the drained flags at once on this node (the others read them within
/// a probe interval).
async fn refresh_drained(scope: &PlatformScope, state: &AppState) -> Result<(), ApiError> {
    let drained = scope
        .read(async |tx| Ok(regions::drained(tx).await?))
        .await?;
    state.routing.health.set_drained(&drained);
    Ok(())
}

/// The answer to an undrain.
#[derive(Serialize, ToSchema)]
pub struct Undrained {
    region: RegionId,
    /// Always `false`: the region is in service again.
    drained: bool,
}

/// Return a drained region to service.
#[utoipa::path(
    tag = "regions",
    params(("id" = String, Path, description = "Region id")),
    security(("bearer" = [])),
    responses((status = 200, body = Undrained)),
)]
#[post("/regions/{id}/undrain")]
pub async fn undrain(
    scope: Guarded<PlatformOperator, PlatformScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let region = known_region(&state, &path)?;
    scope
        .write(async |tx| {
            regions::set_drained(tx, &region, false, scope.admin()).await?;
            Ok(audit::record_platform(
                tx,
                scope.admin(),
                "region_undrained",
                None,
                json!({ "region": region }),
            )
            .await?)
        })
        .await?;
    refresh_drained(&scope, &state).await?;
    Ok(HttpResponse::Ok().json(Undrained {
        region,
        drained: false,
    }))
}
