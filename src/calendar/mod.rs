//! Calendar sync (issue 17): a tenant admin connects CalDAV accounts, users
//! link calendars of them, and Meridian keeps their events in
//! `calendar_events` (V23) — read with `GET /v1/calendar-events`, written
//! through to the server with the ETag as `If-Match`.
//!
//! - `dav`: the WebDAV/CalDAV XML in and out.
//! - `ical`: iCalendar parsing, RRULE expansion within a window, writing.
//! - `bridge`: the per-tenant bridge (client, opened credentials, concurrency),
//!   created lazily and pooled in moka, evicted when idle.
//! - `sync`: the sync engine (RFC 6578 sync tokens, else ctag/etag comparison)
//!   and its jobs (`calendar.sync`, scheduled and on demand).
//! - `health`: the stored-state view and the active check of every account.
//! - `write`: writing through to the server with If-Match / If-None-Match.
//! - `store`: the tables.
//!
//! Every request to a calendar server goes through the SSRF-safe
//! `outbound::Client`, like webhooks.

pub mod bridge;
pub mod dav;
pub mod health;
pub mod ical;
pub mod store;
pub mod sync;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::keyring::Keyring;
use crate::db::{Database, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{CalendarAccountId, RegionId, TenantId};
use bridge::{Bridge, BridgePool, Remote};

/// `calendar.*` settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CalendarSettings {
    /// How often every tenant's accounts are synced (0: never on a schedule).
    #[serde(rename = "sync_interval_ms", with = "crate::config::millis")]
    pub sync_interval: Duration,
    /// The next scheduled sync after n failures in a row waits base · 2^(n-1),
    /// at most max.
    pub backoff_base_secs: i64,
    pub backoff_max_secs: i64,
    /// A tenant's bridge is dropped after this long unused.
    #[serde(rename = "bridge_idle_ms", with = "crate::config::millis")]
    pub bridge_idle: Duration,
    /// Bridges a node holds at most (least recently used go first).
    pub max_bridges: u64,
    /// Requests one tenant's bridge sends at once.
    pub per_tenant_concurrency: usize,
    /// A calendar server's answer (a multistatus of a big calendar) at most.
    pub max_response_bytes: usize,
    /// Objects fetched per `calendar-multiget`.
    pub multiget_batch: usize,
    /// Accounts checked at once by `POST /v1/calendar-health/check`.
    pub health_concurrency: usize,
    /// The widest `from`..`to` of `GET /v1/calendar-events`, in days.
    pub max_window_days: i64,
    /// Instances that answer returns at most.
    pub max_instances: u16,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        Self {
            sync_interval: Duration::from_secs(15 * 60),
            backoff_base_secs: 60,
            backoff_max_secs: 6 * 3600,
            bridge_idle: Duration::from_secs(10 * 60),
            max_bridges: 10_000,
            per_tenant_concurrency: 4,
            max_response_bytes: 32 * 1024 * 1024,
            multiget_batch: 200,
            health_concurrency: 64,
            max_window_days: 366,
            max_instances: 2000,
        }
    }
}

/// What the calendar routes and jobs share on a node.
pub struct Calendars {
    pub settings: CalendarSettings,
    pub bridges: BridgePool,
    pub keyring: Arc<Keyring>,
    pub db: Database,
    pub region: RegionId,
}

impl Calendars {
    /// The account's server through the tenant's bridge: credentials opened in
    /// `tx` the first time, then held by the bridge until it is evicted.
    pub async fn remote_in(
        &self,
        tx: &TenantTx<'_>,
        account: CalendarAccountId,
    ) -> Result<(Arc<Bridge>, Arc<Remote>), ApiError> {
        let bridge = self.bridges.get(tx.tenant_id());
        if let Some(remote) = bridge.remote(account) {
            return Ok((bridge, remote));
        }
        let credentials = store::credentials(tx, &self.keyring, account).await?;
        let remote =
            Remote::new(&credentials).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let remote = bridge.insert(account, remote);
        Ok((bridge, remote))
    }

    /// `remote_in` in a read transaction of its own.
    pub async fn remote(
        &self,
        tenant: TenantId,
        home: &RegionId,
        account: CalendarAccountId,
    ) -> Result<(Arc<Bridge>, Arc<Remote>), ApiError> {
        let bridge = self.bridges.get(tenant);
        if let Some(remote) = bridge.remote(account) {
            return Ok((bridge, remote));
        }
        self.db
            .tenant_tx(tenant, home, None, TxMode::ReadOnly, async |tx| {
                self.remote_in(tx, account).await
            })
            .await
    }
}
