//! Database time per node for the costly request classes (search, big pages):
//! token buckets of milliseconds, one per tenant (refilled at
//! `limits.cost.db_ms_per_second` up to `limits.cost.db_burst_ms`) and one for
//! the node over all tenants (`db_node_ms_per_second`, `db_node_burst_ms`),
//! charged with the wall time each such transaction held its database
//! connection.
//!
//! The expensive-work permits (`cost`) bound how many searches run at once, not
//! how much of the node's time they take: one tenant running one search after the
//! other, inside its rate limit, still kept the database busy for most of every
//! second and doubled other tenants' p99 (issue 11, item 5). Charging time makes
//! a search of a word in 200,000 messages cost what it costs, and a selective one
//! next to nothing; and since a transaction's wall time grows when the machine
//! is busy, a busy node lets each tenant do less costly work, which is when it
//! matters. The tenant's bucket keeps one tenant within its share; the node's
//! keeps many tenants, each within its own, from adding up to the whole database.
//!
//! A request of a costly class is admitted while its tenant's balance and the
//! node's are above zero and charged to both after its transaction, so those in
//! flight when a balance runs out may overdraw it (a search by at most its
//! statement timeout: a tenant's searches run one at a time); the next is refused
//! up front with a `Retry-After` of the time the refill takes to pay the debt
//! back: `429 expensive_limited` for the tenant's own debt (checked first),
//! `503 node_busy` for the node's. Cheap classes (pages, writes) never look at it.
//!
//! Protective state, like the rate buckets: keyed on the tenant id only (no
//! config version, nothing a tenant can change), and dropped only when a fresh
//! bucket would be the same (full again).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cost::CostSettings;
use super::table::Table;
use crate::ids::TenantId;

/// A balance, in milliseconds of database time, as of `at`.
struct Bucket {
    balance_ms: f64,
    at: Instant,
}

/// How a bucket fills: `rate` milliseconds a second up to `burst`; a zero rate
/// turns it off.
#[derive(Clone, Copy)]
struct Refill {
    rate: f64,
    burst: f64,
}

impl Refill {
    fn fresh(self, now: Instant) -> Bucket {
        Bucket {
            balance_ms: self.burst,
            at: now,
        }
    }

    /// What `bucket` holds at `now`, the refill since its last change counted.
    fn balance_at(self, bucket: &Bucket, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        (bucket.balance_ms + earned).min(self.burst)
    }

    fn refill(self, bucket: &mut Bucket, now: Instant) {
        bucket.balance_ms = self.balance_at(bucket, now);
        bucket.at = now;
    }

    /// `Ok` while the balance is above zero; otherwise how long until the refill
    /// has paid its debt back.
    fn admit(self, bucket: &mut Bucket, now: Instant) -> Result<(), Duration> {
        self.refill(bucket, now);
        if bucket.balance_ms > 0.0 {
            Ok(())
        } else {
            // A hair above the debt, so the retry finds a positive balance.
            let secs = (-bucket.balance_ms + 1.0) / self.rate;
            Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
        }
    }

    fn charge(self, bucket: &mut Bucket, spent: Duration, now: Instant) {
        self.refill(bucket, now);
        bucket.balance_ms -= spent.as_secs_f64() * 1000.0;
    }

    fn off(self) -> bool {
        self.rate <= 0.0
    }
}

/// Which balance refused a costly request, and how long its refill takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbTimeDenied {
    /// The tenant's own costly work spent its time on this node.
    Tenant(Duration),
    /// All tenants' costly work together spent the node's.
    Node(Duration),
}

pub struct DbTimeBudget {
    tenants: Table<TenantId, Bucket>,
    tenant: Refill,
    node_bucket: Mutex<Bucket>,
    node: Refill,
}

impl DbTimeBudget {
    pub fn new(settings: &CostSettings) -> Self {
        let node = Refill {
            rate: f64::from(settings.db_node_ms_per_second),
            burst: f64::from(settings.db_node_burst_ms),
        };
        Self {
            tenants: Table::new(),
            tenant: Refill {
                rate: f64::from(settings.db_ms_per_second),
                burst: f64::from(settings.db_burst_ms),
            },
            node_bucket: Mutex::new(node.fresh(Instant::now())),
            node,
        }
    }

    /// `Ok` while the tenant and the node have time left; otherwise which is in
    /// debt (the tenant's first) and how long its refill takes.
    pub fn admit(&self, tenant: TenantId) -> Result<(), DbTimeDenied> {
        self.admit_at(tenant, Instant::now())
    }

    fn admit_at(&self, tenant: TenantId, now: Instant) -> Result<(), DbTimeDenied> {
        if !self.tenant.off() {
            self.tenants
                .with(
                    tenant,
                    || self.tenant.fresh(now),
                    |bucket| self.tenant.admit(bucket, now),
                )
                .map_err(DbTimeDenied::Tenant)?;
        }
        if !self.node.off() {
            self.with_node(|bucket| self.node.admit(bucket, now))
                .map_err(DbTimeDenied::Node)?;
        }
        Ok(())
    }

    /// Takes `spent` (a costly transaction's connection time) from the tenant's
    /// balance and the node's, which may go below zero.
    pub fn charge(&self, tenant: TenantId, spent: Duration) {
        self.charge_at(tenant, spent, Instant::now());
    }

