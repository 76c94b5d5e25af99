//! `/v1/calendar-accounts`: a tenant's admins connect CalDAV accounts (the
//! password or token is write-only: sealed, never shown), remove them and ask
//! for a sync; `/v1/me/calendars`: a user links calendars of those accounts
//! that an admin granted them (`calendar_grants`).
//! `POST /v1/calendar-accounts/sync`: a platform admin's sync of every tenant.

use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::audit;
use crate::calendar::store::{self, Account, Calendar, NewAccount};
use crate::calendar::sync::{SYNC_KIND, sync_job};
use crate::error::{ApiError, ErrorCode};
use crate::hooks::Hooks;
use crate::ids::{CalendarAccountId, JobId, RegionId, TenantId};
use crate::jobs::{self, NewJob};
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, PlatformAdmin, PlatformScope, TenantScope, perm};
use crate::secret::Secret;
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// `http[s]://host[:port]/path` of the CalDAV server; internal addresses
    /// are refused.
    base_url: String,
    #[schema(min_length = 1, max_length = 256)]
    username: String,
    /// HTTP Basic password (or give `token`). Write-only.
    #[schema(max_length = 1024)]
    password: Option<String>,
    /// Bearer token (or give `password`). Write-only.
    #[schema(max_length = 1024)]
    token: Option<String>,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    validate::no_control_chars(field, value)?;
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::validation(format!(
            "`{field}` must be 1 to {max} characters"
        )));
    }
    Ok(())
}

/// Connect a CalDAV account (admin). The answer never holds the credentials.
#[utoipa::path(tag = "calendar", request_body = CreateAccount, security(("bearer" = [])),
    responses((status = 201, body = Account)))]
#[post("/calendar-accounts")]
pub async fn create(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    hooks: web::Data<Hooks>,
    body: super::JsonBody<CreateAccount>,
) -> Result<HttpResponse, ApiError> {
    let base_url = body.base_url.trim();
    if let Some(why) = hooks.refuse_url(base_url) {
        return Err(ApiError::bad_request(
            ErrorCode::CalendarUrlRefused,
            format!("`base_url` is refused: {why}"),
        ));
    }
    check_text("username", &body.username, 256)?;
    let (auth_kind, secret) = match (&body.password, &body.token) {
        (Some(password), None) => ("password", password),
        (None, Some(token)) => ("token", token),
        _ => {
            return Err(ApiError::validation(
                "give exactly one of `password` and `token`",
            ));
        }
    };
    if secret.is_empty() || secret.len() > 1024 || secret.contains(['\r', '\n']) {
        return Err(ApiError::validation(format!(
            "`{auth_kind}` must be 1 to 1024 bytes on one line"
        )));
    }
    let secret = Secret::new(secret.clone());
    let new = NewAccount {
        base_url,
        username: body.username.trim(),
        auth_kind,
        secret: &secret,
    };
    let user = scope.user_id().to_string();
    let keyring = hooks.calendar.keyring.clone();
    let account = scope
        .write(async |tx| {
            let account = store::create_account(tx, &keyring, &new).await?;
            jobs::enqueue(tx, sync_job(account.id)).await?;
            audit::record(
                tx,
                &user,
                "calendar_account_created",
                Some(("calendar_account", account.id.to_string())),
                json!({ "base_url": base_url, "auth_kind": auth_kind }),
            )
            .await?;
            Ok(account)
        })
        .await?;
    Ok(created(
        format!("/v1/calendar-accounts/{}", account.id),
        &account,
    ))
}

#[utoipa::path(tag = "calendar", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Account>)))]
#[get("/calendar-accounts")]
pub async fn list(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Account>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(store::accounts_page(tx, limit, after).await?))
            .await?,
    ))
}

#[utoipa::path(tag = "calendar", params(("id" = uuid::Uuid, Path, description = "Calendar account id")),
    security(("bearer" = [])), responses((status = 200, body = Account)))]
#[get("/calendar-accounts/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Account>, ApiError> {
    let id = CalendarAccountId::parse(&path)?;
    Ok(web::Json(
        scope
            .read(async |tx| Ok(store::get_account(tx, id).await?))
            .await?,
    ))
}

/// Remove an account, its linked calendars and their synced events.
#[utoipa::path(tag = "calendar", params(("id" = uuid::Uuid, Path, description = "Calendar account id")),
    security(("bearer" = [])), responses((status = 204)))]
#[delete("/calendar-accounts/{id}")]
pub async fn delete(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    hooks: web::Data<Hooks>,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let id = CalendarAccountId::parse(&path)?;
    let user = scope.user_id().to_string();
    scope
        .write(async |tx| {
            store::delete_account(tx, id).await?;
            Ok(audit::record(
                tx,
                &user,
                "calendar_account_deleted",
                Some(("calendar_account", id.to_string())),
                json!({}),
            )
            .await?)
        })
        .await?;
    // Its opened credentials leave the bridge with it.
    if let Some(bridge) = hooks.calendar.bridges.existing(scope.tenant_id()) {
        bridge.forget(id);
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct SyncQueued {
    job_id: JobId,
}

/// Sync the account now (a job in the tenant's home region; its backoff is
/// ignored). Follow it with `GET /v1/jobs/{id}` and the account's status.
#[utoipa::path(tag = "calendar", params(("id" = uuid::Uuid, Path, description = "Calendar account id")),
    security(("bearer" = [])), responses((status = 202, body = SyncQueued)))]
