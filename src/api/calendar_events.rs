//! `/v1/calendar-events`: the caller's events from their linked calendars —
//! read from what the sync stored (recurring events expanded within the
//! window), written through to the CalDAV server (`calendar::write`). A change
//! or removal needs `If-Match` with the etag the client read (428 without);
//! when the server or the stored copy has moved on, the answer is 409
//! `calendar_edit_conflict` carrying `yours` and `theirs`. Recurring events
//! are changed as a whole series, or one occurrence at a time
//! (`?occurrence=`, `calendar::edit`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::IdPath;
use super::calendar_event_edits::{conflict, if_match, lost, shown, target, write_over};
use crate::calendar::edit::{self, check_event};
use crate::calendar::ical::{self, Changes, NewObject, Parsed};
use crate::calendar::store::{self};
use crate::calendar::write::{self, Outcome};
use crate::error::{ApiError, ErrorCode};
use crate::hooks::Hooks;
use crate::ids::{CalendarEventId, CalendarId};
use crate::scope::{Allow, Guarded, TenantScope, perm};

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: CalendarEventId,
    pub calendar_id: CalendarId,
    pub uid: String,
    pub summary: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The `TZID` the event was written in, if any (times here are UTC).
    pub time_zone: Option<String>,
    pub all_day: bool,
    pub attendees: Vec<String>,
    pub recurring: bool,
    /// The occurrence's original start, for an instance of a recurring event.
    pub recurrence_id: Option<DateTime<Utc>>,
    /// The object's ETag: send it as `If-Match` to change or remove it.
    pub etag: String,
}

pub(super) fn view(
    id: CalendarEventId,
    calendar_id: CalendarId,
    p: &Parsed,
    etag: &str,
) -> EventView {
    EventView {
        id,
        calendar_id,
        uid: p.uid.clone(),
        summary: p.summary.clone(),
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        time_zone: p.time_zone.clone(),
        all_day: p.all_day,
        attendees: p.attendees.clone(),
        recurring: p.recurring,
        recurrence_id: None,
        etag: etag.to_owned(),
    }
}

pub(super) fn unreadable(why: String) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored calendar object unreadable: {why}"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// Start of the window (RFC 3339).
    from: DateTime<Utc>,
    /// End of the window (RFC 3339), after `from`.
    to: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    items: Vec<EventView>,
}

/// Your events overlapping `[from, to)`, recurring ones expanded.
#[utoipa::path(tag = "calendar", params(Window), security(("bearer" = [])),
    responses((status = 200, body = EventList)))]
#[get("/calendar-events")]
pub async fn list(
    scope: Guarded<Allow<perm::UseCalendar>, TenantScope>,
    hooks: web::Data<Hooks>,
    query: web::Query<Window>,
) -> Result<web::Json<EventList>, ApiError> {
    let settings = &hooks.calendar.settings;
    let (from, to) = (query.from, query.to);
    if to <= from || (to - from).num_days() > settings.max_window_days {
        return Err(ApiError::validation(format!(
            "`to` must be after `from`, at most {} days later",
            settings.max_window_days
        )));
    }
    let max = settings.max_instances;
    let user = scope.user_id();
    let rows = scope
        .read(async |tx| Ok(store::window(tx, user, from, to, i64::from(max)).await?))
        .await?;
    let mut items = Vec::new();
    for row in rows {
        let parsed = ical::parse(&row.ics).map_err(unreadable)?;
        for instance in ical::expand(&row.ics, from, to, max).map_err(unreadable)? {
            let mut v = view(row.id, row.calendar_id, &parsed, &row.etag);
            v.starts_at = instance.starts_at;
            v.ends_at = instance.ends_at;
            v.summary = instance.summary;
            v.recurrence_id = instance.recurrence_id.filter(|_| parsed.recurring);
            items.push(v);
        }
    }
    items.sort_by_key(|v| v.starts_at);
    items.truncate(usize::from(max));
    Ok(web::Json(EventList { items }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    calendar_id: CalendarId,
    #[schema(max_length = 500)]
    summary: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    /// E-mail addresses.
    #[schema(max_items = 100)]
    attendees: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEvent {
    #[schema(max_length = 500)]
    summary: Option<String>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    #[schema(max_items = 100)]
    attendees: Option<Vec<String>>,
}

fn with_etag(status: actix_web::http::StatusCode, body: &EventView) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, body.etag.clone()))
        .json(body)
}

/// Create an event in one of your calendars (written to the server first).
#[utoipa::path(tag = "calendar", request_body = CreateEvent, security(("bearer" = [])),
    responses((status = 201, body = EventView)))]
