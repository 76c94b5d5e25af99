//! Platform users (`crate::platform`): `GET /v1/platform/users`, `POST
//! /v1/platform/users`, `PATCH /v1/platform/users/{id}` (status, role). Platform
//! admins only (`Guarded<PlatformAdmin, _>`): an operator gets 403
//! `operator_forbidden`, a tenant token 403 `forbidden`. Each change is recorded
//! in the platform trail; a disabled user's tokens stop at once
//! (`scope::extract`) and its refresh fails.

use actix_web::{HttpResponse, get, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::platform::{PlatformUser, PlatformUserStatus, store};
use crate::scope::{Guarded, PlatformAdmin, PlatformScope};
use crate::validate;

#[derive(Serialize, ToSchema)]
pub struct PlatformUserList {
    pub items: Vec<PlatformUser>,
}

/// Every platform user, oldest first.
#[utoipa::path(tag = "platform", security(("bearer" = [])),
    responses((status = 200, body = PlatformUserList)))]
#[get("/platform/users")]
pub async fn list(
    scope: Guarded<PlatformAdmin, PlatformScope>,
) -> Result<web::Json<PlatformUserList>, ApiError> {
    let items = scope.read(async |tx| Ok(store::list(tx).await?)).await?;
    Ok(web::Json(PlatformUserList { items }))
}

fn platform_role(role: Role) -> Result<Role, ApiError> {
    if role.is_platform_role() {
        Ok(role)
    } else {
        Err(ApiError::validation(
            "`role` must be platform_admin or operator",
        ))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlatformUser {
    /// The issuer of the platform's provider (`platform_identity.issuer`).
    issuer: String,
    /// The provider's `sub` for this person.
    subject: String,
    email: String,
    /// `platform_admin` or `operator`.
    role: Role,
}

/// Let a person sign in to the platform: the provider's (issuer, subject) and
/// the role it gets.
#[utoipa::path(tag = "platform", request_body = CreatePlatformUser, security(("bearer" = [])),
    responses((status = 201, body = PlatformUser)))]
#[post("/platform/users")]
pub async fn create(
    scope: Guarded<PlatformAdmin, PlatformScope>,
    body: super::JsonBody<CreatePlatformUser>,
) -> Result<HttpResponse, ApiError> {
    crate::outbound::url::parse(&body.issuer)
        .map_err(|why| ApiError::validation(format!("`issuer`: {why}")))?;
    let issuer = body.issuer.trim_end_matches('/').to_owned();
    let subject = validate::text("subject", &body.subject, 256)?;
    let email = validate::email(&body.email)?;
    let role = platform_role(body.role)?;
    let user = scope
        .write(async |tx| {
            let user = store::create(tx, &issuer, &subject, &email, role).await?;
            let details = json!({ "user_id": user.id, "issuer": issuer, "subject": subject,
                                  "role": role });
            audit::record_platform(tx, scope.admin(), "platform_user_created", None, details)
                .await?;
            Ok(user)
        })
        .await?;
    Ok(super::created(
        format!("/v1/platform/users/{}", user.id),
        &user,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlatformUser {
    #[serde(default)]
    status: Option<PlatformUserStatus>,
    /// `platform_admin` or `operator`.
    #[serde(default)]
    role: Option<Role>,
}

/// Disable or re-enable a platform user, or change its role: its access
/// tokens follow at once.
#[utoipa::path(tag = "platform", request_body = UpdatePlatformUser, security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = PlatformUser)))]
#[patch("/platform/users/{id}")]
pub async fn update(
    scope: Guarded<PlatformAdmin, PlatformScope>,
    path: super::IdPath,
    body: super::JsonBody<UpdatePlatformUser>,
) -> Result<web::Json<PlatformUser>, ApiError> {
    let id = uuid::Uuid::parse_str(&path).map_err(|_| {
        ApiError::bad_request(
            crate::error::ErrorCode::InvalidId,
            "not a valid platform user id",
        )
    })?;
    let role = body.role.map(platform_role).transpose()?;
    let status = body.status;
    let not_found = || ApiError::NotFound {
        kind: "platform_user",
        id: None,
    };
    let user = scope
        .write(async |tx| {
            let Some(user) = store::update(tx, id, status, role).await? else {
                return Ok(None);
            };
            let details = json!({ "user_id": id, "status": status, "role": role });
            audit::record_platform(tx, scope.admin(), "platform_user_updated", None, details)
                .await?;
            Ok(Some(user))
        })
        .await?
        .ok_or_else(not_found)?;
    Ok(web::Json(user))
}
