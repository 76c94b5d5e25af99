//! iCalendar (RFC 5545) in and out, with the `icalendar` crate: the master
//! event of a calendar object (what the window query indexes), its expansion
//! into instances within a window (RRULE/RDATE/EXDATE through `rrule`, and
//! overridden instances — `RECURRENCE-ID` components — put in place of the ones
//! they replace), and the objects Meridian writes.
//!
//! Times are stored in UTC with the event's `TZID` kept for display. A
//! floating time (no zone) is read as UTC: the server and the client that wrote
//! it are the only ones who know what it meant.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use icalendar::{CalendarDateTime, Component, DatePerhapsTime, Event, EventLike};

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

/// One occurrence within a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub summary: String,
    /// The occurrence's original start, for instances of a recurring event.
    pub recurrence_id: Option<DateTime<Utc>>,
}

fn utc(value: &DatePerhapsTime) -> Option<(DateTime<Utc>, Option<String>, bool)> {
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

fn events(ics: &str) -> Result<Vec<Event>, String> {
    let calendar: icalendar::Calendar = ics.parse().map_err(|e| format!("not iCalendar: {e}"))?;
    Ok(calendar.events().cloned().collect())
}

/// Start, end (UTC), the start's `TZID`, whether it is a whole-day event.
type Span = (DateTime<Utc>, DateTime<Utc>, Option<String>, bool);

fn span(event: &Event) -> Result<Span, String> {
    let start = event.get_start().ok_or("the event has no DTSTART")?;
    let (starts_at, zone, all_day) = utc(&start).ok_or("the event's DTSTART cannot be read")?;
    let ends_at = match event.get_end().as_ref().and_then(utc) {
        Some((end, _, _)) if end >= starts_at => end,
        _ if all_day => starts_at + Duration::days(1),
        _ => starts_at,
    };
    Ok((starts_at, ends_at, zone, all_day))
}

fn master(events: &[Event]) -> Result<&Event, String> {
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

/// The instances of `ics` that overlap `[from, to)`, at most `max`.
pub fn expand(
    ics: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: u16,
) -> Result<Vec<Instance>, String> {
    let events = events(ics)?;
    let master = master(&events)?;
    let (starts_at, ends_at, _, _) = span(master)?;
    let summary = master.get_summary().unwrap_or_default().to_owned();
    let mut overrides = HashMap::new();
    for event in events.iter().filter(|e| e.get_recurrence_id().is_some()) {
        if let Some((id, _, _)) = event.get_recurrence_id().as_ref().and_then(utc) {
            overrides.insert(id, event);
        }
    }
    let overlaps = |start: DateTime<Utc>, end: DateTime<Utc>| {
        start < to && (end > from || (end == start && start >= from))
    };
    let recurring =
        master.property_value("RRULE").is_some() || master.multi_properties().contains_key("RDATE");
    let mut out = Vec::new();
    if !recurring {
        if overlaps(starts_at, ends_at) {
            out.push(Instance {
                starts_at,
                ends_at,
                summary,
                recurrence_id: None,
            });
        }
        return Ok(out);
    }
    let length = ends_at - starts_at;
    let tz = icalendar::rrule::Tz::UTC;
    let set = master
        .get_recurrence()
        .map_err(|e| format!("unreadable recurrence: {e}"))?
        .after((from - length).with_timezone(&tz))
        .before(to.with_timezone(&tz));
    for occurrence in set.all(max).dates {
        let start = occurrence.with_timezone(&Utc);
        if overrides.contains_key(&start) {
            continue;
        }
        if overlaps(start, start + length) {
            out.push(Instance {
                starts_at: start,
                ends_at: start + length,
                summary: summary.clone(),
                recurrence_id: Some(start),
            });
        }
    }
    for (id, event) in overrides {
        let (start, end, _, _) = span(event)?;
        if overlaps(start, end) {
            out.push(Instance {
                starts_at: start,
                ends_at: end,
                summary: event.get_summary().unwrap_or(&summary).to_owned(),
                recurrence_id: Some(id),
            });
        }
    }
    out.sort_by_key(|i| i.starts_at);
    out.truncate(usize::from(max));
    Ok(out)
}

/// An event as Meridian writes it.
pub struct NewObject<'a> {
    pub uid: &'a str,
    pub summary: &'a str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub attendees: &'a [String],
}

fn text_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
}

/// Folds a content line at 75 octets (RFC 5545 §3.1), on character boundaries.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The VCALENDAR text of `object`.
pub fn build(object: &NewObject<'_>) -> String {
    let mut out = String::new();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Meridian//Calendar//EN".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", text_value(object.uid)),
        format!("DTSTAMP:{}", stamp(Utc::now())),
        format!("DTSTART:{}", stamp(object.starts_at)),
        format!("DTEND:{}", stamp(object.ends_at)),
        format!("SUMMARY:{}", text_value(object.summary)),
    ];
    for attendee in object.attendees {
        lines.push(format!("ATTENDEE:mailto:{attendee}"));
    }
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    for line in lines {
        fold(&line, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:w1\r\n\
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

    #[test]
    fn expands_within_the_window_with_exdates_and_overrides() {
        let all = expand(
            WEEKLY,
            at("2026-11-01T00:00:00Z"),
            at("2026-12-31T00:00:00Z"),
            100,
        )
        .unwrap();
        let starts: Vec<_> = all
            .iter()
            .map(|i| (i.starts_at, i.summary.as_str()))
            .collect();
        assert_eq!(
            starts,
            vec![
                (at("2026-11-02T09:00:00Z"), "Weekly"),
                // 11-09 is excluded; 11-16 moved to the afternoon.
                (at("2026-11-16T14:00:00Z"), "Moved"),
                (at("2026-11-23T09:00:00Z"), "Weekly"),
                (at("2026-11-30T09:00:00Z"), "Weekly"),
            ]
        );
        let narrow = expand(
            WEEKLY,
            at("2026-11-20T00:00:00Z"),
            at("2026-11-24T00:00:00Z"),
            100,
        )
        .unwrap();
        assert_eq!(narrow.len(), 1);
        assert_eq!(narrow[0].recurrence_id, Some(at("2026-11-23T09:00:00Z")));
    }

    #[test]
    fn what_it_builds_it_reads_back() {
        let summary = "Plan; review, and a long title ".repeat(5);
        let ics = build(&NewObject {
            uid: "u-1",
            summary: &summary,
            starts_at: at("2026-12-01T10:00:00Z"),
            ends_at: at("2026-12-01T11:00:00Z"),
            attendees: &["carol@x.example".to_owned()],
        });
        assert!(ics.lines().all(|l| l.len() <= 76), "{ics}");
        let parsed = parse(&ics).unwrap();
        assert_eq!(parsed.summary, summary);
        assert_eq!(parsed.uid, "u-1");
        assert_eq!(parsed.attendees, vec!["carol@x.example".to_owned()]);
        assert!(!parsed.recurring);
        assert!(parse("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").is_err());
    }
}
