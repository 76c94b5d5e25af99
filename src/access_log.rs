//! The access log (issue 16, "every data access is logged"): which member read
//! or changed which of the tenant's resources, and when, kept compact and off
//! the request path.
//!
//! A request that opens a tenant transaction on this node is recorded by its
//! `TenantScope` (user, method, matched route, path) into an in-memory buffer
//! that folds repeats: the same user on the same path within one flush is one
//! entry with a count and the first and last time. Every
//! `access_log.flush_interval_ms` (1 s) the node writes the buffer in one
//! statement (`record_access`, V25); a crash loses at most that interval, and a
//! flush that fails keeps its entries for the next one (the buffer is bounded
//! by `access_log.max_pending`; beyond it new entries are counted as dropped
//! and logged, never allowed to grow the node's memory without bound).
//!
//! Requests under an impersonation are not recorded here: each is already an
//! `impersonated_request` event in the tenant's audit trail, one by one
//! (`scope::impersonated`). Owners and compliance officers read the log with
//! `GET /v1/access-log`; rows older than `access_log.retention_days` are pruned
//! by each node for the tenants homed in its region, in batches.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::millis;
use crate::db::{Database, TenantTx, TxMode};
use crate::ids::{RegionId, TenantId, UserId};
use crate::pagination::{Keyset, Page, keyset_page};
use crate::store::error::StoreError;

/// `access_log.*` settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessLogSettings {
    /// How often a node writes its buffered entries (the most a crash loses).
    #[serde(rename = "flush_interval_ms", with = "millis")]
    pub flush_interval: Duration,
    /// Entries buffered at most between flushes (distinct user × path).
    pub max_pending: usize,
    /// Rows older than this are pruned.
    pub retention_days: u32,
    /// Rows one prune statement deletes at most.
    pub prune_batch: u32,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(1),
            max_pending: 100_000,
            retention_days: 90,
            prune_batch: 5_000,
        }
    }
}

impl AccessLogSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&self.flush_interval) {
            return Err("access_log.flush_interval_ms must be 10..=60000".into());
        }
        if self.max_pending == 0 || self.retention_days == 0 || self.prune_batch == 0 {
            return Err(
                "access_log.max_pending, retention_days and prune_batch must be positive".into(),
            );
        }
        Ok(())
    }
}

/// What a request did, as its scope saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    pub tenant: TenantId,
    pub user: UserId,
    pub method: String,
    pub route: String,
    pub path: String,
}

struct Folded {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    requests: i32,
}

/// This node's buffer.
pub struct AccessLog {
    pending: Mutex<HashMap<Access, Folded>>,
    max_pending: usize,
    dropped: AtomicU64,
}

impl AccessLog {
    pub fn new(settings: &AccessLogSettings) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            max_pending: settings.max_pending,
            dropped: AtomicU64::new(0),
        }
    }

    pub fn record(&self, access: Access) {
        let now = Utc::now();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if let Some(entry) = pending.get_mut(&access) {
            entry.last = now;
            entry.requests = entry.requests.saturating_add(1);
        } else if pending.len() < self.max_pending {
            pending.insert(
                access,
                Folded {
                    first: now,
                    last: now,
                    requests: 1,
                },
            );
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn take(&self) -> HashMap<Access, Folded> {
        self.pending
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default()
    }

    fn restore(&self, entries: HashMap<Access, Folded>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for (access, folded) in entries {
            let full = pending.len() >= self.max_pending;
            match pending.get_mut(&access) {
                Some(entry) => {
                    entry.first = entry.first.min(folded.first);
                    entry.requests = entry.requests.saturating_add(folded.requests);
                }
                None if !full => {
                    pending.insert(access, folded);
                }
                None => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Writes the buffer as served by `region`; kept for next time on failure.
    pub async fn flush(&self, db: &Database, region: &RegionId) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "access log buffer full: entries not recorded");
        }
        let entries = self.take();
        if entries.is_empty() {
            return;
        }
        let n = entries.len();
        let mut cols = Columns::with_capacity(n);
        for (access, folded) in &entries {
            cols.push(access, folded);
        }
        let written = db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                tx.execute(
                    "SELECT record_access($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &region.as_str(),
                        &cols.ids,
                        &cols.tenants,
                        &cols.users,
                        &cols.methods,
                        &cols.routes,
                        &cols.paths,
                        &cols.first,
                        &cols.last,
                        &cols.requests,
                    ],
                )
                .await?;
                Ok(())
            })
            .await;
        if let Err(err) = written {
            tracing::warn!(entries = n, error = %err, "writing the access log failed; keeping it");
            self.restore(entries);
        }
    }
}

