//! Usage over time (`GET /v1/usage/history`, the console's usage charts): one
//! row per tenant per UTC hour in `usage_samples` (V29).
//!
//! Why sampled, and from what: the request path already records each member
//! request in the access log (one folded row per user and path per flush, V25)
//! and keeps storage, AI tokens and jobs exact in the database; so a history
//! needs no new per-request work, only a periodic read of those. Every
//! `usage_history.sample_interval_ms` (5 min) each node runs `sample_usage`
//! once for the tenants homed in its region: the hour's requests (summed from
//! the access log) and jobs created (job ids are time-ordered), and the
//! storage bytes and this month's AI tokens as they stand. Values are
//! recomputed, not added, so the nodes of a region may sample the same hour
//! without double counting. A tenant gets no row for an hour in which nothing
//! moved (no request, no job, gauges as in its last row): idle tenants cost
//! nothing, and a chart carries the last gauge forward. For the first two
//! intervals of an hour the previous hour is sampled again (its counters only):
//! the access log reaches the database a flush (1 s) after the request.
//!
//! What it is not: requests under an impersonation and requests that never
//! opened a tenant transaction are not in the access log, so not here either
//! (`/metrics` counts every request). Samples older than
//! `usage_history.retention_days` are deleted by each node for its region;
//! the database's `prune_usage_samples` never deletes one younger than a day
//! (the shortest retention accepted here), whatever cutoff it is given (V35).

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::millis;
use crate::db::{Database, TenantTx, TxMode};
use crate::ids::RegionId;
use crate::store::error::StoreError;

/// `usage_history.*` settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageHistorySettings {
    /// How often a node samples its region's tenants.
    #[serde(rename = "sample_interval_ms", with = "millis")]
    pub sample_interval: Duration,
    /// Samples older than this are deleted.
    pub retention_days: u32,
    /// Rows one prune statement deletes at most.
    pub prune_batch: u32,
}

impl Default for UsageHistorySettings {
    fn default() -> Self {
        Self {
            sample_interval: Duration::from_secs(300),
            retention_days: 400,
            prune_batch: 5_000,
        }
    }
}

impl UsageHistorySettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(Duration::from_millis(50)..=Duration::from_secs(1800)).contains(&self.sample_interval)
        {
            return Err("usage_history.sample_interval_ms must be 50..=1800000".into());
        }
        if self.retention_days == 0 || self.prune_batch == 0 {
            return Err("usage_history.retention_days and prune_batch must be positive".into());
        }
        Ok(())
    }
}

const HOUR: TimeDelta = TimeDelta::hours(1);

/// The start of the UTC hour holding `at`.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(HOUR).unwrap_or(at)
}

/// The smallest version-7 UUID of the millisecond `at`: job ids of an hour lie
/// in `[v7_floor(start), v7_floor(end))`.
pub fn v7_floor(at: DateTime<Utc>) -> Uuid {
    let millis = u128::try_from(at.timestamp_millis()).unwrap_or(0);
    Uuid::from_u128(millis << 80)
}

/// Samples `region`'s tenants for the hour holding `now` (and, early in an
/// hour, the previous hour's counters). Returns the rows written; a failure
/// is logged and the next tick tries again.
pub async fn sample(
    db: &Database,
    region: &RegionId,
    settings: &UsageHistorySettings,
    now: DateTime<Utc>,
) -> u64 {
    let current = hour_of(now);
    let mut hours = vec![(current, true)];
    let late = TimeDelta::from_std(settings.sample_interval * 2).unwrap_or(HOUR);
    if now - current < late {
        hours.push((current - HOUR, false));
    }
    let mut written = 0;
    for (start, gauges) in hours {
        let end = start + HOUR;
        let result = db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                let row = tx
                    .query_one(
                        "SELECT sample_usage($1, $2, $3, $4, $5, $6)",
                        &[
                            &region.as_str(),
                            &start,
                            &end,
                            &v7_floor(start),
                            &v7_floor(end),
                            &gauges,
                        ],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0))
            })
            .await;
        match result {
            Ok(n) => written += n.max(0) as u64,
            Err(err) => tracing::warn!(error = %err, hour = %start, "sampling usage failed"),
        }
    }
    written
}

