//! Calendar health for platform staff. `stored` reads every tenant's accounts'
//! sync state in one statement (the SECURITY DEFINER `calendar_health()` of
//! V23: state only — host, status, times, error — never paths, user names,
//! secrets or events). `check` actively asks every account of the tenants
//! homed in this node's region: a `PROPFIND` (Depth 0) of the account's base
//! URL through the tenant's bridge, `calendar.health_concurrency` at once and
//! at most `calendar.health_per_host` per server, each bounded by
//! `calendar.check_timeout_ms` (outcome `timeout`); results are stored on the
//! accounts (`last_check_at`, `last_check_ok`).
//!
//! Why a per-host bound: a CalDAV server takes only so many connections at
//! once, and its listen queue beyond that is short. Radicale (a threaded WSGI
//! server) serves `max_connections` (default 8) and stops accepting past
//! that; its socket's listen backlog is Python's default of 5. With 64 checks
//! at once against one Radicale, new connections overflowed that backlog (the
//! kernel's `ListenOverflows` counter rose by hundreds), the dropped
//! handshakes were retried by TCP after 1 s, 3 s, … and 2–5% of the checks
//! ran into the connect or whole-exchange bound. At 6 per host none did.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa::ToSchema;
use uuid::Uuid;

use super::bridge::{Call, RemoteError};
use super::{Calendars, dav, store};
use crate::db::{PlatformTx, TxMode};
use crate::error::ApiError;
use crate::ids::{CalendarAccountId, TenantId};

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountHealth {
    pub tenant_id: TenantId,
    pub home_region: String,
    pub account_id: CalendarAccountId,
    /// The server's `host[:port]`.
    pub host: String,
    pub status: String,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Seconds since the last successful sync (none: never synced).
    pub lag_seconds: Option<i64>,
    pub last_error: Option<String>,
    pub failure_streak: i32,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_check_ok: Option<bool>,
    pub calendars: i64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Totals {
    pub accounts: usize,
    pub ok: usize,
    pub failing: usize,
    pub unauthorized: usize,
    pub pending: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    pub totals: Totals,
    pub accounts: Vec<AccountHealth>,
}

/// Every account's stored state.
pub async fn stored(tx: &PlatformTx<'_>) -> Result<HealthReport, ApiError> {
    let now = Utc::now();
    let rows = tx
        .query(
            "SELECT tenant_id, home_region, account_id, host, status, last_sync_at, \
                last_success_at, last_error, failure_streak, last_check_at, last_check_ok, calendars \
             FROM calendar_health()",
            &[],
        )
        .await?;
    let mut totals = Totals::default();
    let accounts: Vec<AccountHealth> = rows
        .iter()
        .map(|r| {
            let last_success_at: Option<DateTime<Utc>> = r.get("last_success_at");
            AccountHealth {
                tenant_id: TenantId::from_uuid(r.get("tenant_id")),
                home_region: r.get("home_region"),
                account_id: CalendarAccountId::from_uuid(r.get("account_id")),
                host: r.get("host"),
                status: r.get("status"),
                last_sync_at: r.get("last_sync_at"),
                last_success_at,
                lag_seconds: last_success_at.map(|at| (now - at).num_seconds()),
                last_error: r.get("last_error"),
                failure_streak: r.get("failure_streak"),
                last_check_at: r.get("last_check_at"),
                last_check_ok: r.get("last_check_ok"),
                calendars: r.get("calendars"),
            }
        })
        .collect();
    for a in &accounts {
        match a.status.as_str() {
            "ok" => totals.ok += 1,
            "failing" => totals.failing += 1,
            "unauthorized" => totals.unauthorized += 1,
            _ => totals.pending += 1,
        }
    }
    totals.accounts = accounts.len();
    Ok(HealthReport { totals, accounts })
}

/// The tenants homed in `region` that have calendar accounts.
pub async fn tenants_in(tx: &PlatformTx<'_>, region: &str) -> Result<Vec<TenantId>, ApiError> {
    Ok(tx
        .query("SELECT tenant_id FROM calendar_tenants($1)", &[&region])
        .await?
        .iter()
        .map(|r| TenantId::from_uuid(r.get::<_, Uuid>(0)))
        .collect())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    pub tenant_id: TenantId,
    pub account_id: CalendarAccountId,
    pub ok: bool,
    /// `ok`, `unauthorized`, `timeout` (no answer within
    /// `calendar.check_timeout_ms`, or a connect/request timeout),
    /// `unreachable` or `error`.
    pub outcome: String,
    pub detail: Option<String>,
    /// The check's own time (its wait for a turn of the host not counted).
    pub millis: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckReport {
    /// The region whose tenants were checked (this node's).
    pub region: String,
    pub checked: usize,
    pub ok: usize,
    pub millis: u64,
    pub results: Vec<CheckResult>,
}

/// One account's check: its credentials opened (our own database work, done
/// before taking a turn of the server so no turn waits on it), then a turn of
/// its server's `health_per_host` permits, then the `PROPFIND` within
/// `check_timeout` (the wait for the turn is not the server's fault and is not
/// counted).
async fn check_one(cal: &Calendars, target: Target, host: Arc<Semaphore>) -> CheckResult {
    let Target {
        tenant, account, ..
    } = target;
    let limit = cal.settings.check_timeout;
    let finish = |ok: bool, outcome: &str, detail: Option<String>, millis: u64| CheckResult {
        tenant_id: tenant,
        account_id: account,
        ok,
        outcome: outcome.to_owned(),
        detail,
        millis,
    };
    let (bridge, remote) = match cal.remote(tenant, &cal.region, account).await {
        Ok(opened) => opened,
        Err(err) => return finish(false, "error", Some(err.to_string()), 0),
    };
    let _turn = host.acquire_owned().await;
    let started = Instant::now();
    let call = Call {
        method: "PROPFIND",
        path: remote.base_path(),
        depth: Some("0"),
        headers: Vec::new(),
        content_type: "application/xml; charset=utf-8",
        body: dav::PROPFIND_CTAG.as_bytes(),
    };
    let (ok, outcome, detail) = match tokio::time::timeout(limit, bridge.send(&remote, call)).await
    {
        Err(_) => (
            false,
            "timeout",
            Some(format!(
                "no answer within {} ms (calendar.check_timeout_ms)",
                limit.as_millis()
            )),
        ),
        Ok(Ok(response)) if response.status == 207 => (true, "ok", None),
        Ok(Ok(response)) => (false, "error", Some(format!("HTTP {}", response.status))),
        Ok(Err(RemoteError::Unauthorized(_))) => (false, "unauthorized", None),
        Ok(Err(err @ RemoteError::Timeout(_))) => (false, "timeout", Some(err.to_string())),
        Ok(Err(err)) => (false, "unreachable", Some(err.to_string())),
    };
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    finish(ok, outcome, detail, millis)
}

struct Target {
    tenant: TenantId,
    account: CalendarAccountId,
    host: String,
}

/// `targets` with each server's accounts spread out (the first of every host,
/// then the second of every host, …), so the `health_concurrency` slots are
/// not all taken by checks waiting for one busy host while others sit idle.
fn interleaved(targets: Vec<Target>) -> Vec<Target> {
    let mut by_host: BTreeMap<String, Vec<Target>> = BTreeMap::new();
    for t in targets {
        by_host.entry(t.host.clone()).or_default().push(t);
    }
    let mut queues: Vec<std::vec::IntoIter<Target>> =
        by_host.into_values().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        out.extend(queues.iter_mut().filter_map(Iterator::next));
        if out.len() == before {
            return out;
        }
    }
}

/// Checks every account of the region's tenants (see the module doc).
pub async fn check(cal: &Calendars) -> Result<CheckReport, ApiError> {
    let started = Instant::now();
    let region = cal.region.as_str().to_owned();
    let (tenants, accounts) = cal
        .db
        .platform_tx(TxMode::ReadOnly, async |tx| {
            let tenants = tenants_in(tx, &region).await?;
            let accounts = stored(tx).await?.accounts;
            Ok((tenants, accounts))
        })
        .await?;
    let tenants: HashSet<TenantId> = tenants.into_iter().collect();
    let targets: Vec<Target> = accounts
        .into_iter()
        .filter(|a| tenants.contains(&a.tenant_id))
        .map(|a| Target {
            tenant: a.tenant_id,
            account: a.account_id,
            host: a.host,
        })
        .collect();
    let per_host = cal.settings.health_per_host.max(1);
    let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
    // Each result is stored as soon as it is known (its host's turn given
    // back first), so the writes overlap the other checks' waits.
    let outcomes: Vec<Result<CheckResult, ApiError>> =
        futures_util::stream::iter(interleaved(targets))
            .map(|target| {
                let host = hosts
                    .entry(target.host.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(per_host)))
                    .clone();
                async move {
                    let result = check_one(cal, target, host).await;
                    let (account, ok) = (result.account_id, result.ok);
                    cal.db
                        .tenant_tx(
                            result.tenant_id,
                            &cal.region,
                            None,
                            TxMode::ReadWrite,
                            async |tx| Ok(store::record_check(tx, account, ok).await?),
                        )
                        .await?;
                    Ok(result)
                }
            })
            .buffer_unordered(cal.settings.health_concurrency.max(1))
            .collect()
            .await;
    let results = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(CheckReport {
        region,
        checked: results.len(),
        ok: results.iter().filter(|r| r.ok).count(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        results,
    })
}
