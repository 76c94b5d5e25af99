//! The HTTP API: one module per resource, thin handlers over `store`.
//!
//! Routes are registered through utoipa-actix-web, so `/openapi.json` is generated
//! from exactly the routes the app serves. Actix's own extractor errors (bad JSON,
//! wrong content type, oversized body, bad query) and unknown routes/methods are
//! answered as problem+json like every other error.

mod access_log;
mod audit;
mod auth;
mod calendar_accounts;
mod calendar_event_edits;
mod calendar_events;
mod calendar_grants;
mod calendar_health;
mod channels;
pub mod contract;
mod erasures;
mod exports;
mod health;
mod identity_providers;
mod impersonations;
mod jobs;
mod messages;
mod oidc;
mod platform_auth;
mod platform_users;
mod region_tenants;
mod regions;
mod relocation;
mod residency_report;
mod retention;
mod search;
mod signin;
mod signin_origin;
mod summaries;
mod tenant_ai;
mod tenant_encryption;
mod tenant_erasure;
mod tenant_keys;
mod tenants;
mod top_tenants;
mod usage;
mod users;
mod webhooks;

use actix_web::dev::ResourceDef;
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::{HttpRequest, web};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{AppExt, scope};

use crate::error::{ApiError, ErrorCode};

#[derive(OpenApi)]
#[openapi(
    info(title = "Meridian API", description = "Multi-tenant team collaboration, served from the \
        tenant's home region."),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route of the app.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::openapi_json)
        .service(health::signing_keys)
        .service(
            scope("/v1")
                // The hottest routes first: actix tries a scope's routes in
                // order, each `{id}` pattern by a regex capture, so the messages
                // page registered 33rd paid ~32 failed captures (8% of its
                // instructions, README "Benchmarks"). No other pattern matches
                // these paths, so their place changes no routing decision.
                .service(messages::page)
                .service(messages::post)
                .service(messages::get)
                .service(tenants::create)
                .service(tenants::list)
                .service(tenants::directory)
                .service(tenants::get)
                .service(tenants::patch)
                .service(tenant_erasure::erase)
                .service(tenant_erasure::restore)
                .service(tenant_erasure::get)
                .service(tenant_ai::get)
                .service(tenant_ai::patch)
                .service(tenant_encryption::get)
                .service(tenant_encryption::patch)
                .service(tenant_keys::get)
                .service(tenant_keys::rotate)
                .service(tenant_keys::destroy)
                .service(residency_report::get)
                .service(impersonations::start)
                .service(impersonations::list)
                .service(impersonations::revoke)
                .service(impersonations::get_policy)
                .service(impersonations::set_policy)
                .service(users::create)
                .service(users::list)
                .service(users::get)
                .service(users::patch)
                .service(users::delete)
                .service(channels::create)
                .service(channels::list)
                .service(channels::get)
                .service(channels::delete)
                .service(search::search)
                .service(audit::list)
                .service(audit::verify)
                .service(audit::export)
                .service(access_log::list)
                .service(usage::get)
                .service(usage::history)
                .service(usage::tenant_usage)
                .service(regions::list)
                .service(region_tenants::tenant_counts)
                .service(top_tenants::top_tenants)
                .service(regions::drain)
                .service(regions::undrain)
                .service(relocation::start)
                .service(relocation::status)
                .service(relocation::evacuate)
                .service(webhooks::create)
                .service(webhooks::list)
                .service(webhooks::get)
                .service(webhooks::patch)
                .service(webhooks::delete)
                .service(webhooks::deliveries)
                // Before `/calendar-accounts/{id}`-shaped routes: `sync` is no id.
                .service(calendar_accounts::sync_all)
                .service(calendar_accounts::create)
                .service(calendar_accounts::list)
                .service(calendar_accounts::get)
                .service(calendar_accounts::delete)
                .service(calendar_accounts::sync)
                .service(calendar_grants::create)
                .service(calendar_grants::list)
                .service(calendar_grants::delete)
                .service(calendar_accounts::link)
                .service(calendar_accounts::mine)
                .service(calendar_events::list)
                .service(calendar_events::create)
                .service(calendar_events::patch)
                .service(calendar_events::delete)
                .service(calendar_health::get)
                .service(calendar_health::check)
                .service(identity_providers::create)
                .service(identity_providers::list)
                .service(identity_providers::get)
                .service(identity_providers::patch)
                .service(identity_providers::delete)
                .service(identity_providers::test)
                // Before the tenant sign-in routes: `/auth/platform/oidc/start`
                // would match `/auth/{tenant_slug}/oidc/start` too.
                .service(platform_auth::start)
                .service(platform_auth::callback)
                .service(platform_auth::refresh)
                .service(platform_auth::logout)
                .service(platform_users::list)
                .service(platform_users::create)
                .service(platform_users::update)
                .service(auth::refresh)
                .service(auth::logout)
                .service(auth::me)
                .service(signin::sign_in_ldap)
                .service(signin_origin::origin)
                .service(oidc::start)
                .service(oidc::callback)
                .service(summaries::create)
                .service(summaries::get)
                .service(jobs::list)
                .service(jobs::get)
                .service(jobs::cancel)
                .service(exports::create)
                .service(exports::list)
                .service(exports::get)
                .service(exports::download)
                .service(erasures::erase_user)
                .service(erasures::get)
                .service(erasures::get_policy)
                .service(erasures::set_policy)
                .service(retention::get)
                .service(retention::put),
        );
}

