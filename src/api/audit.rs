//! `/v1/audit`: a tenant's trail for its owners, admins and compliance officers;
//! the platform trail for platform admins; verification of a trail's chain.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::trail::Source;
use crate::audit::verify::Verification;
use crate::audit::{self, AuditEvent};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{RegionId, TenantId};
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Caller, Guarded, PlatformScope, perm};
use crate::state::AppState;
use crate::store::tenants;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page (of the same filters).
    #[param(max_length = 256)]
    pub cursor: Option<String>,
    /// Only events of this action (exact, e.g. `user_created`).
    #[param(min_length = 1, max_length = 100)]
    pub action: Option<String>,
    /// Only events by this actor (exact: a user id, or a platform admin's name).
    #[param(min_length = 1, max_length = 200)]
    pub actor: Option<String>,
    /// Events created at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Events created before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

impl ListQuery {
    /// The filter, checked: lengths bounded, `from` before `to`.
    fn filter(&self) -> Result<audit::ListFilter, ApiError> {
        let text = |name: &str, value: &Option<String>, max: usize| match value {
            Some(v) if v.is_empty() || v.chars().count() > max => Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("`{name}` must be 1–{max} characters"),
            )),
            _ => Ok(value.clone()),
        };
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                "`from` must be before `to`",
            ));
        }
        Ok(audit::ListFilter {
            action: text("action", &self.action, 100)?,
            actor: text("actor", &self.actor, 200)?,
            from: self.from,
            to: self.to,
        })
    }
}

