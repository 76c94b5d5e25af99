//! `/v1/tenants`: provisioning and the directory (platform admins); a tenant's
//! users may read their own tenant, and owners rename it. `/v1/directory`: the
//! directory's reduced view (id, slug, home region, residency, status) for
//! operators and platform admins: no name, plan, limits or anything else a
//! tenant set, so an operator can see where tenants live without their data.

use actix_web::{HttpResponse, get, patch, post, web};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{RegionId, TenantId};
use crate::pagination::{Page, PageQuery};
use crate::scope::{
    Caller, Guarded, PlatformAdmin, PlatformOperator, PlatformScope, TenantOrPlatformAdmin,
};
use crate::state::AppState;
use crate::store::tenants::{self, NewTenant, TenantChanges};
use crate::store::users::User;
use crate::tenancy::changes as tenant_rules;
use crate::tenancy::record::{Encryption, LimitOverrides, LimitPatch};
use crate::tenancy::{Limits, Plan, Residency, TenantRecord, TenantStatus};
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(min_length = 2, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*$")]
    slug: String,
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    home_region: String,
    residency: Option<Residency>,
    plan: Option<Plan>,
    /// Overrides of the plan's limits.
    limits: Option<LimitOverrides>,
    owner: NewOwner,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOwner {
    #[schema(min_length = 5, max_length = 254)]
    email: String,
    #[schema(min_length = 1, max_length = 200)]
    display_name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    plan: Option<Plan>,
    status: Option<TenantStatus>,
    /// Fields set to a value override the plan; fields set to `null` go back to it.
    #[schema(value_type = Option<LimitOverrides>)]
    limits: Option<LimitPatch>,
    /// `null` clears the policy (any region).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Residency>)]
    residency: Option<Option<Residency>>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct Tenant {
    id: TenantId,
    slug: String,
    name: String,
    home_region: RegionId,
    residency: Option<Residency>,
    plan: Plan,
    status: TenantStatus,
    /// Effective limits: the plan's, with overrides applied.
    limits: Limits,
    limit_overrides: LimitOverrides,
    /// The encryption policy (`/v1/tenants/{id}/encryption`).
    encryption: Encryption,
    config_version: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&TenantRecord> for Tenant {
    fn from(t: &TenantRecord) -> Self {
        Self {
            id: t.id,
            slug: t.slug.clone(),
            name: t.name.clone(),
            home_region: t.home_region.clone(),
            residency: t.residency.clone(),
            plan: t.plan,
            status: t.status,
            limits: t.limits(),
            limit_overrides: t.limit_overrides,
            encryption: t.encryption,
            config_version: t.config_version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantCreated {
    #[serde(flatten)]
    tenant: Tenant,
    owner: User,
}

/// Provision a tenant and its owner (platform admin).
#[utoipa::path(
    tag = "tenants",
    request_body = CreateTenant,
    security(("bearer" = [])),
    responses((status = 201, body = TenantCreated)),
)]
#[post("/tenants")]
pub async fn create(
    scope: Guarded<PlatformAdmin, PlatformScope>,
    state: web::Data<AppState>,
    body: super::JsonBody<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let home_region = RegionId::parse(&body.home_region).map_err(ApiError::validation)?;
    if let Some(limits) = &body.limits {
        limits.validate()?;
    }
    let new = NewTenant {
        slug: validate::slug(&body.slug)?,
        name: validate::text("name", &body.name, 200)?,
        home_region,
        residency: body.residency,
        plan: body.plan.unwrap_or(Plan::Free),
        limits: body.limits.unwrap_or_default(),
        owner_email: validate::email(&body.owner.email)?,
        owner_display_name: validate::text("owner.display_name", &body.owner.display_name, 200)?,
    };
    let (tenant, owner) = scope
        .write(async |tx| Ok(tenants::provision(tx, &state.topology, scope.admin(), &new).await?))
        .await?;
    let response = TenantCreated {
        tenant: Tenant::from(&tenant),
        owner,
    };
    state.directory.put(tenant).await;
    Ok(created(
        format!("/v1/tenants/{}", response.tenant.id),
        &response,
    ))
}

/// `GET /v1/tenants`: a page of the directory, or the tenant with one exact
/// slug, kept by the search and filters (all optional, combined with AND).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantListQuery {
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(max_length = 256)]
    cursor: Option<String>,
    /// Only the tenant with exactly this slug (a list of zero or one).
    #[param(min_length = 2, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*$")]
    slug: Option<String>,
    /// Slug or name contains this text (case-insensitive).
    #[param(min_length = 1, max_length = 100)]
    q: Option<String>,
    /// Homed in this region (a region id of the topology).
    #[param(min_length = 1, max_length = 63)]
    region: Option<String>,
    plan: Option<Plan>,
    status: Option<TenantStatus>,
}

/// `GET /v1/directory`: a page of the reduced view, or one exact slug.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(max_length = 256)]
    cursor: Option<String>,
    /// Only the tenant with exactly this slug (a list of zero or one).
    #[param(min_length = 2, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*$")]
    slug: Option<String>,
}

/// The tenant directory, newest first, or the tenant with `slug` (platform
/// admin), kept by `q`, `region`, `plan` and `status`: a script looks its
/// tenant up by slug instead of creating it twice; the console searches.
#[utoipa::path(tag = "tenants", params(TenantListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Tenant>)))]
#[get("/tenants")]
pub async fn list(
    scope: Guarded<PlatformAdmin, PlatformScope>,
    state: web::Data<AppState>,
    query: web::Query<TenantListQuery>,
) -> Result<web::Json<Page<Tenant>>, ApiError> {
    let query = query.into_inner();
    let bad = |what: &'static str| ApiError::bad_request(ErrorCode::InvalidQuery, what);
    let text = query.q.as_deref().map(str::trim);
    if text.is_some_and(|t| t.is_empty() || t.chars().count() > 100) {
        return Err(bad("`q` must be 1–100 characters"));
    }
    if let Some(region) = &query.region
        && state.topology.find(region).is_none()
    {
        return Err(bad("`region` is not a region of the topology"));
    }
    let filter = tenants::Filter {
        slug: None,
        region: query.region.as_deref(),
        plan: query.plan,
        status: query.status,
        text,
    };
    let page = list_page(&scope, query.limit, query.cursor, query.slug, filter).await?;
    Ok(web::Json(Page {
        items: page.items.iter().map(Tenant::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A tenant as an operator sees it: where it lives and whether it is served.
#[derive(Serialize, ToSchema)]
pub struct DirectoryEntry {
    id: TenantId,
    slug: String,
    home_region: RegionId,
    residency: Option<Residency>,
    status: TenantStatus,
}

impl From<&TenantRecord> for DirectoryEntry {
    fn from(t: &TenantRecord) -> Self {
        Self {
            id: t.id,
            slug: t.slug.clone(),
            home_region: t.home_region.clone(),
            residency: t.residency.clone(),
            status: t.status,
        }
    }
}

/// A page of the directory (both listings): `slug` checked, then `filter`.
async fn list_page(
    scope: &PlatformScope,
    limit: Option<u32>,
    cursor: Option<String>,
    slug: Option<String>,
    filter: tenants::Filter<'_>,
) -> Result<Page<TenantRecord>, ApiError> {
    let page_query = PageQuery { limit, cursor };
    let (limit, after) = (page_query.limit()?, page_query.keyset()?);
    let bad_slug = |_| {
        ApiError::bad_request(
            ErrorCode::InvalidQuery,
            "`slug` must be 2–63 lowercase letters, digits or dashes, not starting with a dash",
        )
    };
    let slug = slug
        .as_deref()
        .map(|s| validate::slug(s).map_err(bad_slug))
        .transpose()?;
    let filter = tenants::Filter {
        slug: slug.as_deref(),
        ..filter
    };
    scope
        .read(async |tx| Ok(tenants::search(tx, limit, after, &filter).await?))
        .await
}

/// The tenant directory's reduced view, newest first, or the tenant with `slug`
/// (operators and platform admins): id, slug, home region, residency, status.
#[utoipa::path(tag = "tenants", params(DirectoryQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<DirectoryEntry>)))]
#[get("/directory")]
pub async fn directory(
    scope: Guarded<PlatformOperator, PlatformScope>,
    query: web::Query<DirectoryQuery>,
) -> Result<web::Json<Page<DirectoryEntry>>, ApiError> {
    let query = query.into_inner();
    let filter = tenants::Filter::default();
    let page = list_page(&scope, query.limit, query.cursor, query.slug, filter).await?;
    Ok(web::Json(Page {
        items: page.items.iter().map(DirectoryEntry::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One tenant: any for platform admins, only their own for tenant users.
#[utoipa::path(
    tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)),
)]
#[get("/tenants/{id}")]
pub async fn get(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    path: IdPath,
) -> Result<web::Json<Tenant>, ApiError> {
    let id = TenantId::parse(&path)?;
    match caller.into_inner() {
        Caller::Platform(scope) => {
            let tenant = scope
                .read(async |tx| Ok(tenants::get(tx, id).await?))
                .await?;
            Ok(web::Json(Tenant::from(&tenant)))
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            scope.verify_user().await?;
            Ok(web::Json(Tenant::from(scope.tenant())))
        }
        Caller::Tenant(scope) => Err(scope.not_found("tenant", *id.as_uuid()).await),
    }
}

/// Change a tenant. Platform admins: anything. Owners: the name. Compliance
/// officers: the residency policy.
#[utoipa::path(
    tag = "tenants",
    request_body = PatchTenant,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)),
)]
#[patch("/tenants/{id}")]
pub async fn patch(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    path: IdPath,
    body: super::JsonBody<PatchTenant>,
) -> Result<web::Json<Tenant>, ApiError> {
    let id = TenantId::parse(&path)?;
    let body = body.into_inner();
    let changes = TenantChanges {
        name: body
            .name
            .as_deref()
            .map(|n| validate::text("name", n, 200))
            .transpose()?,
        plan: body.plan,
        status: body.status,
        limits: body.limits,
        residency: body.residency,
    };
    tenant_rules::check(&changes)?;
    // A new residency policy is checked against the home region (and any
    // relocation's target) inside the writing transaction, on the locked row
    // (`store::tenants`), never here against the directory cache: the cached
    // home region may be one a relocation has just switched away from.
    let topology = &state.topology;
    let updated = match caller.into_inner() {
        Caller::Platform(scope) => {
            scope
                .write(async |tx| {
                    Ok(tenants::update_as_platform(
                        tx,
                        topology,
                        &state.keyring,
                        scope.admin(),
                        id,
                        &changes,
                    )
                    .await?)
                })
                .await?
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            tenant_rules::check_own(&changes, scope.role())?;
            let actor = scope.user_id().to_string();
            scope
                .write(async |tx| Ok(tenants::update_own(tx, topology, &actor, &changes).await?))
                .await?
        }
        Caller::Tenant(scope) => return Err(scope.not_found("tenant", *id.as_uuid()).await),
    };
    let response = Tenant::from(&updated);
    state.directory.put(updated).await;
    Ok(web::Json(response))
}
