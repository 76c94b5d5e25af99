//! The calendar tables (V23) in the tenant's transaction: accounts (their
//! credentials sealed with the tenant's DEK, `crypto::secrets`), the calendars
//! users link, and the synced events. The credentials are write-only: no
//! `Account` carries them; only `credentials` opens them, for the bridge.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::ical::Parsed;
use crate::crypto::keyring::Keyring;
use crate::crypto::secrets;
use crate::db::TenantTx;
use crate::ids::{CalendarAccountId, CalendarEventId, CalendarId, UserId};
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

pub async fn link(
    tx: &TenantTx<'_>,
    user: UserId,
    account_id: CalendarAccountId,
    path: &str,
    display_name: &str,
) -> Result<Calendar, StoreError> {
    get_account(tx, account_id).await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO calendar_links (tenant_id, id, home_region, account_id, user_id, path, \
                    display_name) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (tenant_id, account_id, user_id, path) \
                    DO UPDATE SET display_name = EXCLUDED.display_name \
                 RETURNING {LINK_COLUMNS}"
            ),
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
    Ok(calendar(&row))
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

/// Inserts or replaces the object at `href`; returns its id.
pub async fn upsert_event(
    tx: &TenantTx<'_>,
    calendar: CalendarId,
    href: &str,
    etag: &str,
    ics: &str,
    parsed: &Parsed,
) -> Result<CalendarEventId, StoreError> {
    let row = tx
        .query_one(
            "INSERT INTO calendar_events (tenant_id, id, home_region, calendar_id, href, uid, etag, \
                ics, summary, starts_at, ends_at, time_zone, all_day, attendees, recurring)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (tenant_id, calendar_id, href) DO UPDATE SET
                uid = EXCLUDED.uid, etag = EXCLUDED.etag, ics = EXCLUDED.ics,
                summary = EXCLUDED.summary, starts_at = EXCLUDED.starts_at,
                ends_at = EXCLUDED.ends_at, time_zone = EXCLUDED.time_zone,
                all_day = EXCLUDED.all_day, attendees = EXCLUDED.attendees,
                recurring = EXCLUDED.recurring, updated_at = now()
             RETURNING id",
            &[
                tx.tenant_id().as_uuid(),
                CalendarEventId::new_random().as_uuid(),
                &tx.home_region().as_str(),
                calendar.as_uuid(),
                &href,
                &parsed.uid,
                &etag,
                &ics,
                &parsed.summary,
                &parsed.starts_at,
                &parsed.ends_at,
                &parsed.time_zone,
                &parsed.all_day,
                &json!(parsed.attendees),
                &parsed.recurring,
            ],
        )
        .await?;
    Ok(CalendarEventId::from_uuid(row.get(0)))
}

pub async fn delete_href(
    tx: &TenantTx<'_>,
    calendar: CalendarId,
    href: &str,
) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            "DELETE FROM calendar_events WHERE tenant_id = $1 AND calendar_id = $2 AND href = $3",
            &[tx.tenant_id().as_uuid(), calendar.as_uuid(), &href],
        )
        .await?)
}

/// A stored object with its calendar's account and path.
pub struct StoredEvent {
    pub id: CalendarEventId,
    pub calendar_id: CalendarId,
    pub account_id: CalendarAccountId,
    pub href: String,
    pub etag: String,
    pub ics: String,
    pub recurring: bool,
    pub time_zone: Option<String>,
    pub all_day: bool,
    pub attendees: Vec<String>,
}

fn stored(row: &Row) -> StoredEvent {
    let attendees: serde_json::Value = row.get("attendees");
    StoredEvent {
        id: CalendarEventId::from_uuid(row.get("id")),
        calendar_id: CalendarId::from_uuid(row.get("calendar_id")),
        account_id: CalendarAccountId::from_uuid(row.get("account_id")),
        href: row.get("href"),
        etag: row.get("etag"),
        ics: row.get("ics"),
        recurring: row.get("recurring"),
        time_zone: row.get("time_zone"),
        all_day: row.get("all_day"),
        attendees: serde_json::from_value(attendees).unwrap_or_default(),
    }
}

const STORED: &str = "SELECT e.id, e.calendar_id, l.account_id, e.href, e.etag, e.ics, e.recurring, \
        e.time_zone, e.all_day, e.attendees \
     FROM calendar_events e JOIN calendar_links l \
       ON l.tenant_id = e.tenant_id AND l.id = e.calendar_id";

/// The user's objects that may have an instance in `[from, to)`: single
/// events overlapping it, recurring ones starting before its end. At most
/// `limit` rows.
pub async fn window(
    tx: &TenantTx<'_>,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "{STORED} WHERE e.tenant_id = $1 AND l.user_id = $2 AND e.starts_at < $4 \
                   AND (e.recurring OR e.ends_at > $3 OR e.starts_at >= $3) \
                 ORDER BY e.starts_at, e.id LIMIT $5"
            ),
            &[tx.tenant_id().as_uuid(), user.as_uuid(), &from, &to, &limit],
        )
        .await?;
    Ok(rows.iter().map(stored).collect())
}

pub fn event_not_found(id: CalendarEventId) -> StoreError {
    StoreError::not_found("calendar_event", *id.as_uuid())
}

/// One of the user's events (another user's, or another tenant's: not found).
pub async fn get_event(
    tx: &TenantTx<'_>,
    user: UserId,
    id: CalendarEventId,
) -> Result<StoredEvent, StoreError> {
    tx.query_opt(
        &format!("{STORED} WHERE e.tenant_id = $1 AND l.user_id = $2 AND e.id = $3"),
        &[tx.tenant_id().as_uuid(), user.as_uuid(), id.as_uuid()],
    )
    .await?
    .map(|row| stored(&row))
    .ok_or_else(|| event_not_found(id))
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

/// Replaces the stored object `id` only if its etag is still `expected` (a
/// sync that landed meanwhile wins; the next sync reconciles). Returns whether
/// it was replaced.
pub async fn replace_if(
    tx: &TenantTx<'_>,
    id: CalendarEventId,
    expected: &str,
    etag: &str,
    ics: &str,
    parsed: &Parsed,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE calendar_events SET etag = $4, ics = $5, summary = $6, starts_at = $7,
                 ends_at = $8, attendees = $9, time_zone = $10, all_day = $11, recurring = $12,
                 updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND etag = $3",
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &expected,
                &etag,
                &ics,
                &parsed.summary,
                &parsed.starts_at,
                &parsed.ends_at,
                &json!(parsed.attendees),
                &parsed.time_zone,
                &parsed.all_day,
                &parsed.recurring,
            ],
        )
        .await?;
    Ok(n > 0)
}

pub async fn delete_event(tx: &TenantTx<'_>, id: CalendarEventId) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM calendar_events WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), id.as_uuid()],
    )
    .await?;
    Ok(())
}
