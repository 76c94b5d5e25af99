//! The shared steps of changing and removing a calendar event
//! (`calendar_events::patch` / `delete`): the `If-Match` the client must
//! send, the stored event and its server, writing over the stored version
//! with its etag, and the 409 with both versions after a lost race.

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header;
use serde_json::{Value, json};

use super::calendar_events::{EventView, unreadable, view};
use crate::calendar::bridge::{Bridge, Remote};
use crate::calendar::edit;
use crate::calendar::ical::{self, Parsed};
use crate::calendar::store::{self, StoredEvent};
use crate::calendar::write::{self, Outcome};
use crate::error::{ApiError, ErrorCode};
use crate::hooks::Hooks;
use crate::ids::CalendarEventId;
use crate::scope::TenantScope;

pub(super) fn if_match(req: &HttpRequest) -> Result<String, ApiError> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::Conflict {
            code: ErrorCode::PreconditionRequired,
            detail: "send `If-Match` with the event's etag".into(),
        })
}

pub(super) fn conflict(
    yours: Value,
    stored: &StoredEvent,
    theirs: Option<(&Parsed, &str)>,
) -> ApiError {
    let theirs = match theirs {
        Some((parsed, etag)) => json!(view(stored.id, stored.calendar_id, parsed, etag)),
        None => Value::Null,
    };
    ApiError::EditConflict {
        yours: Box::new(yours),
        theirs: Box::new(theirs),
    }
}

/// Stores the server's version after a lost race (or removes the copy when the
/// server has none), then answers the conflict.
pub(super) async fn lost(
    scope: &TenantScope,
    stored: &StoredEvent,
    yours: Value,
    current: Option<write::Current>,
) -> ApiError {
    let current = current.and_then(|c| ical::parse(&c.ics).ok().map(|p| (c, p)));
    let saved = scope
        .write(async |tx| {
            match &current {
                Some((c, p)) => {
                    store::upsert_event(tx, stored.calendar_id, &stored.href, &c.etag, &c.ics, p)
                        .await?;
                }
                None => store::delete_event(tx, stored.id).await?,
            }
            Ok(())
        })
        .await;
    if let Err(err) = saved {
        return err;
    }
    conflict(
        yours,
        stored,
        current.as_ref().map(|(c, p)| (p, c.etag.as_str())),
    )
}

/// The stored event with the server it lives on, for a change or removal.
pub(super) async fn target(
    scope: &TenantScope,
    hooks: &Hooks,
    id: CalendarEventId,
) -> Result<(StoredEvent, Arc<Bridge>, Arc<Remote>), ApiError> {
    let cal = &hooks.calendar;
    let user = scope.user_id();
    scope
        .read(async |tx| {
            let stored = store::get_event(tx, user, id).await?;
            let (bridge, remote) = cal.remote_in(tx, stored.account_id).await?;
            Ok((stored, bridge, remote))
        })
        .await
}

/// What the caller sees of `ics` after an edit: the object, or the instance.
pub(super) fn shown(
    id: CalendarEventId,
    stored: &StoredEvent,
    parsed: &Parsed,
    occurrence: Option<&edit::Shown>,
    etag: &str,
) -> EventView {
    let mut v = view(id, stored.calendar_id, parsed, etag);
    if let Some(o) = occurrence {
        v.summary = o.summary.clone();
        v.starts_at = o.starts_at;
        v.ends_at = o.ends_at;
        v.attendees = o.attendees.clone();
        v.recurrence_id = Some(o.recurrence_id);
    }
    v
}

/// Writes `ics` over the stored version (`If-Match` its etag) and stores it;
/// a lost race answers 409 with both versions.
pub(super) async fn write_over(
    scope: &TenantScope,
    (stored, bridge, remote): &(StoredEvent, Arc<Bridge>, Arc<Remote>),
    ics: &str,
    yours: Value,
) -> Result<(String, Parsed), ApiError> {
    let parsed = ical::parse(ics).map_err(unreadable)?;
    match write::put(bridge, remote, &stored.href, ics, Some(&stored.etag)).await? {
        Outcome::Written(etag) => {
            scope
                .write(async |tx| {
                    Ok(store::replace_if(tx, stored.id, &stored.etag, &etag, ics, &parsed).await?)
                })
                .await?;
            Ok((etag, parsed))
        }
        Outcome::Conflict(current) => Err(lost(scope, stored, yours, current).await),
        Outcome::Removed => Err(ApiError::internal(anyhow::anyhow!("a PUT removed nothing"))),
    }
}
