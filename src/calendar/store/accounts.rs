//! Calendar accounts: created with their credentials sealed with the tenant's
//! DEK, listed without them, opened only for the bridge; sync and check state.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::crypto::keyring::Keyring;
use crate::crypto::secrets;
use crate::db::TenantTx;
use crate::ids::CalendarAccountId;
use crate::pagination::{Keyset, Page};
use crate::secret::Secret;
use crate::store::error::StoreError;
use crate::store::page::{keyset_page, keyset_sql};

pub const ACCOUNTS: &str = "calendar_accounts";

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Account {
    pub id: CalendarAccountId,
    /// The CalDAV server's base URL.
    pub base_url: String,
    pub username: String,
    /// `password` (HTTP Basic) or `token` (Bearer); the value is never shown.
    pub auth_kind: String,
    /// `pending` (never synced), `ok`, `failing` or `unauthorized`.
    pub status: String,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Failed syncs in a row; the next scheduled sync waits `2^streak` base
    /// intervals (capped).
    pub failure_streak: i32,
    pub next_sync_at: DateTime<Utc>,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_check_ok: Option<bool>,
    pub created_at: DateTime<Utc>,
}

macro_rules! account_columns {
    () => {
        "id, base_url, username, auth_kind, status, last_sync_at, last_success_at, last_error, \
         failure_streak, next_sync_at, last_check_at, last_check_ok, created_at"
    };
}
const ACCOUNT_COLUMNS: &str = account_columns!();
const ACCOUNTS_PAGE: &str = keyset_sql!(account_columns!(), "calendar_accounts", "");

fn account(row: &Row) -> Account {
    Account {
        id: CalendarAccountId::from_uuid(row.get("id")),
        base_url: row.get("base_url"),
        username: row.get("username"),
        auth_kind: row.get("auth_kind"),
        status: row.get("status"),
        last_sync_at: row.get("last_sync_at"),
        last_success_at: row.get("last_success_at"),
        last_error: row.get("last_error"),
        failure_streak: row.get("failure_streak"),
        next_sync_at: row.get("next_sync_at"),
        last_check_at: row.get("last_check_at"),
        last_check_ok: row.get("last_check_ok"),
        created_at: row.get("created_at"),
    }
}

pub fn account_not_found(id: CalendarAccountId) -> StoreError {
    StoreError::not_found("calendar_account", *id.as_uuid())
}

pub struct NewAccount<'a> {
    pub base_url: &'a str,
    pub username: &'a str,
    pub auth_kind: &'a str,
    pub secret: &'a Secret,
}

pub async fn create_account(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    new: &NewAccount<'_>,
) -> Result<Account, StoreError> {
    let id = CalendarAccountId::new_random();
    let sealed = secrets::seal(keyring, tx, ACCOUNTS, *id.as_uuid(), new.secret.expose()).await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO calendar_accounts (tenant_id, id, home_region, base_url, username, \
                    auth_kind, secret_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 RETURNING {ACCOUNT_COLUMNS}"
            ),
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &tx.home_region().as_str(),
                &new.base_url,
                &new.username,
                &new.auth_kind,
                &sealed,
            ],
        )
        .await?;
    Ok(account(&row))
}

pub async fn accounts_page(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<Account>, StoreError> {
    let read = |row: &Row| Ok(account(row));
    keyset_page(tx, ACCOUNTS_PAGE, &[], limit, after, read, |a| Keyset {
        at: a.created_at,
        id: *a.id.as_uuid(),
    })
    .await
}

pub async fn get_account(tx: &TenantTx<'_>, id: CalendarAccountId) -> Result<Account, StoreError> {
    tx.query_opt(
        &format!(
            "SELECT {ACCOUNT_COLUMNS} FROM calendar_accounts WHERE tenant_id = $1 AND id = $2"
        ),
        &[tx.tenant_id().as_uuid(), id.as_uuid()],
    )
    .await?
    .map(|row| account(&row))
    .ok_or_else(|| account_not_found(id))
}

/// Every account of the tenant (the sync job and the health check).
pub async fn all_accounts(tx: &TenantTx<'_>) -> Result<Vec<Account>, StoreError> {
    let rows = tx
        .query(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM calendar_accounts WHERE tenant_id = $1"),
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    Ok(rows.iter().map(account).collect())
}

/// Deletes the account, its linked calendars and their events (FK cascade).
pub async fn delete_account(tx: &TenantTx<'_>, id: CalendarAccountId) -> Result<(), StoreError> {
    let deleted = tx
        .execute(
            "DELETE FROM calendar_accounts WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?;
    if deleted == 0 {
        return Err(account_not_found(id));
    }
    Ok(())
}

/// What the bridge needs to talk to the account's server.
pub struct Credentials {
    pub base_url: String,
    pub username: String,
    pub auth_kind: String,
    pub secret: Secret,
}

pub async fn credentials(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    id: CalendarAccountId,
) -> Result<Credentials, StoreError> {
    let row = tx
        .query_opt(
            "SELECT base_url, username, auth_kind, secret_sealed FROM calendar_accounts \
             WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?
        .ok_or_else(|| account_not_found(id))?;
    let secret = secrets::open(
        keyring,
        tx,
        ACCOUNTS,
        *id.as_uuid(),
        Some(row.get("secret_sealed")),
        None,
    )
    .await?
    .ok_or_else(|| StoreError::internal(anyhow::anyhow!("calendar account without a secret")))?;
    Ok(Credentials {
        base_url: row.get("base_url"),
        username: row.get("username"),
        auth_kind: row.get("auth_kind"),
        secret,
    })
}

/// How a sync of an account ended, for its status.
pub enum SyncResult<'a> {
    Ok,
    Unauthorized(&'a str),
    Failed(&'a str),
}

/// Records a sync's outcome. A failure grows the streak and pushes the next
/// scheduled sync out by `base · 2^(streak-1)` seconds, at most `max`.
pub async fn record_sync(
    tx: &TenantTx<'_>,
    id: CalendarAccountId,
    result: &SyncResult<'_>,
    base_secs: i64,
    max_secs: i64,
) -> Result<(), StoreError> {
    let (status, error) = match result {
        SyncResult::Ok => ("ok", None),
        SyncResult::Unauthorized(why) => ("unauthorized", Some(*why)),
        SyncResult::Failed(why) => ("failing", Some(*why)),
    };
    tx.execute(
        "UPDATE calendar_accounts SET
             status = $3, last_sync_at = now(), last_error = $4,
             last_success_at = CASE WHEN $3 = 'ok' THEN now() ELSE last_success_at END,
             failure_streak = CASE WHEN $3 = 'ok' THEN 0 ELSE failure_streak + 1 END,
             next_sync_at = CASE WHEN $3 = 'ok' THEN now()
                 ELSE now() + least($6::bigint, $5::bigint * power(2, least(failure_streak, 30))::bigint)
                      * interval '1 second' END,
             updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
        &[
            tx.tenant_id().as_uuid(),
            id.as_uuid(),
            &status,
            &error,
            &base_secs,
            &max_secs,
        ],
    )
    .await?;
    Ok(())
}

/// Records an active health check of the account.
pub async fn record_check(
    tx: &TenantTx<'_>,
    id: CalendarAccountId,
    ok: bool,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE calendar_accounts SET last_check_at = now(), last_check_ok = $3
         WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), id.as_uuid(), &ok],
    )
    .await?;
    Ok(())
}
