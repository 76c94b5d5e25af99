//! Per-tenant request counts on this node, and the top-N selection that keeps
//! per-tenant label cardinality bounded: only the N busiest tenants (by requests
//! since the node started) get a `tenant` label at scrape time; the rest are one
//! aggregate figure.
//!
//! Counting is exact for every tenant (one map entry per tenant this node has
//! served, a few dozen bytes each); only the *export* is bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::ids::TenantId;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    server_errors: AtomicU64,
}

/// A snapshot of one tenant's counters (ordered by tenant id first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TenantCounts {
    pub tenant: TenantId,
    pub requests: u64,
    pub server_errors: u64,
}

#[derive(Default)]
pub struct TenantTraffic {
    counts: RwLock<HashMap<TenantId, Arc<Counts>>>,
}

impl TenantTraffic {
    pub fn record(&self, tenant: TenantId, server_error: bool) {
        let existing = self
            .counts
            .read()
            .ok()
            .and_then(|map| map.get(&tenant).cloned());
        let counts = match existing {
            Some(counts) => counts,
            None => match self.counts.write() {
                Ok(mut map) => map.entry(tenant).or_default().clone(),
                Err(_) => return,
            },
        };
        counts.requests.fetch_add(1, Ordering::Relaxed);
        if server_error {
            counts.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Vec<TenantCounts> {
        let Ok(map) = self.counts.read() else {
            return Vec::new();
        };
        map.iter()
            .map(|(tenant, counts)| TenantCounts {
                tenant: *tenant,
                requests: counts.requests.load(Ordering::Relaxed),
                server_errors: counts.server_errors.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// The `n` items ranked highest by `rank` (a count, largest first, then an id,
/// smallest first, so the choice is stable between scrapes), and the sum of the
/// counts of all the others.
pub fn top_n<T, K: Ord>(
    mut items: Vec<T>,
    n: usize,
    rank: impl Fn(&T) -> (u64, K),
) -> (Vec<T>, u64) {
    let order = |a: &T, b: &T| {
        let ((count_a, id_a), (count_b, id_b)) = (rank(a), rank(b));
        count_b.cmp(&count_a).then(id_a.cmp(&id_b))
    };
    if items.len() > n && n > 0 {
        items.select_nth_unstable_by(n - 1, order);
    } else if n == 0 {
        return (Vec::new(), items.iter().map(|t| rank(t).0).sum());
    }
    let rest: u64 = items.iter().skip(n).map(|t| rank(t).0).sum();
    items.truncate(n);
    items.sort_by(order);
    (items, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: u128) -> TenantId {
        TenantId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn top_n_keeps_the_largest_and_sums_the_rest() {
        let items: Vec<(u64, u32)> = vec![(5, 1), (50, 2), (7, 3), (500, 4), (1, 5)];
        let (top, rest) = top_n(items, 2, |&(count, id)| (count, id));
        assert_eq!(top, vec![(500, 4), (50, 2)]);
        assert_eq!(rest, 5 + 7 + 1);
    }

    #[test]
    fn top_n_with_fewer_items_than_n_returns_all() {
        let (top, rest) = top_n(vec![(3u64, 1u32), (9, 2)], 10, |&(c, id)| (c, id));
        assert_eq!(top, vec![(9, 2), (3, 1)]);
        assert_eq!(rest, 0);
        let (top, rest) = top_n(vec![(3u64, 1u32)], 0, |&(c, id)| (c, id));
        assert!(top.is_empty());
        assert_eq!(rest, 3);
    }

    #[test]
    fn ties_are_broken_by_id_so_the_choice_is_stable() {
        let (top, rest) = top_n(vec![(5u64, 3u32), (5, 1), (5, 2)], 2, |&(c, id)| (c, id));
        assert_eq!(top, vec![(5, 1), (5, 2)]);
        assert_eq!(rest, 5);
    }

    #[test]
    fn traffic_counts_per_tenant_exactly() {
        let traffic = TenantTraffic::default();
        for _ in 0..3 {
            traffic.record(tenant(1), false);
        }
        traffic.record(tenant(2), true);
        let mut snapshot = traffic.snapshot();
        snapshot.sort();
        assert_eq!(
            snapshot,
            vec![
                TenantCounts {
                    tenant: tenant(1),
                    requests: 3,
                    server_errors: 0
                },
                TenantCounts {
                    tenant: tenant(2),
                    requests: 1,
                    server_errors: 1
                },
            ]
        );
    }
}
