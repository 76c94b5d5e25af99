//! `/v1/calendar-health`: every tenant's calendar accounts for platform staff
//! (admins and operators) — the stored sync state, and an active check of the
//! servers of the tenants homed in the answering node's region. State only:
//! no paths, user names, credentials or events (`calendar::health`).

use actix_web::{get, post, web};

use crate::calendar::health::{self, CheckReport, HealthReport};
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::scope::{Guarded, PlatformOperator, PlatformScope};

/// Every account's last sync, lag and error, from stored state.
#[utoipa::path(tag = "calendar", security(("bearer" = [])),
    responses((status = 200, body = HealthReport)))]
#[get("/calendar-health")]
pub async fn get(
    scope: Guarded<PlatformOperator, PlatformScope>,
) -> Result<web::Json<HealthReport>, ApiError> {
    Ok(web::Json(
        scope.read(async |tx| health::stored(tx).await).await?,
    ))
}

/// Check every account's server now (tenants homed in this node's region),
/// `calendar.health_concurrency` at once.
#[utoipa::path(tag = "calendar", security(("bearer" = [])),
    responses((status = 200, body = CheckReport)))]
#[post("/calendar-health/check")]
pub async fn check(
    _scope: Guarded<PlatformOperator, PlatformScope>,
    hooks: web::Data<Hooks>,
) -> Result<web::Json<CheckReport>, ApiError> {
    Ok(web::Json(health::check(&hooks.calendar).await?))
}
