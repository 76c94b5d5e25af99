//! `/v1/usage`: a tenant's limits and what it uses of them (owners and admins);
//! `/v1/tenants/{id}/usage`: the same report of one tenant for platform admins
//! (the console's quota management shows it beside the limits it changes).
//! The report is made in `limits::usage`; the history over time
//! (`/v1/usage/history`) in `limits::history`.

use actix_web::{get, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorCode};
use crate::ids::TenantId;
use crate::limits::history::{self as samples, UsageBucket};
use crate::limits::usage::{self, Usage};
use crate::scope::{Allow, Caller, Guarded, TenantOrPlatformAdmin, TenantScope, perm};
use crate::state::AppState;
use crate::store::tenants;

#[utoipa::path(tag = "usage", security(("bearer" = [])), responses((status = 200, body = Usage)))]
#[get("/usage")]
pub async fn get(
    scope: Guarded<Allow<perm::ReadUsage>, TenantScope>,
) -> Result<web::Json<Usage>, ApiError> {
    let measured = scope.read(async |tx| Ok(usage::measure(tx).await?)).await?;
    Ok(web::Json(usage::report(
        scope.tenant(),
        scope.limits(),
        measured,
    )))
}

/// One tenant's limits and usage, as its owner's `GET /v1/usage` gives them
/// (platform admins; routed to the tenant's home region, whose nodes count its
/// requests in flight and refusals). A tenant's user gets what every
/// platform-only route about a tenant answers: 403 about its own tenant, 404
/// (audited) about another. The tenant row and the figures are read in one
/// transaction, scoped to the tenant for the figures.
#[utoipa::path(tag = "usage", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = Usage)))]
#[get("/tenants/{id}/usage")]
pub async fn tenant_usage(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    path: super::IdPath,
) -> Result<web::Json<Usage>, ApiError> {
    let id = TenantId::parse(&path)?;
    let scope = caller
        .into_inner()
        .platform_only(
            id,
            "a tenant's usage by id is for platform admins (`GET /v1/usage`)",
        )
        .await?;
    let (tenant, measured) = scope
        .read(async |tx| {
            let tenant = tenants::get(tx, id).await?;
            let scoped = tx.enter_tenant(id, tenant.home_region.clone()).await?;
            let measured = usage::measure(&scoped).await?;
            Ok((tenant, measured))
        })
        .await?;
    Ok(web::Json(usage::report(&tenant, &state.limits, measured)))
}

/// Bucket width of the history.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    #[default]
    Hour,
    Day,
}

impl Bucket {
    fn width(self) -> TimeDelta {
        match self {
            Bucket::Hour => TimeDelta::hours(1),
            Bucket::Day => TimeDelta::days(1),
        }
    }

    /// The most buckets one answer covers: 31 days of hours, 400 days.
    pub const fn max_buckets(self) -> i32 {
        match self {
            Bucket::Hour => 744,
            Bucket::Day => 400,
        }
    }

    /// The range asked for without `from`: 48 hours, 30 days.
    fn default_buckets(self) -> i32 {
        match self {
            Bucket::Hour => 48,
            Bucket::Day => 30,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Start of the range (RFC 3339), rounded down to its bucket; default `to`
    /// minus 48 hours (`hour`) or 30 days (`day`).
    pub from: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339, exclusive), rounded up to its bucket; default now.
    pub to: Option<DateTime<Utc>>,
    /// `hour` (default; at most 744 buckets) or `day` (UTC days; at most 400).
    pub bucket: Option<Bucket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageHistory {
    pub bucket: Bucket,
    /// The range covered, rounded to whole buckets: `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Buckets with a sample, oldest first. A bucket without one had no
    /// requests or jobs and the gauges of the bucket before it.
    pub buckets: Vec<UsageBucket>,
}

fn floor(at: DateTime<Utc>, width: TimeDelta) -> DateTime<Utc> {
    chrono::DurationRound::duration_trunc(at, width).unwrap_or(at)
}

/// `[from, to)` rounded out to whole buckets, checked against the bounds.
fn range(
    query: &HistoryQuery,
    now: DateTime<Utc>,
) -> Result<(Bucket, DateTime<Utc>, DateTime<Utc>), ApiError> {
    let bucket = query.bucket.unwrap_or_default();
    let width = bucket.width();
    let to = query.to.unwrap_or(now);
    let to_floor = floor(to, width);
    let to = if to_floor == to { to } else { to_floor + width };
    let from = match query.from {
        Some(from) => floor(from, width),
        None => to - width * bucket.default_buckets(),
    };
    if from >= to {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            "`from` must be before `to`",
        ));
    }
    if to - from > width * bucket.max_buckets() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!(
                "at most {} buckets of a {} per answer: narrow `from`..`to` or use a wider bucket",
                bucket.max_buckets(),
                match bucket {
                    Bucket::Hour => "hour",
                    Bucket::Day => "day",
                }
            ),
        ));
    }
    Ok((bucket, from, to))
}

/// The tenant's usage per hour or day (requests, jobs, storage, AI tokens),
/// sampled off the request path (`limits::history`).
#[utoipa::path(
    tag = "usage",
    params(HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = UsageHistory)),
)]
#[get("/usage/history")]
pub async fn history(
    scope: Guarded<Allow<perm::ReadUsage>, TenantScope>,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<UsageHistory>, ApiError> {
    let (bucket, from, to) = range(&query, Utc::now())?;
    let hours = scope
        .read(async |tx| Ok(samples::hours(tx, from, to).await?))
        .await?;
    let buckets = match bucket {
        Bucket::Hour => hours,
        Bucket::Day => samples::days(hours),
    };
    Ok(web::Json(UsageHistory {
        bucket,
        from,
        to,
        buckets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn q(from: Option<&str>, to: Option<&str>, bucket: Option<Bucket>) -> HistoryQuery {
        HistoryQuery {
            from: from.map(at),
            to: to.map(at),
            bucket,
        }
    }

    #[test]
    fn ranges_round_out_to_whole_buckets_and_are_bounded() {
        let now = at("2026-11-30T15:20:00Z");
        let (b, from, to) = range(&q(None, None, None), now).unwrap();
        assert_eq!(b, Bucket::Hour);
        assert_eq!(to, at("2026-11-30T16:00:00Z"));
        assert_eq!(from, at("2026-11-28T16:00:00Z"));
        let (_, from, to) = range(
            &q(
                Some("2026-11-01T10:30:00Z"),
                Some("2026-11-03T00:00:00Z"),
                Some(Bucket::Day),
            ),
            now,
        )
        .unwrap();
        assert_eq!(
            (from, to),
            (at("2026-11-01T00:00:00Z"), at("2026-11-03T00:00:00Z"))
        );
        // Exactly 744 hours is allowed, one more is not.
        assert!(
            range(
                &q(
                    Some("2026-10-01T00:00:00Z"),
                    Some("2026-11-01T00:00:00Z"),
                    None
                ),
                now
            )
            .is_ok()
        );
        assert!(
            range(
                &q(
                    Some("2026-10-01T00:00:00Z"),
                    Some("2026-11-01T01:00:00Z"),
                    None
                ),
                now
            )
            .is_err()
        );
        assert!(
            range(
                &q(
                    Some("2026-11-02T00:00:00Z"),
                    Some("2026-11-01T00:00:00Z"),
                    None
                ),
                now
            )
            .is_err()
        );
        assert!(
            range(
                &q(Some("2025-01-01T00:00:00Z"), None, Some(Bucket::Day)),
                now
            )
            .is_err()
        );
    }
}
