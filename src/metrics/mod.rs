//! Prometheus metrics of one node, served as OpenMetrics text on the admin listener
//! (`admin.bind`, never the public one; see `admin`).
//!
//! Every series carries the node's `region`. Label values are bounded: `route` is
//! the matched route *pattern* (or `unmatched`), `method` one of the HTTP methods
//! the API uses (or `other`), `status_class` `1xx`…`5xx`. Per-tenant series exist
//! only for the `admin.top_tenants` busiest tenants at each scrape (`tenants`).

pub mod admin;
pub mod jobs;
pub mod tenants;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ids::{RegionId, TenantId};
use crate::limits::denials::DenialCounts;
use crate::state::AppState;
use tenants::{TenantTraffic, top_n};

/// Latency buckets from 0.5 ms to about 8 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 15))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoutingLabels {
    decision: &'static str,
    target_region: String,
}

/// What the routing middleware did with a tenant request that landed here.
#[derive(Clone, Copy, Debug)]
pub enum RoutingOutcome {
    Forwarded,
    Redirected,
    /// 503 `residency_unavailable`: no region the tenant may use is up.
    Unavailable,
    /// Forwarding failed (`region_unreachable`).
    ForwardFailed,
}

impl RoutingOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Redirected => "redirected",
            Self::Unavailable => "unavailable",
            Self::ForwardFailed => "forward_failed",
        }
    }
}

