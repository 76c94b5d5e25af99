//! Database time per tenant per node for the costly request classes (search, big
//! pages): a token bucket of milliseconds, refilled at
//! `limits.cost.db_ms_per_second` up to `limits.cost.db_burst_ms`, charged with
//! the wall time each such transaction held its database connection.
//!
//! The expensive-work permits (`cost`) bound how many searches run at once, not
//! how much of the node's time they take: one tenant running one search after the
//! other, inside its rate limit, still kept the database busy for most of every
//! second and doubled other tenants' p99 (issue 11, item 5). Charging time makes
//! a search of a word in 200,000 messages cost what it costs, and a selective one
//! next to nothing; and since a transaction's wall time grows when the machine
//! is busy, a busy node lets each tenant do less costly work, which is when it
//! matters.
//!
//! A request of a costly class is admitted while its tenant's balance is above
//! zero and charged after its transaction, so those in flight when it runs out
//! may overdraw the bucket (a search by at most its statement timeout: a
//! tenant's searches run one at a time); the next is refused up front (`429 expensive_limited`) with a
//! `Retry-After` of the time the refill takes to pay the debt back. Cheap
//! classes (pages, writes) never look at it.
//!
//! Protective state, like the rate buckets: keyed on the tenant id only (no
//! config version, nothing a tenant can change), and dropped only when a fresh
//! bucket would be the same (full again).

use std::time::{Duration, Instant};

use super::cost::CostSettings;
use super::table::Table;
use crate::ids::TenantId;

/// A tenant's balance, in milliseconds of database time, as of `at`.
struct Bucket {
    balance_ms: f64,
    at: Instant,
}

pub struct DbTimeBudget {
    tenants: Table<TenantId, Bucket>,
    /// Refill in milliseconds per second; 0 turns the budget off.
    rate: f64,
    /// What a full bucket holds.
    burst: f64,
}

impl DbTimeBudget {
    pub fn new(settings: &CostSettings) -> Self {
        Self {
            tenants: Table::new(),
            rate: f64::from(settings.db_ms_per_second),
            burst: f64::from(settings.db_burst_ms),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let earned = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.balance_ms = (bucket.balance_ms + earned).min(self.burst);
        bucket.at = now;
    }

    fn fresh(&self, now: Instant) -> Bucket {
        Bucket {
            balance_ms: self.burst,
            at: now,
        }
    }

    /// `Ok` while the tenant has time left; otherwise how long until the refill
    /// has paid its debt back.
    pub fn admit(&self, tenant: TenantId) -> Result<(), Duration> {
        self.admit_at(tenant, Instant::now())
    }

    fn admit_at(&self, tenant: TenantId, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        self.tenants.with(
            tenant,
            || self.fresh(now),
            |bucket| {
                self.refill(bucket, now);
                if bucket.balance_ms > 0.0 {
                    Ok(())
                } else {
                    // A hair above the debt, so the retry finds a positive balance.
                    let secs = (-bucket.balance_ms + 1.0) / self.rate;
                    Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
                }
            },
        )
    }

    /// Takes `spent` (a costly transaction's connection time) from the tenant's
    /// balance, which may go below zero.
    pub fn charge(&self, tenant: TenantId, spent: Duration) {
        self.charge_at(tenant, spent, Instant::now());
    }

    fn charge_at(&self, tenant: TenantId, spent: Duration, now: Instant) {
        if self.rate <= 0.0 {
            return;
        }
        self.tenants.with(
            tenant,
            || self.fresh(now),
            |bucket| {
                self.refill(bucket, now);
                bucket.balance_ms -= spent.as_secs_f64() * 1000.0;
            },
        );
    }

    /// Drops buckets that are full again (what a fresh one would hold); called
    /// periodically.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        self.tenants.retain(|bucket| {
            let earned = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
            bucket.balance_ms + earned < self.burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(rate: u32, burst: u32) -> DbTimeBudget {
        DbTimeBudget::new(&CostSettings {
            db_ms_per_second: rate,
            db_burst_ms: burst,
            ..CostSettings::default()
        })
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
        let wait = budget.admit_at(tenant(1), now).unwrap_err();
        assert!(
            wait > Duration::from_millis(3000) && wait < Duration::from_millis(3100),
            "{wait:?}"
        );
        // Another tenant's budget is its own.
        assert!(budget.admit_at(tenant(2), now).is_ok());
        // Half-way: still in debt, and the wait shrank by what was earned.
        let later = budget
            .admit_at(tenant(1), now + Duration::from_millis(1500))
            .unwrap_err();
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
}
