//! What a request costs, not just that it is one: request classes, their weight
//! in the tenant's concurrency budget, their statement timeout, and the budget of
//! expensive work (search) per tenant and per node.
//!
//! Counting requests let one tenant, inside its limits, fill the database with
//! searches of a common word while other tenants' page reads waited behind them
//! on two cores (issue 11, item 5). So:
//! - a request takes `weight` slots of its tenant's concurrent-request limit
//!   (`limits::concurrency`), a search more than a page;
//! - expensive work needs two more permits: one of the tenant's
//!   (`expensive_per_tenant`) and one of the node's (`expensive_per_node`, over all
//!   tenants). It queues for them at most `expensive_queue_ms` (FIFO, so with one
//!   permit per tenant the node's queue serves tenants in turn), then is refused:
//!   `429 expensive_limited` when the tenant's own share was busy, `503 node_busy`
//!   when the node's was. Cheap classes never wait here;
//! - each class has a `statement_timeout`, set in the transaction's prologue
//!   (`SET LOCAL` semantics): a statement over it is cancelled and answered
//!   `503 statement_timeout`;
//! - searches and big pages are *metered*: their transactions' time is charged
//!   to the tenant's budget of database time on the node (`db_time`).
//!
//! The state is per node, like the other in-process limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::table::Table;
use crate::ids::TenantId;

/// What kind of work a request asks the database for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestClass {
    /// A bounded read: a page of at most `big_page_rows` rows, one item.
    Page,
    /// A page of more than `big_page_rows` rows.
    BigPage,
    /// Any read-write transaction.
    Write,
    /// Ranked full-text search: its cost grows with how many messages match.
    Search,
}

impl RequestClass {
    /// A page read, big when it asks for more than the configured rows.
    pub fn page(rows: u32, settings: &CostSettings) -> Self {
        if rows > settings.big_page_rows {
            Self::BigPage
        } else {
            Self::Page
        }
    }

    /// Slots of the tenant's concurrent-request limit a request of this class
    /// holds (never more than the limit, so every class stays possible).
    pub fn weight(self) -> u32 {
        match self {
            Self::Page | Self::Write => 1,
            Self::BigPage => 2,
            Self::Search => 4,
        }
    }

    /// Whether it needs the expensive-work permits.
    pub fn expensive(self) -> bool {
        matches!(self, Self::Search)
    }

    /// Whether its database time is charged to the tenant's budget
    /// (`db_time`). Writes are not: with its searches held back, a tenant's 8–19
    /// posts a second took no PostgreSQL share the noisy-neighbour benchmark
    /// could see (±0.1 core), and a budget must never refuse a tenant's post.
    pub fn metered(self) -> bool {
        matches!(self, Self::Search | Self::BigPage)
    }

    /// Its `statement_timeout`.
    pub fn statement_timeout(self, settings: &CostSettings) -> Duration {
        match self {
            Self::Page | Self::BigPage => settings.page_timeout,
            Self::Write => settings.write_timeout,
            Self::Search => settings.search_timeout,
        }
    }
}

/// `limits.cost.*`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CostSettings {
    /// Statement timeouts per class (keys in milliseconds).
    #[serde(rename = "page_timeout_ms", with = "crate::config::millis")]
    pub page_timeout: Duration,
    #[serde(rename = "write_timeout_ms", with = "crate::config::millis")]
    pub write_timeout: Duration,
    #[serde(rename = "search_timeout_ms", with = "crate::config::millis")]
    pub search_timeout: Duration,
    /// Pages asking for more rows than this are `BigPage`.
    pub big_page_rows: u32,
    /// Expensive requests running at once on this node, over all tenants; 0: half
    /// the node's cores, at least 1 (the database shares the machine locally; set
    /// it to what the database can spare when it does not).
    pub expensive_per_node: u32,
    /// Expensive requests of one tenant running at once on this node.
    pub expensive_per_tenant: u32,
    /// How long an expensive request may wait for its permits before it is refused.
    #[serde(rename = "expensive_queue_ms", with = "crate::config::millis")]
    pub expensive_queue: Duration,
    /// At most this many matches of a search are ranked (`search_messages`): the
    /// top results of a selective term are exact, a common word costs no more
    /// than this many rows.
    pub search_candidates: u32,
    /// Database time per second each tenant's costly requests (search, big
    /// pages) may take on this node, in milliseconds (`db_time`); 0 turns the
    /// budget off.
    pub db_ms_per_second: u32,
    /// What a tenant's budget holds when full (its burst), in milliseconds.
    pub db_burst_ms: u32,
    /// Database time per second all tenants' costly requests together may take
    /// on this node, in milliseconds (`db_time`): many tenants, each within its
    /// own budget, must not add up to the whole database; 0 turns it off.
    pub db_node_ms_per_second: u32,
    /// What the node's budget holds when full, in milliseconds.
    pub db_node_burst_ms: u32,
}

impl Default for CostSettings {
    fn default() -> Self {
        Self {
            page_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            search_timeout: Duration::from_secs(3),
            big_page_rows: 100,
            expensive_per_node: 0,
            expensive_per_tenant: 1,
            expensive_queue: Duration::from_secs(2),
            search_candidates: 1_000,
            db_ms_per_second: 20,
            db_burst_ms: 200,
            db_node_ms_per_second: 250,
            db_node_burst_ms: 1_000,
        }
    }
}

