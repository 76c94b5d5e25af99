//! Which storage-usage shard (`tenant_usage_shards.shard`) a write transaction
//! charges. Two transactions that update the same shard row conflict (PostgreSQL at
//! SERIALIZABLE answers the second with 40001; CockroachDB queues it behind the
//! first's lock), so a node hands each read-write transaction a shard no other
//! transaction of this node holds at the moment: with `USAGE_SHARDS` at least the
//! pool size, a node's concurrent writers never meet on a shard row. Across nodes
//! they can (each node starts its search at its own random offset, so two nodes
//! mostly use different shards); that costs a retry, never correctness — which
//! shard pays does not matter to the quota (see `limits::storage`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Shards per tenant. Changing it is safe: totals and rebalancing read every shard
/// row of the tenant, whatever its number; only the choice of shard uses this.
pub const USAGE_SHARDS: u16 = 32;

const _: () = assert!(USAGE_SHARDS as u32 <= u64::BITS);

/// The shards this node's transactions hold, one bit each.
#[derive(Debug)]
pub(crate) struct ShardLeases {
    held: AtomicU64,
    /// Where this node starts looking (random per node).
    offset: u16,
}

/// A held shard; given back when dropped.
pub(crate) struct ShardLease<'a> {
    leases: &'a ShardLeases,
    shard: u16,
    /// False when every shard was held and this one is shared.
    exclusive: bool,
}

impl ShardLease<'_> {
    pub(crate) fn shard(&self) -> u16 {
        self.shard
    }
}

impl Drop for ShardLease<'_> {
    fn drop(&mut self) {
        if self.exclusive {
            self.leases
                .held
                .fetch_and(!(1u64 << self.shard), Ordering::AcqRel);
        }
    }
}

fn random_below(n: u16) -> u16 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u16
}

impl ShardLeases {
    pub(crate) fn new() -> Self {
        Self {
            held: AtomicU64::new(0),
            offset: random_below(USAGE_SHARDS),
        }
    }

    /// The first free shard from this node's offset, or (`scatter`, after a
    /// conflict) from a random one, so a retry does not run into another node's
    /// writer on the same shard again. When all are held (more concurrent writers
    /// than shards), a shared one: correct, just more conflicts.
    pub(crate) fn lease(&self, scatter: bool) -> ShardLease<'_> {
        let start = if scatter {
            random_below(USAGE_SHARDS)
        } else {
            self.offset
        };
        for step in 0..USAGE_SHARDS {
            let shard = (start + step) % USAGE_SHARDS;
            let bit = 1u64 << shard;
            if self.held.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
                return ShardLease {
                    leases: self,
                    shard,
                    exclusive: true,
                };
            }
        }
        ShardLease {
            leases: self,
            shard: start,
            exclusive: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_leases_are_distinct_and_given_back() {
        let leases = ShardLeases::new();
        let held: Vec<_> = (0..USAGE_SHARDS).map(|_| leases.lease(false)).collect();
        let mut shards: Vec<u16> = held.iter().map(ShardLease::shard).collect();
        shards.sort_unstable();
        shards.dedup();
        assert_eq!(shards.len(), usize::from(USAGE_SHARDS));
        assert!(!leases.lease(false).exclusive, "all held: shared");
        drop(held);
        assert_eq!(leases.held.load(Ordering::Acquire), 0);
        let one = leases.lease(false);
        assert_eq!(one.shard(), leases.offset);
    }
}
