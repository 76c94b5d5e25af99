//! The objects Meridian writes: a new single event (`build`), and edits of a
//! recurring object that keep everything else the server stored (its RRULE,
//! EXDATEs, alarms, unknown properties) line by line: the whole series (the
//! master VEVENT's own properties), one occurrence moved or changed (a
//! `RECURRENCE-ID` override component) or one occurrence removed (an EXDATE
//! on the master). Content lines are unfolded to edit and folded again.

use chrono::{DateTime, Utc};
use icalendar::Component;

use super::lines::{Object, is_event, join, master_index, name, own_value, set, split};
use super::{events, master, span, utc};

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
pub(super) fn fold(line: &str, out: &mut String) {
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

/// What an edit of a series sets (`None`: kept as the server has it).
#[derive(Default)]
pub struct Changes<'a> {
    pub summary: Option<&'a str>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub attendees: Option<&'a [String]>,
}

/// The instant an override component replaces (its `RECURRENCE-ID` in UTC).
fn replaces(block: &[String]) -> Option<DateTime<Utc>> {
    own_value(block, "RECURRENCE-ID")?;
    let mini = Object {
        head: vec!["VERSION:2.0".into(), "PRODID:-//Meridian//EN".into()],
        blocks: vec![block.to_vec()],
    };
    let events = events(&join(&mini)).ok()?;
    let event = events.first()?;
    utc(&event.get_recurrence_id()?).map(|(at, _, _)| at)
}

/// The master's lines for `changes`, with a fresh DTSTAMP and SEQUENCE + 1
/// (RFC 5545 §3.8.7.4: a significant change of the organizer's copy).
fn series_lines(block: &[String], changes: &Changes<'_>) -> (Vec<&'static str>, Vec<String>) {
    let sequence = own_value(block, "SEQUENCE")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let mut names = vec!["DTSTAMP", "SEQUENCE"];
    let mut lines = vec![
        format!("DTSTAMP:{}", stamp(Utc::now())),
        format!("SEQUENCE:{}", sequence.saturating_add(1)),
    ];
    if let Some(summary) = changes.summary {
        names.push("SUMMARY");
        lines.push(format!("SUMMARY:{}", text_value(summary)));
    }
    if let Some(at) = changes.starts_at {
        names.push("DTSTART");
        lines.push(format!("DTSTART:{}", stamp(at)));
    }
    if let Some(at) = changes.ends_at {
        names.extend(["DTEND", "DURATION"]);
        lines.push(format!("DTEND:{}", stamp(at)));
    }
    if let Some(attendees) = changes.attendees {
        names.push("ATTENDEE");
        lines.extend(attendees.iter().map(|a| format!("ATTENDEE:mailto:{a}")));
    }
    (names, lines)
}

/// `ics` with its master VEVENT (the whole series) changed by `changes`.
pub fn edit_series(ics: &str, changes: &Changes<'_>) -> Result<String, String> {
    let mut object = split(ics)?;
    let m = master_index(&object)?;
    let (names, lines) = series_lines(&object.blocks[m], changes);
    set(&mut object.blocks[m], &names, lines);
    Ok(join(&object))
}

/// How the master's DTSTART is written: a whole-day series names its
/// occurrences by date (`VALUE=DATE`), others by UTC time.
fn instance_value(object: &Object, m: usize, property: &str, at: DateTime<Utc>) -> String {
    let all_day = own_value(&object.blocks[m], "DTSTART").is_some_and(|v| v.len() == 8)
        || object.blocks[m]
            .iter()
            .any(|l| name(l) == "DTSTART" && l.to_ascii_uppercase().contains("VALUE=DATE:"));
    if all_day {
        format!("{property};VALUE=DATE:{}", at.format("%Y%m%d"))
    } else {
        format!("{property}:{}", stamp(at))
    }
}

/// Removes the override of `occurrence` if there is one.
fn drop_override(object: &mut Object, occurrence: DateTime<Utc>) {
    object
        .blocks
        .retain(|b| !(is_event(b) && replaces(b) == Some(occurrence)));
}

/// `ics` without the occurrence that starts (originally) at `occurrence`: an
/// EXDATE on the master, and its override, if any, removed.
pub fn exclude(ics: &str, occurrence: DateTime<Utc>) -> Result<String, String> {
    let mut object = split(ics)?;
    drop_override(&mut object, occurrence);
    let m = master_index(&object)?;
    let exdate = instance_value(&object, m, "EXDATE", occurrence);
    let (names, mut lines) = series_lines(&object.blocks[m], &Changes::default());
    lines.push(exdate);
    set(&mut object.blocks[m], &names, lines);
    Ok(join(&object))
}

