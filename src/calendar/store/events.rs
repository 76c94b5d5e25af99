//! The synced calendar objects (`calendar_events`): written by the sync and
//! by write-through, read by the window query and for edits.

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::Row;

use crate::calendar::ical::Parsed;
use crate::db::TenantTx;
use crate::ids::{CalendarAccountId, CalendarEventId, CalendarId, UserId};
use crate::store::error::StoreError;

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