/// The request-path instruments, held by `AppState` (cheap clones of shared cells).
#[derive(Clone)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    routing: Family<RoutingLabels, Counter>,
    anonymous_denials: Counter,
    tenants: Arc<TenantTraffic>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            routing: Family::default(),
            anonymous_denials: Counter::default(),
            tenants: Arc::default(),
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl RequestMetrics {
    pub fn observe_request(
        &self,
        route: Option<String>,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
        tenant: Option<TenantId>,
    ) {
        let labels = RequestLabels {
            route: route.unwrap_or_else(|| "unmatched".to_owned()),
            method: method_label(method),
            status_class: status_class(status),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(tenant) = tenant {
            self.tenants.record(tenant, status.is_server_error());
        }
    }

    pub fn observe_routing(&self, outcome: RoutingOutcome, target: &RegionId) {
        self.routing
            .get_or_create(&RoutingLabels {
                decision: outcome.label(),
                target_region: target.to_string(),
            })
            .inc();
    }

    /// A request without a valid token refused by the per-IP limit.
    pub fn observe_anonymous_denial(&self) {
        self.anonymous_denials.inc();
    }
}

/// Builds the node's registry: the request instruments, the pool-wait histogram,
/// the directory's hit/miss counters, and a collector for figures read at scrape
/// time (pool state, cache size, limit denials, the top-N tenants).
pub fn registry(state: actix_web::web::Data<AppState>, top_tenants: usize) -> Registry {
    let mut registry = Registry::with_prefix_and_labels(
        "meridian",
        [(
            Cow::Borrowed("region"),
            Cow::Owned(state.region.to_string()),
        )]
        .into_iter(),
    );
    let m = &state.metrics;
    registry.register(
        "http_requests",
        "Requests answered by this node, by route pattern, method and status class",
        m.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time from request start to response head, by route pattern, method and status class",
        m.duration.clone(),
    );
    registry.register(
        "routing",
        "Tenant requests not served here: forwarded, redirected or refused, by target region",
        m.routing.clone(),
    );
    registry.register(
        "db_pool_wait_seconds",
        "Time spent waiting for a database connection from the pool",
        state.db.pool_wait_histogram(),
    );
    let (hits, misses) = state.directory.cache_counters();
    registry.register(
        "directory_cache_hits",
        "Tenant directory lookups answered from the in-process cache",
        hits,
    );
    registry.register(
        "directory_cache_misses",
        "Tenant directory lookups that went to the database",
        misses,
    );
    let (hits, misses) = state.keyring.cache_counters();
    registry.register(
        "dek_cache_hits",
        "Data-key lookups answered from this node's cache of unwrapped DEKs",
        hits,
    );
    registry.register(
        "dek_cache_misses",
        "Data-key lookups that unwrapped a DEK through the key provider",
        misses,
    );
    registry.register(
        "anonymous_rate_limited",
        "Requests without a valid token refused by the per-IP limit",
        m.anonymous_denials.clone(),
    );
    let (sizes, handed_back, left, waiting) = state.post_lanes.instruments();
    registry.register(
        "post_batch_size",
        "Posts written by each transaction of the tenants' post lanes",
        sizes,
    );
    registry.register(
        "post_batch_handed_back",
        "Posts a lane's batch did not write, posted again on their own path",
        handed_back,
    );
    registry.register(
        "post_lane_left",
        "Posts that waited in their lane past database.post_lane_wait_ms and went on their own path",
        left,
    );
    registry.register(
        "post_lane_waiting",
        "Posts waiting in the tenants' post lanes for their batch",
        waiting,
    );
    state.job_metrics.register(&mut registry);
    registry.register_collector(Box::new(ScrapeTime { state, top_tenants }));
    registry
}

/// Figures computed when scraped rather than counted on the request path.
struct ScrapeTime {
    state: actix_web::web::Data<AppState>,
    top_tenants: usize,
}

impl std::fmt::Debug for ScrapeTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeTime").finish_non_exhaustive()
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// One counter family with a `tenant` label per (top-N) tenant.
fn per_tenant_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    tenants: &[tenants::TenantCounts],
    value: fn(&tenants::TenantCounts) -> u64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for t in tenants {
        let labels = [("tenant", t.tenant.to_string())];
        ConstCounter::new(value(t)).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A denial kind's label and how to read its count.
type DenialKindField = (&'static str, fn(&DenialCounts) -> u64);

const DENIAL_KINDS: [DenialKindField; 5] = [
    ("rate_limited", |c| c.rate_limited),
    ("concurrency_limited", |c| c.concurrency_limited),
    ("expensive_limited", |c| c.expensive_limited),
    ("statement_timeout", |c| c.statement_timeout),
    ("quota_exceeded", |c| c.quota_exceeded),
];

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pool = self.state.db.pool_status();
        let in_use = pool.size.saturating_sub(pool.available);
        gauge(
            &mut encoder,
            "db_pool_max",
            "Pool size limit",
            pool.max_size as i64,
        )?;
        gauge(
            &mut encoder,
            "db_pool_open",
            "Open connections",
            pool.size as i64,
        )?;
        gauge(
            &mut encoder,
            "db_pool_in_use",
            "Connections lent out",
            in_use as i64,
        )?;
        gauge(
            &mut encoder,
            "db_pool_waiting",
            "Requests waiting for a connection",
            pool.waiting as i64,
        )?;
        gauge(
            &mut encoder,
            "directory_cache_entries",
            "Tenants in the in-process directory cache",
            self.state.directory.entry_count() as i64,
        )?;

        let denials = self.state.limits.denials.all_totals();
        let mut by_kind = encoder.encode_descriptor(
            "limit_denials",
            "Tenant requests refused by a limit on this node, by kind",
            None,
            MetricType::Counter,
        )?;
        for (kind, count) in DENIAL_KINDS {
            let total: u64 = denials.iter().map(|(_, c)| count(c)).sum();
            ConstCounter::new(total).encode(by_kind.encode_family(&[("kind", kind)])?)?;
        }

        let traffic = self.state.metrics.tenants.snapshot();
        gauge(
            &mut encoder,
            "tenants_seen",
            "Tenants this node has served since it started",
            traffic.len() as i64,
        )?;
        let (top, rest) = top_n(traffic, self.top_tenants, |t| (t.requests, t.tenant));
        per_tenant_counter(
            &mut encoder,
            "tenant_requests",
            "Requests per tenant, for the busiest tenants only (admin.top_tenants)",
            &top,
            |t| t.requests,
        )?;
        per_tenant_counter(
            &mut encoder,
            "tenant_server_errors",
            "5xx answers per tenant, for the busiest tenants only",
            &top,
            |t| t.server_errors,
        )?;
        gauge(
            &mut encoder,
            "tenant_requests_other",
            "Requests of all tenants outside the top N (a gauge: it drops when a tenant enters the \
                top N)",
            rest as i64,
        )?;

        let denial_total = |(tenant, c): &(TenantId, DenialCounts)| {
            (
                c.rate_limited
                    + c.concurrency_limited
                    + c.expensive_limited
                    + c.statement_timeout
                    + c.quota_exceeded,
                *tenant,
            )
        };
        let (top, _) = top_n(denials, self.top_tenants, denial_total);
        let mut per_tenant = encoder.encode_descriptor(
            "tenant_limit_denials",
            "Limit denials per tenant and kind, for the most-denied tenants only",
            None,
            MetricType::Counter,
        )?;
        for (tenant, counts) in &top {
            for (kind, count) in DENIAL_KINDS {
                let labels = [("tenant", tenant.to_string()), ("kind", kind.to_owned())];
                ConstCounter::new(count(counts)).encode(per_tenant.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
