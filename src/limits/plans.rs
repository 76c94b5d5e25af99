//! Plans and their limits, and the per-tenant overrides a platform admin sets:
//! the defaults, the effective limits (plan + overrides), the PATCH semantics
//! and validation. Stored with the tenant in the directory (`tenancy::record`);
//! enforced by the rest of `limits` (rate, concurrency, cost) and, for the exact
//! caps, in the database (`limits::storage`, `limits::ledger`, users).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

/// A tenant's effective limits. Plans give defaults; a platform admin may override
/// each per tenant (`limits` in the directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Sustained requests per second on one node (a user gets half).
    pub requests_per_second: u32,
    /// Requests that may arrive at once above the sustained rate.
    pub burst: u32,
    /// Requests in flight at once on one node.
    pub concurrent_requests: u32,
    /// Stored content (message bodies, UTF-8 bytes), exact across the region.
    pub storage_bytes: u64,
    /// Users that are not deleted.
    pub users: u32,
    /// AI tokens per calendar month (UTC), exact.
    pub ai_tokens_per_month: u64,
    /// Largest message body, in bytes (UTF-8).
    pub message_bytes: u32,
    /// Background jobs of the tenant running at once, across the region's nodes.
    pub jobs_concurrent: u32,
}

/// Per-tenant overrides, as stored; absent fields fall back to the plan. A PATCH
/// merges into the stored overrides. The schema's bounds are `validate`'s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub requests_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub concurrent_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_125_899_906_842_624_u64)]
    pub storage_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub users: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_099_511_627_776_u64)]
    pub ai_tokens_per_month: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 131_072)]
    pub message_bytes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000)]
    pub jobs_concurrent: Option<u32>,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
    }

    pub fn default_limits(self) -> Limits {
        const MB: u64 = 1024 * 1024;
        match self {
            Plan::Free => Limits {
                requests_per_second: 20,
                burst: 100,
                concurrent_requests: 10,
                storage_bytes: 100 * MB,
                users: 10,
                ai_tokens_per_month: 100_000,
                message_bytes: 4 * 1024,
                jobs_concurrent: 2,
            },
            Plan::Pro => Limits {
                requests_per_second: 200,
                burst: 1_000,
                concurrent_requests: 50,
                storage_bytes: 10 * 1024 * MB,
                users: 500,
                ai_tokens_per_month: 5_000_000,
                message_bytes: 16 * 1024,
                jobs_concurrent: 8,
            },
            Plan::Enterprise => Limits {
                requests_per_second: 2_000,
                burst: 10_000,
                concurrent_requests: 200,
                storage_bytes: 1024 * 1024 * MB,
                users: 100_000,
                ai_tokens_per_month: 100_000_000,
                message_bytes: 64 * 1024,
                jobs_concurrent: 32,
            },
        }
    }
}

/// What a plan allows and defaults to for retention (`compliance::retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetentionBounds {
    /// The longest message retention the plan includes, in days; `null`: no
    /// maximum (messages may be kept forever).
    pub messages_days_max: Option<u32>,
    /// Message retention when the tenant has set none; `null`: kept forever.
    pub messages_days_default: Option<u32>,
    /// Audit retention when the tenant has set none, in days.
    pub audit_days_default: u32,
    /// Below this only a platform admin may set audit retention, so nobody
    /// erases the record of their own recent actions.
    pub audit_days_floor: u32,
}

/// One year: the audit floor of every plan (SOC 2 and ISO 27001 audits look
/// back a year, so a shorter trail fails them).
pub const AUDIT_DAYS_FLOOR: u32 = 365;

impl Plan {
    /// The plan's retention bounds. Free keeps a year of messages (what its
    /// storage price covers); paid plans keep messages until the tenant
    /// shortens it. Audit: a year on Free, two on Pro, seven on Enterprise (the
    /// usual record-keeping period of regulated customers).
    pub fn retention(self) -> RetentionBounds {
        let (messages, audit) = match self {
            Plan::Free => (Some(365), AUDIT_DAYS_FLOOR),
            Plan::Pro => (None, 2 * 365),
            Plan::Enterprise => (None, 7 * 365),
        };
        RetentionBounds {
            messages_days_max: messages,
            messages_days_default: messages,
            audit_days_default: audit,
            audit_days_floor: AUDIT_DAYS_FLOOR,
        }
    }
}

