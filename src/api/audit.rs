//! `/v1/audit`: a tenant's trail for its owners, admins and compliance officers;
//! the platform trail for platform admins.

use actix_web::{get, web};

use crate::audit::{self, AuditEvent};
use crate::error::ApiError;
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Caller, Guarded, perm};

#[utoipa::path(
    tag = "audit",
    params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<AuditEvent>)),
)]
#[get("/audit")]
pub async fn list(
    caller: Guarded<Allow<perm::ReadAudit>, Caller>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<AuditEvent>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    let page = match caller.into_inner() {
        Caller::Platform(scope) => {
            scope
                .read(async |tx| Ok(audit::list_platform(tx, limit, after).await?))
                .await?
        }
        Caller::Tenant(scope) => {
            scope
                .read(async |tx| Ok(audit::list_tenant(tx, limit, after).await?))
                .await?
        }
    };
    Ok(web::Json(page))
}
