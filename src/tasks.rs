//! The node's background jobs, one named task each, all started here
//! (`Tasks::start`) and stopped here (`Tasks::stop`):
//! - `directory_refresh`: loads tenants other nodes changed into the cache;
//! - `region_watch`: re-reads the drained flags, probes the peers' `/readyz`,
//!   and now and then resumes relocations whose worker died;
//! - `denial_summaries`: writes each tenant's limit denials to its audit trail
//!   and prunes idle limiter state;
//! - `probe_flush`: audits cross-tenant 404s after their responses;
//! - `key_reload`: puts a changed key set file in force (`auth::reload`);
//! - `served_flush`: writes the requests served here per tenant
//!   (`tenancy::served`);
//! - `access_log`: writes the buffered members' accesses (`access_log`);
//! - `audit_seal`: chains the tenant audit events of this region written since
//!   the last pass (`audit::seal`);
//! - `usage_history`: samples this region's tenants' usage per hour and prunes
//!   old samples (`limits::history`);
//! - `job_workers` (when `jobs.enabled`): claims and runs this region's jobs
//!   (`jobs::WorkerPool`).

use std::future::Future;
use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::audit;
use crate::config::Settings;
use crate::db::{Database, TxMode};
use crate::error::ApiError;
use crate::routing;
use crate::scope::probes::ProbeAuditor;
use crate::state::AppState;

/// Every this many region-watch ticks, relocations with an expired lease resume.
const RESUME_RELOCATIONS_EVERY: u64 = 10;
/// How long the stop waits for queued cross-tenant probes to be written.
const PROBE_DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// The cross-tenant probe queue for `AppState`, and its writer for `Tasks::start`.
pub fn probe_queue(db: Database) -> (ProbeAuditor, impl Future<Output = ()> + 'static) {
    ProbeAuditor::new(db)
}

/// The running jobs of a node.
pub struct Tasks {
    running: Vec<(&'static str, JoinHandle<()>)>,
    /// The job worker pool, stopped gracefully before the other tasks.
    jobs: Option<std::sync::Arc<crate::jobs::WorkerPool>>,
    db: Database,
    state: web::Data<AppState>,
    summary_interval: Duration,
    seal_batch: i64,
}

impl Tasks {
    /// Starts every job; `directory_since` is the newest change the directory
    /// loaded at start; `registry` holds the handlers the job workers run
    /// (`jobs::node_registry` plus the features' own, see `hooks::Hooks::register`).
    pub fn start(
        db: Database,
        state: web::Data<AppState>,
        settings: &Settings,
        directory_since: Option<DateTime<Utc>>,
        probe_writer: impl Future<Output = ()> + 'static,
        registry: crate::jobs::Registry,
    ) -> Self {
        let summary_interval = settings.limits.denial_summary_interval;
        let directory = state
            .directory
            .spawn_refresher(settings.directory.refresh_interval, directory_since);
        let mut running = vec![
            ("directory_refresh", directory),
            (
                "region_watch",
                region_watch(db.clone(), state.clone(), &settings.routing),
            ),
            (
                "denial_summaries",
                denial_summaries(db.clone(), state.clone(), summary_interval),
            ),
            ("probe_flush", actix_web::rt::spawn(probe_writer)),
            ("key_reload", key_reload(state.clone(), &settings.auth)),
            (
                "served_flush",
                served_flush(db.clone(), state.clone(), settings.residency.served_flush),
            ),
            (
                "access_log",
                access_log(db.clone(), state.clone(), settings.access_log.clone()),
            ),
            (
                "audit_seal",
                audit_seal(db.clone(), state.clone(), settings.audit.clone()),
            ),
            (
                "usage_history",
                usage_history(db.clone(), state.clone(), settings.usage_history.clone()),
            ),
        ];
        let mut jobs = None;
        if settings.jobs.enabled {
            let pool = crate::jobs::WorkerPool::new(
                db.clone(),
                state.directory.clone(),
                state.region.clone(),
                registry,
                settings.jobs.clone(),
                state.job_metrics.clone(),
            );
            running.push(("job_workers", pool.spawn()));
            jobs = Some(pool);
        }
        let names: Vec<&str> = running.iter().map(|(name, _)| *name).collect();
        tracing::debug!(tasks = ?names, "background tasks started");
        Self {
            running,
            jobs,
            db,
            state,
            summary_interval,
            seal_batch: settings.audit.seal_batch,
        }
    }