/// Refuses `value` outside `range`, naming the field.
fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<(), ApiError> {
    match value {
        Some(v) if v < min || v > max => Err(ApiError::validation(format!(
            "limits.{field} must be between {min} and {max}"
        ))),
        _ => Ok(()),
    }
}

/// The fields of `LimitOverrides`, as named on the wire.
const LIMIT_FIELDS: [&str; 8] = [
    "requests_per_second",
    "burst",
    "concurrent_requests",
    "storage_bytes",
    "users",
    "ai_tokens_per_month",
    "message_bytes",
    "jobs_concurrent",
];

/// A PATCH of the overrides: a field given a value is set, a field given `null`
/// goes back to the plan's value, an absent field stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitPatch {
    pub set: LimitOverrides,
    pub clear: Vec<&'static str>,
}

impl<'de> Deserialize<'de> for LimitPatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let (nulls, values): (Vec<_>, Vec<_>) = fields.into_iter().partition(|(_, v)| v.is_null());
        let clear = nulls
            .into_iter()
            .map(|(name, _)| {
                LIMIT_FIELDS
                    .into_iter()
                    .find(|f| *f == name)
                    .ok_or_else(|| {
                        D::Error::custom(format!(
                            "unknown field `{name}`, expected one of {}",
                            LIMIT_FIELDS.join(", ")
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let set = serde_json::from_value(serde_json::Value::Object(values.into_iter().collect()))
            .map_err(D::Error::custom)?;
        Ok(Self { set, clear })
    }
}

impl LimitOverrides {
    /// Rejects values no plan could sensibly have.
    pub fn validate(&self) -> Result<(), ApiError> {
        in_range("requests_per_second", self.requests_per_second, 1, 100_000)?;
        in_range("burst", self.burst, 1, 1_000_000)?;
        in_range("concurrent_requests", self.concurrent_requests, 1, 10_000)?;
        in_range("storage_bytes", self.storage_bytes, 0, 1 << 50)?;
        in_range("users", self.users, 1, 1_000_000)?;
        in_range("ai_tokens_per_month", self.ai_tokens_per_month, 0, 1 << 40)?;
        in_range("message_bytes", self.message_bytes, 1, 128 * 1024)?;
        in_range("jobs_concurrent", self.jobs_concurrent, 1, 1_000)
    }

    /// The plan's limits with these overrides applied.
    pub(crate) fn apply(&self, plan: Limits) -> Limits {
        Limits {
            requests_per_second: self.requests_per_second.unwrap_or(plan.requests_per_second),
            burst: self.burst.unwrap_or(plan.burst),
            concurrent_requests: self.concurrent_requests.unwrap_or(plan.concurrent_requests),
            storage_bytes: self.storage_bytes.unwrap_or(plan.storage_bytes),
            users: self.users.unwrap_or(plan.users),
            ai_tokens_per_month: self.ai_tokens_per_month.unwrap_or(plan.ai_tokens_per_month),
            message_bytes: self.message_bytes.unwrap_or(plan.message_bytes),
            jobs_concurrent: self.jobs_concurrent.unwrap_or(plan.jobs_concurrent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_fields_name_every_override() {
        let all = LimitOverrides {
            requests_per_second: Some(1),
            burst: Some(1),
            concurrent_requests: Some(1),
            storage_bytes: Some(1),
            users: Some(1),
            ai_tokens_per_month: Some(1),
            message_bytes: Some(1),
            jobs_concurrent: Some(1),
        };
        let json = serde_json::to_value(all).unwrap();
        let mut names: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut expected = LIMIT_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_patch_tells_null_from_absent_and_rejects_unknown_fields() {
        let patch: LimitPatch = serde_json::from_str(r#"{"users": null, "burst": 7}"#).unwrap();
        assert_eq!(patch.clear, vec!["users"]);
        assert_eq!(patch.set.burst, Some(7));
        assert_eq!(patch.set.users, None);
        assert!(serde_json::from_str::<LimitPatch>(r#"{"nope": null}"#).is_err());
        assert!(serde_json::from_str::<LimitPatch>(r#"{"nope": 1}"#).is_err());
        assert!(serde_json::from_str::<LimitPatch>(r#"{"users": "many"}"#).is_err());
    }
}
