//! Request-rate limits with governor (GCRA): one bucket per tenant, one per user
//! inside it (a user may use half the tenant's rate), and one per client IP for
//! requests without a valid token. Keys are always the authenticated tenant and
//! user, never a client-supplied header.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::LimitSettings;
use crate::ids::{TenantId, UserId};
use crate::tenancy::TenantRecord;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type IpLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// Idle limiter state is dropped after this; a returning tenant starts with a full bucket.
const IDLE: Duration = Duration::from_secs(600);

/// Why and for how long a request is refused, for the 429 and its headers.
#[derive(Debug, Clone)]
pub struct RateDenied {
    /// Which bucket: `tenant`, `user` or `ip`.
    pub scope: &'static str,
    pub per_second: u32,
    pub burst: u32,
    pub retry_after: Duration,
}

pub struct RateLimits {
    tenants: moka::sync::Cache<(TenantId, i64), Arc<Limiter>>,
    users: moka::sync::Cache<(TenantId, UserId, i64), Arc<Limiter>>,
    anonymous: IpLimiter,
    anonymous_quota: (u32, u32),
    clock: DefaultClock,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

fn limiter(per_second: u32, burst: u32) -> Arc<Limiter> {
    Arc::new(
        RateLimiter::direct(quota(per_second, burst))
            .with_middleware::<StateInformationMiddleware>(),
    )
}

impl RateLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            tenants: moka::sync::Cache::builder().time_to_idle(IDLE).build(),
            users: moka::sync::Cache::builder().time_to_idle(IDLE).build(),
            anonymous: RateLimiter::keyed(quota(
                settings.unauthenticated_per_second,
                settings.unauthenticated_burst,
            )),
            anonymous_quota: (
                settings.unauthenticated_per_second,
                settings.unauthenticated_burst,
            ),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the tenant's and the user's buckets.
    pub fn check(&self, tenant: &TenantRecord, user: UserId) -> Result<(), RateDenied> {
        let limits = tenant.limits();
        let (rate, burst) = (limits.requests_per_second, limits.burst);
        let tenant_bucket = self
            .tenants
            .get_with((tenant.id, tenant.config_version), || limiter(rate, burst));
        self.take(&tenant_bucket, "tenant", rate, burst)?;
        let (user_rate, user_burst) = (rate.div_ceil(2), burst.div_ceil(2));
        let user_bucket = self
            .users
            .get_with((tenant.id, user, tenant.config_version), || {
                limiter(user_rate, user_burst)
            });
        self.take(&user_bucket, "user", user_rate, user_burst)
    }

    fn take(
        &self,
        bucket: &Limiter,
        scope: &'static str,
        per_second: u32,
        burst: u32,
    ) -> Result<(), RateDenied> {
        bucket.check().map(|_| ()).map_err(|not_until| RateDenied {
            scope,
            per_second,
            burst,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// The stricter limit for requests that carry no valid token, per client IP
    /// (the TCP peer; forwarding headers are not trusted).
    pub fn check_anonymous(&self, ip: IpAddr) -> Result<(), RateDenied> {
        let (per_second, burst) = self.anonymous_quota;
        self.anonymous
            .check_key(&ip)
            .map_err(|not_until| RateDenied {
                scope: "ip",
                per_second,
                burst,
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }

    /// Drops per-IP state that has refilled; called periodically.
    pub fn prune(&self) {
        self.anonymous.retain_recent();
        self.anonymous.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_requests_are_limited_per_ip() {
        let limits = RateLimits::new(&LimitSettings {
            unauthenticated_per_second: 1,
            unauthenticated_burst: 2,
            ..LimitSettings::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limits.check_anonymous(a).is_ok());
        assert!(limits.check_anonymous(a).is_ok());
        let denied = limits.check_anonymous(a).unwrap_err();
        assert_eq!(denied.scope, "ip");
        assert!(
            denied.retry_after > Duration::ZERO && denied.retry_after <= Duration::from_secs(1)
        );
        assert!(
            limits.check_anonymous(b).is_ok(),
            "another IP has its own bucket"
        );
    }
}