/// `ics` with the occurrence originally at `occurrence` replaced by `instance`
/// (a `RECURRENCE-ID` component; an earlier override of it is dropped).
pub fn override_occurrence(
    ics: &str,
    occurrence: DateTime<Utc>,
    instance: &NewObject<'_>,
) -> Result<String, String> {
    let mut object = split(ics)?;
    drop_override(&mut object, occurrence);
    let m = master_index(&object)?;
    let mut block = vec![
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", text_value(instance.uid)),
        format!("DTSTAMP:{}", stamp(Utc::now())),
        instance_value(&object, m, "RECURRENCE-ID", occurrence),
        format!("DTSTART:{}", stamp(instance.starts_at)),
        format!("DTEND:{}", stamp(instance.ends_at)),
        format!("SUMMARY:{}", text_value(instance.summary)),
    ];
    block.extend(
        instance
            .attendees
            .iter()
            .map(|a| format!("ATTENDEE:mailto:{a}")),
    );
    block.push("END:VEVENT".to_owned());
    object.blocks.insert(m + 1, block);
    Ok(join(&object))
}

/// The master's span, for callers that need the series' length.
pub fn series_span(ics: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let events = events(ics)?;
    let (start, end, _, _) = span(master(&events)?)?;
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{WEEKLY, at};
    use super::super::{expand, parse};
    use super::*;

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

    #[test]
    fn a_series_edit_keeps_the_rule_exceptions_and_alarms() {
        let ics = WEEKLY.replace(
            "SUMMARY:Weekly\r\n",
            "SUMMARY:Weekly\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nSUMMARY:alarm\r\n\
             TRIGGER:-PT5M\r\nEND:VALARM\r\n",
        );
        let edited = edit_series(
            &ics,
            &Changes {
                summary: Some("Weekly sync"),
                attendees: Some(&["eve@x.example".to_owned()]),
                ..Changes::default()
            },
        )
        .unwrap();
        let parsed = parse(&edited).unwrap();
        assert_eq!(parsed.summary, "Weekly sync");
        assert_eq!(parsed.attendees, vec!["eve@x.example".to_owned()]);
        // Start (with its zone), rule, exception, override and alarm are kept.
        assert_eq!(parsed.time_zone.as_deref(), Some("Europe/Berlin"));
        assert!(edited.contains("RRULE:FREQ=WEEKLY;COUNT=5"), "{edited}");
        assert!(edited.contains("SUMMARY:alarm") && edited.contains("SEQUENCE:1"));
        let all = expand(
            &edited,
            at("2026-11-01T00:00:00Z"),
            at("2026-12-31T00:00:00Z"),
            100,
        )
        .unwrap();
        let summaries: Vec<&str> = all.iter().map(|i| i.summary.as_str()).collect();
        assert_eq!(
            summaries,
            ["Weekly sync", "Moved", "Weekly sync", "Weekly sync"]
        );
    }

    #[test]
    fn one_occurrence_is_excluded_or_overridden() {
        let window = (at("2026-11-01T00:00:00Z"), at("2026-12-31T00:00:00Z"));
        let starts = |ics: &str| -> Vec<(DateTime<Utc>, String)> {
            expand(ics, window.0, window.1, 100)
                .unwrap()
                .into_iter()
                .map(|i| (i.starts_at, i.summary))
                .collect()
        };
        // Removing the moved one drops its override too.
        let fewer = exclude(WEEKLY, at("2026-11-16T09:00:00Z")).unwrap();
        let fewer = exclude(&fewer, at("2026-11-23T09:00:00Z")).unwrap();
        assert!(!fewer.contains("RECURRENCE-ID"), "{fewer}");
        assert_eq!(
            starts(&fewer),
            vec![
                (at("2026-11-02T09:00:00Z"), "Weekly".to_owned()),
                (at("2026-11-30T09:00:00Z"), "Weekly".to_owned()),
            ]
        );
        let moved = override_occurrence(
            WEEKLY,
            at("2026-11-23T09:00:00Z"),
            &NewObject {
                uid: "w1",
                summary: "Late",
                starts_at: at("2026-11-23T17:00:00Z"),
                ends_at: at("2026-11-23T18:00:00Z"),
                attendees: &[],
            },
        )
        .unwrap();
        let listed = starts(&moved);
        assert_eq!(listed.len(), 4, "{listed:?}");
        assert!(listed.contains(&(at("2026-11-23T17:00:00Z"), "Late".to_owned())));
        assert!(!listed.iter().any(|(s, _)| *s == at("2026-11-23T09:00:00Z")));
        // Overriding it again replaces the override instead of adding one.
        let again = override_occurrence(
            &moved,
            at("2026-11-23T09:00:00Z"),
            &NewObject {
                uid: "w1",
                summary: "Later",
                starts_at: at("2026-11-23T19:00:00Z"),
                ends_at: at("2026-11-23T20:00:00Z"),
                attendees: &[],
            },
        )
        .unwrap();
        assert_eq!(again.matches("RECURRENCE-ID").count(), 2, "{again}");
        assert!(split("BEGIN:VEVENT\r\nEND:VEVENT\r\n").is_err());
    }
}
