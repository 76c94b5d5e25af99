//! What a change or removal of an event writes to the server, computed from
//! the stored object: the whole object (a single event, or a recurring
//! series: its master VEVENT, RRULE and exceptions kept), or — with
//! `occurrence`, the original start of one instance of a series — that
//! instance alone (an override component for a change, an EXDATE for a
//! removal). Edits keep the server's other properties (see `ical::write`).

use chrono::{DateTime, Utc};

use super::ical::{self, Changes, NewObject};
use crate::error::ApiError;

/// The checks every written event passes (create and change alike).
pub fn check_event(
    summary: &str,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
    attendees: &[String],
) -> Result<(), ApiError> {
    crate::validate::no_control_chars("summary", summary)?;
    if summary.chars().count() > 500 {
        return Err(ApiError::validation(
            "`summary` must be at most 500 characters",
        ));
    }
    if ends < starts {
        return Err(ApiError::validation(
            "`ends_at` must not be before `starts_at`",
        ));
    }
    if attendees.len() > 100
        || attendees.iter().any(|a| {
            a.len() > 254
                || !a.contains('@')
                || a.chars().any(|c| {
                    c.is_control() || c.is_whitespace() || c == ':' || c == ';' || c == ','
                })
        })
    {
        return Err(ApiError::validation(
            "`attendees` must be at most 100 e-mail addresses",
        ));
    }
    Ok(())
}

/// An instance as changed by an occurrence edit (what the caller is shown).
#[derive(Clone, Debug)]
pub struct Shown {
    pub recurrence_id: DateTime<Utc>,
    pub summary: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub attendees: Vec<String>,
}

/// The object to write, and the instance changed if it was one.
pub struct Edited {
    pub ics: String,
    pub occurrence: Option<Shown>,
}

fn unreadable(why: String) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored calendar object unreadable: {why}"))
}

/// The instance of the stored recurring object at `occurrence`.
fn instance(
    ics: &str,
    master: &ical::Parsed,
    occurrence: DateTime<Utc>,
) -> Result<ical::Instance, ApiError> {
    if !master.recurring {
        return Err(ApiError::validation(
            "`occurrence` names an instance of a recurring event; this event does not recur",
        ));
    }
    ical::occurrence(ics, occurrence)
        .map_err(unreadable)?
        .ok_or(ApiError::NotFound {
            kind: "calendar_event_occurrence",
            id: None,
        })
}

/// The stored object `ics` changed by `changes` (the whole object, or the
/// instance originally at `occurrence`).
pub fn change(
    ics: &str,
    changes: &Changes<'_>,
    occurrence: Option<DateTime<Utc>>,
) -> Result<Edited, ApiError> {
    let master = ical::parse(ics).map_err(unreadable)?;
    let Some(at) = occurrence else {
        check_event(
            changes.summary.unwrap_or(&master.summary),
            changes.starts_at.unwrap_or(master.starts_at),
            changes.ends_at.unwrap_or(master.ends_at),
            changes.attendees.unwrap_or(&master.attendees),
        )?;
        let ics = ical::edit_series(ics, changes).map_err(unreadable)?;
        return Ok(Edited {
            ics,
            occurrence: None,
        });
    };
    let now = instance(ics, &master, at)?;
    let shown = Shown {
        recurrence_id: at,
        summary: changes.summary.unwrap_or(&now.summary).to_owned(),
        starts_at: changes.starts_at.unwrap_or(now.starts_at),
        ends_at: changes.ends_at.unwrap_or(now.ends_at),
        attendees: changes.attendees.unwrap_or(&master.attendees).to_vec(),
    };
    check_event(
        &shown.summary,
        shown.starts_at,
        shown.ends_at,
        &shown.attendees,
    )?;
    let ics = ical::override_occurrence(
        ics,
        at,
        &NewObject {
            uid: &master.uid,
            summary: &shown.summary,
            starts_at: shown.starts_at,
            ends_at: shown.ends_at,
            attendees: &shown.attendees,
        },
    )
    .map_err(unreadable)?;
    Ok(Edited {
        ics,
        occurrence: Some(shown),
    })
}

/// The stored recurring object `ics` without its instance at `occurrence`.
pub fn remove_occurrence(ics: &str, occurrence: DateTime<Utc>) -> Result<String, ApiError> {
    let master = ical::parse(ics).map_err(unreadable)?;
    instance(ics, &master, occurrence)?;
    ical::exclude(ics, occurrence).map_err(unreadable)
}