#[post("/calendar-accounts/{id}/sync")]
pub async fn sync(
    scope: Guarded<Allow<perm::ManageCalendars>, TenantScope>,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let id = CalendarAccountId::parse(&path)?;
    let job_id = scope
        .write(async |tx| {
            store::get_account(tx, id).await?;
            Ok(jobs::enqueue(tx, sync_job(id)).await?)
        })
        .await?;
    Ok(HttpResponse::Accepted().json(SyncQueued { job_id }))
}

#[derive(Serialize, ToSchema)]
pub struct BulkSync {
    /// Tenants that got a sync job (every tenant with a calendar account).
    tenants: usize,
}

/// Sync every account of every tenant now (platform admins): one job per
/// tenant, in its home region.
#[utoipa::path(tag = "calendar", security(("bearer" = [])),
    responses((status = 202, body = BulkSync)))]
#[post("/calendar-accounts/sync")]
pub async fn sync_all(
    scope: Guarded<PlatformAdmin, PlatformScope>,
    hooks: web::Data<Hooks>,
) -> Result<HttpResponse, ApiError> {
    let report = scope
        .read(async |tx| Ok(crate::calendar::health::stored(tx).await?))
        .await?;
    let mut tenants: Vec<(TenantId, String)> = report
        .accounts
        .into_iter()
        .map(|a| (a.tenant_id, a.home_region))
        .collect();
    tenants.sort();
    tenants.dedup();
    for (tenant, home) in &tenants {
        let home = RegionId::parse(home).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let job = NewJob::new(SYNC_KIND, json!({ "all": true }));
        jobs::enqueue_for(&hooks.calendar.db, *tenant, &home, job).await?;
    }
    let admin = scope.admin().to_owned();
    scope
        .write(async |tx| {
            Ok(audit::record_platform(
                tx,
                &admin,
                "calendar_bulk_sync",
                None,
                json!({ "tenants": tenants.len() }),
            )
            .await?)
        })
        .await?;
    Ok(HttpResponse::Accepted().json(BulkSync {
        tenants: tenants.len(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkCalendar {
    account_id: CalendarAccountId,
    /// The calendar collection's path on the account's server, e.g.
    /// `/alice/work/`; stored canonical (`/` appended, unreserved escapes
    /// decoded). It must be granted to you or to everyone.
    #[schema(min_length = 1, max_length = 1024)]
    path: String,
    #[schema(max_length = 200)]
    display_name: Option<String>,
}

/// `path` in its one canonical spelling (`calendar::path`): grants and links
/// are compared on it.
pub(crate) fn canonical_path(path: &str) -> Result<String, ApiError> {
    crate::calendar::path::canonical(path)
        .ok_or_else(|| ApiError::validation(crate::calendar::path::REFUSED))
}

/// Link one of your calendars (a collection of a tenant account); it syncs now
/// and on the schedule. Refused (`calendar_not_granted`) unless a tenant admin
/// granted that collection to you or to everyone — admins included.
#[utoipa::path(tag = "calendar", request_body = LinkCalendar, security(("bearer" = [])),
    responses((status = 201, body = Calendar)))]
#[post("/me/calendars")]
pub async fn link(
    scope: Guarded<Allow<perm::UseCalendar>, TenantScope>,
    body: super::JsonBody<LinkCalendar>,
) -> Result<HttpResponse, ApiError> {
    let path = canonical_path(&body.path)?;
    let display_name = body.display_name.clone().unwrap_or_default();
    validate::no_control_chars("display_name", &display_name)?;
    if display_name.chars().count() > 200 {
        return Err(ApiError::validation(
            "`display_name` must be at most 200 characters",
        ));
    }
    let user = scope.user_id();
    let calendar = scope
        .write(async |tx| {
            let calendar = store::link(tx, user, body.account_id, &path, &display_name).await?;
            jobs::enqueue(tx, sync_job(body.account_id)).await?;
            Ok(calendar)
        })
        .await?;
    Ok(created("/v1/me/calendars".to_owned(), &calendar))
}

#[derive(Serialize, ToSchema)]
pub struct Calendars {
    items: Vec<Calendar>,
}

/// Your linked calendars.
#[utoipa::path(tag = "calendar", security(("bearer" = [])),
    responses((status = 200, body = Calendars)))]
#[get("/me/calendars")]
pub async fn mine(
    scope: Guarded<Allow<perm::UseCalendar>, TenantScope>,
) -> Result<web::Json<Calendars>, ApiError> {
    let user = scope.user_id();
    let items = scope
        .read(async |tx| Ok(store::my_calendars(tx, user).await?))
        .await?;
    Ok(web::Json(Calendars { items }))
}