#[post("/calendar-events")]
pub async fn create(
    scope: Guarded<Allow<perm::UseCalendar>, TenantScope>,
    hooks: web::Data<Hooks>,
    body: super::JsonBody<CreateEvent>,
) -> Result<HttpResponse, ApiError> {
    let attendees = body.attendees.clone().unwrap_or_default();
    check_event(&body.summary, body.starts_at, body.ends_at, &attendees)?;
    let cal = &hooks.calendar;
    let user = scope.user_id();
    let calendar_id = body.calendar_id;
    let (calendar, bridge, remote) = scope
        .read(async |tx| {
            let calendar = store::my_calendar(tx, user, calendar_id).await?;
            let (bridge, remote) = cal.remote_in(tx, calendar.account_id).await?;
            Ok((calendar, bridge, remote))
        })
        .await?;
    let uid = uuid::Uuid::now_v7().to_string();
    let ics = ical::build(&NewObject {
        uid: &uid,
        summary: &body.summary,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        attendees: &attendees,
    });
    let href = format!("{}/{uid}.ics", calendar.path.trim_end_matches('/'));
    let etag = match write::put(&bridge, &remote, &href, &ics, None).await? {
        Outcome::Written(etag) => etag,
        _ => {
            return Err(ApiError::Conflict {
                code: ErrorCode::Conflict,
                detail: "an object with this uid already exists on the server".into(),
            });
        }
    };
    let parsed = ical::parse(&ics).map_err(unreadable)?;
    let id = scope
        .write(async |tx| {
            Ok(store::upsert_event(tx, calendar_id, &href, &etag, &ics, &parsed).await?)
        })
        .await?;
    Ok(with_etag(
        actix_web::http::StatusCode::CREATED,
        &view(id, calendar_id, &parsed, &etag),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OccurrenceQuery {
    /// One instance of a recurring event: its original start (the
    /// `recurrence_id` the list answers). Without it: the whole event (for a
    /// recurring one, the whole series).
    occurrence: Option<DateTime<Utc>>,
}

/// Change an event: the whole event (for a recurring one, the whole series:
/// its rule and exceptions kept), or with `occurrence` one instance of a
/// series. Needs `If-Match` with the event's etag.
#[utoipa::path(tag = "calendar", request_body = PatchEvent,
    params(("id" = uuid::Uuid, Path, description = "Calendar event id"),
           ("If-Match" = String, Header, description = "The event's etag"), OccurrenceQuery),
    security(("bearer" = [])), responses((status = 200, body = EventView)))]
#[patch("/calendar-events/{id}")]
pub async fn patch(
    scope: Guarded<Allow<perm::UseCalendar>, TenantScope>,
    hooks: web::Data<Hooks>,
    req: HttpRequest,
    path: IdPath,
    query: web::Query<OccurrenceQuery>,
    body: super::JsonBody<PatchEvent>,
) -> Result<HttpResponse, ApiError> {
    let id = CalendarEventId::parse(&path)?;
    let target = target(&scope, &hooks, id).await?;
    let stored = &target.0;
    let expected = if_match(&req)?;
    let changes = Changes {
        summary: body.summary.as_deref(),
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        attendees: body.attendees.as_deref(),
    };
    let edited = edit::change(&stored.ics, &changes, query.occurrence)?;
    let mine = ical::parse(&edited.ics).map_err(unreadable)?;
    let yours = json!(shown(
        id,
        stored,
        &mine,
        edited.occurrence.as_ref(),
        &expected
    ));
    if expected != stored.etag {
        let old = ical::parse(&stored.ics).map_err(unreadable)?;
        return Err(conflict(yours, stored, Some((&old, &stored.etag))));
    }
    let (etag, parsed) = write_over(&scope, &target, &edited.ics, yours).await?;
    Ok(with_etag(
        actix_web::http::StatusCode::OK,
        &shown(id, stored, &parsed, edited.occurrence.as_ref(), &etag),
    ))
}

/// Remove an event from the server and here (for a recurring one, the whole
/// series), or with `occurrence` one instance of a series (an exception on
/// the server; the answer's `ETag` is the object's new one). Needs `If-Match`.
#[utoipa::path(tag = "calendar",
    params(("id" = uuid::Uuid, Path, description = "Calendar event id"),
           ("If-Match" = String, Header, description = "The event's etag"), OccurrenceQuery),
    security(("bearer" = [])), responses((status = 204)))]
#[delete("/calendar-events/{id}")]
pub async fn delete(
    scope: Guarded<Allow<perm::UseCalendar>, TenantScope>,
    hooks: web::Data<Hooks>,
    req: HttpRequest,
    path: IdPath,
    query: web::Query<OccurrenceQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = CalendarEventId::parse(&path)?;
    let target = target(&scope, &hooks, id).await?;
    let (stored, bridge, remote) = &target;
    let expected = if_match(&req)?;
    let fewer = match query.occurrence {
        Some(at) => Some(edit::remove_occurrence(&stored.ics, at)?),
        None => None,
    };
    let yours = Value::Null;
    if expected != stored.etag {
        let old = ical::parse(&stored.ics).map_err(unreadable)?;
        return Err(conflict(yours, stored, Some((&old, &stored.etag))));
    }
    if let Some(ics) = fewer {
        let (etag, _) = write_over(&scope, &target, &ics, yours).await?;
        return Ok(HttpResponse::NoContent()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    match write::delete(bridge, remote, &stored.href, &stored.etag).await? {
        Outcome::Conflict(current) => Err(lost(&scope, stored, yours, current).await),
        _ => {
            scope
                .write(async |tx| Ok(store::delete_event(tx, id).await?))
                .await?;
            Ok(HttpResponse::NoContent().finish())
        }
    }
}