/// The trail, newest first, optionally narrowed by action, actor and time.
#[utoipa::path(
    tag = "audit",
    params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<AuditEvent>)),
)]
#[get("/audit")]
pub async fn list(
    caller: Guarded<Allow<perm::ReadAudit>, Caller>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<Page<AuditEvent>>, ApiError> {
    let keyring = &state.keyring;
    let filter = query.filter()?;
    let paging = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let (limit, after) = (paging.limit()?, paging.keyset()?);
    let page = match caller.into_inner() {
        Caller::Platform(scope) => {
            scope
                .read(
                    async |tx| Ok(audit::list_platform(tx, keyring, limit, after, &filter).await?),
                )
                .await?
        }
        Caller::Tenant(scope) => {
            scope
                .read(async |tx| Ok(audit::list_tenant(tx, keyring, limit, after, &filter).await?))
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
    let signature = audit::checkpoint::checker(&state.signer);
    let report = match caller.into_inner() {
        Caller::Tenant(scope) => {
            own_trail_only(&scope, &query.tenant, &query.region).await?;
            audit::verify::verify(&Source::Tenant(&scope), &signature).await?
        }
        Caller::Platform(scope) => {
            let source = platform_source(&scope, &query.tenant, &query.region).await?;
            audit::verify::verify(&source, &signature).await?
        }
    };
    Ok(web::Json(report))
}

/// A tenant's user names only its own trail: another tenant's id answers like
/// a missing one (and is audited as a probe); a region's platform trail is 403.
async fn own_trail_only(
    scope: &crate::scope::TenantScope,
    tenant: &Option<String>,
    region: &Option<String>,
) -> Result<(), ApiError> {
    if region.is_some() {
        return Err(ApiError::Forbidden(
            "only platform admins read a region's platform trail",
        ));
    }
    if let Some(raw) = tenant {
        let id = TenantId::parse(raw)?;
        if id != scope.tenant_id() {
            return Err(scope.not_found("tenant", *id.as_uuid()).await);
        }
    }
    Ok(())
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Events created at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Events created before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Platform admins: the tenant whose trail to export.
    pub tenant: Option<String>,
    /// Platform admins: the region whose platform trail to export.
    pub region: Option<String>,
}

/// A trail as NDJSON for offline verification (docs/audit-format.md): a header,
/// the events with their seq and hash, the signed checkpoints covering them.
/// Signs a checkpoint of the trail's head first.
#[utoipa::path(
    tag = "audit",
    params(ExportQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = String)),
)]
#[get("/audit/export")]
pub async fn export(
    caller: Guarded<Allow<perm::ReadAudit>, Caller>,
    query: web::Query<ExportQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(ApiError::validation("`from` must be before `to`"));
    }
    let signer = state.signer.clone();
    let owned = match caller.into_inner() {
        Caller::Tenant(scope) => {
            own_trail_only(&scope, &query.tenant, &query.region).await?;
            scope
                .write(async |tx| Ok(audit::checkpoint::take_tenant(tx, &signer, "export").await?))
                .await?;
            Owned::Tenant(scope)
        }
        Caller::Platform(scope) => {
            let target = match platform_source(&scope, &query.tenant, &query.region).await? {
                Source::TenantOf { tenant, home, .. } => Target::Tenant(tenant, home),
                Source::Platform { region, .. } => Target::Platform(region),
                Source::Tenant(_) => {
                    return Err(ApiError::internal(anyhow::anyhow!("unreachable")));
                }
            };
            match &target {
                Target::Tenant(tenant, home) => {
                    scope
                        .write(async |tx| {
                            let tx = tx.enter_tenant(*tenant, home.clone()).await?;
                            Ok(audit::checkpoint::take_tenant(&tx, &signer, "export").await?)
                        })
                        .await?;
                }
                Target::Platform(region) => {
                    scope
                        .write(async |tx| {
                            Ok(
                                audit::checkpoint::take_platform(tx, &signer, region, "export")
                                    .await?,
                            )
                        })
                        .await?;
                }
            }
            Owned::Platform(scope, target)
        }
    };
    let range = audit::export::range(&owned.source(), query.from, query.to).await?;
    let header =
        audit::export::header(&owned.source(), range, &[signer.key_id().to_owned()]).await?;
    let start = Step::Events {
        after: range.map_or(0, |(lo, _)| lo - 1),
        last: range.map_or(0, |(_, hi)| hi),
    };
    let first = Ok::<_, ApiError>(web::Bytes::from(audit::export::ndjson(&[header])));
    let rest =
        futures_util::stream::unfold((owned, start, range), |(owned, step, range)| async move {
            let (chunk, next) = match step {
                Step::Done => return None,
                Step::Events { after, last } if after < last => {
                    match audit::export::events(&owned.source(), after, last).await {
                        Ok(lines) if !lines.is_empty() => {
                            let after = lines.last().map_or(last, |(seq, _)| *seq);
                            let values: Vec<_> = lines.into_iter().map(|(_, v)| v).collect();
                            (
                                Ok(audit::export::ndjson(&values)),
                                Step::Events { after, last },
                            )
                        }
                        Ok(_) => (Ok(Vec::new()), Step::Checkpoints),
                        Err(e) => (Err(e), Step::Done),
                    }
                }
                Step::Events { .. } => (Ok(Vec::new()), Step::Checkpoints),
                Step::Checkpoints => {
                    let (lo, hi) = range.unwrap_or((1, 0));
                    match audit::checkpoint::between(&owned.source(), lo - 1, hi).await {
                        Ok(found) => {
                            let values: Vec<_> =
                                found.iter().map(audit::export::checkpoint_line).collect();
                            (Ok(audit::export::ndjson(&values)), Step::Done)
                        }
                        Err(e) => (Err(e), Step::Done),
                    }
                }
            };
            if let Err(e) = &chunk {
                tracing::error!(error = %e, "audit export failed mid-stream");
            }
            Some((chunk.map(web::Bytes::from), (owned, next, range)))
        });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(futures_util::stream::once(async { first }).chain(rest)))
}

/// What an export's stream does next.
#[derive(Clone, Copy)]
enum Step {
    Events { after: i64, last: i64 },
    Checkpoints,
    Done,
}

/// A platform admin's export target.
enum Target {
    Tenant(TenantId, RegionId),
    Platform(RegionId),
}

/// The scope an export's stream owns while it reads page after page.
enum Owned {
    Tenant(crate::scope::TenantScope),
    Platform(PlatformScope, Target),
}

impl Owned {
    fn source(&self) -> Source<'_> {
        match self {
            Owned::Tenant(scope) => Source::Tenant(scope),
            Owned::Platform(scope, Target::Tenant(tenant, home)) => Source::TenantOf {
                scope,
                tenant: *tenant,
                home: home.clone(),
            },
            Owned::Platform(scope, Target::Platform(region)) => Source::Platform {
                scope,
                region: region.clone(),
            },
        }
    }
}
