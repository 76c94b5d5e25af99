//! Meridian: a multi-tenant team-collaboration API served from the tenant's home
//! region. One request, end to end:
//!
//! ```text
//! TCP → request_id (id + span) → scope::extract (verify JWT → directory via moka
//!     → TenantScope / PlatformScope) → api handler (role check) → store (SQL on a
//!     TenantTx: RLS setting + user check pipelined, SERIALIZABLE, 40001 retry)
//!     → JSON, or problem+json from error::ApiError
//! ```
#![forbid(unsafe_code)]

pub mod admin_client;
pub mod ai_ledger;
pub mod api;
pub mod audit;
pub mod auth;
pub mod body_deadline;
pub mod config;
pub mod db;
pub mod dev;
pub mod embedded_pg;
pub mod error;
pub mod geodns;
pub mod hooks;
pub mod ids;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod outbox;
pub mod packages;
pub mod pagination;
pub mod relocation;
pub mod request_id;
pub mod routing;
pub mod scope;
pub mod store;
pub mod summaries;
pub mod supervisor;
pub mod telemetry;
pub mod tenancy;
pub mod topology;
pub mod validate;
pub mod wan;
pub mod webhooks;

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use utoipa_actix_web::AppExt;

use crate::auth::{KeySet, TokenVerifier};
use crate::config::Settings;
use crate::db::Database;
use crate::ids::RegionId;
use crate::scope::AppState;
use crate::tenancy::Directory;

/// A built, bound, not yet running node.
pub struct Application {
    server: Server,
    address: SocketAddr,
    /// `/metrics`, on its own listener.
    admin: Server,
    admin_address: SocketAddr,
    state: web::Data<AppState>,
    /// Background tasks that end with the node.
    background: Vec<tokio::task::JoinHandle<()>>,
    summary_interval_ms: u64,
    shutdown_grace: Duration,
}

/// Graceful stop: `/readyz` fails first (load balancers and GeoDNS stop sending
/// traffic), then, after the grace period, the listener closes and in-flight
/// requests finish (up to 30 s); `run_until_stopped` then closes the pool.
#[derive(Clone)]
pub struct Shutdown {
    state: web::Data<AppState>,
    server: ServerHandle,
    grace: Duration,
}

impl Shutdown {
    pub async fn run(&self) {
        self.state.begin_shutdown();
        tracing::info!(
            grace_ms = self.grace.as_millis() as u64,
            "shutting down: not ready any more"
        );
        tokio::time::sleep(self.grace).await;
        self.server.stop(true).await;
    }
}

impl Application {
    /// Validates settings, connects, warms the tenant directory and binds. Binding
    /// to port 0 picks a free port (tests do this); `address()` tells which.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (settings, topology) = settings.validate()?;
        let region = RegionId::parse(&settings.region).map_err(anyhow::Error::msg)?;
        let keys = KeySet::load(settings.keys_file())?;
        let verifier = Arc::new(TokenVerifier::new(keys, &settings.auth));
        let db = Database::connect(&settings.database)?;
        db.check_server()
            .await
            .context("checking the database before serving")?;
        let directory = Directory::new(db.clone(), settings.directory.cache_capacity);
        let (loaded, newest) = directory
            .refresh(None)
            .await
            .context("loading the tenant directory")?;
        tracing::info!(tenants = loaded, "tenant directory loaded");
        let refresher = directory.spawn_refresher(
            Duration::from_millis(settings.directory.refresh_interval_ms),
            newest,
        );

