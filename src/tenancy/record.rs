//! A tenant as the directory knows it, its plan, and its effective limits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::residency::Residency;
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

/// Limits enforced in this version. Plans give defaults; a platform admin may
/// override each per tenant (`limits` in the directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Users that are not deleted.
    pub users: u32,
    /// Largest message body, in bytes (UTF-8).
    pub message_bytes: u32,
}

/// Per-tenant overrides, as stored; absent fields fall back to the plan. A PATCH
/// merges into the stored overrides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_bytes: Option<u32>,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
    }

    pub fn default_limits(self) -> Limits {
        match self {
            Plan::Free => Limits {
                users: 10,
                message_bytes: 4 * 1024,
            },
            Plan::Pro => Limits {
                users: 500,
                message_bytes: 16 * 1024,
            },
            Plan::Enterprise => Limits {
                users: 100_000,
                message_bytes: 64 * 1024,
            },
        }
    }
}

impl LimitOverrides {
    /// Rejects values no plan could sensibly have.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self
            .users
            .is_some_and(|users| !(1..=1_000_000).contains(&users))
        {
            return Err(ApiError::validation(
                "limits.users must be between 1 and 1000000",
            ));
        }
        if self
            .message_bytes
            .is_some_and(|bytes| !(1..=128 * 1024).contains(&bytes))
        {
            return Err(ApiError::validation(
                "limits.message_bytes must be between 1 and 131072",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TenantRecord {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub home_region: RegionId,
    /// `null` means any region.
    pub residency: Option<Residency>,
    pub plan: Plan,
    pub limit_overrides: LimitOverrides,
    pub status: TenantStatus,
    pub config_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const TENANT_COLUMNS: &str = "id, slug, name, home_region, residency, plan, limits, status, config_version, created_at, updated_at";

impl TenantRecord {
    pub fn limits(&self) -> Limits {
        let plan = self.plan.default_limits();
        Limits {
            users: self.limit_overrides.users.unwrap_or(plan.users),
            message_bytes: self
                .limit_overrides
                .message_bytes
                .unwrap_or(plan.message_bytes),
        }
    }

    pub fn is_active(&self) -> bool {
        self.status == TenantStatus::Active
    }

    /// Reads a row selected with `TENANT_COLUMNS`.
    pub fn from_row(row: &Row) -> Result<Self, ApiError> {
        let corrupt =
            |what: &str| ApiError::internal(anyhow::anyhow!("tenant row has an invalid {what}"));
        let residency: Option<serde_json::Value> =
            row.try_get("residency").map_err(ApiError::internal)?;
        let limits: serde_json::Value = row.try_get("limits").map_err(ApiError::internal)?;
        let plan: String = row.try_get("plan").map_err(ApiError::internal)?;
        let status: String = row.try_get("status").map_err(ApiError::internal)?;
        let home_region: String = row.try_get("home_region").map_err(ApiError::internal)?;
        Ok(Self {
            id: TenantId::from_uuid(row.try_get("id").map_err(ApiError::internal)?),
            slug: row.try_get("slug").map_err(ApiError::internal)?,
            name: row.try_get("name").map_err(ApiError::internal)?,
            home_region: RegionId::parse(&home_region).map_err(|_| corrupt("home_region"))?,
            residency: residency
                .map(serde_json::from_value)
                .transpose()
                .map_err(|_| corrupt("residency"))?,
            plan: Plan::parse(&plan).ok_or_else(|| corrupt("plan"))?,
            limit_overrides: serde_json::from_value(limits).map_err(|_| corrupt("limits"))?,
            status: match status.as_str() {
                "active" => TenantStatus::Active,
                "suspended" => TenantStatus::Suspended,
                _ => return Err(corrupt("status")),
            },
            config_version: row.try_get("config_version").map_err(ApiError::internal)?,
            created_at: row.try_get("created_at").map_err(ApiError::internal)?,
            updated_at: row.try_get("updated_at").map_err(ApiError::internal)?,
        })
    }
}
