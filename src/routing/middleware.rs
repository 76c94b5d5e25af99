//! Applies the routing rule to every `/v1` request that carries a tenant token
//! (or names its tenant otherwise: a sign-in, a platform admin's request about a
//! tenant's impersonations), before any handler runs: serve, forward one signed
//! hop, redirect, or 503.
//! Requests without a valid token are served locally (the extractor answers them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};

use super::decide::{Decision, decide};
use super::health::RegionHealth;
use super::hop::{self, HopCheck, HopRequest, HopSigner};
use crate::config::RoutingSettings;
use crate::error::{ApiError, ErrorCode};
use crate::ids::RegionId;
use crate::metrics::RoutingOutcome;
use crate::state::AppState;
use crate::tenancy::TenantRecord;
use crate::topology::Topology;

pub const SERVED_BY: HeaderName = HeaderName::from_static("x-meridian-region");
pub const HOME: HeaderName = HeaderName::from_static("x-meridian-home-region");

/// Routing configuration of a node: where peers are, how to sign hops.
pub struct RoutingState {
    hop: HopSigner,
    /// `http.body_limit_bytes`: bodies are buffered up to it to sign and verify hops.
    body_limit: usize,
    pub(crate) peers: BTreeMap<RegionId, String>,
    redirect_to_peers: bool,
    pub health: RegionHealth,
    /// `api_domain`: `{slug}.<api_domain>` is a tenant's host (`routing::host`).
    api_domain: String,
}

impl RoutingState {
    pub fn new(
        settings: &RoutingSettings,
        topology: &Topology,
        here: &RegionId,
        body_limit: usize,
        api_domain: &str,
        peer_scheme: &str,
    ) -> Self {
        let peers = topology
            .regions()
            .map(|r| {
                let url = settings
                    .peers
                    .get(r.id.as_str())
                    .cloned()
                    .unwrap_or_else(|| format!("{peer_scheme}://{}", r.local_address));
                (r.id.clone(), url.trim_end_matches('/').to_owned())
            })
            .collect();
        Self {
            hop: HopSigner::new(settings.hop_secret.expose()),
            body_limit,
            peers,
            redirect_to_peers: settings.redirect_to_peers,
            health: RegionHealth::new(here.clone(), topology.regions().map(|r| r.id.clone())),
            api_domain: api_domain.to_owned(),
        }
    }

    /// Where a client is sent for `region`: the region's base URL, or on a
    /// tenant host (`tenant_slug`) that tenant's host at the region, so the
    /// client's later requests keep their host binding. `None` when the region
    /// has no address a client can be given.
    pub fn client_base(
        &self,
        topology: &Topology,
        region: &RegionId,
        tenant_slug: Option<&str>,
    ) -> Option<String> {
        let base = self.client_url(topology, region)?;
        match tenant_slug {
            Some(slug) => super::host::region_host(&base, slug, region.as_str(), &self.api_domain),
            None => Some(base),
        }
    }

    /// The tenant named by the request's host, when it is a tenant host
    /// (`{slug}.<api_domain>` or `{slug}.{region}.<api_domain>`), for a request
    /// served here without a hop.
    pub fn tenant_host_slug(
        &self,
        req: &actix_web::HttpRequest,
        topology: &Topology,
    ) -> Option<String> {
        let host = super::host::requested_host(req, false)?;
        self.host_slug(&host, topology).map(str::to_owned)
    }

    /// The tenant slug of `host` when it is one of the tenant hosts.
    fn host_slug<'h>(&self, host: &'h str, topology: &Topology) -> Option<&'h str> {
        let is_region = |label: &str| topology.find(label).is_some();
        super::host::tenant_slug(host, &self.api_domain, is_region)
    }

    /// Where a client is sent for `region`.
    fn client_url(&self, topology: &Topology, region: &RegionId) -> Option<String> {
        if self.redirect_to_peers {
            return self.peers.get(region).cloned();
        }
        topology
            .get(region)
            .map(|r| r.public_endpoint.trim_end_matches('/').to_owned())
    }
}

/// The per-worker HTTP client used to forward (awc clients are not shared across threads).
pub struct Forwarder {
    client: awc::Client,
}

impl Forwarder {
    /// `tls`: how https peers are verified (`server_tls::hop_client_config`).
    pub fn new(
        timeout: Duration,
        source: Option<std::net::IpAddr>,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            client: crate::server_tls::hop_client(tls, Some(timeout), source),
        }
    }
}

