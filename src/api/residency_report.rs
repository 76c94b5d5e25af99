//! `/v1/tenants/{id}/residency-report`: the tenant's signed residency report
//! (`tenancy::attest`) for platform admins and the tenant's owners and
//! compliance officers. Another tenant's id answers like a missing tenant.

use actix_web::{get, web};

use super::IdPath;
use crate::auth::Role;
use crate::db::Dialect;
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::limits::cost::RequestClass;
use crate::scope::{Authenticated, Caller, Guarded};
use crate::state::AppState;
use crate::store::tenants;
use crate::tenancy::attest::{self, SignedReport};

/// The tenant's residency report, signed (`GET /signing-keys` has the key):
/// policy and its history, home-region history, rows per table by region, the
/// regions that served the tenant recently, and findings.
#[utoipa::path(tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = SignedReport)))]
#[get("/tenants/{id}/residency-report")]
pub async fn get(
    caller: Guarded<Authenticated, Caller>,
    state: web::Data<AppState>,
    path: IdPath,
) -> Result<web::Json<SignedReport>, ApiError> {
    let id = TenantId::parse(&path)?;
    let cockroach = state.db.dialect() == Dialect::Cockroach;
    let region = state.region.to_string();
    let report = match caller.into_inner() {
        // Operators run regions; a tenant's compliance evidence is not theirs.
        Caller::Platform(scope) if scope.role() == Role::Operator => {
            return Err(ApiError::OperatorForbidden);
        }
        Caller::Platform(scope) => {
            let req = attest::Request {
                topology: &state.topology,
                actor: scope.admin(),
                region: &region,
                cockroach,
            };
            scope
                .read(async |tx| {
                    let tenant = tenants::get(tx, id).await?;
                    let scoped = tx.enter_tenant(id, tenant.home_region.clone()).await?;
                    Ok(attest::report(&scoped, &req).await?)
                })
                .await?
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            if !matches!(scope.role(), Role::Owner | Role::Compliance) {
                return Err(ApiError::Forbidden(
                    "the residency report is for owners and compliance officers",
                ));
            }
            let actor = scope.user_id().to_string();
            let req = attest::Request {
                topology: &state.topology,
                actor: &actor,
                region: &region,
                cockroach,
            };
            // One grouped count per table over the tenant's rows: bounded like
            // a search.
            scope
                .read_as(RequestClass::Search, async |tx| {
                    Ok(attest::report(tx, &req).await?)
                })
                .await?
        }
        Caller::Tenant(scope) => return Err(scope.not_found("tenant", *id.as_uuid()).await),
    };
    Ok(web::Json(SignedReport::sign(report, &state.signer)?))
}
