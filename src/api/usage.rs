//! `/v1/usage`: a tenant's limits and what it uses of them (owners and admins).
//! The report is made in `limits::usage`.

use actix_web::{get, web};

use crate::error::ApiError;
use crate::limits::usage::{self, Usage};
use crate::scope::{Allow, Guarded, TenantScope, perm};

#[utoipa::path(tag = "usage", security(("bearer" = [])), responses((status = 200, body = Usage)))]
#[get("/usage")]
pub async fn get(
    scope: Guarded<Allow<perm::ReadUsage>, TenantScope>,
) -> Result<web::Json<Usage>, ApiError> {
    let measured = scope.read(async |tx| Ok(usage::measure(tx).await?)).await?;
    Ok(web::Json(usage::report(
        scope.tenant(),
        scope.limits(),
        measured,
    )))
}
