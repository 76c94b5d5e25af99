//! `/v1/users`: a tenant's members. Admins manage users; only owners create or
//! change owners and compliance officers (a compliance officer changes the
//! tenant's residency, so an admin who could make one, itself included, could
//! widen the residency); the last active owner cannot be demoted, disabled or
//! deleted.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::audit;
use crate::auth::{Permission, Role};
use crate::db::TenantTx;
use crate::error::{ApiError, ErrorCode};
use crate::ids::UserId;
use crate::pagination::{Page, PageQuery};
use crate::scope::TenantScope;
use crate::store::users::{self, User, UserChanges, UserStatus};
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    display_name: String,
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
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

/// Roles that carry more than an admin's rights: owners (everything) and
/// compliance officers (the residency policy). Only owners grant them, and only
/// owners demote, disable or delete their holders.
fn is_privileged(role: Role) -> bool {
    matches!(role, Role::Owner | Role::Compliance)
}

/// Owners and compliance officers are made and unmade by owners only.
fn check_grant_rights(scope: &TenantScope, touches_privileged: bool) -> Result<(), ApiError> {
    if touches_privileged {
        scope.require(Permission::ManageTenant)?;
    }
    Ok(())
}

/// Refuses a change that would leave the tenant without an active owner.
async fn keep_an_owner(
    tx: &TenantTx<'_>,
    target: &User,
    stays_active_owner: bool,
) -> Result<(), ApiError> {
    let is_active_owner = target.role == Role::Owner && target.status == UserStatus::Active;
    if is_active_owner && !stays_active_owner && users::count_active_owners(tx).await? <= 1 {
        return Err(ApiError::Conflict {
            code: ErrorCode::LastOwner,
            detail: "the tenant must keep at least one active owner".into(),
        });
    }
    Ok(())
}

/// Add a user (admin).
#[utoipa::path(tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = User)))]
#[post("/users")]
pub async fn create(
    scope: TenantScope,
    body: super::JsonBody<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    scope.require(Permission::ManageUsers)?;
    let role = tenant_role(body.role)?;
    check_grant_rights(&scope, is_privileged(role))?;
    let email = validate::email(&body.email)?;
    let display_name = validate::text("display_name", &body.display_name, 200)?;
    let limit = scope.tenant().limits().users;
    let actor = scope.user_id().to_string();
    let user = scope
        .write(async |tx| {
            // SERIALIZABLE makes this count-then-insert safe against concurrent creates.
            if users::count(tx).await? >= i64::from(limit) {
                return Err(ApiError::PlanLimit {
                    detail: format!("the plan allows {limit} users"),
                });
            }
            let user = users::create(tx, &email, &display_name, role).await?;
            audit::record(
                tx,
                &actor,
                "user_created",
                Some(("user", user.id.to_string())),
                json!({ "role": role }),
            )
            .await?;
            Ok(user)
        })
        .await?;
    Ok(created(format!("/v1/users/{}", user.id), &user))
}

/// The tenant's users, newest first.
#[utoipa::path(tag = "users", params(PageQuery), security(("bearer" = [])), responses((status = 200, body = Page<User>)))]
#[get("/users")]
pub async fn list(
    scope: TenantScope,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<User>>, ApiError> {
    scope.require(Permission::Read)?;
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read(async |tx| users::list(tx, limit, after).await)
            .await?,
    ))
}

#[utoipa::path(tag = "users", params(("id" = uuid::Uuid, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 200, body = User)))]
#[get("/users/{id}")]
pub async fn get(scope: TenantScope, path: IdPath) -> Result<web::Json<User>, ApiError> {
    scope.require(Permission::Read)?;
    let id = UserId::parse(&path)?;
    Ok(web::Json(
        scope.read(async |tx| users::get(tx, id).await).await?,
    ))
}

/// Change a user's name, role or status (admin; owners for changes that make or
/// unmake owners and compliance officers).
#[utoipa::path(tag = "users", request_body = PatchUser, params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer" = [])), responses((status = 200, body = User)))]
#[patch("/users/{id}")]
pub async fn patch(
    scope: TenantScope,
    path: IdPath,
    body: super::JsonBody<PatchUser>,
) -> Result<web::Json<User>, ApiError> {
    scope.require(Permission::ManageUsers)?;
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
    let user = scope
        .write(async |tx| {
            let target = users::get(tx, id).await?;
            let role_after = changes.role.unwrap_or(target.role);
            let status_after = changes.status.unwrap_or(target.status);
            let role_changes = changes.role.is_some_and(|r| r != target.role);
            let status_changes = changes.status.is_some_and(|s| s != target.status);
            // Read in this transaction, so the target's role is the current one.
            check_grant_rights(&scope, (role_changes || status_changes) && (is_privileged(target.role) || is_privileged(role_after)))?;
            keep_an_owner(tx, &target, role_after == Role::Owner && status_after == UserStatus::Active).await?;
            let user = users::update(tx, id, &changes).await?;
            let details = json!({ "before": { "role": target.role, "status": target.status }, "after": { "role": user.role, "status": user.status } });
            audit::record(tx, &actor, "user_updated", Some(("user", id.to_string())), details).await?;
            Ok(user)
        })
        .await?;
    Ok(web::Json(user))
}

/// Delete a user: their tokens stop working at once; their messages stay.
#[utoipa::path(tag = "users", params(("id" = uuid::Uuid, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 204)))]
#[delete("/users/{id}")]
pub async fn delete(scope: TenantScope, path: IdPath) -> Result<HttpResponse, ApiError> {
    scope.require(Permission::ManageUsers)?;
    let id = UserId::parse(&path)?;
    let actor = scope.user_id().to_string();
    scope
        .write(async |tx| {
            let target = users::get(tx, id).await?;
            check_grant_rights(&scope, is_privileged(target.role))?;
            keep_an_owner(tx, &target, false).await?;
            users::delete(tx, id).await?;
            audit::record(
                tx,
                &actor,
                "user_deleted",
                Some(("user", id.to_string())),
                json!({ "email": target.email }),
            )
            .await
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
