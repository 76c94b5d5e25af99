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

pub mod access_log;
pub mod api;
pub mod audit;
pub mod auth;
pub mod body_deadline;
pub mod calendar;
pub mod compliance;
pub mod config;
pub mod console;
pub mod crypto;
pub mod db;
pub mod error;
pub mod hooks;
pub mod identity;
pub mod ids;
pub mod impersonation;
pub mod jobs;
pub mod json_time;
pub mod json_write;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod outbox;
pub mod pagination;
pub mod platform;
pub mod relocation;
pub mod request_id;
pub mod routing;
pub mod scope;
pub mod secret;
pub mod server_tls;
pub mod sessions;
pub mod state;
pub mod store;
pub mod summaries;
pub mod tasks;
pub mod telemetry;
pub mod tenancy;
pub mod topology;
pub mod validate;
pub mod webhooks;

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use utoipa_actix_web::AppExt;

use crate::auth::{KeySet, TokenVerifier};
use crate::config::Settings;
use crate::db::Database;
use crate::ids::RegionId;
use crate::scope::ScopedDatabase;
use crate::state::{AppState, Services};
use crate::tasks::Tasks;
use crate::tenancy::Directory;

/// Connections a shut-down listener lets finish before it drops them.
const SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// Rows a relocation copies per batch.
const RELOCATION_BATCH_ROWS: i64 = 500;

/// A built, bound, not yet running node.
pub struct Application {
    server: Server,
    address: SocketAddr,
    /// `/metrics`, on its own listener.
    admin: Server,
    admin_address: SocketAddr,
    state: web::Data<AppState>,
    /// Background jobs that end with the node.
    tasks: Tasks,
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
        let db = Database::connect(&settings.database)?
            .split_across_threads(settings.http.workers)
            .in_region(region.clone());
        db.check_server()
            .await
            .context("checking the database before serving")?;
        let directory = Directory::new(db.clone(), settings.directory.cache_capacity);
        let (loaded, newest) = directory
            .refresh(None)
            .await
            .context("loading the tenant directory")?;
        tracing::info!(tenants = loaded, "tenant directory loaded");

