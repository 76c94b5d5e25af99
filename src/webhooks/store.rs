//! Webhook endpoints and their delivery log, in the tenant's transaction. The
//! secret is write-only: it leaves only in the answer that creates or rotates it,
//! and is stored sealed with the tenant's DEK (`crypto::secrets`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::crypto::keyring::Keyring;
use crate::crypto::secrets;
use crate::db::TenantTx;
use crate::ids::{DeliveryId, WebhookId};
use crate::pagination::{Keyset, Page};
use crate::store::error::StoreError;
use crate::store::page::{keyset_page, keyset_sql};

const TABLE: &str = "webhook_endpoints";

/// How long a rotated-out secret still signs deliveries.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// `Debug` is written out below: it must never print `secret`.
#[derive(Serialize, ToSchema)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub description: String,
    /// Event types delivered; empty: all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row (reset by a success).
    pub failure_streak: i32,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `whsec_…`, only in the answer that creates or rotates it: store it then,
    /// it is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("description", &self.description)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("failure_streak", &self.failure_streak)
            .field(
                "previous_secret_expires_at",
                &self.previous_secret_expires_at,
            )
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            // The plaintext secret of a creation or rotation answer: redacted.
            .field(
                "secret",
                &self.secret.as_ref().map(|_| crate::secret::REDACTED),
            )
            .finish()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: uuid::Uuid,
    /// The tenant's event sequence number; deliveries go out in this order.
    pub seq: i64,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed` (gave up after the last attempt).
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The columns `from_row` reads, as a literal for `keyset_sql!`.
macro_rules! columns {
    () => {
        "id, url, description, event_types, enabled, disabled_reason, failure_streak, \
         previous_expires_at, created_at, updated_at"
    };
}
const COLUMNS: &str = columns!();
const LIST_SQL: &str = keyset_sql!(columns!(), "webhook_endpoints", "");
const DELIVERIES_SQL: &str = keyset_sql!(
    "id, event_id, seq, event_kind, state, attempts, next_attempt_at, last_status, \
     last_error, created_at, delivered_at",
    "webhook_deliveries",
    "AND endpoint_id = $5"
);

fn from_row(row: &Row) -> Webhook {
    Webhook {
        id: WebhookId::from_uuid(row.get("id")),
        url: row.get("url"),
        description: row.get("description"),
        event_types: row.get("event_types"),
        enabled: row.get("enabled"),
        disabled_reason: row.get("disabled_reason"),
        failure_streak: row.get("failure_streak"),
        previous_secret_expires_at: row.get("previous_expires_at"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        secret: None,
    }
}

pub(crate) fn not_found(id: WebhookId) -> StoreError {
    StoreError::not_found("webhook", *id.as_uuid())
}

pub async fn create(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    url: &str,
    description: &str,
    event_types: &[String],
    secret: &str,
) -> Result<Webhook, StoreError> {
    let sql = format!(
        "INSERT INTO webhook_endpoints (tenant_id, id, home_region, url, description, event_types, \
            secret_sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    let id = WebhookId::new_random();
    let sealed = secrets::seal(keyring, tx, TABLE, *id.as_uuid(), secret).await?;
    let row = tx
        .query_one(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &tx.home_region().as_str(),
                &url,
                &description,
                &event_types,
                &sealed,
            ],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn list(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<Webhook>, StoreError> {
    let read = |row: &Row| Ok(from_row(row));
    keyset_page(tx, LIST_SQL, &[], limit, after, read, |w| Keyset {
        at: w.created_at,
        id: *w.id.as_uuid(),
    })
    .await
}

pub async fn get(tx: &TenantTx<'_>, id: WebhookId) -> Result<Webhook, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2");
    tx.query_opt(&sql, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?
        .map(|row| from_row(&row))
        .ok_or_else(|| not_found(id))
}

#[derive(Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Re-enabling also clears the failure streak and the reason.
    pub enabled: Option<bool>,
    /// A new secret; the current one keeps signing for `ROTATION_OVERLAP_HOURS`.
    pub new_secret: Option<String>,
}

pub async fn update(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    id: WebhookId,
    changes: &WebhookChanges,
) -> Result<Webhook, StoreError> {
    let sql = format!(
        "UPDATE webhook_endpoints SET
             url = COALESCE($3, url), description = COALESCE($4, description),
             event_types = COALESCE($5, event_types),
             enabled = COALESCE($6, enabled),
             disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason ELSE NULL END,
             failure_streak = CASE WHEN $6 THEN 0 ELSE failure_streak END,
             previous_secret_sealed = CASE WHEN $7::bytea IS NULL THEN previous_secret_sealed
                                           ELSE secret_sealed END,
             previous_secret = CASE WHEN $7::bytea IS NULL THEN previous_secret ELSE secret END,
             previous_expires_at = CASE WHEN $7::bytea IS NULL THEN previous_expires_at
                                        ELSE now() + $8::bigint * interval '1 hour' END,
             secret_sealed = COALESCE($7, secret_sealed),
             secret = CASE WHEN $7::bytea IS NULL THEN secret END,
             updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    // Sealed for this row; the current secret moves to `previous_secret_sealed`
    // unopened (both carry the AAD column `secret`: `crypto::secrets`).
    let sealed = match &changes.new_secret {
        Some(secret) => Some(secrets::seal(keyring, tx, TABLE, *id.as_uuid(), secret).await?),
        None => None,
    };
    tx.query_opt(
        &sql,
        &[
            tx.tenant_id().as_uuid(),
            id.as_uuid(),
            &changes.url,
            &changes.description,
            &changes.event_types,
            &changes.enabled,
            &sealed,
            &ROTATION_OVERLAP_HOURS,
        ],
    )
    .await?
    .map(|row| from_row(&row))
    .ok_or_else(|| not_found(id))
}

/// Deletes the endpoint and its delivery log (FK cascade).
pub async fn delete(tx: &TenantTx<'_>, id: WebhookId) -> Result<(), StoreError> {
    let deleted = tx
        .execute(
            "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?;
    if deleted == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// The endpoint's delivery log, newest first.
pub async fn deliveries(
    tx: &TenantTx<'_>,
    id: WebhookId,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<Delivery>, StoreError> {
    get(tx, id).await?;
    let read = |row: &Row| {
        Ok(Delivery {
            id: DeliveryId::from_uuid(row.get("id")),
            event_id: row.get("event_id"),
            seq: row.get("seq"),
            event_type: row.get("event_kind"),
            state: row.get("state"),
            attempts: row.get("attempts"),
            next_attempt_at: row.get("next_attempt_at"),
            last_status: row.get("last_status"),
            last_error: row.get("last_error"),
            created_at: row.get("created_at"),
            delivered_at: row.get("delivered_at"),
        })
    };
    let key = |d: &Delivery| Keyset {
        at: d.created_at,
        id: *d.id.as_uuid(),
    };
    keyset_page(tx, DELIVERIES_SQL, &[id.as_uuid()], limit, after, read, key).await
}