        let bind = settings.http.bind.context("http.bind is not set")?;
        let listener = TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
        let address = listener.local_addr()?;
        let limits = limits::NodeLimits::new(&settings.limits);
        let routing = routing::middleware::RoutingState::new(
            &settings.routing,
            &topology,
            &region,
            settings.http.body_limit_bytes,
        );
        let forward_timeout = Duration::from_millis(settings.routing.forward_timeout_ms);
        let forward_source = settings.routing.source_address;
        let topology = Arc::new(topology);
        let relocator = relocation::Relocator::new(
            db.clone(),
            directory.clone(),
            topology.clone(),
            format!("{region}/{}", uuid::Uuid::now_v7()),
            500,
            // Every node sees a directory change within one refresh interval.
            Duration::from_millis(settings.directory.refresh_interval_ms * 2),
        );
        let (job_db, job_directory) = (db.clone(), directory.clone());
        let hooks = web::Data::new(hooks::Hooks::new(&settings, db.clone(), directory.clone())?);
        let state = web::Data::new(AppState::new(
            db, directory, limits, routing, relocator, topology, region, verifier,
        ));
        // The node's worker pool: jobs of this region only (`jobs::worker`).
        let workers = settings.jobs.enabled.then(|| {
            jobs::WorkerPool::new(
                job_db,
                job_directory,
                state.region.clone(),
                hooks.register(jobs::node_registry()),
                settings.jobs.clone(),
                state.job_metrics.clone(),
            )
        });
        let watcher = spawn_region_watcher(state.clone(), &settings.routing);
        let summariser =
            spawn_denial_summaries(state.clone(), settings.limits.denial_summary_interval_ms);
        let admin_bind = settings.admin.bind.context("admin.bind is not set")?;
        let (admin, admin_address) = metrics::admin::serve(
            admin_bind,
            metrics::registry(state.clone(), settings.admin.top_tenants),
        )?;
        let openapi = api::openapi();
        let openapi_json = web::Data::new(api::OpenApiJson(openapi.to_json()?));
        let route_index = web::Data::new(api::RouteIndex::from_openapi(&openapi));
        let body_limit = settings.http.body_limit_bytes;
        let body_timeout =
            body_deadline::BodyTimeout(Duration::from_millis(settings.http.body_timeout_ms));
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            let region: Rc<str> = Rc::from(app_state.region.as_str());
            let (app, _) = App::new()
                .into_utoipa_app()
                .app_data(app_state.clone())
                .app_data(openapi_json.clone())
                .app_data(hooks.clone())
                .app_data(route_index.clone())
                .app_data(routing::middleware::Forwarder::new(
                    forward_timeout,
                    forward_source,
                ))
                .app_data(body_timeout)
                .app_data(api::json_config(body_limit))
                .app_data(api::payload_config(body_limit))
                .app_data(api::query_config())
                .app_data(api::path_config())
                .configure(api::routes)
                .split_for_parts();
            app.default_service(web::to(api::fallback))
                .wrap(actix_web::middleware::from_fn(scope::confirm_user))
                .wrap(actix_web::middleware::from_fn(routing::middleware::route))
                .wrap(request_id::RequestIdentity { region })
                // Outermost: a hop marker's check reads the body too.
                .wrap(actix_web::middleware::from_fn(body_deadline::enforce))
        })
        .workers(settings.http.workers)
        .client_request_timeout(Duration::from_millis(settings.http.header_timeout_ms))
        .disable_signals()
        .shutdown_timeout(30)
        .listen(listener)?
        .run();
        Ok(Self {
            server,
            address,
            admin,
            admin_address,
            state,
            background: [refresher, summariser, watcher]
                .into_iter()
                .chain(workers.map(|pool| pool.spawn()))
                .collect(),
            summary_interval_ms: settings.limits.denial_summary_interval_ms,
            shutdown_grace: Duration::from_millis(settings.http.shutdown_grace_ms),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where `/metrics` is served.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin_address
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// What stops this node gracefully (see `Shutdown::run`).
    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            state: self.state.clone(),
            server: self.server.handle(),
            grace: self.shutdown_grace,
        }
    }

    /// Serves until the server is stopped through `handle()`, then closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let admin = self.admin.handle();
        let admin_task = actix_web::rt::spawn(self.admin);
        let result = self.server.await;
        // Metrics stay scrapeable until the public listener has drained.
        admin.stop(true).await;
        let _ = admin_task.await;
        for task in &self.background {
            task.abort();
        }
        // Denials since the last summary would otherwise be lost with the process.
        self.state.summarise_denials(self.summary_interval_ms).await;
        // Cross-tenant probes answered before the stop are audited before the pool closes.
        self.state.probes.drain(Duration::from_secs(10)).await;
        self.state.close_database();
        result
    }
}

/// Summarises limit denials into the audit trail, and prunes idle limiter state
/// (per IP, tenant and user), every `interval_ms`.
fn spawn_denial_summaries(
    state: web::Data<AppState>,
    interval_ms: u64,
) -> tokio::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            state.summarise_denials(interval_ms).await;
            state.limits.prune();
        }
    })
}

/// Every `routing.probe_interval_ms`: re-reads the drained flags and probes every
/// peer region's `/readyz`, feeding the failover decisions.
fn spawn_region_watcher(
    state: web::Data<AppState>,
    settings: &config::RoutingSettings,
) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_millis(settings.probe_interval_ms);
    let timeout = Duration::from_millis(settings.probe_timeout_ms);
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder().disable_redirects().finish();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            ticker.tick().await;
            ticks += 1;
            // Now and then, pick up relocations whose worker died (expired lease).
            if ticks.is_multiple_of(10) {
                let relocator = state.relocator.clone();
                actix_web::rt::spawn(async move { relocator.resume_abandoned().await });
            }
            if let Err(err) = state.refresh_region_state().await {
                tracing::warn!(error = %err, "reading region state failed");
            }
            let peers: Vec<_> = state
                .routing
                .peers
                .iter()
                .filter(|(r, _)| **r != state.region)
                .collect();
            let probes = peers
                .iter()
                .map(|(_, base)| routing::health::probe(&client, base, timeout));
            for ((region, _), up) in peers
                .iter()
                .zip(futures_util::future::join_all(probes).await)
            {
                state.routing.health.set_reachable(region, up);
            }
        }
    })
}
