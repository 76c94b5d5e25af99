//! Concurrent-request limit per tenant: a semaphore per tenant; a request beyond
//! the limit is refused at once (never queued behind the noisy tenant), and the
//! permit lives as long as the request's `TenantScope`. A costly request takes
//! several slots (`cost::RequestClass::weight`).
//!
//! One semaphore per tenant for the node's lifetime of the tenant's activity,
//! never one per config version: a rename or residency change must not hand out
//! a fresh set of slots while the old ones are held (security issue 10). A new
//! limit adjusts the existing semaphore: a higher one adds the difference, a lower
//! one takes permits away, those in flight as they come back. An entry is dropped
//! only when idle with every permit back, i.e. when a fresh one would be the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::table::Table;
use crate::ids::TenantId;
use crate::tenancy::TenantRecord;

/// An entry unused for this long, with nothing in flight, is dropped.
const IDLE: Duration = Duration::from_secs(600);

/// A tenant's slots. The semaphore's permits (available plus held) always add up
/// to `limit + debt`.
struct Slots {
    semaphore: Arc<Semaphore>,
    limit: usize,
    /// Permits still to take away after the limit was lowered while they were
    /// held; forgotten as they come back, before any new request gets one.
    debt: usize,
    /// The config version `limit` came from.
    version: i64,
    last_used: Instant,
}

impl Slots {
    fn new(limit: usize, version: i64, now: Instant) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
            debt: 0,
            version,
            last_used: now,
        }
    }

    /// Applies the limit of config `version` (a record older than the one applied
    /// changes nothing), then forgets the permits owed.
    fn settle(&mut self, limit: usize, version: i64) {
        if version >= self.version {
            self.version = version;
            if limit > self.limit {
                let more = limit - self.limit;
                let repaid = more.min(self.debt);
                self.debt -= repaid;
                self.semaphore.add_permits(more - repaid);
            } else {
                self.debt += self.limit - limit;
            }
            self.limit = limit;
        }
        if self.debt > 0 {
            // Only available permits are forgotten; held ones pay later.
            self.debt -= self.semaphore.forget_permits(self.debt);
        }
    }

    fn in_flight(&self) -> usize {
        (self.limit + self.debt).saturating_sub(self.semaphore.available_permits())
    }
}

pub struct ConcurrencyLimits {
    slots: Table<TenantId, Slots>,
}

impl Default for ConcurrencyLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl ConcurrencyLimits {
    pub fn new() -> Self {
        Self {
            slots: Table::new(),
        }
    }

    /// A permit, or `None` when the tenant already has its limit of requests in flight.
    pub fn try_acquire(&self, tenant: &TenantRecord) -> Option<OwnedSemaphorePermit> {
        self.try_acquire_at(tenant, 1, Instant::now())
    }

    /// `weight` slots at once (a costly request's share, `cost::RequestClass`),
    /// never more than the limit; `None` when they are not all free.
    pub fn try_acquire_weighted(
        &self,
        tenant: &TenantRecord,
        weight: u32,
    ) -> Option<OwnedSemaphorePermit> {
        self.try_acquire_at(tenant, weight, Instant::now())
    }

    fn try_acquire_at(
        &self,
        tenant: &TenantRecord,
        weight: u32,
        now: Instant,
    ) -> Option<OwnedSemaphorePermit> {
        let limit = tenant.limits().concurrent_requests as usize;
        let weight = weight.clamp(1, u32::try_from(limit).unwrap_or(u32::MAX).max(1));
        let version = tenant.config_version;
        self.slots.with(
            tenant.id,
            || Slots::new(limit, version, now),
            |slots| {
                slots.settle(limit, version);
                slots.last_used = now;
                slots.semaphore.clone().try_acquire_many_owned(weight).ok()
            },
        )
    }