    /// Stops the periodic jobs, then writes what they would have written next
    /// (denials since the last summary, queued probes), then closes the pool.
    pub async fn stop(self) {
        // Running jobs finish within the grace or are handed back to the queue.
        if let Some(pool) = &self.jobs {
            pool.shutdown().await;
        }
        for (name, task) in &self.running {
            if *name != "probe_flush" {
                task.abort();
            }
        }
        // Denials since the last summary would otherwise be lost with the process.
        summarise_denials(&self.db, &self.state, self.summary_interval).await;
        self.state.served.flush(&self.db, &self.state.region).await;
        self.state
            .access_log
            .flush(&self.db, &self.state.region)
            .await;
        // Cross-tenant probes answered before the stop are audited before the pool closes.
        self.state.probes.drain(PROBE_DRAIN_LIMIT).await;
        // What this node wrote to the trails is chained before it goes (another
        // node of the region would chain it at its next pass anyway).
        seal_pass(&self.db, &self.state.region, self.seal_batch).await;
        self.state.db.close();
        for (_, task) in &self.running {
            task.abort();
        }
    }
}

/// A ticker that skips missed ticks rather than bursting to catch up.
fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// Every `limits.denial_summary_interval_ms`: summarises limit denials into the
/// audit trail and prunes idle limiter state (per IP, tenant and user).
fn denial_summaries(
    db: Database,
    state: web::Data<AppState>,
    interval: Duration,
) -> JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut ticker = ticker(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            summarise_denials(&db, &state, interval).await;
            state.limits.prune();
        }
    })
}

/// Writes each tenant's pending denial counts to its audit trail as one
/// `limits_denied` event; counts that fail to be written are kept for next time.
async fn summarise_denials(db: &Database, state: &AppState, window: Duration) {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    for (tenant_id, counts) in state.limits.denials.take_pending() {
        let written = match state.directory.get(tenant_id).await {
            Ok(Some(tenant)) => {
                let details = serde_json::json!({
                    "counts": counts, "window_ms": window_ms, "region": state.region,
                });
                let record = async |tx: &crate::db::TenantTx<'_>| {
                    Ok(
                        audit::record(tx, "meridian", "limits_denied", None, details.clone())
                            .await?,
                    )
                };
                let (id, home) = (tenant.id, &tenant.home_region);
                db.tenant_tx(id, home, None, TxMode::ReadWrite, record)
                    .await
            }
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = written {
            tracing::warn!(
                %tenant_id,
                error = %err,
                "writing a denial summary failed; keeping the counts"
            );
            state.limits.denials.restore(tenant_id, counts);
        }
    }
}

/// Every `residency.served_flush_ms`: writes the requests served here per tenant.
fn served_flush(db: Database, state: web::Data<AppState>, interval: Duration) -> JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut ticker = ticker(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            state.served.flush(&db, &state.region).await;
        }
    })
}

/// Every `access_log.flush_interval_ms`: writes the buffered accesses; about
/// hourly, prunes this region's rows past `access_log.retention_days`.
fn access_log(
    db: Database,
    state: web::Data<AppState>,
    settings: crate::access_log::AccessLogSettings,
) -> JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut ticker = ticker(settings.flush_interval);
        let prune_every = Duration::from_secs(3600);
        let mut pruned_at: Option<std::time::Instant> = None;
        ticker.tick().await;
        loop {
            ticker.tick().await;
            state.access_log.flush(&db, &state.region).await;
            if pruned_at.is_none_or(|at| at.elapsed() >= prune_every) {
                pruned_at = Some(std::time::Instant::now());
                let pruned = crate::access_log::prune(&db, &state.region, &settings).await;
                if pruned > 0 {
                    tracing::info!(pruned, "access log rows past retention deleted");
                }
            }
        }
    })
}

