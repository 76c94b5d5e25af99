//! An iCalendar object as content lines (RFC 5545 §3.1): unfolded to edit,
//! split into the calendar's own lines and its top-level components, a
//! component's own properties (not those of its nested VALARMs) found and
//! replaced, and folded again at 75 octets.

use super::write::fold;

/// A VCALENDAR split into its own lines and its top-level components.
pub(super) struct Object {
    pub(super) head: Vec<String>,
    pub(super) blocks: Vec<Vec<String>>,
}

pub(super) fn unfold(ics: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in ics.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        match (line.strip_prefix([' ', '\t']), out.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ if line.is_empty() => {}
            _ => out.push(line.to_owned()),
        }
    }
    out
}

/// A content line's property name, upper-cased.
pub(super) fn name(line: &str) -> String {
    line.split([';', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

pub(super) fn split(ics: &str) -> Result<Object, String> {
    let lines = unfold(ics);
    let inner = match lines.as_slice() {
        [first, inner @ .., last]
            if first.eq_ignore_ascii_case("BEGIN:VCALENDAR")
                && last.eq_ignore_ascii_case("END:VCALENDAR") =>
        {
            inner
        }
        _ => return Err("not one VCALENDAR".into()),
    };
    let mut object = Object {
        head: Vec::new(),
        blocks: Vec::new(),
    };
    let (mut depth, mut current) = (0usize, Vec::new());
    for line in inner {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("BEGIN:") {
            depth += 1;
        }
        if depth == 0 {
            object.head.push(line.clone());
        } else {
            current.push(line.clone());
        }
        if upper.starts_with("END:") {
            depth = depth.checked_sub(1).ok_or("unbalanced END")?;
            if depth == 0 {
                object.blocks.push(std::mem::take(&mut current));
            }
        }
    }
    if depth != 0 {
        return Err("unbalanced BEGIN".into());
    }
    Ok(object)
}

pub(super) fn join(object: &Object) -> String {
    let mut out = String::new();
    fold("BEGIN:VCALENDAR", &mut out);
    for line in object.head.iter().chain(object.blocks.iter().flatten()) {
        fold(line, &mut out);
    }
    fold("END:VCALENDAR", &mut out);
    out
}

/// The indices of a component's own lines (not those of its VALARMs …).
pub(super) fn own(block: &[String]) -> Vec<usize> {
    let mut depth = 0usize;
    let mut out = Vec::new();
    for (i, line) in block.iter().enumerate() {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("BEGIN:") {
            depth += 1;
        } else if upper.starts_with("END:") {
            depth = depth.saturating_sub(1);
        } else if depth == 1 {
            out.push(i);
        }
    }
    out
}

pub(super) fn is_event(block: &[String]) -> bool {
    block
        .first()
        .is_some_and(|l| l.eq_ignore_ascii_case("BEGIN:VEVENT"))
}

pub(super) fn own_value(block: &[String], property: &str) -> Option<String> {
    own(block)
        .into_iter()
        .find(|&i| name(&block[i]) == property)
        .and_then(|i| block[i].split_once(':').map(|(_, v)| v.to_owned()))
}

pub(super) fn master_index(object: &Object) -> Result<usize, String> {
    object
        .blocks
        .iter()
        .position(|b| is_event(b) && own_value(b, "RECURRENCE-ID").is_none())
        .ok_or_else(|| "the object has no master VEVENT".to_owned())
}

/// Replaces the component's own `properties` lines with `lines` (after its
/// BEGIN line); nested components stay as they are.
pub(super) fn set(block: &mut Vec<String>, properties: &[&str], lines: Vec<String>) {
    let drop: Vec<usize> = own(block)
        .into_iter()
        .filter(|&i| properties.contains(&name(&block[i]).as_str()))
        .collect();
    for i in drop.into_iter().rev() {
        block.remove(i);
    }
    for (n, line) in lines.into_iter().enumerate() {
        block.insert(1 + n, line);
    }
}
