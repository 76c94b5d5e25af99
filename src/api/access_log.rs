//! `/v1/access-log`: the tenant's access log (`crate::access_log`) for its
//! owners and compliance officers: who read or changed what, when, folded per
//! user and path, newest first.

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::access_log::{self, AccessEntry};
use crate::auth::Role;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessLogQuery {
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(max_length = 256)]
    cursor: Option<String>,
    /// Only this user's accesses.
    user_id: Option<uuid::Uuid>,
}

#[utoipa::path(
    tag = "audit",
    params(AccessLogQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<AccessEntry>)),
)]
#[get("/access-log")]
pub async fn list(
    scope: Guarded<Allow<perm::ReadAudit>, TenantScope>,
    query: web::Query<AccessLogQuery>,
) -> Result<web::Json<Page<AccessEntry>>, ApiError> {
    if !matches!(scope.role(), Role::Owner | Role::Compliance) {
        return Err(ApiError::Forbidden(
            "the access log is for owners and compliance officers",
        ));
    }
    let query = query.into_inner();
    let paging = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let (limit, after) = (paging.limit()?, paging.keyset()?);
    let user = query.user_id.map(UserId::from_uuid);
    let page = scope
        .read(async |tx| Ok(access_log::list(tx, user, limit, after).await?))
        .await?;
    Ok(web::Json(page))
}
