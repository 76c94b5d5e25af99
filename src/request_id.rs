//! Request ids: one per request, in the `X-Request-Id` response header, the
//! tracing span and every problem+json body.
//!
//! The id lives in a task-local for the duration of the request so that
//! `ApiError::error_response` — which actix calls without the request — can put it
//! in the body. Incoming ids are not trusted: a client may not choose ours. The
//! one exception is a forwarded request, whose id is signed into the hop marker
//! (`routing::hop`), so one request has one id on every node; the marker is
//! verified (body included) before the id is chosen.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web;
use futures_util::future::LocalBoxFuture;
use tracing::Instrument;
use uuid::Uuid;

use crate::routing::hop::HopCheck;
use crate::state::AppState;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The current request's id, when called inside a request.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Middleware: assigns the id, opens the request span, sets the response header.
pub struct RequestIdentity {
    pub region: Rc<str>,
}

impl<S, B> Transform<S, ServiceRequest> for RequestIdentity
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestIdentityMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdentityMiddleware {
            service: Rc::new(service),
            region: self.region.clone(),
        }))
    }
}

pub struct RequestIdentityMiddleware<S> {
    service: Rc<S>,
    region: Rc<str>,
}

impl<S, B> Service<ServiceRequest> for RequestIdentityMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let region = self.region.clone();
        Box::pin(async move {
            // Verifying a marker reads the body (it is bound to it), hence here.
            let id = match crate::routing::middleware::verify_hop(&mut req).await {
                Some(HopCheck::Valid { request_id, .. }) => request_id,
                _ => Uuid::now_v7().simple().to_string(),
            };
            // Tenant id and route are recorded into this span later, once known.
            let span = tracing::info_span!(
                "request",
                request_id = %id,
                region = %region,
                method = %req.method(),
                route = tracing::field::Empty,
                tenant_id = tracing::field::Empty,
                status = tracing::field::Empty,
            );
            let header_value = HeaderValue::from_str(&id).ok();
            REQUEST_ID
                .scope(
                    id,
                    async move {
                        let started = std::time::Instant::now();
                        let mut response = service.call(req).await?;
                        let elapsed = started.elapsed();
                        let span = tracing::Span::current();
                        let request = response.request();
                        let route = request.match_pattern();
                        if let Some(pattern) = &route {
                            span.record("route", pattern.as_str());
                        }
                        span.record("status", response.status().as_u16());
                        if let Some(state) = request.app_data::<web::Data<AppState>>() {
                            state.metrics.observe_request(
                                route,
                                request.method(),
                                response.status(),
                                elapsed,
                                crate::scope::resolved_tenant(request),
                            );
                        }
                        if let Some(value) = header_value {
                            response.headers_mut().insert(HEADER, value);
                        }
                        let elapsed_us = elapsed.as_micros() as u64;
                        // Peers, GeoDNS and load balancers probe every second: debug only.
                        if matches!(response.request().path(), "/readyz" | "/healthz") {
                            tracing::debug!(elapsed_us, "request finished");
                        } else {
                            tracing::info!(elapsed_us, "request finished");
                        }
                        Ok(response)
                    }
                    .instrument(span),
                )
                .await
        })
    }
}
