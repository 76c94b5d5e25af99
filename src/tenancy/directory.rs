//! The tenant directory cache (moka), in front of the `tenants` table.
//!
//! Every tenant is loaded at start, so a request for a known tenant never waits on
//! the database. Changes made on this node are put into the cache when their
//! transaction commits (the next request sees them); changes made on other nodes
//! arrive through a poll of `updated_at`, every `directory.refresh_interval_ms`.
//! A cached entry is only ever replaced by one with a higher `config_version`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;

use super::record::TenantRecord;
use crate::db::{Database, TxMode};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::store::tenants;

#[derive(Clone)]
pub struct Directory {
    cache: Cache<TenantId, Arc<TenantRecord>>,
    db: Database,
    hits: Counter,
    misses: Counter,
}

/// Rows committed slightly out of `updated_at` order are still picked up.
const REFRESH_OVERLAP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("no such tenant")]
    Missing,
    #[error("{0}")]
    Failed(ApiError),
}

impl Directory {
    pub fn new(db: Database, capacity: u64) -> Self {
        Self {
            cache: Cache::builder().max_capacity(capacity).build(),
            hits: Counter::default(),
            misses: Counter::default(),
            db,
        }
    }

    /// The tenant, from the cache; on a miss, from the database (concurrent misses
    /// for one tenant share one query). Unknown tenants are not cached.
    pub async fn get(&self, id: TenantId) -> Result<Option<Arc<TenantRecord>>, ApiError> {
        if let Some(hit) = self.cache.get(&id).await {
            self.hits.inc();
            return Ok(Some(hit));
        }
        self.misses.inc();
        // Boxed: the load is a database transaction, whose future is large, and
        // every request awaits `get` inside the routing and request-id
        // middlewares, whose futures are moved whole (≈ 15k instructions of
        // copying per request before, callgrind, README "Benchmarks"); a hit
        // never makes this one.
        let loaded = Box::pin(self.cache.try_get_with(id, async {
            match self.load(id).await {
                Ok(Some(record)) => Ok(Arc::new(record)),
                Ok(None) => Err(LoadError::Missing),
                Err(err) => Err(LoadError::Failed(err)),
            }
        }))
        .await;
        match loaded {
            Ok(record) => Ok(Some(record)),
            Err(err) => match &*err {
                LoadError::Missing => Ok(None),
                LoadError::Failed(cause) => Err(ApiError::internal(anyhow::anyhow!(
                    "loading tenant {id}: {cause}"
                ))),
            },
        }
    }

    /// The tenant with `slug`, for sign-in requests (which name their tenant by
    /// slug). Slugs never change, but one lookup asks the database for the id:
    /// sign-ins are rare next to token requests, which stay cache-only.
    pub async fn get_by_slug(&self, slug: &str) -> Result<Option<Arc<TenantRecord>>, ApiError> {
        let id = self
            .db
            .platform_tx(TxMode::ReadOnly, async |tx| {
                Ok(tenants::id_by_slug(tx, slug).await?)
            })
            .await?;
        match id {
            Some(id) => self.get(id).await,
            None => Ok(None),
        }
    }

    async fn load(&self, id: TenantId) -> Result<Option<TenantRecord>, ApiError> {
        self.db
            .platform_tx(
                TxMode::ReadOnly,
                async |tx| Ok(tenants::find(tx, id).await?),
            )
            .await
    }

    /// Puts a committed change into the cache unless a newer version is already there.
    pub async fn put(&self, record: TenantRecord) {
        if let Some(current) = self.cache.get(&record.id).await
            && current.config_version > record.config_version
        {
            return;
        }
        self.cache.insert(record.id, Arc::new(record)).await;
    }

    /// Lookups answered from the cache and lookups that were not, for `/metrics`.
    pub fn cache_counters(&self) -> (Counter, Counter) {
        (self.hits.clone(), self.misses.clone())
    }

    /// Approximate: moka counts lazily; the refresher settles it every interval.
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Loads tenants changed since `since` (all when `None`); returns how many and
    /// the newest `updated_at` seen.
    pub async fn refresh(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<(usize, Option<DateTime<Utc>>), ApiError> {
        let records = self
            .db
            .platform_tx(TxMode::ReadOnly, async |tx| {
                let from = since.map(|since| since - REFRESH_OVERLAP);
                Ok(tenants::changed_since(tx, from).await?)
            })
            .await?;
        let newest = records.iter().map(|r| r.updated_at).max().or(since);
        let count = records.len();
        for record in records {
            self.put(record).await;
        }
        Ok((count, newest))
    }

    /// Polls for changes made elsewhere until the returned task is aborted. Runs on
    /// the current (actix) thread's local task set.
    pub fn spawn_refresher(
        &self,
        interval: Duration,
        mut since: Option<DateTime<Utc>>,
    ) -> tokio::task::JoinHandle<()> {
        let directory = self.clone();
        actix_web::rt::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match directory.refresh(since).await {
                    Ok((_, newest)) => since = newest,
                    Err(err) => tracing::warn!(error = %err, "directory refresh failed"),
                }
                // Keeps `entry_count` (a metric) current.
                directory.cache.run_pending_tasks().await;
            }
        })
    }
}
