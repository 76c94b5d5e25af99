//! The audit trail: tenant events (RLS-scoped, readable by the tenant's admins,
//! owners and compliance officers) and platform events (provisioning,
//! cross-tenant denials), readable by platform admins.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{PlatformTx, TenantTx};
use crate::ids::{EventId, TenantId};
use crate::pagination::{Keyset, Page, keyset_page};
use crate::store::error::StoreError;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: EventId,
    /// Who acted: a user id, or a platform admin's name.
    pub actor: String,
    pub action: String,
    pub tenant_id: Option<TenantId>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A tenant event, in the same transaction as the change it records.
pub async fn record(
    tx: &TenantTx<'_>,
    actor: &str,
    action: &str,
    target: Option<(&str, String)>,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    let (kind, id) = target.map_or((None, None), |(k, i)| (Some(k), Some(i)));
    let (tenant, event) = (tx.tenant_id(), EventId::new_random());
    tx.execute(
        "INSERT INTO audit_events
                (tenant_id, id, home_region, actor, action, target_kind, target_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            tenant.as_uuid(),
            event.as_uuid(),
            &tx.home_region().as_str(),
            &actor,
            &action,
            &kind,
            &id,
            &details,
        ],
    )
    .await?;
    Ok(())
}

pub async fn record_platform(
    tx: &PlatformTx<'_>,
    actor: &str,
    action: &str,
    tenant: Option<TenantId>,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    let (event, tenant) = (EventId::new_random(), tenant.map(|t| *t.as_uuid()));
    tx.execute(
        "INSERT INTO platform_audit_events (id, actor, action, tenant_id, details)
         VALUES ($1, $2, $3, $4, $5)",
        &[event.as_uuid(), &actor, &action, &tenant, &details],
    )
    .await?;
    Ok(())
}

/// A page of the tenant's trail, newest first (`list_tenant`).
pub const TENANT_LIST_SQL: &str = "SELECT id, actor, action, tenant_id, target_kind, target_id, \
    details, created_at FROM audit_events
     WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
     ORDER BY created_at DESC, id DESC LIMIT $4";

pub async fn list_tenant(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<AuditEvent>, StoreError> {
    let (at, id) = split(after);
    let rows = tx
        .query(
            TENANT_LIST_SQL,
            &[tx.tenant_id().as_uuid(), &at, &id, &(i64::from(limit) + 1)],
        )
        .await?;
    Ok(keyset_page(
        rows.iter().map(event_from_row).collect(),
        limit,
        key,
    ))
}

pub async fn list_platform(
    tx: &PlatformTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<AuditEvent>, StoreError> {
    let (at, id) = split(after);
    let rows = tx
        .query(
            "SELECT id, actor, action, tenant_id, NULL::text AS target_kind, NULL::text AS \
                target_id, details, created_at
             FROM platform_audit_events
             WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
             ORDER BY created_at DESC, id DESC LIMIT $3",
            &[&at, &id, &(i64::from(limit) + 1)],
        )
        .await?;
    Ok(keyset_page(
        rows.iter().map(event_from_row).collect(),
        limit,
        key,
    ))
}

fn split(after: Option<Keyset>) -> (Option<DateTime<Utc>>, Option<Uuid>) {
    (after.map(|k| k.at), after.map(|k| k.id))
}

fn key(event: &AuditEvent) -> Keyset {
    Keyset {
        at: event.created_at,
        id: *event.id.as_uuid(),
    }
}

fn event_from_row(row: &tokio_postgres::Row) -> AuditEvent {
    AuditEvent {
        id: EventId::from_uuid(row.get("id")),
        actor: row.get("actor"),
        action: row.get("action"),
        tenant_id: row
            .get::<_, Option<Uuid>>("tenant_id")
            .map(TenantId::from_uuid),
        target_kind: row.get("target_kind"),
        target_id: row.get("target_id"),
        details: row.get("details"),
        created_at: row.get("created_at"),
    }
}
