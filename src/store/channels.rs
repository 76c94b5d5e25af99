//! Channels of a tenant. Deleting a channel deletes its messages (FK cascade).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::error::{StoreError, Unique, taken};
use super::page::{keyset_page, keyset_sql};
use crate::db::TenantTx;
use crate::ids::{ChannelId, UserId};
use crate::limits::storage;
use crate::outbox::{self, Event};
use crate::pagination::{Keyset, Page};

#[derive(Debug, Serialize, ToSchema)]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub topic: String,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

/// The columns `from_row` reads, as a literal so that statements can be constants
/// (`concat!`), listed by `store::hot_statements`.
macro_rules! columns {
    () => {
        "id, name, topic, created_by, created_at"
    };
}
const COLUMNS: &str = columns!();

pub const LIST_SQL: &str = keyset_sql!(columns!(), "channels", "");
pub const GET_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM channels WHERE tenant_id = $1 AND id = $2"
);
pub const EXISTS_SQL: &str = "SELECT 1 FROM channels WHERE tenant_id = $1 AND id = $2";

fn from_row(row: &Row) -> Channel {
    Channel {
        id: ChannelId::from_uuid(row.get("id")),
        name: row.get("name"),
        topic: row.get("topic"),
        created_by: UserId::from_uuid(row.get("created_by")),
        created_at: row.get("created_at"),
    }
}

pub(crate) fn not_found(id: ChannelId) -> StoreError {
    StoreError::not_found("channel", *id.as_uuid())
}

pub async fn create(
    tx: &TenantTx<'_>,
    name: &str,
    topic: &str,
    created_by: UserId,
) -> Result<Channel, StoreError> {
    let sql = format!(
        "INSERT INTO channels (tenant_id, id, home_region, name, topic, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let id = ChannelId::new_random();
    let row = tx
        .query_one(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &tx.home_region().as_str(),
                &name,
                &topic,
                created_by.as_uuid(),
            ],
        )
        .await
        .map_err(taken(Unique::ChannelName, || {
            format!("a channel named `{name}` already exists")
        }))?;
    let channel = from_row(&row);
    outbox::record(
        tx,
        Event::new(
            "channel.created",
            ("channel", id.to_string()),
            json!({ "channel": &channel }),
        ),
    )
    .await?;
    Ok(channel)
}

pub async fn list(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<Channel>, StoreError> {
    let read = |row: &Row| Ok(from_row(row));
    keyset_page(tx, LIST_SQL, &[], limit, after, read, |c| Keyset {
        at: c.created_at,
        id: *c.id.as_uuid(),
    })
    .await
}

pub async fn get(tx: &TenantTx<'_>, id: ChannelId) -> Result<Channel, StoreError> {
    match tx
        .query_opt(GET_SQL, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?
    {
        Some(row) => Ok(from_row(&row)),
        None => Err(not_found(id)),
    }
}

/// 404 unless the channel exists in this tenant.
pub async fn ensure_exists(tx: &TenantTx<'_>, id: ChannelId) -> Result<(), StoreError> {
    let found = tx
        .query_opt(EXISTS_SQL, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?;
    found.map(|_| ()).ok_or_else(|| not_found(id))
}

/// Deletes the channel and its messages, giving their bytes back to the quota.
pub async fn delete(tx: &TenantTx<'_>, id: ChannelId) -> Result<(), StoreError> {
    let freed: i64 = tx
        .query_one(
            // A sealed body was charged its plaintext's bytes: the ciphertext's
            // length less the envelope's fixed overhead.
            "SELECT COALESCE(sum(COALESCE(octet_length(body_enc) - $3, octet_length(body))), \
                0)::bigint FROM messages WHERE tenant_id = $1 AND channel_id = $2",
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &crate::crypto::messages::SEALED_OVERHEAD,
            ],
        )
        .await?
        .get(0);
    let deleted = tx
        .execute(
            "DELETE FROM channels WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?;
    if deleted == 0 {
        return Err(not_found(id));
    }
    outbox::record(
        tx,
        Event::new(
            "channel.deleted",
            ("channel", id.to_string()),
            json!({ "channel_id": id }),
        ),
    )
    .await?;
    storage::refund_storage(tx, freed as u64).await
}
