//! Limits, end to end: plans and per-tenant overrides with their validation
//! (`plans`), what the node enforces (`enforce`: the entry points the request
//! path calls), the refusal headers (`headers`), the denial counters
//! (`denials`), the exact caps kept in the database (`storage`: the storage
//! shards; `ledger`: AI token reservations; `usage::ensure_user_room`: users),
//! the `/v1/usage` report (`usage`), the hourly usage history (`history`) and
//! the region's top tenants by load read from it (`top`).
//!
//! Per-tenant limits that protect tenants from each other on a node: request rate
//! (per tenant and per user, plus a stricter per-IP limit for unauthenticated
//! traffic), concurrent requests weighted by cost, the expensive-work budget and
//! statement timeouts per request class (`cost`), each tenant's database time for
//! costly classes (`db_time`), and the denial counters that feed `/v1/usage`
//! and the audit summaries. Storage and AI caps are exact and live in the database
//! (`limits::storage`, `limits::ledger`).
//!
//! Rate and concurrency state is per node: N nodes in a region allow up to N times
//! a tenant's rate. Limiter state is kept per tenant (and user), never per config
//! version: a PATCH applies its new limits to the existing state on the next
//! request, and no config change hands out a fresh bucket or fresh slots. State is
//! dropped once idle and back to what a fresh entry would hold (a full bucket,
//! nothing in flight), so thousands of idle tenants cost no memory.

pub mod concurrency;
pub mod cost;
pub mod db_time;
pub mod denials;
mod enforce;
pub mod headers;
pub mod history;
pub mod ledger;
pub mod plans;
pub mod rate;
pub mod storage;
mod table;
pub mod top;
pub mod usage;

pub use concurrency::ConcurrencyLimits;
pub use cost::{CostSettings, ExpensiveDenied, ExpensivePermit, ExpensiveWork, RequestClass};
pub use denials::{DenialKind, Denials};
pub use enforce::NodeLimits;
pub use rate::RateLimits;

/// A tenant record with the given limit overrides and config version, for the
/// limiter tests.
#[cfg(test)]
pub(crate) fn test_tenant(
    overrides: crate::tenancy::record::LimitOverrides,
    version: i64,
) -> crate::tenancy::TenantRecord {
    crate::tenancy::TenantRecord {
        id: crate::ids::TenantId::from_uuid(uuid::Uuid::nil()),
        slug: "t".into(),
        name: format!("T{version}"),
        home_region: crate::ids::RegionId::parse("us-east1").unwrap(),
        residency: None,
        plan: crate::tenancy::Plan::Free,
        limit_overrides: overrides,
        status: crate::tenancy::TenantStatus::Active,
        erase_after: None,
        encryption: Default::default(),
        config_version: version,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    }
}
