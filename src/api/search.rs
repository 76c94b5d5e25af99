//! `/v1/search`: ranked full-text search over the caller's tenant's messages.

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Permission;
use crate::error::{ApiError, Problem};
use crate::pagination::{Page, PageQuery};
use crate::scope::TenantScope;
use crate::store::messages::{self, SearchHit};
use crate::validate;

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Words, "quoted phrases", -excluded words, `or`.
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(tag = "search", params(SearchQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<SearchHit>), (status = 400, body = Problem)))]
#[get("/search")]
pub async fn search(
    scope: TenantScope,
    query: web::Query<SearchQuery>,
) -> Result<web::Json<Page<SearchHit>>, ApiError> {
    scope.require(Permission::Read)?;
    let query = query.into_inner();
    let text = query
        .q
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("invalid_query", "`q` is required"))?;
    let text = validate::text("q", text, 256)?;
    let paging = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let (limit, offset) = (paging.limit()?, paging.offset()?);
    Ok(web::Json(
        scope
            .read(async |tx| messages::search(tx, &text, limit, offset).await)
            .await?,
    ))
}
