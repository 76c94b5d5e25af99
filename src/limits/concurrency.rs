//! Concurrent-request limit per tenant: a semaphore per tenant; a request beyond
//! the limit is refused at once (never queued behind the noisy tenant), and the
//! permit lives as long as the request's `TenantScope`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ids::TenantId;
use crate::tenancy::TenantRecord;

pub struct ConcurrencyLimits {
    /// Keyed on the config version so a new limit takes effect at once.
    semaphores: moka::sync::Cache<(TenantId, i64), Arc<Semaphore>>,
}

impl Default for ConcurrencyLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl ConcurrencyLimits {
    pub fn new() -> Self {
        Self {
            semaphores: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(600))
                .max_capacity(1_000_000)
                .build(),
        }
    }

    /// A permit, or `None` when the tenant already has its limit of requests in flight.
    pub fn try_acquire(&self, tenant: &TenantRecord) -> Option<OwnedSemaphorePermit> {
        let limit = tenant.limits().concurrent_requests as usize;
        let semaphore = self
            .semaphores
            .get_with((tenant.id, tenant.config_version), || {
                Arc::new(Semaphore::new(limit))
            });
        semaphore.try_acquire_owned().ok()
    }

    /// Requests of `tenant` in flight on this node now.
    pub fn in_flight(&self, tenant: &TenantRecord) -> u32 {
        let limit = tenant.limits().concurrent_requests as usize;
        self.semaphores
            .get(&(tenant.id, tenant.config_version))
            .map_or(0, |s| limit.saturating_sub(s.available_permits()) as u32)
    }
}
