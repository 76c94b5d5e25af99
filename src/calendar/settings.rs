//! `calendar.*` settings of a node, checked at start (`Settings::validate`).
//! CalDAV has bounds of its own rather than the outbound client's webhook
//! bound (`outbound.total_timeout_ms`, 10 s): a first sync's
//! `sync-collection` of a 2,000-object calendar can take longer than a
//! webhook receiver may, while a health check must give up much sooner.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Connecting (TCP, and TLS for `https`) to a calendar server.
    #[serde(rename = "connect_timeout_ms", with = "crate::config::millis")]
    pub connect_timeout: Duration,
    /// One exchange with a calendar server: connect, send, read the answer.
    #[serde(rename = "request_timeout_ms", with = "crate::config::millis")]
    pub request_timeout: Duration,
    /// One account's whole sync (every linked calendar); a sync cut off here
    /// fails the account (`failing`, backoff) and is redone from the stored
    /// positions next time.
    #[serde(rename = "sync_budget_ms", with = "crate::config::millis")]
    pub sync_budget: Duration,
    /// Accounts checked at once by `POST /v1/calendar-health/check`.
    pub health_concurrency: usize,
    /// Of those, checks of one server (`host:port`) at once: a server's own
    /// connection limit is not flooded (see docs/architecture.md).
    pub health_per_host: usize,
    /// One account's active check (after its turn for the host came); past
    /// it the outcome is `timeout`.
    #[serde(rename = "check_timeout_ms", with = "crate::config::millis")]
    pub check_timeout: Duration,
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
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(60),
            sync_budget: Duration::from_secs(300),
            health_concurrency: 64,
            health_per_host: 6,
            check_timeout: Duration::from_secs(5),
            max_window_days: 366,
            max_instances: 2000,
        }
    }
}

impl CalendarSettings {
    /// Why these settings cannot run a node, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        let ms = Duration::from_millis;
        if !(ms(50)..=ms(60_000)).contains(&self.connect_timeout) {
            return Err("calendar.connect_timeout_ms must be 50..=60000".into());
        }
        if !(self.connect_timeout..=ms(600_000)).contains(&self.request_timeout) {
            return Err(
                "calendar.request_timeout_ms must be at least calendar.connect_timeout_ms and \
                 at most 600000"
                    .into(),
            );
        }
        if !(self.request_timeout..=ms(3_600_000)).contains(&self.sync_budget) {
            return Err(
                "calendar.sync_budget_ms must be at least calendar.request_timeout_ms and at \
                 most 3600000"
                    .into(),
            );
        }
        if !(ms(50)..=ms(60_000)).contains(&self.check_timeout) {
            return Err("calendar.check_timeout_ms must be 50..=60000".into());
        }
        if !(1..=1024).contains(&self.health_concurrency)
            || !(1..=self.health_concurrency).contains(&self.health_per_host)
        {
            return Err(
                "calendar.health_concurrency must be 1..=1024 and calendar.health_per_host \
                 1..=health_concurrency"
                    .into(),
            );
        }
        if !(1..=64).contains(&self.per_tenant_concurrency)
            || !(1..=1000).contains(&self.multiget_batch)
        {
            return Err(
                "calendar.per_tenant_concurrency must be 1..=64 and calendar.multiget_batch \
                 1..=1000"
                    .into(),
            );
        }
        if self.max_response_bytes < 64 * 1024 || self.max_bridges == 0 {
            return Err(
                "calendar.max_response_bytes must be at least 65536 and calendar.max_bridges \
                 positive"
                    .into(),
            );
        }
        if self.backoff_base_secs < 1 || self.backoff_max_secs < self.backoff_base_secs {
            return Err(
                "calendar.backoff_base_secs must be positive and <= calendar.backoff_max_secs"
                    .into(),
            );
        }
        if self.max_window_days < 1 || self.max_instances == 0 {
            return Err(
                "calendar.max_window_days and calendar.max_instances must be positive".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_inconsistent_bounds_are_refused() {
        assert_eq!(CalendarSettings::default().validate(), Ok(()));
        let refused = |change: fn(&mut CalendarSettings), what: &str| {
            let mut s = CalendarSettings::default();
            change(&mut s);
            let why = s.validate().unwrap_err();
            assert!(why.contains(what), "{why}");
        };
        refused(|s| s.connect_timeout = Duration::ZERO, "connect_timeout_ms");
        refused(
            |s| s.request_timeout = Duration::from_millis(100),
            "request_timeout_ms",
        );
        refused(
            |s| s.sync_budget = Duration::from_secs(10),
            "sync_budget_ms",
        );
        refused(|s| s.check_timeout = Duration::ZERO, "check_timeout_ms");
        refused(|s| s.health_per_host = 65, "health_per_host");
        refused(|s| s.health_concurrency = 0, "health_concurrency");
        refused(|s| s.multiget_batch = 0, "multiget_batch");
        refused(|s| s.backoff_max_secs = 1, "backoff_base_secs");
    }
}
