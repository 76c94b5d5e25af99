//! A sharded map for per-tenant limiter state (rate buckets, concurrency slots).
//!
//! Not a cache with automatic expiry: an entry may only disappear when dropping
//! it is indistinguishable from starting afresh (a full rate bucket, no request
//! in flight). A time-to-idle cache evicts on idle even while permits are held
//! or a bucket is still refilling, and the next request would get a fresh,
//! full entry. Lookups, updates and `retain` all run under the shard's lock, so
//! an entry is never dropped between a request finding it and using it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Enough shards that requests of different tenants rarely share a lock.
const SHARDS: usize = 64;

pub(super) struct Table<K, V> {
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, V>>]>,
}

impl<K: Hash + Eq, V> Table<K, V> {
    pub(super) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, V>> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // The entries are plain counters that every update leaves consistent; a
        // panic elsewhere while a lock was held must not turn every later request
        // of the shard's tenants into a 500.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on `key`'s entry, made by `make` when there is none, under the
    /// shard's lock.
    pub(super) fn with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> R {
        f(self.shard(&key).entry(key).or_insert_with(make))
    }

    /// Runs `f` on `key`'s entry if there is one.
    pub(super) fn get<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        self.shard(key).get(key).map(f)
    }

    /// Keeps the entries for which `keep` is true, one shard at a time.
    pub(super) fn retain(&self, mut keep: impl FnMut(&mut V) -> bool) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.retain(|_, value| keep(value));
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
