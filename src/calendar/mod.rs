//! Calendar sync (issue 17): a tenant admin connects CalDAV accounts and grants
//! their collections to users (V34), users link the calendars granted to them,
//! and Meridian keeps their events in `calendar_events` (V23) — read with
//! `GET /v1/calendar-events`, written through to the server with the ETag as
//! `If-Match`.
//!
//! - `dav`: the WebDAV/CalDAV XML in and out.
//! - `ical`: iCalendar parsing, RRULE expansion within a window, writing.
//! - `bridge`: the per-tenant bridge (client, opened credentials, concurrency),
//!   created lazily and pooled in moka, evicted when idle.
//! - `sync`: the sync engine (RFC 6578 sync tokens, else ctag/etag comparison)
//!   and its jobs (`calendar.sync`, scheduled and on demand).
//! - `health`: the stored-state view and the active check of every account.
//! - `edit`: what a change or removal writes (whole object, series, or one
//!   occurrence of a series).
//! - `write`: writing through to the server with If-Match / If-None-Match.
//! - `path`: the one canonical spelling of a collection's path (grants and
//!   links compare on it).
//! - `store`: the tables.
//! - `settings`: `calendar.*`, with CalDAV's own timeouts.
//!
//! Every request to a calendar server goes through the SSRF-safe
//! `outbound::Client`, like webhooks.

pub mod bridge;
pub mod dav;
pub mod edit;
pub mod health;
pub mod ical;
pub mod path;
pub mod settings;
pub mod store;
pub mod sync;
pub mod write;

pub use settings::CalendarSettings;

use crate::crypto::keyring::Keyring;
use crate::db::{Database, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{CalendarAccountId, RegionId, TenantId};
use bridge::{Bridge, BridgePool, Remote};
use std::sync::Arc;

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
