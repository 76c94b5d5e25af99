//! Job-queue instruments. Labels stay bounded: `kind` takes only registered job
//! kinds (`jobs::Registry::kinds`, a handful), `outcome` four values, and the
//! region is the registry's own label. No tenant label: a busy tenant shows in
//! the region's totals, not as a series of its own.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: &'static str,
    /// succeeded, retry, failed, dead or lost (the lease was gone at the end).
    outcome: &'static str,
}

/// Held by `AppState` and the node's worker pool (clones share the cells).
#[derive(Clone, Default)]
pub struct JobMetrics {
    runs: Family<RunLabels, Counter>,
    claimed: Counter,
    /// Region totals, read from the database by the pool every few seconds.
    queued: Gauge,
    running: Gauge,
    oldest_queued_seconds: Gauge<f64, AtomicU64>,
}

impl JobMetrics {
    pub fn observe_run(&self, kind: &'static str, outcome: &'static str) {
        self.runs.get_or_create(&RunLabels { kind, outcome }).inc();
    }

    pub fn observe_claim(&self) {
        self.claimed.inc();
    }

    pub fn set_region_totals(&self, queued: i64, running: i64, oldest_queued_secs: f64) {
        self.queued.set(queued);
        self.running.set(running);
        self.oldest_queued_seconds.set(oldest_queued_secs);
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "job_runs",
            "Job runs ended on this node, by job kind and outcome (failures by kind: outcome != \
                succeeded)",
            self.runs.clone(),
        );
        registry.register(
            "jobs_claimed",
            "Jobs leased by this node's worker pool",
            self.claimed.clone(),
        );
        registry.register(
            "jobs_queued",
            "Queued jobs homed in this region (all tenants and platform jobs)",
            self.queued.clone(),
        );
        registry.register(
            "jobs_running",
            "Running jobs homed in this region",
            self.running.clone(),
        );
        registry.register(
            "jobs_oldest_queued_age_seconds",
            "Age of the oldest ready queued job of this region (0 when none)",
            self.oldest_queued_seconds.clone(),
        );
    }
}
