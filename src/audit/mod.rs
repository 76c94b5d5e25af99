//! The audit trail: tenant events (RLS-scoped, readable by the tenant's admins,
//! owners and compliance officers) and platform events (provisioning,
//! cross-tenant denials), readable by platform admins. Each trail is a hash
//! chain (`chain`), with signed checkpoints (`checkpoint`), verified by
//! `verify`, exported for auditors by `export` and truncated by retention only
//! behind an anchor (`retention`). The format: docs/audit-format.md.

pub mod backfill;
pub mod chain;
pub mod checkpoint;
pub mod export;
pub mod file;
pub mod jobs;
pub mod personal;
pub mod retention;
pub mod seal;
pub mod trail;
pub mod verify;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::crypto::envelope::Binding;
use crate::crypto::keyring::{Keyring, KeyringError};
use crate::db::{PlatformTx, TenantTx};
use crate::ids::{EventId, RegionId, TenantId};
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
    /// The event's place in its trail's hash chain (`GET /v1/audit/verify`).
    pub seq: Option<i64>,
    /// SHA-256(previous hash || canonical event), hex (docs/audit-format.md).
    pub hash: Option<String>,
    /// The event's sealed personal details, opened (e.g. `{"email": …}` of
    /// `user_created`); `null` once erased. Absent on events without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub personal: Option<serde_json::Value>,
    /// `true` when the event had personal details and the key that opened them
    /// was destroyed (user or tenant erasure); absent on events without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_erased: Option<bool>,
}

/// A tenant event, in the same transaction as the change it records; the
/// sealer (`seal`) chains it after the commit.
pub async fn record(
    tx: &TenantTx<'_>,
    actor: &str,
    action: &str,
    target: Option<(&str, String)>,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    append(
        tx,
        EventId::new_random(),
        actor,
        action,
        target,
        &details,
        None,
    )
    .await
}

/// `record` for an event that must carry personal details (an e-mail address, a
/// name) about `subject` (the user they describe): they are sealed with that
/// subject's key (`personal`, created in this transaction if need be), bound to
/// this event's row and the `sealed` column, and only the ciphertext is stored
/// and hashed. User erasure deletes the subject's key, tenant erasure the
/// tenant's keys that wrap it: either removes the details while the chain still
/// verifies. Actors and subjects stay ids in the clear. Costs one statement
/// more than `record` plus the keyring's read (user creation and deletion call it).
#[allow(clippy::too_many_arguments)]
pub async fn record_personal(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    subject: Uuid,
    actor: &str,
    action: &str,
    target: Option<(&str, String)>,
    details: serde_json::Value,
    personal: &serde_json::Value,
) -> Result<(), StoreError> {
    let event = EventId::new_random();
    let row = event.to_string();
    let sealed = personal::seal(tx, keyring, subject, "audit_events", &row, personal).await?;
    append(tx, event, actor, action, target, &details, Some(&sealed)).await
}

/// The tenant's event, inserted unchained: the sealer (`seal`) links it after
/// this transaction commits.
const INSERT_SQL: &str = "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, \
    target_kind, target_id, details, created_at, sealed)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Writes one event (its personal details, if any, already sealed).
async fn append(
    tx: &TenantTx<'_>,
    event: EventId,
    actor: &str,
    action: &str,
    target: Option<(&str, String)>,
    details: &serde_json::Value,
    sealed: Option<&[u8]>,
) -> Result<(), StoreError> {
    let (kind, id) = target.map_or((None, None), |(k, i)| (Some(k), Some(i)));
    // Microseconds, as the database keeps them: the hash the sealer computes
    // from the stored row is the one verification recomputes.
    let at = chain::to_micros(Utc::now());
    tx.execute(
        INSERT_SQL,
        &[
            tx.tenant_id().as_uuid(),
            event.as_uuid(),
            &tx.home_region().as_str(),
            &actor,
            &action,
            &kind,
            &id,
            details,
            &at,
            &sealed,
        ],
    )
    .await?;
    Ok(())
}

/// A platform event, appended to the platform trail of the tenant's home region
/// when it is about a tenant, else of this node's region.
pub async fn record_platform(
    tx: &PlatformTx<'_>,
    actor: &str,
    action: &str,
    tenant: Option<TenantId>,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    append_platform(
        tx,
        EventId::new_random(),
        actor,
        action,
        tenant,
        &details,
        None,
    )
    .await
}