        let bind = settings.http.bind.context("http.bind is not set")?;
        let listener = TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
        let address = listener.local_addr()?;
        let (probes, probe_writer) = tasks::probe_queue(db.clone());
        let topology = Arc::new(topology);
        // The KEK provider is checked here, before the node listens (the local
        // file is created with a KEK per jurisdiction on first start).
        let provider =
            crypto::keyring::Keyring::provider_from_settings(&settings.encryption, &topology)
                .await
                .context("the encryption key provider (encryption.*)")?;
        let keyring = Arc::new(crypto::keyring::Keyring::new(
            provider,
            topology.clone(),
            &settings.encryption,
        ));
        let signer = Arc::new(
            crypto::signing::Signer::load(&settings.signing)
                .map_err(anyhow::Error::msg)
                .context("the signing key (signing.*)")?,
        );
        let hooks = web::Data::new(hooks::Hooks::new(
            &settings,
            db.clone(),
            directory.clone(),
            topology.clone(),
            (keyring.clone(), signer.clone()),
        )?);
        // An unreachable export bucket is logged, not fatal: only exports need
        // it, and their jobs retry.
        if let Err(err) = hooks.compliance.storage.check().await {
            tracing::warn!(error = %err, "the export store cannot be reached");
        }
        let state = web::Data::new(AppState::new(services(
            &settings,
            topology,
            region,
            (verifier, keyring, signer),
            &db,
            directory,
            probes,
        )));
        // The node's job handlers: the queue's own plus the webhook and summary jobs.
        let registry = hooks.register(jobs::node_registry());
        // The upgrade path of stored secrets: any still in plaintext are sealed.
        {
            let (db, keyring, region) = (db.clone(), state.keyring.clone(), state.region.clone());
            actix_web::rt::spawn(async move {
                crypto::secrets::sweep_region(&db, &keyring, &region).await;
            });
        }
        let tasks = Tasks::start(db, state.clone(), &settings, newest, probe_writer, registry);
        let admin_bind = settings.admin.bind.context("admin.bind is not set")?;
        let (admin, admin_address) = metrics::admin::serve(
            admin_bind,
            metrics::registry(state.clone(), settings.admin.top_tenants),
        )?;
        let server = http_server(&settings, state.clone(), hooks, listener)?;
        Ok(Self {
            server,
            address,
            admin,
            admin_address,
            state,
            tasks,
            shutdown_grace: settings.http.shutdown_grace,
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
        self.tasks.stop().await;
        result
    }
}

/// The node's services, built from its settings.
fn services(
    settings: &Settings,
    topology: Arc<topology::Topology>,
    region: RegionId,
    // The token verifier, the tenants' data keys and the evidence signer.
    (verifier, keyring, signer): (
        Arc<TokenVerifier>,
        Arc<crypto::keyring::Keyring>,
        Arc<crypto::signing::Signer>,
    ),
    db: &Database,
    directory: Directory,
    probes: scope::probes::ProbeAuditor,
) -> Services {
    let routing = routing::middleware::RoutingState::new(
        &settings.routing,
        &topology,
        &region,
        settings.http.body_limit_bytes,
        &settings.api_domain,
        // Nodes of one deployment share the listener setup: with TLS here, the
        // peers' default URLs are https too.
        if settings.http.tls.cert_file.is_some() {
            "https"
        } else {
            "http"
        },
    );
    let relocator = relocation::Relocator::new(
        db.clone(),
        directory.clone(),
        topology.clone(),
        format!("{region}/{}", uuid::Uuid::now_v7()),
        RELOCATION_BATCH_ROWS,
        // Every node sees a directory change within one refresh interval.
        settings.directory.refresh_interval * 2,
        keyring.clone(),
    );
    Services {
        db: ScopedDatabase::new(db.clone()),
        directory,
        limits: limits::NodeLimits::new(&settings.limits),
        routing,
        relocator,
        topology,
        region,
        verifier,
        probes,
        keyring,
        signer,
        access_log: crate::access_log::AccessLog::new(&settings.access_log),
        post_lanes: scope::post_lanes::PostLanes::new(
            settings.database.post_batch_max,
            settings.database.post_writers_per_tenant,
            settings.database.post_lane_wait,
        ),
    }
}

/// The public listener: the middleware chain of `docs/architecture.md` around
/// `api::routes`, started on `listener`.
fn http_server(
    settings: &Settings,
    state: web::Data<AppState>,
    hooks: web::Data<hooks::Hooks>,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let openapi = api::openapi();
    let openapi_json = web::Data::new(api::OpenApiJson(openapi.to_json()?));
    let route_index = web::Data::new(api::RouteIndex::from_openapi(&openapi));
    let body_limit = settings.http.body_limit_bytes;
    let body_timeout = body_deadline::BodyTimeout(settings.http.body_timeout);
    let forward_timeout = settings.routing.forward_timeout;
    let forward_source = settings.routing.source_address;
    let hop_tls = Arc::new(
        server_tls::hop_client_config(settings.routing.hop_ca_file.as_deref())
            .map_err(anyhow::Error::msg)?,
    );
    let listener_tls = settings
        .http
        .tls
        .server_config()
        .map_err(anyhow::Error::msg)?;
    let hsts = listener_tls.is_some();
    let server = HttpServer::new(move || {
        // Runs on each worker thread: open its pool's first connection now, not
        // inside the first request or readiness probe (`db::pools`).
        let warm = state.clone();
        actix_web::rt::spawn(async move {
            let _ = warm.db.ready().await;
        });
        let region: Rc<str> = Rc::from(state.region.as_str());
        let (app, _) = App::new()
            .into_utoipa_app()
            .app_data(state.clone())
            .app_data(openapi_json.clone())
            .app_data(hooks.clone())
            .app_data(route_index.clone())
            .app_data(routing::middleware::Forwarder::new(
                forward_timeout,
                forward_source,
                &hop_tls,
            ))
            .app_data(body_timeout)
            .app_data(api::json_config(body_limit))
            .app_data(api::payload_config(body_limit))
            .app_data(api::query_config())
            .app_data(api::path_config())
            .configure(api::routes)
            .split_for_parts();
        // Static pages, not API operations: outside `/v1` and the OpenAPI document.
        app.configure(console::routes)
            .default_service(web::to(api::fallback))
            .wrap(actix_web::middleware::from_fn(scope::confirm_user))
            .wrap(actix_web::middleware::from_fn(scope::audit_impersonated))
            .wrap(actix_web::middleware::from_fn(routing::middleware::route))
            .wrap(request_id::RequestIdentity { region })
            // Outermost: a hop marker's check reads the body too.
            .wrap(actix_web::middleware::from_fn(body_deadline::enforce))
            // Every answer of a TLS listener, problems included.
            .wrap(actix_web::middleware::Condition::new(
                hsts,
                actix_web::middleware::DefaultHeaders::new()
                    .add((header::STRICT_TRANSPORT_SECURITY, server_tls::HSTS)),
            ))
    })
    .workers(settings.http.workers)
    .client_request_timeout(settings.http.header_timeout)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
    let server = match listener_tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    }
    .run();
    Ok(server)
}
