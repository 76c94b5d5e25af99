//! Request-rate limits (GCRA): one bucket per tenant, one per user inside it (a
//! user may use half the tenant's rate), and one per client IP for requests
//! without a valid token. Keys are always the authenticated tenant and user, never
//! a client-supplied header.
//!
//! Tenant and user buckets are keyed on the tenant (and user) only, never on the
//! tenant's config version: renaming a tenant or changing its residency must not
//! hand out a fresh bucket (security issue 10). The quota is stored with the
//! bucket's state, and a changed quota is applied to the existing state
//! (`Gcra::requota`): requests already admitted stay counted, so a lower limit
//! applies at once and a higher one adds only the difference. governor cannot
//! change a limiter's quota, so these two buckets are a small GCRA of their own;
//! the per-IP limiter stays governor's.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota as GovernorQuota, RateLimiter};

use super::table::Table;
use crate::config::LimitSettings;
use crate::ids::{TenantId, UserId};
use crate::tenancy::TenantRecord;

type IpLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;
type AccountLimiter = governor::DefaultKeyedRateLimiter<(TenantId, String)>;

/// Password sign-in attempts per tenant and username (any outcome counts): a
/// burst of 5, then one every 12 s. Keyed on the tenant's id and the lowercased
/// username, never on a provider or config the tenant could replace to reset it.
const ACCOUNT_ATTEMPTS: (u32, u32) = (5, 5);
/// Password sign-in attempts per client address, across usernames and tenants.
const ADDRESS_ATTEMPTS: (u32, u32) = (30, 20);

/// A bucket that has been full for this long is dropped; a returning tenant then
/// starts with a full bucket, which is what the old one held anyway.
const IDLE: Duration = Duration::from_secs(600);

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Why and for how long a request is refused, for the 429 and its headers.
#[derive(Debug, Clone)]
pub struct RateDenied {
    /// Which bucket: `tenant`, `user`, `ip`, or for password sign-ins
    /// `account` (tenant + username) or `address` (client IP).
    pub scope: &'static str,
    pub per_second: u32,
    pub burst: u32,
    pub retry_after: Duration,
}

/// A sustained rate and a burst, both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    per_second: u32,
    burst: u32,
}

impl Quota {
    fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: per_second.max(1),
            burst: burst.max(1),
        }
    }

    /// Nanoseconds between two requests at the sustained rate.
    fn interval(self) -> u64 {
        NANOS_PER_SECOND / u64::from(self.per_second)
    }

    /// How far the theoretical arrival time may run ahead of now: the burst.
    fn tolerance(self) -> u64 {
        self.interval() * u64::from(self.burst)
    }
}

/// One bucket: GCRA state with the quota (and the tenant config version it came
/// from) it was last used with. Times are nanoseconds since `RateLimits::epoch`.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    quota: Quota,
    version: i64,
    /// Theoretical arrival time: the bucket is full when it is not after now;
    /// every admitted request moves it one interval on.
    tat: u64,
}

impl Gcra {
    fn new(quota: Quota, version: i64) -> Self {
        Self {
            quota,
            version,
            tat: 0,
        }
    }

    /// Applies the quota of config `version` to the existing state. A record
    /// older than the one already applied (another request still holding the
    /// previous directory entry) changes nothing. What the bucket has admitted
    /// and not yet refilled stays spent, counted in requests: a lower burst
    /// leaves at most the new burst minus that at once (possibly nothing), a
    /// higher one adds only the difference, and the new rate refills from now.
    fn requota(&mut self, quota: Quota, version: i64, now: u64) {
        if version < self.version {
            return;
        }
        self.version = version;
        if quota == self.quota {
            return;
        }
        let (old, new) = (self.quota, quota);
        // Spent requests, in nanoseconds of the old interval, re-expressed in the
        // new one (u128: up to 1e15 × 1e9), rounded up so that rounding never
        // gives a request back; at most a whole (new) burst.
        let debt = u128::from(self.tat.saturating_sub(now).min(old.tolerance()));
        let debt = (debt * u128::from(new.interval())).div_ceil(u128::from(old.interval()));
        self.tat = now + u64::try_from(debt).map_or(new.tolerance(), |d| d.min(new.tolerance()));
        self.quota = new;
    }