/// `record_platform` for an event about the tenant of `scoped` (a transaction
/// entered from `tx`) that must carry details naming the tenant or a person (a
/// tenant's name): they are sealed with that tenant's keyring, bound to
/// `platform_audit_events`, `sealed` and the event id, and the chain hashes the
/// ciphertext, so tenant erasure (which destroys those keys) leaves them
/// unreadable in the platform trail while it still verifies. When the tenant's
/// keys are already destroyed the details are left out and `details` gets
/// `"personal_withheld": true`.
#[allow(clippy::too_many_arguments)]
pub async fn record_platform_personal(
    tx: &PlatformTx<'_>,
    scoped: &TenantTx<'_>,
    keyring: &Keyring,
    actor: &str,
    action: &str,
    details: serde_json::Value,
    personal: &serde_json::Value,
) -> Result<(), StoreError> {
    let (tenant, event) = (scoped.tenant_id(), EventId::new_random());
    let row = event.to_string();
    let binding = Binding {
        tenant,
        table: "platform_audit_events",
        column: "sealed",
        row: &row,
    };
    let plaintext = serde_json::to_vec(personal).map_err(StoreError::internal)?;
    let sealed = match keyring.seal(scoped, tenant, &binding, &plaintext).await {
        Ok(sealed) => Some(sealed),
        // The tenant's keys are destroyed (crypto-shredded): the details are
        // written nowhere readable, and the event says they were withheld (the
        // change it records still happens).
        Err(KeyringError::Destroyed) => None,
        Err(other) => return Err(other.into()),
    };
    let mut details = details;
    if sealed.is_none()
        && let Some(object) = details.as_object_mut()
    {
        object.insert("personal_withheld".into(), serde_json::Value::Bool(true));
    }
    append_platform(
        tx,
        event,
        actor,
        action,
        Some(tenant),
        &details,
        sealed.as_deref(),
    )
    .await
}

async fn append_platform(
    tx: &PlatformTx<'_>,
    event: EventId,
    actor: &str,
    action: &str,
    tenant: Option<TenantId>,
    details: &serde_json::Value,
    sealed: Option<&[u8]>,
) -> Result<(), StoreError> {
    let tenant = tenant.map(|t| *t.as_uuid());
    let region = tx.region().map(|r| r.as_str().to_owned());
    if tenant.is_none() && region.is_none() {
        return Err(StoreError::internal(anyhow::anyhow!(
            "a platform event about no tenant needs the node's region (Database::in_region)"
        )));
    }
    let at = chain::to_micros(Utc::now());
    let canonical = chain::canonical(&chain::Content {
        id: *event.as_uuid(),
        created_at: at,
        actor,
        action,
        tenant,
        target_kind: None,
        target_id: None,
        details,
        sealed,
    });
    tx.query_one(
        tx.statements().platform_audit_append,
        &[
            event.as_uuid(),
            &actor,
            &action,
            &tenant,
            details,
            &at,
            &region,
            &canonical,
            &chain::GENESIS.as_slice(),
            &sealed,
        ],
    )
    .await?;
    Ok(())
}

/// A page of the tenant's trail, newest first (`list_tenant`).
/// The filters (`$5`–`$8`: action, actor, from, to) are each off when NULL;
/// the page index `(tenant_id, created_at DESC, id DESC)` bounds the time
/// range, and action and actor are checked on the rows it walks (a rare
/// action in a long trail costs a longer walk, within the page class's
/// statement timeout).
pub const TENANT_LIST_SQL: &str = "SELECT id, actor, action, tenant_id, target_kind, target_id, \
    details, created_at, seq, hash, sealed FROM audit_events
     WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
       AND ($5::text IS NULL OR action = $5) AND ($6::text IS NULL OR actor = $6)
       AND ($7::timestamptz IS NULL OR created_at >= $7)
       AND ($8::timestamptz IS NULL OR created_at < $8)
     ORDER BY created_at DESC, id DESC LIMIT $4";

/// What `GET /v1/audit` narrows a trail to; every field optional.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