/// Connection-level headers that must not be passed through a proxy hop.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    ) || name.as_str() == hop::HEADER
        // Set by the forwarder from the host it checked and the peer it served,
        // never passed through.
        || name.as_str() == super::host::FORWARDED_HOST
        || name.as_str() == hop::CLIENT_HEADER
}

fn with_region_headers(
    mut response: ServiceResponse<BoxBody>,
    here: &RegionId,
    tenant: Option<&TenantRecord>,
) -> ServiceResponse<BoxBody> {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(here.as_str()) {
        headers.insert(SERVED_BY, value);
    }
    if let Some(value) = tenant.and_then(|t| HeaderValue::from_str(t.home_region.as_str()).ok()) {
        headers.insert(HOME, value);
    }
    response
}

fn answer(req: ServiceRequest, err: ApiError) -> ServiceResponse<BoxBody> {
    req.into_response(actix_web::ResponseError::error_response(&err))
}

/// The `Authorization` values a marker is bound to (see `hop::HopRequest`).
fn authorization_of(req: &ServiceRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    for value in req.headers().get_all(header::AUTHORIZATION) {
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(b'\n');
    }
    bytes
}

/// What routing decides on, forwards, redirects to and signs: the router's `/v1`
/// path (`routing::path`) and the query as received. `Ok(None)`: not a `/v1` path.
fn api_target(req: &ServiceRequest) -> Result<Option<String>, ApiError> {
    let Some(path) = super::path::api_path(req.match_info().as_str())? else {
        return Ok(None);
    };
    Ok(Some(match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }))
}

/// Reads the whole body, bounded by `http.body_limit_bytes` like every extractor.
async fn buffer_body(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, ApiError> {
    let stream = actix_web::body::BodyStream::new(req.take_payload());
    match actix_web::body::to_bytes_limited(stream, limit).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(err)) if crate::body_deadline::is_timeout(&err) => {
            Err(crate::body_deadline::timeout_error(req.request()))
        }
        Ok(Err(err)) => Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            err.to_string(),
        )),
        Err(_) => Err(ApiError::PayloadTooLarge(format!(
            "body exceeds the limit of {limit} bytes"
        ))),
    }
}

/// The verdict on a request's hop marker (`None`: no marker), checked once per
/// request and kept in its extensions: `request_id` adopts a valid marker's id,
/// `route` refuses an invalid one. The body is read to check its digest and put
/// back as the payload, so the marker is verified before any handler runs.
///
/// Its future (the body's buffering, the marker's check) is boxed, and only made
/// for a request that carries a marker: `request_id` and `route` await this on
/// every request, and every large future inside theirs is copied whole each
/// time theirs is moved (README "Benchmarks": with the directory's miss path
/// also inside, ≈ 15k instructions of `memcpy` per request).
pub async fn verify_hop(req: &mut ServiceRequest) -> Option<HopCheck> {
    if let Some(verdict) = req.extensions().get::<HopCheck>() {
        return Some(verdict.clone());
    }
    let marker = req.headers().get(hop::HEADER)?.clone();
    let verdict = Box::pin(check_hop(req, &marker)).await;
    req.extensions_mut().insert(verdict.clone());
    Some(verdict)
}

async fn check_hop(req: &mut ServiceRequest, marker: &HeaderValue) -> HopCheck {
    let (Ok(marker), Some(state)) = (
        marker.to_str(),
        req.app_data::<web::Data<AppState>>().cloned(),
    ) else {
        return HopCheck::Invalid;
    };
    // Peers only forward `/v1` requests, in the form routing decided on.
    let Ok(Some(target)) = api_target(req) else {
        return HopCheck::Invalid;
    };
    // A genuine forwarder never sends more than the limit it shares with us.
    let Ok(body) = buffer_body(req, state.routing.body_limit).await else {
        return HopCheck::Invalid;
    };
    req.set_payload(body.clone().into());
    let authorization = authorization_of(req);
    let host = req
        .headers()
        .get(super::host::FORWARDED_HOST)
        .map_or(Ok(""), |v| v.to_str());
    let Ok(host) = host else {
        return HopCheck::Invalid;
    };
    let Ok(client) = req
        .headers()
        .get(hop::CLIENT_HEADER)
        .map_or(Ok(""), |v| v.to_str())
    else {
        return HopCheck::Invalid;
    };
    state.routing.hop.check(
        marker,
        &HopRequest {
            method: req.method().as_str(),
            path_and_query: &target,
            authorization: &authorization,
            body: &body,
            host,
            client,
        },
    )
}

