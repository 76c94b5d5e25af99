//! Denial counters per tenant on this node. `/v1/usage` reports the totals; every
//! `limits.denial_summary_interval_ms` the counts since the last summary are written
//! to each affected tenant's audit trail as one `limits_denied` event (not one row
//! per rejected request).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::TenantId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenialKind {
    RateLimited,
    ConcurrencyLimited,
    /// Expensive work refused for lack of the tenant's or the node's permit.
    ExpensiveLimited,
    /// A statement cancelled by its class's `statement_timeout`.
    StatementTimeout,
    QuotaExceeded,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct DenialCounts {
    pub rate_limited: u64,
    pub concurrency_limited: u64,
    pub expensive_limited: u64,
    pub statement_timeout: u64,
    pub quota_exceeded: u64,
}

impl DenialCounts {
    fn add(&mut self, kind: DenialKind) {
        match kind {
            DenialKind::RateLimited => self.rate_limited += 1,
            DenialKind::ConcurrencyLimited => self.concurrency_limited += 1,
            DenialKind::ExpensiveLimited => self.expensive_limited += 1,
            DenialKind::StatementTimeout => self.statement_timeout += 1,
            DenialKind::QuotaExceeded => self.quota_exceeded += 1,
        }
    }
}

#[derive(Default)]
pub struct Denials {
    /// Since the node started, and since the last audit summary.
    counts: Mutex<HashMap<TenantId, (DenialCounts, DenialCounts)>>,
}

impl Denials {
    pub fn record(&self, tenant: TenantId, kind: DenialKind) {
        if let Ok(mut counts) = self.counts.lock() {
            let (total, pending) = counts.entry(tenant).or_default();
            total.add(kind);
            pending.add(kind);
        }
    }

    pub fn totals(&self, tenant: TenantId) -> DenialCounts {
        self.counts
            .lock()
            .ok()
            .and_then(|counts| counts.get(&tenant).map(|(total, _)| *total))
            .unwrap_or_default()
    }

    /// Every tenant's totals since the node started (for `/metrics`).
    pub fn all_totals(&self) -> Vec<(TenantId, DenialCounts)> {
        self.counts
            .lock()
            .map(|counts| counts.iter().map(|(t, (total, _))| (*t, *total)).collect())
            .unwrap_or_default()
    }

    /// Takes the counts pending a summary, resetting them.
    pub fn take_pending(&self) -> Vec<(TenantId, DenialCounts)> {
        let Ok(mut counts) = self.counts.lock() else {
            return Vec::new();
        };
        counts
            .iter_mut()
            .filter(|(_, (_, pending))| *pending != DenialCounts::default())
            .map(|(tenant, (_, pending))| (*tenant, std::mem::take(pending)))
            .collect()
    }

    /// Puts counts back after a failed summary write, so none are lost.
    pub fn restore(&self, tenant: TenantId, counts: DenialCounts) {
        if let Ok(mut all) = self.counts.lock() {
            let (_, pending) = all.entry(tenant).or_default();
            pending.rate_limited += counts.rate_limited;
            pending.concurrency_limited += counts.concurrency_limited;
            pending.expensive_limited += counts.expensive_limited;
            pending.statement_timeout += counts.statement_timeout;
            pending.quota_exceeded += counts.quota_exceeded;
        }
    }
}
