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
    /// Every pool made, for status and shutdown.
    all: Mutex<Vec<Pool>>,
    closed: AtomicBool,
}

impl ThreadPools {
    pub(crate) fn new(make: Arc<MakePool>, per_thread: usize) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            make,
            per_thread: per_thread.max(1),
            all: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// New pools (none made yet) with this limit split over `threads` threads.
    pub(crate) fn split(&self, threads: usize) -> Arc<Self> {
        Self::new(self.make.clone(), self.per_thread.div_ceil(threads.max(1)))
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

    /// Summed over every thread's pool.
    pub(crate) fn status(&self) -> deadpool_postgres::Status {
        let mut sum = deadpool_postgres::Status {
            max_size: 0,
            size: 0,
            available: 0,
            waiting: 0,
        };
        if let Ok(all) = self.all.lock() {
            for status in all.iter().map(Pool::status) {
                sum.max_size += status.max_size;
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
