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
//! scheduled sync backs off exponentially) or `unauthorized`.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::bridge::{Bridge, Call, Remote, RemoteError};
use super::store::{self, Position, SyncResult};
use super::{Calendars, dav, ical};
use crate::db::TxMode;
use crate::error::ApiError;
use crate::ids::{CalendarAccountId, RegionId, TenantId};
use crate::jobs::{JobContext, JobError, JobHandler, NewJob};

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

const XML: &str = "application/xml; charset=utf-8";

struct Tenant<'a> {
    cal: &'a Calendars,
    id: TenantId,
    home: &'a RegionId,
    bridge: Arc<Bridge>,
    remote: Arc<Remote>,
}

impl Tenant<'_> {
    async fn tx<T>(
        &self,
        body: impl AsyncFnMut(&crate::db::TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, SyncError> {
        Ok(self
            .cal
            .db
            .tenant_tx(self.id, self.home, None, TxMode::ReadWrite, body)
            .await?)
    }

    async fn report(
        &self,
        path: &str,
        depth: &'static str,
        body: &str,
    ) -> Result<dav::Multistatus, SyncError> {
        self.dav("REPORT", path, depth, body).await
    }

    async fn dav(
        &self,
        method: &'static str,
        path: &str,
        depth: &'static str,
        body: &str,
    ) -> Result<dav::Multistatus, SyncError> {
        let response = self
            .bridge
            .send(
                &self.remote,
                Call {
                    method,
                    path,
                    depth: Some(depth),
                    headers: Vec::new(),
                    content_type: XML,
                    body: body.as_bytes(),
                },
            )
            .await?;
        if response.status != 207 {
            return Err(RemoteError::Status(response.status).into());
        }
        dav::parse(&response.body).map_err(|e| RemoteError::Invalid(e).into())
    }

    /// The changes since `position` by RFC 6578, or `None` when the server
    /// does not do sync-collection. (changed hrefs with etags, removed hrefs,
    /// new token, whether the listing was complete.)
    async fn by_token(&self, position: &Position) -> Result<Option<Delta>, SyncError> {
        let mut token = position.sync_token.clone();
        loop {
            let body = dav::sync_collection(token.as_deref());
            let answer = self
                .bridge
                .send(
                    &self.remote,
                    Call {
                        method: "REPORT",
                        path: &position.path,
                        depth: Some("1"),
                        headers: Vec::new(),
                        content_type: XML,
                        body: body.as_bytes(),
                    },
                )
                .await?;
            match answer.status {
                207 => {
                    let parsed = dav::parse(&answer.body).map_err(RemoteError::Invalid)?;
                    return Ok(Some(Delta::from_sync(
                        parsed,
                        &position.path,
                        token.is_none(),
                    )));
                }
                // An expired or unknown token (RFC 6578 §3.2: valid-sync-token):
                // start over with the whole collection.
                403 | 409
                    if token.is_some()
                        && String::from_utf8_lossy(&answer.body).contains("valid-sync-token") =>
                {
                    token = None;
                }
                400 | 403 | 405 | 501 => return Ok(None),
                status => return Err(RemoteError::Status(status).into()),
            }
        }
    }

    /// The changes by ctag, then etag comparison with what is stored.
    async fn by_etags(&self, position: &Position) -> Result<Option<Delta>, SyncError> {
        let marker = self
            .dav("PROPFIND", &position.path, "0", dav::PROPFIND_CTAG)
            .await?;
        if marker.ctag.is_some() && marker.ctag == position.ctag {
            return Ok(None);
        }
        let listing = self
            .dav("PROPFIND", &position.path, "1", dav::PROPFIND_ETAGS)
            .await?;
        let id = position.id;
        let stored = self.tx(async |tx| Ok(store::etags(tx, id).await?)).await?;
        let mut delta = Delta {
            ctag: marker.ctag,
            ..Delta::default()
        };
        let mut listed = HashSet::new();
        for entry in listing
            .entries
            .into_iter()
            .filter(|e| !e.collection && e.status == 200)
        {
            listed.insert(entry.href.clone());
            if let Some(etag) = entry.etag
                && stored.get(&entry.href) != Some(&etag)
            {
                delta.changed.push((entry.href, etag));
            }
        }
        delta.removed = stored.into_keys().filter(|h| !listed.contains(h)).collect();
        Ok(Some(delta))
    }

    async fn calendar(&self, position: &Position) -> Result<Counts, SyncError> {
        let delta = match self.by_token(position).await? {
            Some(delta) => Some(delta),
            None => self.by_etags(position).await?,
        };
        let Some(mut delta) = delta else {
            return Ok(Counts::default());
        };
        let id = position.id;
        let stored = self.tx(async |tx| Ok(store::etags(tx, id).await?)).await?;
        if delta.complete {
            let listed: HashSet<&String> = delta.changed.iter().map(|(h, _)| h).collect();
            delta
                .removed
                .extend(stored.keys().filter(|h| !listed.contains(h)).cloned());
        }
        // Objects already stored with that etag (our own write-through) need no fetch.
        delta
            .changed
            .retain(|(href, etag)| stored.get(href) != Some(etag));
        let mut counts = Counts::default();
        let hrefs: Vec<String> = delta.changed.into_iter().map(|(h, _)| h).collect();
        for batch in hrefs.chunks(self.cal.settings.multiget_batch.max(1)) {
            let answer = self
                .report(&position.path, "1", &dav::multiget(batch))
                .await?;
            let mut objects = Vec::new();
            for entry in answer.entries {
                let (Some(etag), Some(ics)) = (entry.etag, entry.calendar_data) else {
                    continue;
                };
                match ical::parse(&ics) {
                    Ok(parsed) => objects.push((entry.href, etag, ics, parsed)),
                    Err(why) => {
                        tracing::warn!(tenant = %self.id, href = %entry.href, %why, "calendar object skipped");
                        counts.skipped += 1;
                    }
                }
            }
            counts.fetched += objects.len();
            self.tx(async |tx| {
                for (href, etag, ics, parsed) in &objects {
                    store::upsert_event(tx, id, href, etag, ics, parsed).await?;
                }
                Ok(())
            })
            .await?;
        }
        let (token, ctag) = (delta.token, delta.ctag);
        counts.removed = self
            .tx(async |tx| {
                let mut removed = 0;
                for href in &delta.removed {
                    removed += store::delete_href(tx, id, href).await?;
                }
                store::set_position(tx, id, token.as_deref(), ctag.as_deref()).await?;
                Ok(removed)
            })
            .await?
            .try_into()
            .unwrap_or(usize::MAX);
        Ok(counts)
    }
}

#[derive(Default)]
struct Delta {
    changed: Vec<(String, String)>,
    removed: Vec<String>,
    token: Option<String>,
    ctag: Option<String>,
    /// The answer listed the whole collection: what it did not list is gone.
    complete: bool,
}

impl Delta {
    fn from_sync(parsed: dav::Multistatus, collection: &str, complete: bool) -> Self {
        let mut delta = Delta {
            token: parsed.sync_token,
            complete,
            ..Delta::default()
        };
        for entry in parsed.entries {
            if entry.collection || entry.href == collection {
                continue;
            }
            match (entry.status, entry.etag) {
                (404, _) => delta.removed.push(entry.href),
                (200, Some(etag)) => delta.changed.push((entry.href, etag)),
                _ => {}
            }
        }
        delta
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
