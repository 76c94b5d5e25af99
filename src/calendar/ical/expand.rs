//! A recurring object's instances within a window: RRULE/RDATE/EXDATE through
//! `rrule`, overridden instances (`RECURRENCE-ID` components) put in place of
//! the ones they replace.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use icalendar::{Component, EventLike};

use super::{events, master, span, utc};

/// One occurrence within a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub summary: String,
    /// The occurrence's original start, for instances of a recurring event.
    pub recurrence_id: Option<DateTime<Utc>>,
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

/// The occurrence of a recurring `ics` originally at `id` (its override if
/// it was moved), or `None` when the series has no such occurrence.
pub fn occurrence(ics: &str, id: DateTime<Utc>) -> Result<Option<Instance>, String> {
    let events = events(ics)?;
    for event in events.iter().filter(|e| e.get_recurrence_id().is_some()) {
        if event
            .get_recurrence_id()
            .as_ref()
            .and_then(utc)
            .map(|(at, _, _)| at)
            == Some(id)
        {
            let (starts_at, ends_at, _, _) = span(event)?;
            return Ok(Some(Instance {
                starts_at,
                ends_at,
                summary: event.get_summary().unwrap_or_default().to_owned(),
                recurrence_id: Some(id),
            }));
        }
    }
    let master = master(&events)?;
    let (starts_at, ends_at, _, _) = span(master)?;
    let summary = master.get_summary().unwrap_or_default().to_owned();
    let tz = icalendar::rrule::Tz::UTC;
    let second = chrono::Duration::seconds(1);
    let set = master
        .get_recurrence()
        .map_err(|e| format!("unreadable recurrence: {e}"))?
        .after((id - second).with_timezone(&tz))
        .before((id + second).with_timezone(&tz));
    Ok(set
        .all(4)
        .dates
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .find(|start| *start == id)
        .map(|start| Instance {
            starts_at: start,
            ends_at: start + (ends_at - starts_at),
            summary,
            recurrence_id: Some(id),
        }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{WEEKLY, at};
    use super::*;

    #[test]
    fn finds_an_occurrence_by_its_original_start() {
        let moved = occurrence(WEEKLY, at("2026-11-16T09:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(moved.summary, "Moved");
        assert_eq!(moved.starts_at, at("2026-11-16T14:00:00Z"));
        let plain = occurrence(WEEKLY, at("2026-11-23T09:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(plain.ends_at, at("2026-11-23T09:30:00Z"));
        // Excluded, off the rule, past the count: none.
        for none in [
            "2026-11-09T09:00:00Z",
            "2026-11-23T10:00:00Z",
            "2026-12-07T09:00:00Z",
        ] {
            assert_eq!(occurrence(WEEKLY, at(none)).unwrap(), None, "{none}");
        }
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
}
