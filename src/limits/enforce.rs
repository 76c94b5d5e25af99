//! Enforcement: the decisions the request path asks of the node's limits, each
//! answered as the `ApiError` the client gets and counted among the tenant's
//! denials. The extractor asks for the rate before any database work; a tenant
//! scope asks for slots (and, for expensive work, permits) with its first
//! transaction and holds what it gets until the request is answered.

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::db_time::{DbTimeBudget, DbTimeDenied};
use super::headers::retry_after_secs;
use super::{
    ConcurrencyLimits, CostSettings, DenialKind, Denials, ExpensiveDenied, ExpensivePermit,
    ExpensiveWork, RateLimits, RequestClass,
};
use crate::config::LimitSettings;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::tenancy::TenantRecord;

/// Everything a node enforces in process.
pub struct NodeLimits {
    pub rate: RateLimits,
    pub concurrency: ConcurrencyLimits,
    /// The expensive-work budget per tenant and per node.
    pub expensive: ExpensiveWork,
    /// Each tenant's database time for costly classes.
    pub db_time: DbTimeBudget,
    /// Classes' weights, timeouts and the search bound.
    pub cost: CostSettings,
    pub denials: Denials,
}

impl NodeLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            rate: RateLimits::new(settings),
            concurrency: ConcurrencyLimits::new(),
            expensive: ExpensiveWork::new(&settings.cost),
            db_time: DbTimeBudget::new(&settings.cost),
            cost: settings.cost.clone(),
            denials: Denials::default(),
        }
    }

    /// Drops idle limiter state; called periodically.
    pub fn prune(&self) {
        self.rate.prune();
        self.concurrency.prune();
        self.expensive.prune();
        self.db_time.prune();
    }

    /// The tenant's and the user's request rate (`429 rate_limited`).
    pub fn check_rate(&self, tenant: &TenantRecord, user: UserId) -> Result<(), ApiError> {
        self.rate.check(tenant, user).map_err(|denied| {
            self.denials.record(tenant.id, DenialKind::RateLimited);
            ApiError::RateLimited(denied)
        })
    }

    /// `class`'s weight of the tenant's concurrent-request slots, or a refusal at
    /// once (`429 concurrency_limited`), never a wait behind the tenant's others.
    pub fn take_slots(
        &self,
        tenant: &TenantRecord,
        class: RequestClass,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        self.concurrency
            .try_acquire_weighted(tenant, class.weight())
            .ok_or_else(|| {
                self.denials
                    .record(tenant.id, DenialKind::ConcurrencyLimited);
                ApiError::ConcurrencyLimited
            })
    }

    /// The tenant's and the node's expensive-work permits, waited for at most
    /// `limits.cost.expensive_queue_ms` (`429 expensive_limited`, `503 node_busy`).
    pub async fn take_expensive(&self, tenant: &TenantRecord) -> Result<ExpensivePermit, ApiError> {
        self.expensive.admit(tenant.id).await.map_err(|denied| {
            self.denials.record(tenant.id, DenialKind::ExpensiveLimited);
            match denied {
                ExpensiveDenied::Tenant => ApiError::ExpensiveLimited,
                ExpensiveDenied::Node => ApiError::NodeBusy,
            }
        })
    }

    /// For a metered class, whether the tenant has database time left on this
    /// node (`429 expensive_limited`, `Retry-After` the refill's time to pay the
    /// tenant's debt back); other classes pass.
    pub fn check_db_time(
        &self,
        tenant: &TenantRecord,
        class: RequestClass,
    ) -> Result<(), ApiError> {
        if !class.metered() {
            return Ok(());
        }
        self.db_time
            .admit(tenant.id)
            .map_err(|denied| match denied {
                DbTimeDenied::Tenant(wait) => {
                    self.denials.record(tenant.id, DenialKind::ExpensiveLimited);
                    ApiError::DbTimeSpent {
                        retry_after_s: retry_after_secs(wait),
                    }
                }
                DbTimeDenied::Node(wait) => ApiError::NodeDbTimeSpent {
                    retry_after_s: retry_after_secs(wait),
                },
            })
    }

    /// Charges a metered class's transaction time to its tenant.
    pub fn charge_db_time(&self, tenant: &TenantRecord, class: RequestClass, spent: Duration) {
        if class.metered() {
            self.db_time.charge(tenant.id, spent);
        }
    }

    /// Counts a statement cancelled by its class's timeout.
    pub fn count_timeout(&self, tenant: &TenantRecord) {
        self.denials.record(tenant.id, DenialKind::StatementTimeout);
    }

    /// Counts a storage or AI quota refusal (decided in the database).
    pub fn count_quota_refusal(&self, tenant: &TenantRecord) {
        self.denials.record(tenant.id, DenialKind::QuotaExceeded);
    }
}