/// The flush's arrays; ids are made here, so a retried statement inserts
/// nothing twice (`ON CONFLICT DO NOTHING`).
struct Columns {
    ids: Vec<Uuid>,
    tenants: Vec<Uuid>,
    users: Vec<Uuid>,
    methods: Vec<String>,
    routes: Vec<String>,
    paths: Vec<String>,
    first: Vec<DateTime<Utc>>,
    last: Vec<DateTime<Utc>>,
    requests: Vec<i32>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            tenants: Vec::with_capacity(n),
            users: Vec::with_capacity(n),
            methods: Vec::with_capacity(n),
            routes: Vec::with_capacity(n),
            paths: Vec::with_capacity(n),
            first: Vec::with_capacity(n),
            last: Vec::with_capacity(n),
            requests: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, access: &Access, folded: &Folded) {
        self.ids.push(Uuid::now_v7());
        self.tenants.push(*access.tenant.as_uuid());
        self.users.push(*access.user.as_uuid());
        self.methods.push(access.method.clone());
        self.routes.push(access.route.clone());
        self.paths.push(access.path.clone());
        self.first.push(folded.first);
        self.last.push(folded.last);
        self.requests.push(folded.requests);
    }
}

/// Deletes this region's tenants' rows older than `retention_days`, a batch at
/// a time, until none is left; returns how many.
pub async fn prune(db: &Database, region: &RegionId, settings: &AccessLogSettings) -> u64 {
    let before = Utc::now() - chrono::Duration::days(i64::from(settings.retention_days));
    let statement = "SELECT prune_access_log($1, $2, $3)";
    crate::db::prune::in_batches(
        db,
        statement,
        "the access log",
        region,
        before,
        settings.prune_batch,
    )
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntry {
    pub id: Uuid,
    pub user_id: UserId,
    pub method: String,
    /// The matched route pattern, e.g. `/v1/channels/{id}/messages`.
    pub route: String,
    pub path: String,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// Requests folded into this entry (same user and path, one flush).
    pub requests: i32,
    /// The region whose node served them.
    pub region: String,
}

/// A page of the tenant's log, newest first, optionally one user's.
pub async fn list(
    tx: &TenantTx<'_>,
    user: Option<UserId>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<AccessEntry>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, user_id, method, route, path, first_at, last_at, requests, region
               FROM access_log
              WHERE tenant_id = $1 AND ($2::uuid IS NULL OR user_id = $2)
                AND ($3::timestamptz IS NULL OR (first_at, id) < ($3, $4))
              ORDER BY first_at DESC, id DESC LIMIT $5",
            &[
                tx.tenant_id().as_uuid(),
                &user.map(|u| *u.as_uuid()),
                &after.map(|k| k.at),
                &after.map(|k| k.id),
                &(i64::from(limit) + 1),
            ],
        )
        .await?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(AccessEntry {
                id: row.try_get(0).map_err(StoreError::internal)?,
                user_id: UserId::from_uuid(row.try_get(1).map_err(StoreError::internal)?),
                method: row.try_get(2).map_err(StoreError::internal)?,
                route: row.try_get(3).map_err(StoreError::internal)?,
                path: row.try_get(4).map_err(StoreError::internal)?,
                first_at: row.try_get(5).map_err(StoreError::internal)?,
                last_at: row.try_get(6).map_err(StoreError::internal)?,
                requests: row.try_get(7).map_err(StoreError::internal)?,
                region: row.try_get(8).map_err(StoreError::internal)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(keyset_page(items, limit, |e| Keyset {
        at: e.first_at,
        id: e.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(path: &str) -> Access {
        Access {
            tenant: TenantId::from_uuid(Uuid::nil()),
            user: UserId::from_uuid(Uuid::nil()),
            method: "GET".into(),
            route: "/v1/channels/{id}".into(),
            path: path.into(),
        }
    }

    #[test]
    fn repeats_fold_the_buffer_is_bounded_and_a_failed_flush_keeps_entries() {
        let log = AccessLog::new(&AccessLogSettings {
            max_pending: 2,
            ..Default::default()
        });
        log.record(access("/v1/channels/a"));
        log.record(access("/v1/channels/a"));
        log.record(access("/v1/channels/b"));
        log.record(access("/v1/channels/c"));
        assert_eq!(log.dropped.load(Ordering::Relaxed), 1);
        let taken = log.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[&access("/v1/channels/a")].requests, 2);
        log.record(access("/v1/channels/a"));
        log.restore(taken);
        let again = log.take();
        assert_eq!(again[&access("/v1/channels/a")].requests, 3);
        assert_eq!(again[&access("/v1/channels/b")].requests, 1);
    }
}
