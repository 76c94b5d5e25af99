//! The sync engine and its job. Per linked calendar: an RFC 6578
//! `sync-collection` REPORT from the stored token (none: the whole collection,
//! and objects stored but not listed are removed); a server that refuses the
//! REPORT is compared instead — its `getctag` first (unchanged: nothing to
//! do), then every object's etag against the stored ones. Changed objects are
//! fetched with `calendar-multiget` in batches and stored one transaction per
//! batch; removals and the new position are stored last, so a sync cut short
//! is simply redone from the old position (every step is idempotent).
//!
//! The `calendar.sync` job runs in the tenant's home region (jobs are homed
//! like the tenant): on a schedule (`calendar.sync_interval_ms`, every
//! account whose backoff has passed) and on demand (one account, backoff
//! ignored). An account's outcome is stored on it: `ok`, `failing` (the next
//! scheduled sync backs off exponentially) or `unauthorized`. An account's
//! whole sync is bounded by `calendar.sync_budget_ms` (`timeout: …`).
//!
//! `calendar`: one calendar's steps (delta, fetch, store).

mod calendar;

use std::sync::Arc;

use serde_json::{Value, json};

use super::bridge::RemoteError;
use super::store::{self, SyncResult};
use super::{Calendars, dav};
use crate::db::TxMode;
use crate::error::ApiError;
use crate::ids::{CalendarAccountId, RegionId, TenantId};
use crate::jobs::{JobContext, JobError, JobHandler, NewJob};
use calendar::Tenant;

pub const SYNC_KIND: &str = "calendar.sync";

/// The on-demand sync job of one account.
pub fn sync_job(account: CalendarAccountId) -> NewJob {
    NewJob {
        kind: SYNC_KIND,
        payload: json!({ "account_id": account }),
        idempotency_key: None,
        run_after: None,
        max_attempts: 3,
    }
}

/// What one calendar's sync changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub fetched: usize,
    pub removed: usize,
    /// Objects that are not readable iCalendar (left out, logged).
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Remote(#[from] RemoteError),
    #[error("{0}")]
    Store(#[from] ApiError),
}

impl From<crate::store::error::StoreError> for SyncError {
    fn from(err: crate::store::error::StoreError) -> Self {
        Self::Store(err.into())
    }
}

/// Syncs every linked calendar of `account` and records the outcome on it.
pub async fn sync_account(
    cal: &Calendars,
    tenant: TenantId,
    home: &RegionId,
    account: CalendarAccountId,
) -> Result<Value, ApiError> {
    let budget = cal.settings.sync_budget;
    // Every step stores what it did: a sync cut off here is redone from there.
    let outcome = tokio::time::timeout(budget, run_account(cal, tenant, home, account))
        .await
        .unwrap_or_else(|_| {
            Err(RemoteError::Timeout(format!(
                "the sync did not finish within {} ms (calendar.sync_budget_ms)",
                budget.as_millis()
            ))
            .into())
        });
    let (base, max) = (
        cal.settings.backoff_base_secs,
        cal.settings.backoff_max_secs,
    );
    let (unauthorized, error, report) = match outcome {
        Ok(counts) => (
            false,
            None,
            json!({ "account_id": account, "status": "ok", "calendars": counts }),
        ),
        Err(SyncError::Store(err)) => return Err(err),
        Err(SyncError::Remote(RemoteError::Unauthorized(_))) => {
            // Credentials the server refuses are not kept in the bridge.
            cal.bridges.get(tenant).forget(account);
            let why = "the server refused the credentials".to_owned();
            let report = json!({ "account_id": account, "status": "unauthorized", "error": why });
            (true, Some(why), report)
        }
        Err(SyncError::Remote(err)) => {
            let why = err.to_string();
            let report = json!({ "account_id": account, "status": "failing", "error": why });
            (false, Some(why), report)
        }
    };
    let result = match (&error, unauthorized) {
        (None, _) => SyncResult::Ok,
        (Some(why), true) => SyncResult::Unauthorized(why),
        (Some(why), false) => SyncResult::Failed(why),
    };
    cal.db
        .tenant_tx(tenant, home, None, TxMode::ReadWrite, async |tx| {
            Ok(store::record_sync(tx, account, &result, base, max).await?)
        })
        .await?;
    Ok(report)
}

async fn run_account(
    cal: &Calendars,
    tenant: TenantId,
    home: &RegionId,
    account: CalendarAccountId,
) -> Result<Vec<Counts>, SyncError> {
    let (bridge, remote) = cal.remote(tenant, home, account).await?;
    let positions = cal
        .db
        .tenant_tx(tenant, home, None, TxMode::ReadOnly, async |tx| {
            Ok(store::positions(tx, account).await?)
        })
        .await?;
    let scope = Tenant {
        cal,
        id: tenant,
        home,
        bridge,
        remote,
    };
    if positions.is_empty() {
        // No calendar linked yet: still prove the server and the credentials,
        // so the account's status says whether linking will work.
        let path = scope.remote.base_path().to_owned();
        scope
            .dav("PROPFIND", &path, "0", dav::PROPFIND_CTAG)
            .await?;
    }
    let mut all = Vec::new();
    for position in &positions {
        all.push(scope.calendar(position).await?);
    }
    Ok(all)
}

/// `calendar.sync`: one account (`account_id` in the payload) or every account
/// of the tenant whose backoff has passed.
pub struct SyncJob {
    pub calendars: Arc<Calendars>,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for SyncJob {
    fn kind(&self) -> &'static str {
        SYNC_KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let tenant = ctx
            .tenant
            .ok_or_else(|| JobError::Permanent("calendar.sync needs a tenant".into()))?;
        let retry = |e: ApiError| JobError::Retry(e.to_string());
        let accounts = match payload["account_id"].as_str() {
            Some(raw) => vec![
                CalendarAccountId::parse(raw)
                    .map_err(|_| JobError::Permanent("bad account_id".into()))?,
            ],
            None => ctx
                .tenant_tx(TxMode::ReadOnly, async |tx| {
                    let now = chrono::Utc::now();
                    Ok(store::all_accounts(tx)
                        .await?
                        .into_iter()
                        .filter(|a| a.next_sync_at <= now)
                        .map(|a| a.id)
                        .collect::<Vec<_>>())
                })
                .await
                .map_err(retry)?,
        };
        let mut reports = Vec::new();
        for account in accounts {
            match sync_account(&self.calendars, tenant, &ctx.region, account).await {
                Ok(report) => reports.push(report),
                // Deleted meanwhile: nothing to sync.
                Err(ApiError::NotFound { .. }) => {}
                Err(err) => return Err(retry(err)),
            }
        }
        Ok(json!({ "accounts": reports }))
    }
}
