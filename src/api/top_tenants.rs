//! `GET /v1/regions/{id}/top-tenants?by=&hours=&limit=`: the region's tenants
//! that used the most in the last hours (the console's "Top tenants"), from
//! the hourly usage samples (`limits::top`). Platform admins and operators:
//! finding a noisy neighbour is running the region, and the answer is the
//! directory's reduced view (id, slug, home region) with counters, no name,
//! plan or content, as `/v1/directory`. A tenant token is refused.

use actix_web::{get, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorCode};
use crate::ids::RegionId;
use crate::limits::history::hour_of;
use crate::limits::top::{self, Load, TenantLoad};
use crate::scope::{Guarded, PlatformOperator, PlatformScope};
use crate::state::AppState;

/// The widest window: 31 days of hourly samples (as `/v1/usage/history`).
const MAX_HOURS: u32 = 744;
const DEFAULT_HOURS: u32 = 24;
/// As every `limit` of the API.
const MAX_LIMIT: u32 = 200;
const DEFAULT_LIMIT: u32 = 10;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// Ranked by (default `requests`).
    pub by: Option<Load>,
    /// The window: this hour and the `hours - 1` before it, 1–744 (default 24).
    #[param(minimum = 1, maximum = 744)]
    pub hours: Option<u32>,
    /// Tenants listed, 1–200 (default 10).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopTenants {
    pub region: RegionId,
    pub by: Load,
    /// Start of the window (a whole UTC hour); it runs to now.
    pub from: DateTime<Utc>,
    /// Largest first; tenants with no sample in the window (idle) are not listed.
    pub items: Vec<TenantLoad>,
}

fn bounded(value: Option<u32>, default: u32, max: u32, name: &str) -> Result<u32, ApiError> {
    match value.unwrap_or(default) {
        n @ 1.. if n <= max => Ok(n),
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("`{name}` must be 1–{max}"),
        )),
    }
}

/// The tenants homed in a region with the most requests, jobs, storage or AI
/// tokens in the last hours.
#[utoipa::path(
    tag = "regions",
    params(("id" = String, Path, description = "Region id"), TopQuery),
    security(("bearer" = [])),
    responses((status = 200, body = TopTenants)),
)]
#[get("/regions/{id}/top-tenants")]
pub async fn top_tenants(
    scope: Guarded<PlatformOperator, PlatformScope>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TopQuery>,
) -> Result<web::Json<TopTenants>, ApiError> {
    let region = super::regions::known_region(&state, &path)?;
    let hours = bounded(query.hours, DEFAULT_HOURS, MAX_HOURS, "hours")?;
    let limit = bounded(query.limit, DEFAULT_LIMIT, MAX_LIMIT, "limit")?;
    let by = query.by.unwrap_or_default();
    let from = hour_of(Utc::now()) - TimeDelta::hours(i64::from(hours) - 1);
    let items = scope
        .read(async |tx| Ok(top::top(tx, &region, from, by, limit).await?))
        .await?;
    Ok(web::Json(TopTenants {
        region,
        by,
        from,
        items,
    }))
}