/// The OpenAPI document of `routes`, with the contract (`contract::Contract`)
/// applied after the routes' paths are merged in: `ApiDoc`'s own modifiers run
/// before there are any.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::Modify;
    let mut doc = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts()
        .1;
    contract::Contract.modify(&mut doc);
    doc
}

/// The served OpenAPI document, rendered once at start.
pub struct OpenApiJson(pub String);

/// Path templates of the app with their methods, to tell "no such route" (404)
/// from "wrong method" (405, with the path's methods in `Allow`).
pub struct RouteIndex(Vec<(ResourceDef, String)>);

impl RouteIndex {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let routes = doc.paths.paths.iter().map(|(path, item)| {
            let methods = [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("OPTIONS", &item.options),
                ("HEAD", &item.head),
                ("PATCH", &item.patch),
                ("TRACE", &item.trace),
            ];
            let allow: Vec<&str> = methods
                .into_iter()
                .filter(|(_, op)| op.is_some())
                .map(|(method, _)| method)
                .collect();
            (ResourceDef::new(path.as_str()), allow.join(", "))
        });
        Self(routes.collect())
    }
}

/// The app's default service: unknown routes and methods.
pub async fn fallback(
    req: HttpRequest,
    index: web::Data<RouteIndex>,
) -> Result<actix_web::HttpResponse, ApiError> {
    // The router's (decoded) path, like the match that just failed.
    let path = req.match_info().as_str();
    match index.0.iter().find(|(def, _)| def.is_match(path)) {
        Some((_, allow)) => Err(ApiError::MethodNotAllowed {
            allow: allow.clone(),
        }),
        None => Err(ApiError::RouteNotFound),
    }
}

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, req| json_error(err, req).into())
}

pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        let detail = match err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::bad_request(ErrorCode::InvalidQuery, detail).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _| {
        ApiError::bad_request(ErrorCode::InvalidPath, err.to_string()).into()
    })
}

fn json_error(err: JsonPayloadError, req: &HttpRequest) -> ApiError {
    match err {
        JsonPayloadError::Payload(ref payload) if crate::body_deadline::is_timeout(payload) => {
            crate::body_deadline::timeout_error(req)
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
        }
        JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::PayloadTooLarge(
            format!("body of {length} bytes exceeds the limit of {limit} bytes"),
        ),
        JsonPayloadError::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("body exceeds the limit of {limit} bytes"))
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::validation(e.to_string()),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(
            ErrorCode::InvalidJson,
            format!("body is not valid JSON: {e}"),
        ),
        JsonPayloadError::Payload(PayloadError::Overflow) => {
            ApiError::PayloadTooLarge("body too large".into())
        }
        other => ApiError::bad_request(ErrorCode::InvalidBody, other.to_string()),
    }
}

/// A JSON request body. It is `web::Json` (the same limit, content type, deadline
/// and problem+json errors) with one more rule: a top-level array is refused.
/// serde reads a struct from an array too (`["general"]` as `{"name": "general"}`,
/// `[true]` as `{"force": true}`), which no client means and which `deny_unknown_fields`
/// cannot catch.
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let raw = web::Json::<Box<serde_json::value::RawValue>>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let raw = raw.await?.into_inner();
            let text = raw.get().trim_start();
            if text.starts_with('[') {
                return Err(
                    ApiError::validation("the body must be a JSON object, not an array").into(),
                );
            }
            serde_json::from_str(text)
                .map(JsonBody)
                .map_err(|e| json_error(JsonPayloadError::Deserialize(e), &req).into())
        })
    }
}

/// `201 Created` with a `Location` header.
pub(crate) fn created<T: serde::Serialize>(location: String, body: &T) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, location))
        .json(body)
}

/// Path ids arrive as strings so a malformed one is our `invalid_id` 400.
pub(crate) type IdPath = web::Path<String>;
