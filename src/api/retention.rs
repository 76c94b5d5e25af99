//! `GET`/`PUT /v1/tenants/{id}/retention`: the tenant's retention policy
//! (`compliance::retention`) for its owners and compliance officers and for
//! platform admins. A platform admin's request is routed to the tenant's home
//! region (`routing::middleware::platform_tenant`), where its trail is. The
//! decision and the write share the request's one transaction.

use actix_web::{get, put, web};

use super::IdPath;
use crate::compliance::retention::{self, Changer, Retention, RetentionPolicy};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::scope::{Allow, Caller, Guarded, perm};
use crate::store::tenants;

/// The retention in force (messages, audit), whether it is the plan's default,
/// and the plan's bounds.
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = Retention)))]
#[get("/tenants/{id}/retention")]
pub async fn get(
    caller: Guarded<Allow<perm::ManageCompliance>, Caller>,
    path: IdPath,
) -> Result<web::Json<Retention>, ApiError> {
    let id = TenantId::parse(&path)?;
    let found = match caller.into_inner() {
        Caller::Platform(scope) => {
            scope
                .read(async |tx| {
                    let home = tenants::get(tx, id).await?.home_region;
                    retention::get(&tx.enter_tenant(id, home).await?).await
                })
                .await?
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            scope.read(async |tx| retention::get(tx).await).await?
        }
        Caller::Tenant(scope) => return Err(scope.not_found("tenant", *id.as_uuid()).await),
    };
    Ok(web::Json(found))
}

/// Sets the tenant's retention. Message retention stays within the plan's
/// maximum (`422 retention_exceeds_plan`); audit retention below the plan's
/// floor is for platform admins only (`403 audit_retention_floor`). Audited.
#[utoipa::path(tag = "compliance", request_body = RetentionPolicy,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = Retention)))]
#[put("/tenants/{id}/retention")]
pub async fn put(
    caller: Guarded<Allow<perm::ManageCompliance>, Caller>,
    path: IdPath,
    body: super::JsonBody<RetentionPolicy>,
) -> Result<web::Json<Retention>, ApiError> {
    let id = TenantId::parse(&path)?;
    let to = body.into_inner();
    retention::validate(&to)?;
    let changed = match caller.into_inner() {
        Caller::Platform(scope) => {
            let actor = scope.admin().to_owned();
            scope
                .write(async |tx| {
                    let home = tenants::get(tx, id).await?.home_region;
                    let tx = tx.enter_tenant(id, home).await?;
                    retention::change(&tx, &actor, Changer::PlatformAdmin, &to).await
                })
                .await?
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            let actor = scope.user_id().to_string();
            scope
                .write(async |tx| retention::change(tx, &actor, Changer::TenantUser, &to).await)
                .await?
        }
        Caller::Tenant(scope) => return Err(scope.not_found("tenant", *id.as_uuid()).await),
    };
    Ok(web::Json(changed))
}
