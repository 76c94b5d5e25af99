//! A tenant as the directory knows it. Its plan and limits are `limits::plans`'
//! (re-exported here for the directory's users).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::residency::Residency;
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
pub use crate::limits::plans::{LimitOverrides, LimitPatch, Limits, Plan};
use crate::store::error::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    /// A tombstone: the tenant was erased (`compliance::tenant_erasure`); set
    /// only by the erasure job, never by `PATCH`.
    Erased,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Erased => "erased",
        }
    }
}

/// Which engine makes the tenant's channel summaries (`crate::summaries`).
/// Kept in `tenants.ai_engine` (V12), read where it decides (`store::tenants::ai_engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AiEngine {
    /// In process, in the tenant's home region (the default).
    #[default]
    Extractive,
    /// The node's OpenAI-compatible engine (`summaries.openai`).
    External,
}

impl AiEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            AiEngine::Extractive => "extractive",
            AiEngine::External => "external",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "extractive" => Some(AiEngine::Extractive),
            "external" => Some(AiEngine::External),
            _ => None,
        }
    }
}

/// The tenant's encryption policy (`tenants.encrypt_messages`, V19): which
/// fields, beyond the stored secrets that are always encrypted, are sealed with
/// the tenant's data key. See `crate::crypto::messages`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Encryption {
    /// Message bodies and channel summaries.
    pub messages: bool,
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
    /// Set while an erasure is pending (the tenant is then `suspended`) and
    /// kept once erased: when the erasure may start (`DELETE /v1/tenants/{id}`).
    pub erase_after: Option<DateTime<Utc>>,
    /// What the tenant's policy encrypts (`crate::crypto::messages`).
    pub encryption: Encryption,
    pub config_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns `TenantRecord::from_row` reads, as a literal so that statements can
/// be constants (`concat!`), listed by `store::hot_statements`.
macro_rules! tenant_columns {
    () => {
        "id, slug, name, home_region, residency, plan, limits, status, erase_after, \
            encrypt_messages, config_version, created_at, updated_at"
    };
}
pub(crate) use tenant_columns;

pub const TENANT_COLUMNS: &str = tenant_columns!();

impl TenantRecord {
    pub fn limits(&self) -> Limits {
        self.limit_overrides.apply(self.plan.default_limits())
    }

    pub fn is_active(&self) -> bool {
        self.status == TenantStatus::Active
    }

    /// Why the tenant's own requests are refused, if they are: suspended,
    /// suspended pending erasure (403 `tenant_pending_erasure`, restorable), or
    /// erased (410 `tenant_erased`).
    pub fn refusal(&self) -> Option<ApiError> {
        match (self.status, self.erase_after) {
            (TenantStatus::Active, _) => None,
            (TenantStatus::Suspended, Some(after)) => Some(ApiError::TenantPendingErasure(after)),
            (TenantStatus::Suspended, None) => Some(ApiError::TenantSuspended),
            (TenantStatus::Erased, _) => Some(ApiError::TenantErased),
        }
    }

    /// Reads a row selected with `TENANT_COLUMNS`.
    pub fn from_row(row: &Row) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::internal(anyhow::anyhow!("tenant row has an invalid {what}"));
        let residency: Option<serde_json::Value> =
            row.try_get("residency").map_err(StoreError::internal)?;
        let limits: serde_json::Value = row.try_get("limits").map_err(StoreError::internal)?;
        let plan: String = row.try_get("plan").map_err(StoreError::internal)?;
        let status: String = row.try_get("status").map_err(StoreError::internal)?;
        let home_region: String = row.try_get("home_region").map_err(StoreError::internal)?;
        Ok(Self {
            id: TenantId::from_uuid(row.try_get("id").map_err(StoreError::internal)?),
            slug: row.try_get("slug").map_err(StoreError::internal)?,
            name: row.try_get("name").map_err(StoreError::internal)?,
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
                "erased" => TenantStatus::Erased,
                _ => return Err(corrupt("status")),
            },
            erase_after: row.try_get("erase_after").map_err(StoreError::internal)?,
            encryption: Encryption {
                messages: row
                    .try_get("encrypt_messages")
                    .map_err(StoreError::internal)?,
            },
            config_version: row
                .try_get("config_version")
                .map_err(StoreError::internal)?,
            created_at: row.try_get("created_at").map_err(StoreError::internal)?,
            updated_at: row.try_get("updated_at").map_err(StoreError::internal)?,
        })
    }
}