    /// Requests of `tenant` in flight on this node now.
    pub fn in_flight(&self, tenant: &TenantRecord) -> u32 {
        self.slots
            .get(&tenant.id, Slots::in_flight)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Drops tenants idle for `IDLE` with nothing in flight; called periodically.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        self.slots.retain(|slots| {
            slots.in_flight() > 0 || now.saturating_duration_since(slots.last_used) < IDLE
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::record::LimitOverrides;

    fn tenant(limit: u32, version: i64) -> TenantRecord {
        let overrides = LimitOverrides {
            concurrent_requests: Some(limit),
            ..LimitOverrides::default()
        };
        crate::limits::test_tenant(overrides, version)
    }

    /// Takes permits until refused; returns them.
    fn fill(limits: &ConcurrencyLimits, tenant: &TenantRecord) -> Vec<OwnedSemaphorePermit> {
        std::iter::from_fn(|| limits.try_acquire(tenant)).collect()
    }

    #[test]
    fn a_new_config_version_keeps_the_slots() {
        let limits = ConcurrencyLimits::new();
        let held = fill(&limits, &tenant(10, 1));
        assert_eq!(held.len(), 10);
        // A rename: same limit, the next config version.
        assert!(limits.try_acquire(&tenant(10, 2)).is_none());
        assert_eq!(limits.in_flight(&tenant(10, 2)), 10);
        drop(held);
        assert_eq!(fill(&limits, &tenant(10, 2)).len(), 10);
    }

    #[test]
    fn a_lower_limit_applies_at_once_and_a_higher_adds_only_the_difference() {
        let limits = ConcurrencyLimits::new();
        let mut held = fill(&limits, &tenant(10, 1));
        held.truncate(6);
        // 6 in flight, lowered to 3: nothing more, and 3 owed as they come back.
        assert!(limits.try_acquire(&tenant(3, 2)).is_none());
        held.truncate(4);
        assert!(limits.try_acquire(&tenant(3, 2)).is_none());
        assert_eq!(limits.in_flight(&tenant(3, 2)), 4);
        held.truncate(2);
        // 2 in flight under a limit of 3: exactly one more.
        assert_eq!(fill(&limits, &tenant(3, 2)).len(), 1);
        // Raised to 5 with 2 in flight: 3 more, not 5.
        let more = fill(&limits, &tenant(5, 3));
        assert_eq!(more.len(), 3);
        drop(more);
        drop(held);
        assert_eq!(limits.in_flight(&tenant(5, 3)), 0);
        assert_eq!(fill(&limits, &tenant(5, 3)).len(), 5);
    }

    #[test]
    fn raising_while_permits_are_owed_pays_the_debt_first() {
        let limits = ConcurrencyLimits::new();
        let held = fill(&limits, &tenant(10, 1));
        // Lowered to 2 with 10 held (8 owed), then raised to 4 (4 owed).
        assert!(limits.try_acquire(&tenant(2, 2)).is_none());
        assert!(limits.try_acquire(&tenant(4, 3)).is_none());
        drop(held);
        assert_eq!(fill(&limits, &tenant(4, 3)).len(), 4);
    }

    #[test]
    fn a_stale_config_version_does_not_change_the_limit() {
        let limits = ConcurrencyLimits::new();
        let held = fill(&limits, &tenant(2, 7));
        // A request still holding version 6's record, with its higher limit.
        assert!(limits.try_acquire(&tenant(10, 6)).is_none());
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn a_costly_request_holds_its_weight_but_never_more_than_the_limit() {
        let limits = ConcurrencyLimits::new();
        let t = tenant(10, 1);
        let searches: Vec<_> = (0..2)
            .map(|_| limits.try_acquire_weighted(&t, 4).unwrap())
            .collect();
        // 8 of 10 slots held: a third search no longer fits, two pages do.
        assert!(limits.try_acquire_weighted(&t, 4).is_none());
        assert_eq!(limits.in_flight(&t), 8);
        assert_eq!(fill(&limits, &t).len(), 2);
        drop(searches);
        // Under a limit of 2 a search takes the whole limit, not more.
        let small = tenant(2, 2);
        let whole = limits.try_acquire_weighted(&small, 4).unwrap();
        assert_eq!(limits.in_flight(&small), 2);
        assert!(limits.try_acquire(&small).is_none());
        drop(whole);
        assert_eq!(fill(&limits, &small).len(), 2);
    }

    #[test]
    fn held_slots_never_expire() {
        let limits = ConcurrencyLimits::new();
        let start = Instant::now();
        let held = fill(&limits, &tenant(3, 1));
        // Long after the idle time, the slots are still held: the entry stays.
        limits.prune_at(start + IDLE * 3);
        assert!(limits.try_acquire(&tenant(3, 1)).is_none());
        drop(held);
        // Nothing in flight and idle: dropped; a new entry is the same as the old.
        limits.prune_at(start + IDLE * 3);
        assert_eq!(limits.slots.len(), 0);
        assert_eq!(fill(&limits, &tenant(3, 1)).len(), 3);
    }
}
