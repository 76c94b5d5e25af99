//! Where each tenant's requests were served: the evidence behind the residency
//! report's "regions that served the tenant recently" (`tenancy::attest`).
//!
//! A node counts, per tenant, the requests that opened a tenant transaction
//! here (the request read or wrote the tenant's data on this node; a request
//! this node only forwarded is counted by the node that served it). The counts
//! stay in memory and are flushed every `residency.served_flush_ms` into
//! `tenant_served_regions` (V24, one row per tenant, region and UTC day) by one
//! statement for all tenants (`record_served_regions`). Counting costs a mutex
//! and a hash-map increment per request; a crash loses at most one interval's
//! counts, and a flush that fails keeps its counts for the next one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::millis;
use crate::db::{Database, TxMode};
use crate::ids::{RegionId, TenantId};

/// `residency.*` settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ResidencySettings {
    /// How often a node writes the per-tenant counts of requests it served.
    #[serde(rename = "served_flush_ms", with = "millis")]
    pub served_flush: Duration,
}

impl Default for ResidencySettings {
    fn default() -> Self {
        Self {
            served_flush: Duration::from_secs(60),
        }
    }
}

impl ResidencySettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&self.served_flush) {
            return Err("residency.served_flush_ms must be 10..=3600000".into());
        }
        Ok(())
    }
}

/// This node's counts since the last flush.
#[derive(Default)]
pub struct ServedCounts {
    pending: Mutex<HashMap<TenantId, i64>>,
}

impl ServedCounts {
    /// One request served here with `tenant`'s data.
    pub fn record(&self, tenant: TenantId) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending.entry(tenant).or_insert(0) += 1;
        }
    }

    fn take(&self) -> HashMap<TenantId, i64> {
        self.pending
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default()
    }

    fn restore(&self, counts: HashMap<TenantId, i64>) {
        if let Ok(mut pending) = self.pending.lock() {
            for (tenant, n) in counts {
                *pending.entry(tenant).or_insert(0) += n;
            }
        }
    }

    /// Writes the pending counts as served by `region`; on failure they are kept
    /// for the next flush.
    pub async fn flush(&self, db: &Database, region: &RegionId) {
        let counts = self.take();
        if counts.is_empty() {
            return;
        }
        let tenants: Vec<Uuid> = counts.keys().map(|t| *t.as_uuid()).collect();
        let requests: Vec<i64> = counts.values().copied().collect();
        let now = chrono::Utc::now();
        let written = db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                tx.execute(
                    "SELECT record_served_regions($1, $2, $3, $4)",
                    &[&region.as_str(), &tenants, &requests, &now],
                )
                .await?;
                Ok(())
            })
            .await;
        if let Err(err) = written {
            tracing::warn!(
                tenants = counts.len(),
                error = %err,
                "writing served-region counts failed; keeping them"
            );
            self.restore(counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_a_failed_flush_keeps_them() {
        let counts = ServedCounts::default();
        let (a, b) = (
            TenantId::from_uuid(Uuid::now_v7()),
            TenantId::from_uuid(Uuid::now_v7()),
        );
        counts.record(a);
        counts.record(a);
        counts.record(b);
        let taken = counts.take();
        assert_eq!(taken[&a], 2);
        assert_eq!(taken[&b], 1);
        assert!(counts.take().is_empty());
        counts.record(a);
        counts.restore(taken);
        let again = counts.take();
        assert_eq!(again[&a], 3);
        assert_eq!(again[&b], 1);
    }
}
