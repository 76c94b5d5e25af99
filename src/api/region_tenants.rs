//! `GET /v1/regions/tenants`: how many tenants each region holds and, for a
//! region that is drained or unreachable, where its tenants are served now
//! (the console's region map: counts and failover arrows). Platform admins and
//! operators: counts and region ids only, no tenant named, so it is an
//! operational view (`PlatformOperator`); a tenant token is refused.
//!
//! The counts are one grouped read of the directory. The failover of a region
//! that is not serving is worked out per tenant homed there, by the routing's
//! own rule (`routing::decide::serving_region` under this node's health view),
//! so the map shows what the router does; only those regions' tenants are
//! read (as a drain's impact preview reads them).

use std::collections::BTreeMap;

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::ids::RegionId;
use crate::routing::decide::serving_region;
use crate::scope::{Guarded, PlatformOperator, PlatformScope};
use crate::state::AppState;
use crate::store::tenants::{self, counts as tally};
use crate::tenancy::TenantStatus;

/// Where a non-serving region's tenants are served now.
#[derive(Serialize, ToSchema)]
pub struct FailoverCount {
    /// The region serving them; `null`: none their residency allows is
    /// healthy (their requests answer 503).
    to: Option<RegionId>,
    /// Active tenants served there.
    tenants: u64,
}

/// One region's tenants.
#[derive(Serialize, ToSchema)]
pub struct RegionTenants {
    region: RegionId,
    /// Tenants homed here (erased tombstones left out).
    homed: u64,
    /// Of those, active.
    active: u64,
    /// Of those, suspended.
    suspended: u64,
    /// Active tenants this region serves now: its own while it is healthy,
    /// plus those failed over into it.
    served: u64,
    /// While the region is drained or unreachable: where its active tenants
    /// are served instead (empty while it serves).
    failover: Vec<FailoverCount>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionTenantCounts {
    /// Every region of the topology, in its order.
    items: Vec<RegionTenants>,
}

/// Tenant counts per region and the failover of regions not serving.
#[utoipa::path(
    tag = "regions",
    security(("bearer" = [])),
    responses((status = 200, body = RegionTenantCounts)),
)]
#[get("/regions/tenants")]
pub async fn tenant_counts(
    scope: Guarded<PlatformOperator, PlatformScope>,
    state: web::Data<AppState>,
) -> Result<web::Json<RegionTenantCounts>, ApiError> {
    let health = &state.routing.health;
    let down: Vec<RegionId> = state
        .topology
        .regions()
        .map(|r| r.id.clone())
        .filter(|r| !health.is_healthy(r))
        .collect();
    let (grouped, homed_in_down) = scope
        .read(async |tx| {
            let grouped = tally::by_home_region(tx).await?;
            let homed = if down.is_empty() {
                Vec::new()
            } else {
                tenants::homed_in(tx, &down).await?
            };
            Ok((grouped, homed))
        })
        .await?;
    let mut items: Vec<RegionTenants> = state
        .topology
        .regions()
        .map(|r| RegionTenants {
            region: r.id.clone(),
            homed: 0,
            active: 0,
            suspended: 0,
            served: 0,
            failover: Vec::new(),
        })
        .collect();
    let index = |items: &[RegionTenants], id: &RegionId| items.iter().position(|i| i.region == *id);
    for count in grouped {
        let Some(i) = index(&items, &count.region) else {
            continue;
        };
        let n = u64::try_from(count.tenants).unwrap_or_default();
        let item = &mut items[i];
        match count.status {
            TenantStatus::Active => item.active += n,
            TenantStatus::Suspended => item.suspended += n,
            TenantStatus::Erased => continue,
        }
        item.homed += n;
        if count.status == TenantStatus::Active && health.is_healthy(&count.region) {
            item.served += n;
        }
    }
    // Per region not serving: its active tenants, by where the router sends them.
    let mut moved: BTreeMap<(RegionId, Option<RegionId>), u64> = BTreeMap::new();
    for tenant in homed_in_down.iter().filter(|t| t.is_active()) {
        let to =
            serving_region(&state.topology, tenant, |r| health.is_healthy(r)).map(|r| r.id.clone());
        *moved.entry((tenant.home_region.clone(), to)).or_default() += 1;
    }
    for ((from, to), tenants) in moved {
        if let Some(t) = to.as_ref().and_then(|to| index(&items, to)) {
            items[t].served += tenants;
        }
        if let Some(f) = index(&items, &from) {
            items[f].failover.push(FailoverCount { to, tenants });
        }
    }
    Ok(web::Json(RegionTenantCounts { items }))
}