/// Every `usage_history.sample_interval_ms`: samples the usage of this
/// region's tenants for the current hour; about hourly, prunes this region's
/// samples past `usage_history.retention_days`.
fn usage_history(
    db: Database,
    state: web::Data<AppState>,
    settings: crate::limits::history::UsageHistorySettings,
) -> JoinHandle<()> {
    use crate::limits::history;
    actix_web::rt::spawn(async move {
        let mut ticker = ticker(settings.sample_interval);
        let prune_every = Duration::from_secs(3600);
        let mut pruned_at: Option<std::time::Instant> = None;
        ticker.tick().await;
        loop {
            ticker.tick().await;
            history::sample(&db, &state.region, &settings, chrono::Utc::now()).await;
            if pruned_at.is_none_or(|at| at.elapsed() >= prune_every) {
                pruned_at = Some(std::time::Instant::now());
                let pruned = history::prune(&db, &state.region, &settings).await;
                if pruned > 0 {
                    tracing::info!(pruned, "usage samples past retention deleted");
                }
            }
        }
    })
}

/// Every `auth.keys_poll_interval_ms`: looks at the key set file and puts a
/// changed set in force; a set that does not load leaves the old one in force.
fn key_reload(
    state: web::Data<AppState>,
    settings: &crate::config::AuthSettings,
) -> JoinHandle<()> {
    let mut watch = crate::auth::reload::KeyWatch::new(&settings.keys_file);
    let interval = settings.keys_poll_interval;
    actix_web::rt::spawn(async move {
        let mut ticker = ticker(interval);
        loop {
            ticker.tick().await;
            // A few hundred bytes read and hashed: cheap enough for the runtime thread.
            watch.poll(&state.verifier);
        }
    })
}

/// Re-reads the drained flags every node shares.
async fn refresh_region_state(db: &Database, state: &AppState) -> Result<(), ApiError> {
    let drained = db
        .platform_tx(TxMode::ReadOnly, async |tx| {
            Ok(crate::store::regions::drained(tx).await?)
        })
        .await?;
    state.routing.health.set_drained(&drained);
    Ok(())
}

/// Every `routing.probe_interval_ms`: re-reads the drained flags and probes every
/// peer region's `/readyz`, feeding the failover decisions.
fn region_watch(
    db: Database,
    state: web::Data<AppState>,
    settings: &crate::config::RoutingSettings,
) -> JoinHandle<()> {
    let (interval, timeout) = (settings.probe_interval, settings.probe_timeout);
    let unreachable_after = settings.unreachable_after;
    // Validated at start (`Settings::validate`); https peers are probed as hops go.
    let hop_tls = crate::server_tls::hop_client_config(settings.hop_ca_file.as_deref());
    actix_web::rt::spawn(async move {
        let client = match hop_tls {
            Ok(tls) => crate::server_tls::hop_client(&std::sync::Arc::new(tls), None, None),
            Err(err) => {
                tracing::error!(error = %err, "routing.hop_ca_file: https peers cannot be probed");
                awc::Client::builder().disable_redirects().finish()
            }
        };
        let mut ticker = ticker(interval);
        let mut ticks: u64 = 0;
        loop {
            ticker.tick().await;
            ticks += 1;
            // Now and then, pick up relocations whose worker died (expired lease).
            if ticks.is_multiple_of(RESUME_RELOCATIONS_EVERY) {
                let relocator = state.relocator.clone();
                actix_web::rt::spawn(async move { relocator.resume_abandoned().await });
            }
            if let Err(err) = refresh_region_state(&db, &state).await {
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
                state
                    .routing
                    .health
                    .record_probe(region, up, unreachable_after);
            }
        }
    })
}

/// Every `audit.seal_interval_ms`: chains the region's new tenant audit events.
fn audit_seal(
    db: Database,
    state: web::Data<AppState>,
    settings: audit::seal::AuditSettings,
) -> JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut ticker = ticker(settings.seal_interval);
        loop {
            ticker.tick().await;
            seal_pass(&db, &state.region, settings.seal_batch).await;
        }
    })
}

async fn seal_pass(db: &Database, region: &crate::ids::RegionId, batch: i64) {
    match audit::seal::seal_region(db, region, batch).await {
        Ok(pass) if pass.events > 0 => {
            tracing::debug!(?pass, "audit events chained");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "chaining the region's audit events failed"),
    }
}