    /// Admits one request, or says how long until one would be admitted.
    fn take(&mut self, now: u64) -> Result<(), Duration> {
        let next = self.tat.max(now) + self.quota.interval();
        let tolerance = self.quota.tolerance();
        if next - now <= tolerance {
            self.tat = next;
            Ok(())
        } else {
            Err(Duration::from_nanos(next - tolerance - now))
        }
    }

    /// Full for at least `IDLE`: dropping it loses nothing.
    fn expired(&self, now: u64) -> bool {
        self.tat.saturating_add(IDLE.as_nanos() as u64) <= now
    }
}

pub struct RateLimits {
    tenants: Table<TenantId, Gcra>,
    users: Table<(TenantId, UserId), Gcra>,
    epoch: Instant,
    anonymous: IpLimiter,
    anonymous_quota: (u32, u32),
    accounts: AccountLimiter,
    addresses: IpLimiter,
    clock: DefaultClock,
}

/// `per_minute` sustained, `burst` at once.
fn per_minute(per_minute: u32, burst: u32) -> GovernorQuota {
    let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::per_minute(rate).allow_burst(burst)
}

fn governor_quota(per_second: u32, burst: u32) -> GovernorQuota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::per_second(rate).allow_burst(burst)
}

/// Takes one request from `bucket` under `quota`, naming the bucket on refusal
/// with the quota actually in force.
fn take(
    bucket: &mut Gcra,
    quota: Quota,
    version: i64,
    now: u64,
    scope: &'static str,
) -> Result<(), RateDenied> {
    bucket.requota(quota, version, now);
    bucket.take(now).map_err(|retry_after| RateDenied {
        scope,
        per_second: bucket.quota.per_second,
        burst: bucket.quota.burst,
        retry_after,
    })
}

