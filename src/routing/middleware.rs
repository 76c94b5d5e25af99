//! Applies the routing rule to every `/v1` request that carries a tenant token,
//! before any handler runs: serve, forward one signed hop, redirect, or 503.
//! Requests without a valid token are served locally (the extractor answers them).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};

use super::decide::{Decision, decide};
use super::health::RegionHealth;
use super::hop::{self, HopCheck, HopSigner};
use crate::config::RoutingSettings;
use crate::error::ApiError;
use crate::ids::RegionId;
use crate::metrics::RoutingOutcome;
use crate::scope::AppState;
use crate::tenancy::TenantRecord;
use crate::topology::Topology;

pub const SERVED_BY: HeaderName = HeaderName::from_static("x-meridian-region");
pub const HOME: HeaderName = HeaderName::from_static("x-meridian-home-region");

/// Routing configuration of a node: where peers are, how to sign hops.
pub struct RoutingState {
    hop: HopSigner,
    pub(crate) peers: BTreeMap<RegionId, String>,
    redirect_to_peers: bool,
    pub health: RegionHealth,
}

impl RoutingState {
    pub fn new(settings: &RoutingSettings, topology: &Topology, here: &RegionId) -> Self {
        let peers = topology
            .regions()
            .map(|r| {
                let url = settings
                    .peers
                    .get(r.id.as_str())
                    .cloned()
                    .unwrap_or_else(|| format!("http://{}", r.local_address));
                (r.id.clone(), url.trim_end_matches('/').to_owned())
            })
            .collect();
        Self {
            hop: HopSigner::new(&settings.hop_secret),
            peers,
            redirect_to_peers: settings.redirect_to_peers,
            health: RegionHealth::new(here.clone(), topology.regions().map(|r| r.id.clone())),
        }
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
    pub fn new(timeout: Duration, source: Option<std::net::IpAddr>) -> Self {
        let builder = awc::Client::builder().timeout(timeout).disable_redirects();
        let builder = match source {
            Some(ip) => builder.local_address(ip),
            None => builder,
        };
        Self {
            client: builder.finish(),
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

fn path_and_query(req: &ServiceRequest) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned())
}

/// The verdict on a request's hop marker (`None`: no marker), checked once per
/// request and kept in its extensions: `request_id` adopts a valid marker's id,
/// `route` refuses an invalid one.
pub fn verify_hop(req: &ServiceRequest) -> Option<HopCheck> {
    if let Some(verdict) = req.extensions().get::<HopCheck>() {
        return Some(verdict.clone());
    }
    let marker = req.headers().get(hop::HEADER)?;
    let verdict = match (marker.to_str(), req.app_data::<web::Data<AppState>>()) {
        (Ok(marker), Some(state)) => {
            state
                .routing
                .hop
                .check(marker, req.method().as_str(), &path_and_query(req))
        }
        _ => HopCheck::Invalid,
    };
    req.extensions_mut().insert(verdict.clone());
    Some(verdict)
}

pub async fn route(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let here = state.region.clone();
    if !req.path().starts_with("/v1/") {
        return next
            .call(req)
            .await
            .map(|r| with_region_headers(r.map_into_boxed_body(), &here, None));
    }
    let tenant = crate::scope::tenant_of(req.request(), &state).await;
    let path_and_query = path_and_query(&req);

    // Forwarded by a peer: serve here whatever the directory says, never forward twice.
    if let Some(verdict) = verify_hop(&req) {
        if verdict == HopCheck::Invalid {
            return Ok(with_region_headers(
                answer(req, ApiError::InvalidHopMarker),
                &here,
                None,
            ));
        }
        let response = next.call(req).await?.map_into_boxed_body();
        return Ok(with_region_headers(response, &here, tenant.as_deref()));
    }
    let Some(tenant) = tenant else {
        // No valid tenant token: the extractor answers (401/429), or it is a platform admin.
        return next
            .call(req)
            .await
            .map(|r| with_region_headers(r.map_into_boxed_body(), &here, None));
    };
    match decide(&state.topology, &here, &tenant, |r| {
        state.routing.health.is_healthy(r)
    }) {
        Decision::Serve => {
            let response = next.call(req).await?.map_into_boxed_body();
            Ok(with_region_headers(response, &here, Some(&tenant)))
        }
        Decision::Forward(region) => {
            let (response, outcome) = forward(req, &state, &region, &path_and_query).await?;
            state.metrics.observe_routing(outcome, &region);
            Ok(response)
        }
        Decision::Redirect(region) => {
            state
                .metrics
                .observe_routing(RoutingOutcome::Redirected, &region);
            let Some(base) = state.routing.client_url(&state.topology, &region) else {
                return Ok(answer(req, ApiError::ResidencyUnavailable));
            };
            let response = HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, format!("{base}{path_and_query}")))
                .finish();
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

/// Sends the request to a node of `region` with a signed hop marker and streams
/// the answer back unchanged (that node sets the region headers).
async fn forward(
    mut req: ServiceRequest,
    state: &AppState,
    region: &RegionId,
    path_and_query: &str,
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
        .request(req.method().clone(), format!("{base}{path_and_query}"));
    for (name, value) in req
        .headers()
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name))
    {
        outgoing = outgoing.append_header((name.clone(), value.clone()));
    }
    let request_id = crate::request_id::current().unwrap_or_default();
    let marker = state.routing.hop.sign(
        state.region.as_str(),
        &request_id,
        req.method().as_str(),
        path_and_query,
    );
    outgoing = outgoing.insert_header((hop::HEADER, marker));
    let sent = outgoing.send_stream(req.take_payload()).await;
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
