//! `/v1/calendar-accounts/{id}/grants`: a tenant admin grants a collection of a
//! CalDAV account to one user or to everyone in the tenant, lists and revokes
//! grants. `POST /v1/me/calendars` links only granted collections; revoking
//! removes the links (and their events) no other grant covers, in the same
//! transaction. One rule for everyone: an admin needs a grant to link too (and
//! may grant themselves one).

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::calendar_accounts::canonical_path;
use super::{IdPath, created};
use crate::audit;
use crate::calendar::store::{self, Grant};
use crate::error::ApiError;
use crate::ids::{CalendarAccountId, CalendarGrantId, UserId};
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    /// The collection's path on the account's server, e.g. `/bob/work/`;
    /// stored canonical, as links store it (`/` appended, unreserved escapes
    /// decoded, ambiguous spellings refused).
    #[schema(min_length = 1, max_length = 1024)]
    path: String,
    /// The user it is granted to; `null` (or absent): everyone in the tenant.
    #[serde(default)]
    user_id: Option<UserId>,
}

/// Grant a collection of the account to a user, or to everyone (admin).
#[utoipa::path(tag = "calendar", request_body = CreateGrant,
    params(("id" = uuid::Uuid, Path, description = "Calendar account id")),
    security(("bearer" = [])), responses((status = 201, body = Grant)))]
#[post("/calendar-accounts/{id}/grants")]
pub async fn create(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    path: IdPath,
    body: super::JsonBody<CreateGrant>,
) -> Result<HttpResponse, ApiError> {
    let account = CalendarAccountId::parse(&path)?;
    let collection = canonical_path(&body.path)?;
    let user = scope.user_id();
    let grant = scope
        .write(async |tx| {
            let grant = store::create_grant(tx, account, &collection, body.user_id, user).await?;
            audit::record(
                tx,
                &user.to_string(),
                "calendar_grant_created",
                Some(("calendar_account", account.to_string())),
                json!({ "grant_id": grant.id, "path": grant.path, "user_id": grant.user_id }),
            )
            .await?;
            Ok(grant)
        })
        .await?;
    Ok(created(
        format!("/v1/calendar-accounts/{account}/grants/{}", grant.id),
        &grant,
    ))
}

/// The account's grants, newest first (admin).
#[utoipa::path(tag = "calendar", params(("id" = uuid::Uuid, Path, description = "Calendar account id"),
    PageQuery), security(("bearer" = [])), responses((status = 200, body = Page<Grant>)))]
#[get("/calendar-accounts/{id}/grants")]
pub async fn list(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    path: IdPath,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Grant>>, ApiError> {
    let account = CalendarAccountId::parse(&path)?;
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(store::grants_page(tx, account, limit, after).await?))
            .await?,
    ))
}

/// Revoke a grant (admin). The links it alone covered go with it, with their
/// synced events, in the same transaction; a later sync does not bring them back.
#[utoipa::path(tag = "calendar",
    params(("id" = uuid::Uuid, Path, description = "Calendar account id"),
        ("grant_id" = uuid::Uuid, Path, description = "Grant id")),
    security(("bearer" = [])), responses((status = 204)))]
#[delete("/calendar-accounts/{id}/grants/{grant_id}")]
pub async fn delete(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let account = CalendarAccountId::parse(&path.0)?;
    let id = CalendarGrantId::parse(&path.1)?;
    let user = scope.user_id().to_string();
    scope
        .write(async |tx| {
            let (grant, unlinked) = store::revoke_grant(tx, account, id).await?;
            Ok(audit::record(
                tx,
                &user,
                "calendar_grant_revoked",
                Some(("calendar_account", account.to_string())),
                json!({ "grant_id": grant.id, "path": grant.path, "user_id": grant.user_id,
                        "links_removed": unlinked }),
            )
            .await?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