/// Deletes this region's samples past retention, in batches; returns how many.
pub async fn prune(db: &Database, region: &RegionId, settings: &UsageHistorySettings) -> u64 {
    let before = Utc::now() - TimeDelta::days(i64::from(settings.retention_days));
    let statement = "SELECT prune_usage_samples($1, $2, $3)";
    crate::db::prune::in_batches(
        db,
        statement,
        "usage samples",
        region,
        before,
        settings.prune_batch,
    )
    .await
}

/// One bucket of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct UsageBucket {
    /// Start of the bucket (UTC).
    pub start: DateTime<Utc>,
    /// Member requests recorded in the bucket (the access log's count).
    pub requests: u64,
    /// Background jobs created in the bucket.
    pub jobs: u64,
    /// Stored message bytes at the bucket's last sample.
    pub storage_bytes: u64,
    /// AI tokens used in the bucket's month, at its last sample.
    pub ai_tokens: u64,
}

/// The tenant's hourly samples in `[from, to)`, oldest first.
pub async fn hours(
    tx: &TenantTx<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageBucket>, StoreError> {
    let rows = tx
        .query(
            "SELECT bucket_start, requests, jobs, storage_bytes, ai_tokens FROM usage_samples
              WHERE tenant_id = $1 AND bucket_start >= $2 AND bucket_start < $3
              ORDER BY bucket_start",
            &[tx.tenant_id().as_uuid(), &from, &to],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let n = |i: usize| -> Result<u64, StoreError> {
                let v: i64 = row.try_get(i).map_err(StoreError::internal)?;
                Ok(v.max(0) as u64)
            };
            Ok(UsageBucket {
                start: row.try_get(0).map_err(StoreError::internal)?,
                requests: n(1)?,
                jobs: n(2)?,
                storage_bytes: n(3)?,
                ai_tokens: n(4)?,
            })
        })
        .collect()
}

/// Hours folded into UTC days: counters summed, gauges as at the day's last
/// hour. `hours` must be oldest first.
pub fn days(hours: Vec<UsageBucket>) -> Vec<UsageBucket> {
    let mut out: Vec<UsageBucket> = Vec::new();
    for hour in hours {
        let day = hour
            .start
            .duration_trunc(TimeDelta::days(1))
            .unwrap_or(hour.start);
        match out.last_mut() {
            Some(last) if last.start == day => {
                last.requests += hour.requests;
                last.jobs += hour.jobs;
                last.storage_bytes = hour.storage_bytes;
                last.ai_tokens = hour.ai_tokens;
            }
            _ => out.push(UsageBucket { start: day, ..hour }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn bucket(start: &str, requests: u64, storage: u64) -> UsageBucket {
        UsageBucket {
            start: at(start),
            requests,
            jobs: 1,
            storage_bytes: storage,
            ai_tokens: 0,
        }
    }

    #[test]
    fn days_sum_counters_and_keep_the_last_gauge() {
        let folded = days(vec![
            bucket("2026-11-01T10:00:00Z", 3, 100),
            bucket("2026-11-01T23:00:00Z", 4, 50),
            bucket("2026-11-02T00:00:00Z", 1, 70),
        ]);
        assert_eq!(
            folded,
            vec![
                UsageBucket {
                    start: at("2026-11-01T00:00:00Z"),
                    requests: 7,
                    jobs: 2,
                    storage_bytes: 50,
                    ai_tokens: 0
                },
                UsageBucket {
                    start: at("2026-11-02T00:00:00Z"),
                    requests: 1,
                    jobs: 1,
                    storage_bytes: 70,
                    ai_tokens: 0
                },
            ]
        );
    }

    #[test]
    fn v7_floor_orders_with_job_ids_of_that_millisecond() {
        let t = at("2026-11-30T15:00:00Z");
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            t.timestamp() as u64,
            0,
        ));
        assert!(v7_floor(t) <= id);
        assert!(id < v7_floor(t + TimeDelta::milliseconds(1)));
        assert_eq!(hour_of(at("2026-11-30T15:59:59Z")), t);
    }
}
