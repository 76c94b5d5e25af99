//! `/v1/search`: ranked full-text search over the caller's tenant's messages.

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorCode};
use crate::limits::RequestClass;
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::store::messages::{self, SearchHit};
use crate::validate;

#[derive(Deserialize, IntoParams)]
// Named as query parameters so optional ones are documented as absent, not `null`.
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words, "quoted phrases", -excluded words, `or` (required; 1–256 characters).
    // An `Option` so a missing `q` is our own `invalid_query` with a clear detail.
    #[param(required = true, min_length = 1, max_length = 256)]
    q: Option<String>,
    /// Results per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(max_length = 256)]
    cursor: Option<String>,
}

#[utoipa::path(
    tag = "search",
    params(SearchQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<SearchHit>)),
    description = "Not for a tenant that encrypts its messages: 409 `search_unavailable_encrypted`.",
)]
#[get("/search")]
pub async fn search(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    query: web::Query<SearchQuery>,
) -> Result<web::Json<Page<SearchHit>>, ApiError> {
    if scope.tenant().encryption.messages {
        // No plaintext word of an encrypted tenant is stored (its bodies'
        // `body_tsv` is empty), so a search would find only messages posted
        // before encryption was turned on: refuse rather than mislead.
        return Err(ApiError::Conflict {
            code: ErrorCode::SearchUnavailableEncrypted,
            detail: "this tenant encrypts its messages, so they cannot be searched on the server"
                .into(),
        });
    }
    let query = query.into_inner();
    let text = query
        .q
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(ErrorCode::InvalidQuery, "`q` is required"))?;
    let text = validate::text("q", text, 256)?;
    let paging = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let (limit, offset) = (paging.limit()?, paging.offset()?);
    let candidates = scope.limits().cost.search_candidates;
    Ok(web::Json(
        scope
            .read_as(RequestClass::Search, async |tx| {
                Ok(messages::search(tx, &text, limit, offset, candidates).await?)
            })
            .await?,
    ))
}
