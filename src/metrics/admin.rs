//! The admin listener: `GET /metrics` only, on its own address (`admin.bind`), so
//! metrics (which name tenants) are never reachable through the public listener or
//! a load balancer in front of it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use prometheus_client::registry::Registry;

use crate::error::ApiError;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(registry: web::Data<Registry>) -> Result<HttpResponse, ApiError> {
    let mut body = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut body, &registry)
        .map_err(|err| ApiError::internal(anyhow::anyhow!("encoding metrics: {err}")))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(body))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// Binds the admin listener (one worker: scrapes are rare and cheap).
pub fn serve(bind: SocketAddr, registry: Registry) -> anyhow::Result<(Server, SocketAddr)> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("binding the admin listener {bind}"))?;
    let address = listener.local_addr()?;
    let registry = web::Data::from(Arc::new(registry));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok((server, address))
}