impl RateLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            tenants: Table::new(),
            users: Table::new(),
            epoch: Instant::now(),
            anonymous: RateLimiter::keyed(governor_quota(
                settings.unauthenticated_per_second,
                settings.unauthenticated_burst,
            )),
            anonymous_quota: (
                settings.unauthenticated_per_second,
                settings.unauthenticated_burst,
            ),
            accounts: RateLimiter::keyed(per_minute(ACCOUNT_ATTEMPTS.0, ACCOUNT_ATTEMPTS.1)),
            addresses: RateLimiter::keyed(per_minute(ADDRESS_ATTEMPTS.0, ADDRESS_ATTEMPTS.1)),
            clock: DefaultClock::default(),
        }
    }

    /// One password sign-in attempt for `username` of `tenant` from `ip`.
    /// `per_second` in a refusal is 0: these buckets refill per minute.
    pub fn check_password(
        &self,
        tenant: TenantId,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), RateDenied> {
        let denied = |scope, burst, not_until: governor::NotUntil<_>| RateDenied {
            scope,
            per_second: 0,
            burst,
            retry_after: not_until.wait_time_from(self.clock.now()),
        };
        if let Some(ip) = ip {
            self.addresses
                .check_key(&ip)
                .map_err(|n| denied("address", ADDRESS_ATTEMPTS.1, n))?;
        }
        self.accounts
            .check_key(&(tenant, account_key(username)))
            .map_err(|n| denied("account", ACCOUNT_ATTEMPTS.1, n))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes one request from the tenant's and the user's buckets.
    pub fn check(&self, tenant: &TenantRecord, user: UserId) -> Result<(), RateDenied> {
        self.check_at(tenant, user, self.now())
    }

    fn check_at(&self, tenant: &TenantRecord, user: UserId, now: u64) -> Result<(), RateDenied> {
        let limits = tenant.limits();
        let (rate, burst) = (limits.requests_per_second, limits.burst);
        let version = tenant.config_version;
        let quota = Quota::new(rate, burst);
        self.tenants.with(
            tenant.id,
            || Gcra::new(quota, version),
            |bucket| take(bucket, quota, version, now, "tenant"),
        )?;
        let quota = Quota::new(rate.div_ceil(2), burst.div_ceil(2));
        self.users.with(
            (tenant.id, user),
            || Gcra::new(quota, version),
            |bucket| take(bucket, quota, version, now, "user"),
        )
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

    /// Drops per-IP state that has refilled and buckets full for `IDLE`; called
    /// periodically.
    pub fn prune(&self) {
        self.prune_at(self.now());
        self.anonymous.retain_recent();
        self.anonymous.shrink_to_fit();
        self.accounts.retain_recent();
        self.addresses.retain_recent();
    }

    fn prune_at(&self, now: u64) {
        self.tenants.retain(|bucket| !bucket.expired(now));
        self.users.retain(|bucket| !bucket.expired(now));
    }
}

/// The account a sign-in's username names, as a directory compares names
/// (LDAP's caseIgnoreMatch prepares both sides: compatibility forms folded
/// (NFKC), case folded, spaces at the ends dropped and runs of them made one,
/// RFC 4518), so that `ＡＬＩＣＥ`, ` alice ` and `Alice` spend one budget: each
/// variant a budget of its own would multiply the guesses an attacker gets.
fn account_key(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded = username
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .replace('ß', "ss");
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::record::LimitOverrides;

    #[test]
    fn variants_of_one_username_share_its_password_budget() {
        let limits = RateLimits::new(&LimitSettings::default());
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(7));
        // Five attempts a minute per account: spent on five spellings of one name.
        for variant in ["alice", "Alice", "ＡＬＩＣＥ", " alice ", "ALICE"] {
            let _ = limits.check_password(tenant, variant, None);
        }
        for variant in ["alice", "ａｌｉｃｅ", "alice\u{3000}"] {
            let denied = limits.check_password(tenant, variant, None).unwrap_err();
            assert_eq!(denied.scope, "account", "{variant}");
        }
        // Another name, and the same name in another tenant, are not affected.
        assert!(limits.check_password(tenant, "bob", None).is_ok());
        let other = TenantId::from_uuid(uuid::Uuid::from_u128(8));
        assert!(limits.check_password(other, "alice", None).is_ok());
        assert_eq!(account_key("Straße  Nord"), "strasse nord");
    }

    const SECOND: u64 = NANOS_PER_SECOND;

    fn tenant(per_second: u32, burst: u32, version: i64) -> TenantRecord {
        let overrides = LimitOverrides {
            requests_per_second: Some(per_second),
            burst: Some(burst),
            ..LimitOverrides::default()
        };
        crate::limits::test_tenant(overrides, version)
    }

    /// How many requests pass in a row at `now`.
    fn drain(bucket: &mut Gcra, now: u64) -> usize {
        (0..).take_while(|_| bucket.take(now).is_ok()).count()
    }

    #[test]
    fn a_new_config_version_keeps_the_buckets() {
        let limits = RateLimits::new(&LimitSettings::default());
        let user = UserId::from_uuid(uuid::Uuid::from_u128(1));
        let other = UserId::from_uuid(uuid::Uuid::from_u128(2));
        // Tenant burst 4, the user 2; refill 1/s.
        let before = tenant(1, 4, 1);
        assert!(limits.check_at(&before, user, 0).is_ok());
        assert!(limits.check_at(&before, user, 0).is_ok());
        assert_eq!(limits.check_at(&before, user, 0).unwrap_err().scope, "user");
        // A rename: same limits, the next config version.
        let renamed = tenant(1, 4, 2);
        assert_eq!(
            limits.check_at(&renamed, user, 0).unwrap_err().scope,
            "user"
        );
        // The tenant bucket kept its state too: 4 taken (the refusals count).
        let denied = limits.check_at(&renamed, other, 0).unwrap_err();
        assert_eq!(denied.scope, "tenant");
        assert_eq!(denied.retry_after, Duration::from_secs(1));
        // It refills at its rate.
        assert!(limits.check_at(&renamed, other, SECOND).is_ok());
    }

    #[test]
    fn a_lower_quota_applies_at_once_and_a_higher_adds_only_the_difference() {
        let mut bucket = Gcra::new(Quota::new(1, 10), 1);
        for _ in 0..3 {
            bucket.take(0).unwrap();
        }
        // 3 spent; lowered to a burst of 4: 1 left, not 4 (and not the 7 left
        // of the old burst).
        bucket.requota(Quota::new(1, 4), 2, 0);
        assert_eq!(drain(&mut bucket, 0), 1);
        // Lowered below what was spent: nothing left, and no more than one
        // burst owed.
        bucket.requota(Quota::new(1, 2), 3, 0);
        assert_eq!(drain(&mut bucket, 0), 0);
        assert_eq!(drain(&mut bucket, 2 * SECOND), 2);
        // Raised to 40 with 2 spent: the difference, 38, not a fresh 40.
        bucket.requota(Quota::new(1, 40), 4, 2 * SECOND);
        assert_eq!(drain(&mut bucket, 2 * SECOND), 38);
        // Raising the rate refills faster from now: at 100/s, 40 spent take
        // 0.4 s, not 40 s.
        bucket.requota(Quota::new(100, 40), 5, 2 * SECOND);
        assert_eq!(drain(&mut bucket, 2 * SECOND), 0);
        assert_eq!(drain(&mut bucket, 2 * SECOND + 100_000_000), 10);
        // Lowering it applies at once too: at 1/s, one more after a second.
        bucket.requota(Quota::new(1, 40), 6, 2 * SECOND + 100_000_000);
        assert_eq!(drain(&mut bucket, 2 * SECOND + 900_000_000), 0);
        assert_eq!(drain(&mut bucket, 3 * SECOND + 100_000_000), 1);
        // A full bucket stays full (raising its burst adds the difference).
        let mut full = Gcra::new(Quota::new(1, 3), 1);
        full.requota(Quota::new(1, 5), 2, 10 * SECOND);
        assert_eq!(drain(&mut full, 10 * SECOND), 5);
    }

    #[test]
    fn a_quota_change_never_gives_more_than_a_fresh_bucket_or_back_what_was_spent() {
        // Whatever the change, what passes right after it is at most the new
        // burst minus what was spent under the old quota.
        for (old, new) in [
            ((20, 100), (20, 50)),
            ((3, 7), (1000, 7)),
            ((7, 13), (3, 999)),
        ] {
            for spent in [0, 1, 5, 7] {
                let old = Quota::new(old.0, old.1);
                let new = Quota::new(new.0, new.1);
                let mut bucket = Gcra::new(old, 1);
                let spent = (0..spent).filter(|_| bucket.take(SECOND).is_ok()).count();
                bucket.requota(new, 2, SECOND);
                let after = drain(&mut bucket, SECOND);
                assert_eq!(
                    after,
                    (new.burst as usize).saturating_sub(spent),
                    "{old:?} → {new:?} after {spent}"
                );
            }
        }
    }

    #[test]
    fn a_stale_config_version_does_not_change_the_quota() {
        let mut bucket = Gcra::new(Quota::new(1, 10), 5);
        bucket.requota(Quota::new(1, 2), 6, 0);
        // A request still holding version 5's record: the lower burst stays.
        bucket.requota(Quota::new(1, 10), 5, 0);
        assert_eq!(bucket.quota, Quota::new(1, 2));
        assert_eq!(drain(&mut bucket, 0), 2);
        assert_eq!(bucket.version, 6);
    }

    #[test]
    fn idle_buckets_are_dropped_only_once_full() {
        let limits = RateLimits::new(&LimitSettings::default());
        let user = UserId::from_uuid(uuid::Uuid::from_u128(1));
        // Burst 2,000 at 1/s: emptied, it takes 2,000 s to refill; a 600 s
        // time-to-idle would have handed out a full bucket after 600.
        let slow = tenant(1, 2_000, 1);
        while limits.check_at(&slow, user, 0).is_ok() {}
        let idle = IDLE.as_nanos() as u64;
        limits.prune_at(idle + 100 * SECOND);
        assert_eq!(limits.tenants.len(), 1);
        assert_eq!(limits.users.len(), 1);
        assert!(limits.check_at(&slow, user, idle + 100 * SECOND).is_ok());
        // Refilled and then idle for `IDLE`: dropped.
        limits.prune_at(2_000 * SECOND + idle + SECOND);
        assert_eq!((limits.tenants.len(), limits.users.len()), (0, 0));
    }

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
