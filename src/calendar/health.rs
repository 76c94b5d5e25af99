//! Calendar health for platform staff. `stored` reads every tenant's accounts'
//! sync state in one statement (the SECURITY DEFINER `calendar_health()` of
//! V23: state only — host, status, times, error — never paths, user names,
//! secrets or events). `check` actively asks every account of the tenants
//! homed in this node's region: a `PROPFIND` (Depth 0) of the account's base
//! URL through the tenant's bridge, `calendar.health_concurrency` at once,
//! each bounded by the outbound client's timeouts; results are stored on the
//! accounts (`last_check_at`, `last_check_ok`).

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
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
    /// `ok`, `unauthorized`, `unreachable` or `error`.
    pub outcome: String,
    pub detail: Option<String>,
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

async fn check_one(cal: &Calendars, tenant: TenantId, account: CalendarAccountId) -> CheckResult {
    let started = Instant::now();
    let outcome = async {
        let (bridge, remote) = cal.remote(tenant, &cal.region, account).await?;
        let call = Call {
            method: "PROPFIND",
            path: remote.base_path(),
            depth: Some("0"),
            headers: Vec::new(),
            content_type: "application/xml; charset=utf-8",
            body: dav::PROPFIND_CTAG.as_bytes(),
        };
        Ok::<_, ApiError>(bridge.send(&remote, call).await)
    }
    .await;
    let (ok, outcome, detail) = match outcome {
        Ok(Ok(response)) if response.status == 207 => (true, "ok", None),
        Ok(Ok(response)) => (false, "error", Some(format!("HTTP {}", response.status))),
        Ok(Err(RemoteError::Unauthorized(_))) => (false, "unauthorized", None),
        Ok(Err(err)) => (false, "unreachable", Some(err.to_string())),
        Err(err) => (false, "error", Some(err.to_string())),
    };
    CheckResult {
        tenant_id: tenant,
        account_id: account,
        ok,
        outcome: outcome.to_owned(),
        detail,
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
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
    let targets: Vec<(TenantId, CalendarAccountId)> = accounts
        .iter()
        .filter(|a| tenants.contains(&a.tenant_id))
        .map(|a| (a.tenant_id, a.account_id))
        .collect();
    let results: Vec<CheckResult> = futures_util::stream::iter(targets)
        .map(|(tenant, account)| check_one(cal, tenant, account))
        .buffer_unordered(cal.settings.health_concurrency.max(1))
        .collect()
        .await;
    let mut by_tenant: std::collections::BTreeMap<TenantId, Vec<(CalendarAccountId, bool)>> =
        Default::default();
    for r in &results {
        by_tenant
            .entry(r.tenant_id)
            .or_default()
            .push((r.account_id, r.ok));
    }
    for (tenant, checked) in by_tenant {
        cal.db
            .tenant_tx(tenant, &cal.region, None, TxMode::ReadWrite, async |tx| {
                for (account, ok) in &checked {
                    store::record_check(tx, *account, *ok).await?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(CheckReport {
        region,
        checked: results.len(),
        ok: results.iter().filter(|r| r.ok).count(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        results,
    })
}
