//! Which trail a verification or an export reads, and the read transactions it
//! reads it with: a tenant's own (its scope), a tenant's as a platform admin (a
//! platform transaction entering the tenant), or a region's platform trail. Each
//! `query` is one read-only transaction, so a long walk holds no transaction
//! (and no snapshot) open between pages.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::limits::cost::RequestClass;
use crate::scope::{PlatformScope, TenantScope};

pub enum Source<'a> {
    /// The caller's own tenant.
    Tenant(&'a TenantScope),
    /// Any tenant's trail, for a platform admin.
    TenantOf {
        scope: &'a PlatformScope,
        tenant: TenantId,
        home: RegionId,
    },
    /// A region's platform trail.
    Platform {
        scope: &'a PlatformScope,
        region: RegionId,
    },
}

/// The SQL of one kind of trail. `$1` is always the trail's key as text.
pub struct TrailSql {
    pub events: &'static str,
    pub key_column: &'static str,
    pub key_cast: &'static str,
    pub heads: &'static str,
    pub checkpoints: &'static str,
    /// The columns that `chain::Content` needs, in that table.
    pub columns: &'static str,
}

pub const TENANT: TrailSql = TrailSql {
    events: "audit_events",
    key_column: "tenant_id",
    key_cast: "$1::text::uuid",
    heads: "audit_heads",
    checkpoints: "audit_checkpoints",
    columns: "id, created_at, actor, action, tenant_id, target_kind, target_id, details, \
              sealed, seq, hash",
};

pub const PLATFORM: TrailSql = TrailSql {
    events: "platform_audit_events",
    key_column: "region",
    key_cast: "$1::text",
    heads: "platform_audit_heads",
    checkpoints: "platform_audit_checkpoints",
    columns: "id, created_at, actor, action, tenant_id, NULL::text AS target_kind, \
              NULL::text AS target_id, details, sealed, seq, hash",
};

impl Source<'_> {
    pub fn sql(&self) -> &'static TrailSql {
        match self {
            Source::Platform { .. } => &PLATFORM,
            _ => &TENANT,
        }
    }

    /// The trail's key: the tenant id or the region.
    pub fn key(&self) -> String {
        match self {
            Source::Tenant(scope) => scope.tenant_id().to_string(),
            Source::TenantOf { tenant, .. } => tenant.to_string(),
            Source::Platform { region, .. } => region.as_str().to_owned(),
        }
    }

    /// The trail's name in reports and checkpoints: `tenant:<id>` or
    /// `platform:<region>`.
    pub fn name(&self) -> String {
        match self {
            Source::Platform { region, .. } => format!("platform:{}", region.as_str()),
            _ => format!("tenant:{}", self.key()),
        }
    }

    /// One statement in its own read-only transaction.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ApiError> {
        match self {
            Source::Tenant(scope) => {
                scope
                    .read_as(RequestClass::BigPage, async |tx| {
                        Ok(tx.query(sql, params).await?)
                    })
                    .await
            }
            Source::TenantOf {
                scope,
                tenant,
                home,
            } => {
                scope
                    .read(async |tx| {
                        let tx = tx.enter_tenant(*tenant, home.clone()).await?;
                        Ok(tx.query(sql, params).await?)
                    })
                    .await
            }
            Source::Platform { scope, .. } => {
                scope
                    .read(async |tx| Ok(tx.query(sql, params).await?))
                    .await
            }
        }
    }
}
