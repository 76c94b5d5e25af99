//! iCalendar (RFC 5545) in and out, with the `icalendar` crate: the master
//! event of a calendar object (what the window query indexes), its expansion
//! into instances within a window (RRULE/RDATE/EXDATE through `rrule`, and
//! overridden instances — `RECURRENCE-ID` components — put in place of the ones
//! they replace: `expand`), and the objects Meridian writes or edits (`write`).
//!
//! Times are stored in UTC with the event's `TZID` kept for display. A
//! floating time (no zone) is read as UTC: the server and the client that wrote
//! it are the only ones who know what it meant.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use icalendar::{CalendarDateTime, Component, DatePerhapsTime, Event};

mod expand;
mod lines;
mod write;

pub use expand::{Instance, expand, occurrence};
pub use write::{
    Changes, NewObject, build, edit_series, exclude, override_occurrence, series_span,
};

/// The master event of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub uid: String,
    pub summary: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub time_zone: Option<String>,
    pub all_day: bool,
    /// `mailto:` addresses (the scheme stripped).
    pub attendees: Vec<String>,
    pub recurring: bool,
}

pub(super) fn utc(value: &DatePerhapsTime) -> Option<(DateTime<Utc>, Option<String>, bool)> {
    match value {
        DatePerhapsTime::Date(date) => Some((midnight(*date), None, true)),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(at)) => Some((*at, None, false)),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(naive)) => {
            Some((Utc.from_utc_datetime(naive), None, false))
        }
        DatePerhapsTime::DateTime(with @ CalendarDateTime::WithTimezone { tzid, .. }) => {
            Some((with.try_into_utc()?, Some(tzid.clone()), false))
        }
    }
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

pub(super) fn events(ics: &str) -> Result<Vec<Event>, String> {
    let calendar: icalendar::Calendar = ics.parse().map_err(|e| format!("not iCalendar: {e}"))?;
    Ok(calendar.events().cloned().collect())
}

/// Start, end (UTC), the start's `TZID`, whether it is a whole-day event.
pub(super) type Span = (DateTime<Utc>, DateTime<Utc>, Option<String>, bool);

pub(super) fn span(event: &Event) -> Result<Span, String> {
    let start = event.get_start().ok_or("the event has no DTSTART")?;
    let (starts_at, zone, all_day) = utc(&start).ok_or("the event's DTSTART cannot be read")?;
    let ends_at = match event.get_end().as_ref().and_then(utc) {
        Some((end, _, _)) if end >= starts_at => end,
        _ if all_day => starts_at + Duration::days(1),
        _ => starts_at,
    };
    Ok((starts_at, ends_at, zone, all_day))
}

pub(super) fn master(events: &[Event]) -> Result<&Event, String> {
    events
        .iter()
        .find(|e| e.get_recurrence_id().is_none())
        .or_else(|| events.first())
        .ok_or_else(|| "the object holds no VEVENT".to_owned())
}

/// The master event of `ics`.
pub fn parse(ics: &str) -> Result<Parsed, String> {
    let events = events(ics)?;
    let event = master(&events)?;
    let (starts_at, ends_at, time_zone, all_day) = span(event)?;
    let attendees = event
        .multi_properties()
        .get("ATTENDEE")
        .map(|list| {
            list.iter()
                .map(|p| {
                    let value = p.value();
                    value
                        .strip_prefix("mailto:")
                        .or_else(|| value.strip_prefix("MAILTO:"))
                        .unwrap_or(value)
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Parsed {
        uid: event.get_uid().ok_or("the event has no UID")?.to_owned(),
        summary: event.get_summary().unwrap_or_default().to_owned(),
        starts_at,
        ends_at,
        time_zone,
        all_day,
        attendees,
        recurring: event.property_value("RRULE").is_some()
            || event.multi_properties().contains_key("RDATE"),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    pub(crate) const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:w1\r\n\
        DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20261102T100000\r\n\
        DTEND;TZID=Europe/Berlin:20261102T103000\r\nSUMMARY:Weekly\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\n\
        EXDATE;TZID=Europe/Berlin:20261109T100000\r\nATTENDEE;CN=Bob:mailto:bob@x.example\r\nEND:VEVENT\r\n\
        BEGIN:VEVENT\r\nUID:w1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261116T100000\r\n\
        DTSTART;TZID=Europe/Berlin:20261116T150000\r\nDTEND;TZID=Europe/Berlin:20261116T160000\r\n\
        SUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn reads_the_master_event_with_its_zone_and_attendees() {
        let parsed = parse(WEEKLY).unwrap();
        assert_eq!(parsed.uid, "w1");
        assert_eq!(parsed.starts_at, at("2026-11-02T09:00:00Z"));
        assert_eq!(parsed.ends_at, at("2026-11-02T09:30:00Z"));
        assert_eq!(parsed.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(parsed.attendees, vec!["bob@x.example".to_owned()]);
        assert!(parsed.recurring);
    }
}
