//! One connection pool per thread, so a connection's I/O runs on the thread of the
//! request that uses it.
//!
//! tokio-postgres drives each connection with a task spawned on the runtime that
//! opened it, and every actix worker is its own single-threaded runtime. With one
//! pool shared by all workers, a request on worker A mostly gets a connection whose
//! task lives on worker B: each statement then wakes B (an eventfd write, a context
//! switch) to send it and B wakes A with the answer. The profile of the messages
//! page showed those cross-thread wake-ups among the largest costs of the node
//! (README, Benchmarks). Here every thread that asks for a connection gets its own
//! pool, made on first use and opening its connections on that thread, so the
//! request, the connection's task and its socket stay on one thread.
//!
//! Nothing about a transaction changes: a connection is still lent to one
//! transaction at a time and returned only clean (`tx`), so which pool lent it
//! does not matter to correctness. The node's limit is split: each thread's pool
//! holds at most `database.pool_size / http.workers` (rounded up) connections.
//! Threads other than the workers (the main thread's background tasks, the admin
//! listener) get a pool of the same size when they use the database.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;

/// Makes one thread's pool of at most the given size.
pub(crate) type MakePool = dyn Fn(usize) -> Result<Pool, String> + Send + Sync;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's pools, one per `ThreadPools` (a process can hold several
    /// databases: the tests start many apps).
    static POOLS: RefCell<Vec<(u64, Pool)>> = const { RefCell::new(Vec::new()) };
}

pub(crate) struct ThreadPools {
    id: u64,
    make: Arc<MakePool>,
    per_thread: usize,
    /// The configured total (`database.pool_size`), reported as the limit.
    total: usize,
    /// Every pool made, for status and shutdown.
    all: Mutex<Vec<Pool>>,
    closed: AtomicBool,
}

impl ThreadPools {
    pub(crate) fn new(make: Arc<MakePool>, per_thread: usize) -> Arc<Self> {
        Self::with_total(make, per_thread, per_thread)
    }

    fn with_total(make: Arc<MakePool>, per_thread: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            make,
            per_thread: per_thread.max(1),
            total,
            all: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// New pools (none made yet) with this limit split over `threads` threads.
    pub(crate) fn split(&self, threads: usize) -> Arc<Self> {
        Self::with_total(
            self.make.clone(),
            self.per_thread.div_ceil(threads.max(1)),
            self.total,
        )
    }

    /// This thread's pool, made on first use.
    pub(crate) fn current(&self) -> Result<Pool, String> {
        if self.closed.load(Ordering::Acquire) {
            return Err("the database pools are closed".into());
        }
        POOLS.with_borrow_mut(|pools| {
            if let Some((_, pool)) = pools.iter().find(|(id, _)| *id == self.id) {
                return Ok(pool.clone());
            }
            // Pools of databases that were closed are not used again.
            pools.retain(|(_, pool)| !pool.is_closed());
            let pool = (self.make)(self.per_thread)?;
            let mut all = self.all.lock().map_err(|_| "the pool list is poisoned")?;
            // Checked under the lock `close` takes: no pool escapes a close.
            if self.closed.load(Ordering::Acquire) {
                pool.close();
                return Err("the database pools are closed".into());
            }
            all.push(pool.clone());
            pools.push((self.id, pool.clone()));
            Ok(pool)
        })
    }

    /// Summed over every thread's pool; the limit is the configured total (the
    /// workers' share of it; a non-worker thread's pool comes on top).
    pub(crate) fn status(&self) -> deadpool_postgres::Status {
        let mut sum = deadpool_postgres::Status {
            max_size: self.total,
            size: 0,
            available: 0,
            waiting: 0,
        };
        if let Ok(all) = self.all.lock() {
            for status in all.iter().map(Pool::status) {
                sum.size += status.size;
                sum.available += status.available;
                sum.waiting += status.waiting;
            }
        }
        sum
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(all) = self.all.lock() {
            all.iter().for_each(Pool::close);
        }
    }
}

#[cfg(test)]
mod tests {
    use deadpool_postgres::{Manager, ManagerConfig};
    use tokio_postgres::NoTls;

    use super::*;

    /// Pools that never connect: building one opens no connection.
    fn make() -> Arc<MakePool> {
        Arc::new(|size| {
            let config: tokio_postgres::Config = "host=localhost user=nobody".parse().unwrap();
            let manager = Manager::from_config(config, NoTls, ManagerConfig::default());
            Pool::builder(manager)
                .max_size(size)
                .build()
                .map_err(|e| e.to_string())
        })
    }

    #[test]
    fn each_thread_has_its_own_pool_and_close_stops_all() {
        let pools = ThreadPools::new(make(), 16).split(2);
        assert_eq!(pools.current().unwrap().status().max_size, 8);
        // The same thread gets the same pool again.
        pools.current().unwrap();
        assert_eq!(pools.all.lock().unwrap().len(), 1);
        let other = std::thread::scope(|s| s.spawn(|| pools.current().unwrap()).join().unwrap());
        assert_eq!(
            pools.all.lock().unwrap().len(),
            2,
            "a second thread, a second pool"
        );
        assert_eq!(pools.status().max_size, 16, "the configured total");
        pools.close();
        assert!(other.is_closed());
        assert!(pools.current().is_err(), "no pool after close");
        // Another database on this thread is not confused with the closed one.
        let fresh = ThreadPools::new(make(), 3);
        assert_eq!(fresh.current().unwrap().status().max_size, 3);
    }
}
