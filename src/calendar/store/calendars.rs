//! The calendars users link (`calendar_links`), under a grant (`grants`), and
//! their sync positions (RFC 6578 token, ctag).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::db::TenantTx;
use crate::error::ErrorCode;
use crate::ids::{CalendarAccountId, CalendarId, UserId};
use crate::store::error::StoreError;

use super::accounts::get_account;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Calendar {
    pub id: CalendarId,
    pub account_id: CalendarAccountId,
    /// The collection's path on the account's server.
    pub path: String,
    pub display_name: String,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const LINK_COLUMNS: &str = "id, account_id, path, display_name, last_synced_at, created_at";

fn calendar(row: &Row) -> Calendar {
    Calendar {
        id: CalendarId::from_uuid(row.get("id")),
        account_id: CalendarAccountId::from_uuid(row.get("account_id")),
        path: row.get("path"),
        display_name: row.get("display_name"),
        last_synced_at: row.get("last_synced_at"),
        created_at: row.get("created_at"),
    }
}

/// Links a collection for `$5`, only under a grant of that account and exact
/// path to `$5` or to everyone: the INSERT's own SELECT reads the grant, in the
/// statement that writes (no check-then-act). A concurrent revoke ends as if
/// it came first (no row is inserted) or after (its own transaction deletes
/// this link, `grants::revoke_grant`): the transactions are serializable, and
/// the one that would break both orders fails and is retried. Re-linking only
/// renames. `$1` tenant, `$2` new id, `$3` home
/// region, `$4` account, `$5` user, `$6` canonical path, `$7` display name.
pub const LINK_SQL: &str = "INSERT INTO calendar_links (tenant_id, id, home_region, account_id, \
        user_id, path, display_name) \
     SELECT $1, $2, $3, $4, $5, $6, $7 \
      WHERE EXISTS (SELECT 1 FROM calendar_grants g \
          WHERE g.tenant_id = $1 AND g.account_id = $4 AND g.path = $6 \
            AND (g.user_id = $5 OR g.user_id IS NULL)) \
     ON CONFLICT (tenant_id, account_id, user_id, path) \
        DO UPDATE SET display_name = EXCLUDED.display_name \
     RETURNING id, account_id, path, display_name, last_synced_at, created_at";

/// Links `path` (canonical, `calendar::path`) of `account_id` for `user`:
/// `calendar_not_granted` unless a grant gives it to them or to everyone.
pub async fn link(
    tx: &TenantTx<'_>,
    user: UserId,
    account_id: CalendarAccountId,
    path: &str,
    display_name: &str,
) -> Result<Calendar, StoreError> {
    get_account(tx, account_id).await?;
    let row = tx
        .query_opt(
            LINK_SQL,
            &[
                tx.tenant_id().as_uuid(),
                CalendarId::new_random().as_uuid(),
                &tx.home_region().as_str(),
                account_id.as_uuid(),
                user.as_uuid(),
                &path,
                &display_name,
            ],
        )
        .await?;
    row.map(|row| calendar(&row))
        .ok_or_else(|| StoreError::Conflict {
            code: ErrorCode::CalendarNotGranted,
            detail: "this collection is not granted to you or to everyone: a tenant admin decides \
                     which collections you may link"
                .into(),
        })
}

pub async fn my_calendars(tx: &TenantTx<'_>, user: UserId) -> Result<Vec<Calendar>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {LINK_COLUMNS} FROM calendar_links WHERE tenant_id = $1 AND user_id = $2 \
                 ORDER BY created_at, id"
            ),
            &[tx.tenant_id().as_uuid(), user.as_uuid()],
        )
        .await?;
    Ok(rows.iter().map(calendar).collect())
}

/// A linked calendar's sync position.
pub struct Position {
    pub id: CalendarId,
    pub path: String,
    pub sync_token: Option<String>,
    pub ctag: Option<String>,
}

pub async fn positions(
    tx: &TenantTx<'_>,
    account: CalendarAccountId,
) -> Result<Vec<Position>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, path, sync_token, ctag FROM calendar_links \
             WHERE tenant_id = $1 AND account_id = $2 ORDER BY id",
            &[tx.tenant_id().as_uuid(), account.as_uuid()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Position {
            id: CalendarId::from_uuid(r.get("id")),
            path: r.get("path"),
            sync_token: r.get("sync_token"),
            ctag: r.get("ctag"),
        })
        .collect())
}

pub async fn set_position(
    tx: &TenantTx<'_>,
    id: CalendarId,
    sync_token: Option<&str>,
    ctag: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE calendar_links SET sync_token = $3, ctag = $4, last_synced_at = now() \
         WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), id.as_uuid(), &sync_token, &ctag],
    )
    .await?;
    Ok(())
}

/// `href → etag` of a calendar's stored objects.
pub async fn etags(
    tx: &TenantTx<'_>,
    calendar: CalendarId,
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let rows = tx
        .query(
            "SELECT href, etag FROM calendar_events WHERE tenant_id = $1 AND calendar_id = $2",
            &[tx.tenant_id().as_uuid(), calendar.as_uuid()],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The user's linked calendar with its account, for a write.
pub async fn my_calendar(
    tx: &TenantTx<'_>,
    user: UserId,
    id: CalendarId,
) -> Result<Calendar, StoreError> {
    tx.query_opt(
        &format!(
            "SELECT {LINK_COLUMNS} FROM calendar_links WHERE tenant_id = $1 AND user_id = $2 AND id = $3"
        ),
        &[tx.tenant_id().as_uuid(), user.as_uuid(), id.as_uuid()],
    )
    .await?
    .map(|row| calendar(&row))
    .ok_or_else(|| StoreError::not_found("calendar", *id.as_uuid()))
}