    fn charge_at(&self, tenant: TenantId, spent: Duration, now: Instant) {
        if !self.tenant.off() {
            self.tenants.with(
                tenant,
                || self.tenant.fresh(now),
                |bucket| self.tenant.charge(bucket, spent, now),
            );
        }
        if !self.node.off() {
            self.with_node(|bucket| self.node.charge(bucket, spent, now));
        }
    }

    fn with_node<T>(&self, f: impl FnOnce(&mut Bucket) -> T) -> T {
        // A panic elsewhere cannot leave a balance half-written: every update is
        // one assignment, so a poisoned lock's bucket is still whole.
        let mut bucket = self
            .node_bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut bucket)
    }

    /// Drops tenants' buckets that are full again (what a fresh one would hold);
    /// called periodically.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        let tenant = self.tenant;
        self.tenants
            .retain(|bucket| tenant.balance_at(bucket, now) < tenant.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(rate: u32, burst: u32) -> DbTimeBudget {
        DbTimeBudget::new(&CostSettings {
            db_ms_per_second: rate,
            db_burst_ms: burst,
            db_node_ms_per_second: 0,
            ..CostSettings::default()
        })
    }

    fn tenant_wait(denied: Result<(), DbTimeDenied>) -> Duration {
        match denied {
            Err(DbTimeDenied::Tenant(wait)) => wait,
            other => panic!("expected the tenant's refusal, got {other:?}"),
        }
    }

    fn tenant(n: u128) -> TenantId {
        TenantId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn an_overdrawn_tenant_waits_for_the_refill_to_pay_its_debt() {
        let budget = budget(100, 200);
        let now = Instant::now();
        assert!(budget.admit_at(tenant(1), now).is_ok());
        // One search of 500 ms: 300 ms of debt at 100 ms/s, about 3 s.
        budget.charge_at(tenant(1), Duration::from_millis(500), now);
        let wait = tenant_wait(budget.admit_at(tenant(1), now));
        assert!(
            wait > Duration::from_millis(3000) && wait < Duration::from_millis(3100),
            "{wait:?}"
        );
        // Another tenant's budget is its own.
        assert!(budget.admit_at(tenant(2), now).is_ok());
        // Half-way: still in debt, and the wait shrank by what was earned.
        let later = tenant_wait(budget.admit_at(tenant(1), now + Duration::from_millis(1500)));
        assert!(later < Duration::from_millis(1600), "{later:?}");
        assert!(budget.admit_at(tenant(1), now + wait).is_ok());
    }

    #[test]
    fn the_refill_stops_at_the_burst() {
        let budget = budget(100, 200);
        let now = Instant::now();
        budget.charge_at(tenant(1), Duration::ZERO, now);
        // Idle for an hour: never more than the burst, so 250 ms overdraws it.
        let later = now + Duration::from_secs(3600);
        budget.charge_at(tenant(1), Duration::from_millis(250), later);
        assert!(budget.admit_at(tenant(1), later).is_err());
    }

    #[test]
    fn a_bucket_is_dropped_only_once_full_again() {
        let budget = budget(100, 200);
        let now = Instant::now();
        budget.charge_at(tenant(1), Duration::from_millis(1000), now);
        budget.prune_at(now + Duration::from_secs(5));
        // Still refilling (800 ms of debt + 200 of burst take 10 s): kept.
        assert_eq!(budget.tenants.len(), 1);
        assert!(
            budget
                .admit_at(tenant(1), now + Duration::from_secs(5))
                .is_err()
        );
        budget.prune_at(now + Duration::from_secs(11));
        assert_eq!(budget.tenants.len(), 0);
    }

    #[test]
    fn a_zero_rate_turns_the_budget_off() {
        let budget = budget(0, 0);
        let now = Instant::now();
        budget.charge_at(tenant(1), Duration::from_secs(60), now);
        assert!(budget.admit_at(tenant(1), now).is_ok());
        assert_eq!(budget.tenants.len(), 0);
    }

    #[test]
    fn many_tenants_within_their_own_budgets_are_held_by_the_nodes() {
        // Each tenant 100 ms/s (200 when full); the node 150 ms/s (300 when full).
        let budget = DbTimeBudget::new(&CostSettings {
            db_ms_per_second: 100,
            db_burst_ms: 200,
            db_node_ms_per_second: 150,
            db_node_burst_ms: 300,
            ..CostSettings::default()
        });
        let now = Instant::now();
        // Two tenants spend 150 ms each: within their own budgets, 300 ms of the
        // node's, so the node's balance is at zero.
        for t in [1, 2] {
            assert!(budget.admit_at(tenant(t), now).is_ok());
            budget.charge_at(tenant(t), Duration::from_millis(150), now);
        }
        // A third tenant, with its whole budget, is refused by the node's, for
        // the refill of the node's debt (0 ms + the hair: under 10 ms).
        match budget.admit_at(tenant(3), now) {
            Err(DbTimeDenied::Node(wait)) => assert!(wait < Duration::from_millis(10), "{wait:?}"),
            other => panic!("expected the node's refusal, got {other:?}"),
        }
        // A tenant in debt of its own hears about its own debt first.
        budget.charge_at(tenant(1), Duration::from_millis(500), now);
        assert!(matches!(
            budget.admit_at(tenant(1), now),
            Err(DbTimeDenied::Tenant(_))
        ));
        // Once the node's refill paid back (500 ms of debt at 150 ms/s: 3.4 s),
        // the third tenant gets in; the first is still paying its own.
        let later = now + Duration::from_millis(3_400);
        assert!(budget.admit_at(tenant(3), later).is_ok());
        assert!(budget.admit_at(tenant(1), later).is_err());
    }
}
