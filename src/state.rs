//! `AppState`: what every worker of a node shares. The pool sits behind
//! `scope::ScopedDatabase`, so holding the state opens no transaction; the
//! background jobs that keep parts of it current are `crate::tasks`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::TokenVerifier;
use crate::crypto::keyring::Keyring;
use crate::crypto::signing::Signer;
use crate::ids::RegionId;
use crate::limits::NodeLimits;
use crate::metrics::RequestMetrics;
use crate::relocation::Relocator;
use crate::routing::middleware::RoutingState;
use crate::scope::ScopedDatabase;
use crate::scope::post_lanes::PostLanes;
use crate::scope::probes::ProbeAuditor;
use crate::tenancy::Directory;
use crate::topology::Topology;

/// Shared by every worker of a node.
pub struct AppState {
    pub db: ScopedDatabase,
    shutting_down: AtomicBool,
    pub directory: Directory,
    pub limits: NodeLimits,
    pub routing: RoutingState,
    pub relocator: Relocator,
    pub topology: Arc<Topology>,
    pub region: RegionId,
    pub verifier: Arc<TokenVerifier>,
    pub metrics: RequestMetrics,
    /// The job worker pool's instruments (`jobs::WorkerPool`).
    pub job_metrics: crate::metrics::jobs::JobMetrics,
    /// Cross-tenant 404s, audited after the response (`tasks` runs the writer).
    pub probes: ProbeAuditor,
    /// Tenants' data keys (`crypto::keyring`).
    pub keyring: Arc<Keyring>,
    /// Signs evidence for auditors (`crypto::signing`).
    pub signer: Arc<Signer>,
    /// Requests served here per tenant, flushed by `tasks` (`tenancy::served`).
    pub served: crate::tenancy::served::ServedCounts,
    /// Members' accesses, buffered until `tasks` flushes them (`access_log`).
    pub access_log: crate::access_log::AccessLog,
    /// Each tenant's concurrent posts, written together (`scope::post_lanes`).
    pub post_lanes: PostLanes,
}

/// The node's services, gathered for `AppState::new`.
pub struct Services {
    pub db: ScopedDatabase,
    pub directory: Directory,
    pub limits: NodeLimits,
    pub routing: RoutingState,
    pub relocator: Relocator,
    pub topology: Arc<Topology>,
    pub region: RegionId,
    pub verifier: Arc<TokenVerifier>,
    pub probes: ProbeAuditor,
    pub keyring: Arc<Keyring>,
    pub signer: Arc<Signer>,
    pub access_log: crate::access_log::AccessLog,
    pub post_lanes: PostLanes,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        let Services {
            db,
            directory,
            limits,
            routing,
            relocator,
            topology,
            region,
            verifier,
            probes,
            keyring,
            signer,
            access_log,
            post_lanes,
        } = services;
        Self {
            db,
            shutting_down: AtomicBool::new(false),
            directory,
            limits,
            routing,
            relocator,
            topology,
            region,
            verifier,
            metrics: RequestMetrics::default(),
            job_metrics: crate::metrics::jobs::JobMetrics::default(),
            probes,
            keyring,
            signer,
            served: Default::default(),
            access_log,
            post_lanes,
        }
    }

    /// From now on `/readyz` fails: the node is shutting down.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