pub async fn list_tenant(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    limit: u32,
    after: Option<Keyset>,
    filter: &ListFilter,
) -> Result<Page<AuditEvent>, StoreError> {
    let (at, id) = split(after);
    let rows = tx
        .query(
            TENANT_LIST_SQL,
            &[
                tx.tenant_id().as_uuid(),
                &at,
                &id,
                &(i64::from(limit) + 1),
                &filter.action,
                &filter.actor,
                &filter.from,
                &filter.to,
            ],
        )
        .await?;
    let mut page = keyset_page(rows.iter().map(event_from_row).collect(), limit, key);
    let sealed = sealed_of(&rows);
    open_personal(tx, keyring, "audit_events", &mut page.items, &sealed).await?;
    Ok(page)
}

/// Each listed row's ciphertext, by event id.
fn sealed_of(rows: &[tokio_postgres::Row]) -> HashMap<Uuid, Vec<u8>> {
    rows.iter()
        .filter_map(|row| {
            let sealed: Option<Vec<u8>> = row.get("sealed");
            sealed.map(|s| (row.get::<_, Uuid>("id"), s))
        })
        .collect()
}

/// Fills `personal` / `personal_erased` of the page's events of `tx`'s tenant
/// that carry sealed details (`personal::open_page`: each key read once).
async fn open_personal(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    table: &str,
    events: &mut [AuditEvent],
    sealed: &HashMap<Uuid, Vec<u8>>,
) -> Result<(), StoreError> {
    let tenant = tx.tenant_id();
    let mut positions = Vec::new();
    let mut fields: Vec<(String, &[u8])> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if event.tenant_id != Some(tenant) {
            continue;
        }
        if let Some(bytes) = sealed.get(event.id.as_uuid()) {
            positions.push(i);
            fields.push((event.id.to_string(), bytes.as_slice()));
        }
    }
    if fields.is_empty() {
        return Ok(());
    }
    let opened = personal::open_page(tx, keyring, table, &fields).await?;
    for (i, opened) in positions.into_iter().zip(opened) {
        let (value, erased) = match opened {
            personal::Opened::Personal(value) => (value, false),
            personal::Opened::Erased => (serde_json::Value::Null, true),
        };
        events[i].personal = Some(value);
        events[i].personal_erased = Some(erased);
    }
    Ok(())
}

pub async fn list_platform(
    tx: &PlatformTx<'_>,
    keyring: &Keyring,
    limit: u32,
    after: Option<Keyset>,
    filter: &ListFilter,
) -> Result<Page<AuditEvent>, StoreError> {
    let (at, id) = split(after);
    let rows = tx
        .query(
            "SELECT id, actor, action, tenant_id, NULL::text AS target_kind, NULL::text AS \
                target_id, details, created_at, seq, hash, sealed
             FROM platform_audit_events
             WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
               AND ($4::text IS NULL OR action = $4) AND ($5::text IS NULL OR actor = $5)
               AND ($6::timestamptz IS NULL OR created_at >= $6)
               AND ($7::timestamptz IS NULL OR created_at < $7)
             ORDER BY created_at DESC, id DESC LIMIT $3",
            &[
                &at,
                &id,
                &(i64::from(limit) + 1),
                &filter.action,
                &filter.actor,
                &filter.from,
                &filter.to,
            ],
        )
        .await?;
    let mut page = keyset_page(rows.iter().map(event_from_row).collect(), limit, key);
    let sealed = sealed_of(&rows);
    // Each tenant's sealed details open with its keyring, in the transaction
    // entered for that tenant (the page's tenants one after another).
    let mut tenants: Vec<TenantId> = page
        .items
        .iter()
        .filter(|e| sealed.contains_key(e.id.as_uuid()))
        .filter_map(|e| e.tenant_id)
        .collect();
    tenants.sort_unstable_by_key(|t| *t.as_uuid());
    tenants.dedup();
    for tenant in tenants {
        let home: Option<String> = tx
            .query_opt(
                "SELECT home_region FROM tenants WHERE id = $1",
                &[tenant.as_uuid()],
            )
            .await?
            .map(|row| row.get(0));
        let Some(home) = home else { continue };
        let home = RegionId::parse(&home).map_err(|e| StoreError::internal(anyhow::anyhow!(e)))?;
        let scoped = tx.enter_tenant(tenant, home).await?;
        open_personal(
            &scoped,
            keyring,
            "platform_audit_events",
            &mut page.items,
            &sealed,
        )
        .await?;
    }
    Ok(page)
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
        seq: row.get("seq"),
        hash: row
            .get::<_, Option<Vec<u8>>>("hash")
            .map(|h| chain::hex(&h)),
        personal: None,
        personal_erased: None,
    }
}