impl CostSettings {
    /// Checked at start (`Settings::validate`).
    pub fn validate(&self) -> Result<(), String> {
        for (rate, rate_key, burst, burst_key) in [
            (
                self.db_ms_per_second,
                "db_ms_per_second",
                self.db_burst_ms,
                "db_burst_ms",
            ),
            (
                self.db_node_ms_per_second,
                "db_node_ms_per_second",
                self.db_node_burst_ms,
                "db_node_burst_ms",
            ),
        ] {
            if rate > 1_000_000 {
                return Err(format!("limits.cost.{rate_key} must be 0..=1000000"));
            }
            if rate > 0 && !(1..=3_600_000).contains(&burst) {
                return Err(format!(
                    "limits.cost.{burst_key} must be 1..=3600000 when {rate_key} is set"
                ));
            }
        }
        Ok(())
    }

    fn node_permits(&self) -> usize {
        match self.expensive_per_node {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n as usize,
        }
    }
}

/// Why expensive work was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpensiveDenied {
    /// The tenant's own expensive requests held its share for the whole wait.
    Tenant,
    /// Other expensive requests held the node's permits for the whole wait.
    Node,
}

/// Held while an expensive request runs: the tenant's permit and the node's.
pub struct ExpensivePermit {
    _tenant: OwnedSemaphorePermit,
    _node: OwnedSemaphorePermit,
}

/// A tenant's share of expensive work.
struct Share {
    semaphore: Arc<Semaphore>,
    last_used: Instant,
}

/// An entry idle this long with nothing held or queued is dropped.
const IDLE: Duration = Duration::from_secs(600);

pub struct ExpensiveWork {
    node: Arc<Semaphore>,
    tenants: Table<TenantId, Share>,
    per_tenant: usize,
    queue: Duration,
}

impl ExpensiveWork {
    pub fn new(settings: &CostSettings) -> Self {
        Self {
            node: Arc::new(Semaphore::new(settings.node_permits())),
            tenants: Table::new(),
            per_tenant: settings.expensive_per_tenant.max(1) as usize,
            queue: settings.expensive_queue,
        }
    }

    /// Waits (at most the queue time) for the tenant's permit, then the node's.
    /// The tenant's comes first: a tenant's excess queues behind its own work and
    /// never holds a place in the node's queue that other tenants wait in.
    pub async fn admit(&self, tenant: TenantId) -> Result<ExpensivePermit, ExpensiveDenied> {
        let now = Instant::now();
        let share = self.tenants.with(
            tenant,
            || Share {
                semaphore: Arc::new(Semaphore::new(self.per_tenant)),
                last_used: now,
            },
            |share| {
                share.last_used = now;
                share.semaphore.clone()
            },
        );
        let deadline = tokio::time::Instant::from_std(now + self.queue);
        let tenant_permit = tokio::time::timeout_at(deadline, share.acquire_owned())
            .await
            .map_err(|_| ExpensiveDenied::Tenant)?
            .map_err(|_| ExpensiveDenied::Tenant)?;
        let node_permit = tokio::time::timeout_at(deadline, self.node.clone().acquire_owned())
            .await
            .map_err(|_| ExpensiveDenied::Node)?
            .map_err(|_| ExpensiveDenied::Node)?;
        Ok(ExpensivePermit {
            _tenant: tenant_permit,
            _node: node_permit,
        })
    }

    /// Drops tenants' shares idle for `IDLE` with nothing held or queued (a
    /// queued request holds a clone of the semaphore); called periodically.
    pub fn prune(&self) {
        let now = Instant::now();
        let per_tenant = self.per_tenant;
        self.tenants.retain(|share| {
            let busy = Arc::strong_count(&share.semaphore) > 1
                || share.semaphore.available_permits() < per_tenant;
            busy || now.saturating_duration_since(share.last_used) < IDLE
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_node: u32, per_tenant: u32) -> CostSettings {
        CostSettings {
            expensive_per_node: per_node,
            expensive_per_tenant: per_tenant,
            expensive_queue: Duration::from_millis(50),
            ..CostSettings::default()
        }
    }

    fn tenant(n: u128) -> TenantId {
        TenantId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[tokio::test]
    async fn a_tenants_excess_is_refused_as_its_own_and_others_still_get_the_node() {
        let work = ExpensiveWork::new(&settings(2, 1));
        let held = work.admit(tenant(1)).await.unwrap();
        assert_eq!(
            work.admit(tenant(1)).await.err(),
            Some(ExpensiveDenied::Tenant)
        );
        // The noisy tenant's excess did not take the node's second permit.
        let other = work.admit(tenant(2)).await.unwrap();
        assert_eq!(
            work.admit(tenant(3)).await.err(),
            Some(ExpensiveDenied::Node)
        );
        drop((held, other));
        assert!(work.admit(tenant(3)).await.is_ok());
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_permit_when_it_comes_back() {
        let work = Arc::new(ExpensiveWork::new(&CostSettings {
            expensive_queue: Duration::from_secs(60),
            ..settings(1, 1)
        }));
        let held = work.admit(tenant(1)).await.unwrap();
        let queued = tokio::spawn({
            let work = work.clone();
            async move { work.admit(tenant(2)).await.is_ok() }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert!(queued.await.unwrap());
    }

    #[test]
    fn weights_and_timeouts_follow_the_class() {
        let settings = CostSettings::default();
        assert_eq!(RequestClass::page(50, &settings), RequestClass::Page);
        assert_eq!(RequestClass::page(200, &settings), RequestClass::BigPage);
        assert!(RequestClass::Search.weight() > RequestClass::Page.weight());
        assert!(RequestClass::Search.expensive() && !RequestClass::BigPage.expensive());
        // Database time is metered for searches and big pages, never for the
        // pages and posts every tenant needs.
        assert!(RequestClass::Search.metered() && RequestClass::BigPage.metered());
        assert!(!RequestClass::Page.metered() && !RequestClass::Write.metered());
        assert_eq!(
            RequestClass::Search.statement_timeout(&settings),
            settings.search_timeout
        );
    }
}
