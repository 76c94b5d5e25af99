//! The correctness checks of the global mix, pure so they can be tested:
//! message bodies carry a per-tenant marker (so a page or search result holding
//! another tenant's message is caught), residency is checked against the serving
//! region, and acknowledged writes are compared with a full read-back.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// Words shared by every tenant's messages, so a search for one of them would
/// surface another tenant's messages if isolation failed.
pub const WORDS: [&str; 8] = [
    "harbour", "lantern", "meadow", "quartz", "saffron", "tundra", "violet", "willow",
];

/// What identifies a tenant's messages: its id and a random marker.
#[derive(Clone, Debug)]
pub struct TenantMark {
    pub tenant_id: String,
    pub marker: String,
    pub channel_id: String,
}

impl TenantMark {
    fn prefix(&self) -> String {
        format!("gl:{}:{}:", self.marker, self.tenant_id)
    }

    /// A message body: the marker prefix, who wrote it, and two shared words.
    pub fn body(&self, author: &str, seq: u64) -> String {
        let (a, b) = (
            WORDS[(seq % 8) as usize],
            WORDS[((seq / 8 + 3) % 8) as usize],
        );
        format!(
            "{}{author}:{seq} {a} {b} from the global mix",
            self.prefix()
        )
    }

    /// Every problem with `items` (page or search results) for this tenant.
    pub fn foreign_items(&self, items: &[Value]) -> Vec<String> {
        let prefix = self.prefix();
        items
            .iter()
            .filter_map(|item| {
                let body = item["body"].as_str().unwrap_or("");
                let channel = item["channel_id"].as_str().unwrap_or("");
                if !body.starts_with(&prefix) {
                    Some(format!(
                        "tenant {} received a message not carrying its marker: {}",
                        self.tenant_id,
                        truncate(&item.to_string(), 160)
                    ))
                } else if channel != self.channel_id {
                    Some(format!(
                        "tenant {} received a message of channel {channel}, not its own {}",
                        self.tenant_id, self.channel_id
                    ))
                } else {
                    None
                }
            })
            .collect()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `None` when `served` is allowed (`allowed` empty = any region), else a message.
pub fn residency_violation(
    tenant: &str,
    allowed: &BTreeSet<String>,
    served: Option<&str>,
) -> Option<String> {
    if allowed.is_empty() {
        return None;
    }
    match served {
        Some(region) if allowed.contains(region) => None,
        Some(region) => Some(format!(
            "tenant {tenant} (residency {allowed:?}) was served by {region}"
        )),
        None => Some(format!(
            "tenant {tenant} (residency {allowed:?}): a 2xx answer without X-Meridian-Region"
        )),
    }
}

/// The outcome of comparing acknowledged writes with a full read-back.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WriteCheck {
    pub acknowledged: u64,
    pub listed: u64,
    /// Acknowledged, not in the read-back.
    pub missing: Vec<String>,
    /// Acknowledged and listed more than once.
    pub duplicated: Vec<String>,
    /// Listed but never acknowledged (a write whose answer was lost: allowed).
    pub unacknowledged_present: u64,
}

impl WriteCheck {
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty()
    }
}

/// Compares acknowledged message ids with every id a full read-back listed.
pub fn check_writes<'a>(
    acknowledged: impl IntoIterator<Item = &'a str>,
    listed: impl IntoIterator<Item = &'a str>,
) -> WriteCheck {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut check = WriteCheck::default();
    for id in listed {
        *counts.entry(id).or_default() += 1;
        check.listed += 1;
    }
    let acked: BTreeSet<&str> = acknowledged.into_iter().collect();
    check.acknowledged = acked.len() as u64;
    for id in &acked {
        match counts.get(id) {
            None => check.missing.push((*id).to_owned()),
            Some(1) => {}
            Some(_) => check.duplicated.push((*id).to_owned()),
        }
    }
    check.unacknowledged_present = counts.keys().filter(|id| !acked.contains(*id)).count() as u64;
    check
}

/// Violations seen while the load ran: counts per kind, the first few messages.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Violations {
    pub isolation: u64,
    pub residency: u64,
    pub examples: Vec<String>,
}

impl Violations {
    const EXAMPLES: usize = 20;

    pub fn isolation(&mut self, message: String) {
        self.isolation += 1;
        self.example(message);
    }

    pub fn residency(&mut self, message: String) {
        self.residency += 1;
        self.example(message);
    }

    fn example(&mut self, message: String) {
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mark(tenant: &str) -> TenantMark {
        TenantMark {
            tenant_id: tenant.into(),
            marker: format!("m-{tenant}"),
            channel_id: format!("c-{tenant}"),
        }
    }

    #[test]
    fn own_items_pass_and_foreign_items_are_caught() {
        let (a, b) = (mark("a"), mark("b"));
        let own = json!({"body": a.body("u1", 7), "channel_id": "c-a"});
        let other = json!({"body": b.body("u1", 7), "channel_id": "c-b"});
        assert!(a.foreign_items(&[own.clone(), own.clone()]).is_empty());
        let problems = a.foreign_items(&[own.clone(), other]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("not carrying its marker"));
        // Right marker, wrong channel.
        let moved = json!({"body": a.body("u1", 8), "channel_id": "c-b"});
        assert_eq!(a.foreign_items(&[moved]).len(), 1);
        // A tenant id that merely starts like another's does not pass.
        let ab = mark("ab");
        let ab_item = json!({"body": ab.body("u", 1), "channel_id": "c-a"});
        assert_eq!(a.foreign_items(&[ab_item]).len(), 1);
    }

    #[test]
    fn bodies_share_searchable_words() {
        let body = mark("a").body("u", 3);
        assert!(WORDS.iter().any(|w| body.contains(w)));
    }

    #[test]
    fn residency_is_checked_against_the_serving_region() {
        let eu: BTreeSet<String> = ["europe-west1".into(), "europe-west3".into()].into();
        assert!(residency_violation("t", &eu, Some("europe-west3")).is_none());
        assert!(residency_violation("t", &eu, Some("us-east1")).is_some());
        assert!(residency_violation("t", &eu, None).is_some());
        assert!(residency_violation("t", &BTreeSet::new(), Some("us-east1")).is_none());
    }

    #[test]
    fn write_loss_finds_missing_and_duplicated_ids() {
        let check = check_writes(["a", "b", "c", "d"], ["a", "b", "b", "d", "x"]);
        assert_eq!(check.acknowledged, 4);
        assert_eq!(check.listed, 5);
        assert_eq!(check.missing, vec!["c".to_owned()]);
        assert_eq!(check.duplicated, vec!["b".to_owned()]);
        assert_eq!(check.unacknowledged_present, 1);
        assert!(!check.passed());
        let clean = check_writes(["a", "b"], ["b", "a", "z"]);
        assert!(clean.passed());
        assert_eq!(clean.unacknowledged_present, 1);
        assert!(check_writes([], []).passed());
    }
}
