//! Recurring jobs without a leader. Every node of a region, at every
//! housekeeping tick, enqueues each schedule's job for the current period with
//! the idempotency key `<kind>@<period start>`: the unique index on keys
//! (per tenant, per region for platform jobs) keeps one row per (kind, tenant or
//! region, period) however many nodes try, so no node needs to be elected.

use std::sync::PoisonError;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::worker::WorkerPool;
use super::{NewJob, store};
use crate::db::TxMode;
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};

/// Whose job a schedule makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleScope {
    /// One platform job per region and period (e.g. usage history roll-up).
    Region,
    /// One job per active tenant homed in the region, per period (e.g.
    /// retention, key rotation, calendar sync).
    EachTenant,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub kind: &'static str,
    pub every: Duration,
    pub scope: ScheduleScope,
    pub max_attempts: i32,
}

impl Schedule {
    /// The start of the period `now` falls in (periods are aligned to the epoch,
    /// so every node computes the same one).
    pub fn period_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let every = i64::try_from(self.every.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let start = now.timestamp_millis().div_euclid(every) * every;
        DateTime::from_timestamp_millis(start).unwrap_or(now)
    }

    /// The idempotency key of the period starting at `start`.
    pub fn key(&self, start: DateTime<Utc>) -> String {
        format!("{}@{}", self.kind, start.to_rfc3339())
    }

    fn job(&self, start: DateTime<Utc>) -> NewJob {
        NewJob {
            kind: self.kind,
            payload: serde_json::json!({ "period_start": start }),
            idempotency_key: Some(self.key(start)),
            run_after: Some(start),
            max_attempts: self.max_attempts,
        }
    }
}

/// Enqueues each schedule's job for the current period, once per period per
/// node (the node remembers the periods it has done; the key makes repeats and
/// other nodes' attempts no-ops).
pub async fn enqueue_due(pool: &WorkerPool) -> Result<(), ApiError> {
    let now = Utc::now();
    for (index, schedule) in pool.registry().schedules().iter().enumerate() {
        let start = schedule.period_start(now);
        let mark = start.timestamp_millis();
        let done = pool
            .schedule_marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&index)
            == Some(&mark);
        if done {
            continue;
        }
        match schedule.scope {
            ScheduleScope::Region => {
                let job = schedule.job(start);
                pool.db()
                    .platform_tx(TxMode::ReadWrite, async |tx| {
                        Ok(store::enqueue_platform(tx, pool.region(), job.clone()).await?)
                    })
                    .await?;
            }
            ScheduleScope::EachTenant => {
                for tenant in active_tenants(pool, pool.region()).await? {
                    super::enqueue_for(pool.db(), tenant, pool.region(), schedule.job(start))
                        .await?;
                }
            }
        }
        pool.schedule_marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(index, mark);
    }
    Ok(())
}

/// Active tenants homed in `region` (the directory table, readable by the
/// service role).
async fn active_tenants(pool: &WorkerPool, region: &RegionId) -> Result<Vec<TenantId>, ApiError> {
    pool.db()
        .platform_tx(TxMode::ReadOnly, async |tx| {
            Ok(crate::store::tenants::active_homed_in(tx, region).await?)
        })
        .await
}