/// The tenant a token-less sign-in request names (`scope::signin`): the slug of
/// `POST /v1/auth/{tenant_slug}/ldap` and `GET /v1/auth/{tenant_slug}/oidc/start`,
/// the `state`'s prefix for `GET /v1/auth/oidc/callback`, and for `POST
/// /v1/auth/refresh` and `/v1/auth/logout` the refresh token's prefix in the
/// body (or, without one there, in the console's cookie). That body is buffered (bounded like every body) and put back, so the
/// handler parses the very bytes decided on here. `None`: no such request, or
/// no tenant by that name (the extractor answers 401).
async fn signin_tenant(
    req: &mut ServiceRequest,
    state: &AppState,
    target: &str,
) -> Result<Option<std::sync::Arc<TenantRecord>>, ApiError> {
    use actix_web::http::Method;
    #[derive(serde::Deserialize)]
    struct Named {
        refresh_token: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Callback {
        state: String,
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let method = req.method().clone();
    let slug = path.strip_prefix("/v1/auth/").and_then(|rest| {
        match method {
            Method::POST => rest.strip_suffix("/ldap"),
            Method::GET => rest.strip_suffix("/oidc/start"),
            _ => None,
        }
        // `/v1/auth/platform/…` is the platform's own sign-in: no tenant.
        .filter(|slug| *slug != "platform" && crate::validate::slug(slug).is_ok())
    });
    let found = if method == Method::GET && path == "/v1/auth/oidc/callback" {
        let named = web::Query::<Callback>::from_query(query)
            .ok()
            .and_then(|q| crate::identity::oidc::tenant_of_state(&q.state));
        match named {
            Some(id) => state.directory.get(id).await?,
            None => None,
        }
    } else if let Some(slug) = slug {
        // The slug is looked up in the database: the client's anonymous limit
        // is taken first, so a refused flood costs no transaction (the
        // extractor then does not take it again).
        let ip = super::hop::client_ip(req.request());
        crate::scope::signin::take_anonymous(ip, state)?;
        req.extensions_mut()
            .insert(crate::scope::signin::AnonymousCounted);
        state.directory.get_by_slug(slug).await?
    } else if method == Method::POST && matches!(path, "/v1/auth/refresh" | "/v1/auth/logout") {
        let body = buffer_body(req, state.routing.body_limit).await?;
        req.set_payload(body.clone().into());
        // The body's token (an API client), else the console's cookie: the
        // rule `api::auth` applies to the same request.
        let token = serde_json::from_slice::<Named>(&body)
            .ok()
            .and_then(|named| named.refresh_token)
            .or_else(|| crate::sessions::cookie::presented(req.request()));
        let named = token.and_then(|token| crate::sessions::tenant_of(&token));
        match named {
            Some(id) => state.directory.get(id).await?,
            None => None,
        }
    } else {
        None
    };
    if let Some(tenant) = &found {
        req.extensions_mut()
            .insert(crate::scope::SignInTenant(tenant.clone()));
    }
    Ok(found)
}

/// The tenant a platform admin's request about one tenant's own rows names:
/// in its path, `/v1/tenants/{id}/impersonations[/…]`, `/v1/tenants/{id}/keys[/…]`
/// (key versions, the ciphertexts left to re-encrypt, rotation, destruction),
/// `/v1/tenants/{id}/residency-report` (counts every table's rows of the tenant),
/// `/v1/tenants/{id}/retention`, `/v1/tenants/{id}/usage`, `PATCH` and `DELETE
/// /v1/tenants/{id}` (the change's audit event and outbox row, the erasure's
/// row), `/v1/tenants/{id}/erasure` and `/restore`; in its query, `GET /v1/audit/verify` and
/// `/v1/audit/export` with `?tenant=<id>` (parsed as `api::audit` parses
/// it). Those rows live in the tenant's home region like every tenant row, so
/// the request is routed there like the tenant's own (forwarded, redirected or
/// 503 under its residency). Only for a valid platform token (an anonymous
/// request costs no lookup).
async fn platform_tenant(
    req: &ServiceRequest,
    state: &AppState,
    target: &str,
) -> Result<Option<std::sync::Arc<TenantRecord>>, ApiError> {
    #[derive(serde::Deserialize)]
    struct NamedTenant {
        tenant: Option<String>,
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let id = if let Some(rest) = path.strip_prefix("/v1/tenants/") {
        let mut segments = rest.split('/');
        let method = req.method();
        match (segments.next(), segments.next(), segments.next()) {
            (Some(id), Some("impersonations" | "keys"), _)
            | (Some(id), Some("retention" | "usage" | "residency-report"), None) => id,
            // The erasure's request, state and restore: `tenant_erasures` rows.
            (Some(id), Some("erasure" | "restore"), None) => id,
            // A change writes the tenant's audit event and outbox row; an
            // erasure's request its `tenant_erasures` row. (A read of the
            // tenant's record is of the `tenants` table, not homed.)
            (Some(id), None, None)
                if method == actix_web::http::Method::PATCH
                    || method == actix_web::http::Method::DELETE =>
            {
                id
            }
            _ => return Ok(None),
        }
    } else if req.method() == actix_web::http::Method::GET
        && matches!(path, "/v1/audit/verify" | "/v1/audit/export")
    {
        let named = web::Query::<NamedTenant>::from_query(query)
            .ok()
            .and_then(|q| q.into_inner().tenant);
        match named {
            Some(id) => return platform_tenant_named(req, state, &id).await,
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    platform_tenant_named(req, state, id).await
}

/// The tenant `id` names, for a request with a valid platform token.
async fn platform_tenant_named(
    req: &ServiceRequest,
    state: &AppState,
    id: &str,
) -> Result<Option<std::sync::Arc<TenantRecord>>, ApiError> {
    let Ok(id) = crate::ids::TenantId::parse(id) else {
        return Ok(None);
    };
    if !crate::scope::carries_platform_token(req.request(), state) {
        return Ok(None);
    }
    state.directory.get(id).await
}

/// Set by `route` on every request it lets through to the `/v1` resources, once
/// the routing decision for it is made. The scope extractors refuse a request
/// without it, so a path that ever slips past routing fails closed.
#[derive(Clone, Copy, Debug)]
pub struct Routed;

/// Serves `req` here: the routing decision for it is made.
async fn serve(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    req.extensions_mut().insert(Routed);
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

pub async fn route(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let here = state.region.clone();
    // Decided on the path the router matches, not on the raw request target.
    let target = match api_target(&req) {
        Ok(Some(target)) => target,
        Ok(None) => {
            // No `/v1` resource matches: nothing a tenant owns is reachable.
            return next
                .call(req)
                .await
                .map(|r| with_region_headers(r.map_into_boxed_body(), &here, None));
        }
        Err(refused) => return Ok(with_region_headers(answer(req, refused), &here, None)),
    };
    // Forwarded by a peer: serve here whatever the directory says, never forward twice.
    let verdict = verify_hop(&mut req).await;
    if verdict == Some(HopCheck::Invalid) {
        return Ok(with_region_headers(
            answer(req, ApiError::InvalidHopMarker),
            &here,
            None,
        ));
    }
    let tenant = match crate::scope::tenant_of(req.request(), &state).await {
        Ok(Some(tenant)) => Some(tenant),
        // No tenant token: a sign-in request may name its tenant otherwise.
        // Boxed, as the other rare branches below: see `verify_hop`.
        Ok(None) => match Box::pin(signin_tenant(&mut req, &state, &target)).await {
            Ok(tenant) => tenant,
            Err(err) => return Ok(with_region_headers(answer(req, err), &here, None)),
        },
        Err(err) => return Ok(with_region_headers(answer(req, err), &here, None)),
    };
    // A tenant's subdomain serves only its tokens, here and after a hop (where
    // the host is the one the forwarder signed).
    let host = super::host::requested_host(req.request(), verdict.is_some());
    let slug = host
        .as_deref()
        .and_then(|h| state.routing.host_slug(h, &state.topology));
    if let (Some(host), Some(slug)) = (host.as_deref(), slug) {
        let checked =
            crate::scope::check_host(req.request(), &state, host, slug, tenant.as_deref());
        if let Err(refused) = Box::pin(checked).await {
            return Ok(with_region_headers(answer(req, refused), &here, None));
        }
    }
    let tenant = match tenant {
        Some(tenant) => Some(tenant),
        None => match Box::pin(platform_tenant(&req, &state, &target)).await {
            Ok(tenant) => tenant,
            Err(err) => return Ok(with_region_headers(answer(req, err), &here, None)),
        },
    };
    if verdict.is_some() {
        let response = serve(req, next).await?;
        return Ok(with_region_headers(response, &here, tenant.as_deref()));
    }
    let Some(tenant) = tenant else {
        // No valid tenant token: the extractor answers (401/429), or it is a platform admin.
        return serve(req, next)
            .await
            .map(|r| with_region_headers(r, &here, None));
    };
    match decide(&state.topology, &here, &tenant, |r| {
        state.routing.health.is_healthy(r)
    }) {
        Decision::Serve => {
            let response = serve(req, next).await?;
            Ok(with_region_headers(response, &here, Some(&tenant)))
        }
        Decision::Forward(region) => {
            // Only a tenant host binds, so only a tenant host travels (signed).
            let bound = slug.and(host.as_deref()).unwrap_or_default();
            let (response, outcome) =
                Box::pin(forward(req, &state, &region, &target, bound)).await?;
            state.metrics.observe_routing(outcome, &region);
            Ok(response)
        }
        Decision::Redirect(region) => {
            state
                .metrics
                .observe_routing(RoutingOutcome::Redirected, &region);
            // Came in on a tenant host: sent to that tenant's host at the
            // serving region, so the follow-up keeps its host binding.
            let Some(base) = state.routing.client_base(&state.topology, &region, slug) else {
                return Ok(answer(req, ApiError::ResidencyUnavailable));
            };
            let location = format!("{base}{target}");
            let response = HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, location.clone()))
                .content_type("application/problem+json")
                .json(redirect_problem(&here, &region, &location));
            Ok(with_region_headers(
                req.into_response(response),
                &here,
                Some(&tenant),
            ))
        }
        Decision::Unavailable => {
            state
                .metrics
                .observe_routing(RoutingOutcome::Unavailable, &tenant.home_region);
            Ok(with_region_headers(
                answer(req, ApiError::ResidencyUnavailable),
                &here,
                Some(&tenant),
            ))
        }
    }
}

/// The body of a 307: where to go and why, for a client that does not follow
/// redirects (and a person reading `curl -i`). Following it with `curl -L` drops
/// `Authorization` on another host; the detail says so.
fn redirect_problem(here: &RegionId, region: &RegionId, location: &str) -> crate::error::Problem {
    const CODE: crate::error::ErrorCode = crate::error::ErrorCode::ServedElsewhere;
    crate::error::Problem {
        type_uri: format!("https://meridian.dev/problems/{CODE}"),
        title: "Temporary Redirect".into(),
        status: 307,
        detail: format!(
            "this tenant is served by region {region}, and its residency does not allow \
             region {here} to forward its requests: repeat the request at {location} with \
             the same Authorization header (curl -L drops it on another host)"
        ),
        code: CODE,
        request_id: crate::request_id::current(),
    }
}

/// Sends the request to a node of `region` with a hop marker signed for exactly
/// this request (the body is buffered to digest it) and streams the answer back
/// unchanged (that node sets the region headers).
async fn forward(
    mut req: ServiceRequest,
    state: &AppState,
    region: &RegionId,
    target: &str,
    host: &str,
) -> Result<(ServiceResponse<BoxBody>, RoutingOutcome), actix_web::Error> {
    let unreachable = |req| {
        Ok((
            answer(req, ApiError::RegionUnreachable),
            RoutingOutcome::ForwardFailed,
        ))
    };
    let (Some(forwarder), Some(base)) =
        (req.app_data::<Forwarder>(), state.routing.peers.get(region))
    else {
        return unreachable(req);
    };
    let mut outgoing = forwarder
        .client
        .request(req.method().clone(), format!("{base}{target}"));
    for (name, value) in req
        .headers()
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name))
    {
        outgoing = outgoing.append_header((name.clone(), value.clone()));
    }
    let body = match buffer_body(&mut req, state.routing.body_limit).await {
        Ok(body) => body,
        // The home node would refuse it the same way; it was routed, not sent.
        Err(err) => return Ok((answer(req, err), RoutingOutcome::Forwarded)),
    };
    let request_id = crate::request_id::current().unwrap_or_default();
    // A node never forwards a forwarded request, so the peer is the client.
    let client = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let marker = state.routing.hop.sign(
        state.region.as_str(),
        &request_id,
        &HopRequest {
            method: req.method().as_str(),
            path_and_query: target,
            authorization: &authorization_of(&req),
            body: &body,
            host,
            client: "",
        },
    );
    if !client.is_empty() {
        let header = state.routing.hop.client_header(&marker, &client);
        outgoing = outgoing.insert_header((hop::CLIENT_HEADER, header));
    }
    outgoing = outgoing.insert_header((hop::HEADER, marker));
    if !host.is_empty() {
        outgoing = outgoing.insert_header((super::host::FORWARDED_HOST, host));
    }
    let sent = outgoing.send_body(body).await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::warn!(%region, error = %err, "forwarding failed");
            return unreachable(req);
        }
    };
    let mut response = HttpResponse::build(upstream.status());
    for (name, value) in upstream
        .headers()
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name))
    {
        response.append_header((name.clone(), value.clone()));
    }
    Ok((
        req.into_response(response.streaming(upstream)),
        RoutingOutcome::Forwarded,
    ))
}
