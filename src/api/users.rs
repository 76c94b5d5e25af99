//! `/v1/users`: a tenant's members. Admins manage users; the owner invariants
//! (only owners make or unmake owners and compliance officers; the last active
//! owner cannot be demoted, disabled or deleted) are the store's
//! (`store::owners`), checked in the writing transaction.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::store::owners;
use crate::store::users::{self, User, UserChanges, UserStatus};
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(min_length = 5, max_length = 254)]
    email: String,
    #[schema(min_length = 1, max_length = 200)]
    display_name: String,
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[schema(min_length = 1, max_length = 200)]
    display_name: Option<String>,
    role: Option<Role>,
    status: Option<UserStatus>,
}

fn tenant_role(role: Role) -> Result<Role, ApiError> {
    if role.is_tenant_role() {
        Ok(role)
    } else {
        Err(ApiError::validation(
            "`role` must be one of owner, admin, member, viewer, compliance",
        ))
    }
}

/// Add a user (admin).
#[utoipa::path(
    tag = "users",
    request_body = CreateUser,
    security(("bearer" = [])),
    responses((status = 201, body = User)),
)]
#[post("/users")]
pub async fn create(
    scope: Guarded<Allow<perm::ManageUsers>, TenantScope>,
    body: super::JsonBody<CreateUser>,
    state: web::Data<crate::state::AppState>,
) -> Result<HttpResponse, ApiError> {
    let role = tenant_role(body.role)?;
    let email = validate::email(&body.email)?;
    let display_name = validate::text("display_name", &body.display_name, 200)?;
    let limit = scope.tenant().limits().users;
    let actor = scope.user_id().to_string();
    let actor_role = scope.role();
    let user = scope
        .write(async |tx| {
            crate::limits::usage::ensure_user_room(tx, limit).await?;
            let user = owners::create(tx, actor_role, &email, &display_name, role).await?;
            // The address is personal: sealed in the event with the new user's
            // own key, so erasing the user (or the tenant's keys) erases it from
            // the trail too (`audit::record_personal`).
            audit::record_personal(
                tx,
                &state.keyring,
                *user.id.as_uuid(),
                &actor,
                "user_created",
                Some(("user", user.id.to_string())),
                json!({ "role": role }),
                &json!({ "email": email }),
            )
            .await?;
            Ok(user)
        })
        .await?;
    Ok(created(format!("/v1/users/{}", user.id), &user))
}

/// The tenant's users, newest first.
#[utoipa::path(
    tag = "users",
    params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<User>)),
)]
#[get("/users")]
pub async fn list(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<User>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(users::list(tx, limit, after).await?))
            .await?,
    ))
}

#[utoipa::path(
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 200, body = User)),
)]
#[get("/users/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<User>, ApiError> {
    let id = UserId::parse(&path)?;
    Ok(web::Json(
        scope.read(async |tx| Ok(users::get(tx, id).await?)).await?,
    ))
}

/// Change a user's name, role or status (admin; owners for changes that make or
/// unmake owners and compliance officers).
#[utoipa::path(
    tag = "users",
    request_body = PatchUser,
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 200, body = User)),
)]
#[patch("/users/{id}")]
pub async fn patch(
    scope: Guarded<Allow<perm::ManageUsers>, TenantScope>,
    path: IdPath,
    body: super::JsonBody<PatchUser>,
) -> Result<web::Json<User>, ApiError> {
    let id = UserId::parse(&path)?;
    let changes = UserChanges {
        display_name: body
            .display_name
            .as_deref()
            .map(|n| validate::text("display_name", n, 200))
            .transpose()?,
        role: body.role.map(tenant_role).transpose()?,
        status: body.status,
    };
    if changes.display_name.is_none() && changes.role.is_none() && changes.status.is_none() {
        return Err(ApiError::validation("nothing to change"));
    }
    let actor = scope.user_id().to_string();
    let actor_role = scope.role();
    let user = scope
        .write(async |tx| {
            let (target, user) = owners::update(tx, actor_role, id, &changes).await?;
            let details = json!({
                "before": { "role": target.role, "status": target.status },
                "after": { "role": user.role, "status": user.status },
            });
            let subject = Some(("user", id.to_string()));
            audit::record(tx, &actor, "user_updated", subject, details).await?;
            Ok(user)
        })
        .await?;
    Ok(web::Json(user))
}

/// Delete a user: their tokens stop working at once; their messages stay.
#[utoipa::path(
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 204)),
)]
#[delete("/users/{id}")]
pub async fn delete(
    scope: Guarded<Allow<perm::ManageUsers>, TenantScope>,
    path: IdPath,
    state: web::Data<crate::state::AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::parse(&path)?;
    let actor = scope.user_id().to_string();
    let actor_role = scope.role();
    scope
        .write(async |tx| {
            let target = owners::delete(tx, actor_role, id).await?;
            // Sealed with the user's key, as in `user_created`: a later erasure
            // of the user erases it from the trail.
            Ok(audit::record_personal(
                tx,
                &state.keyring,
                *id.as_uuid(),
                &actor,
                "user_deleted",
                Some(("user", id.to_string())),
                json!({}),
                &json!({ "email": target.email }),
            )
            .await?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
