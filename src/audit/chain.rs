//! The hash chain of a trail: the canonical encoding of an event and the link
//! `hash = SHA-256(previous hash || canonical(event))`, with 32 zero bytes before
//! the first event. The database computes the link when it appends (the head row
//! and the event in one statement, `APPEND_SQL`); verification, the export and
//! the offline verifier recompute it here. The format is docs/audit-format.md.
//!
//! The encoding is fixed by this module, never by a serializer's choices: the
//! fields in a fixed order, each with its length; time as UTC microseconds (what
//! the database stores); `details` as canonical JSON (object keys sorted by their
//! UTF-8 bytes, no whitespace, strings escaped as serde_json does). The trail and
//! `seq` are not encoded: an event's place is its link to the previous hash, and
//! a checkpoint signs the trail, seq and hash together.

use chrono::{DateTime, Utc};
use ring::digest;
use serde_json::Value;
use uuid::Uuid;

/// The "previous hash" of a trail's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The encoding's version tag, the first bytes of every canonical event.
const TAG: &[u8] = b"meridian-audit-event-v1\0";

/// What the chain covers of one event (tenant or platform trail).
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    /// The tenant the event is about (always set on a tenant's trail).
    pub tenant: Option<Uuid>,
    pub target_kind: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub details: &'a Value,
    /// Personal details, sealed with the tenant's keyring: the ciphertext.
    pub sealed: Option<&'a [u8]>,
}

/// The canonical bytes of an event (docs/audit-format.md).
pub fn canonical(c: &Content<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(TAG);
    field(&mut out, c.id.as_bytes());
    out.extend_from_slice(&c.created_at.timestamp_micros().to_be_bytes());
    field(&mut out, c.actor.as_bytes());
    field(&mut out, c.action.as_bytes());
    optional(&mut out, c.tenant.as_ref().map(|t| t.as_bytes().as_slice()));
    optional(&mut out, c.target_kind.map(str::as_bytes));
    optional(&mut out, c.target_id.map(str::as_bytes));
    let mut json = Vec::new();
    canonical_json(c.details, &mut json);
    field(&mut out, &json);
    optional(&mut out, c.sealed);
    out
}

/// The next link: SHA-256(prev || canonical).
pub fn link(prev: &[u8], canonical: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(canonical);
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A time as the database keeps it (microseconds), so the hash computed before
/// the insert is the hash recomputed from the stored row.
pub fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths above 4 GiB cannot occur (PostgreSQL's field limit is 1 GiB).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            field(out, b);
        }
    }
}

/// JSON with object keys sorted by their bytes and no whitespace. Numbers are
/// written as serde_json writes the value read back from `jsonb`.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    crate::crypto::signing::write_canonical_json(value, out);
}

/// Lower-case hex, as hashes are shown in reports and the export.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The inverse of `hex`; `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(details: &Value) -> Content<'_> {
        Content {
            id: Uuid::nil(),
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            actor: "a",
            action: "b",
            tenant: None,
            target_kind: Some("channel"),
            target_id: None,
            details,
            sealed: None,
        }
    }

    #[test]
    fn key_order_does_not_change_the_encoding() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(canonical(&content(&a)), canonical(&content(&b)));
        let mut out = Vec::new();
        canonical_json(&a, &mut out);
        assert_eq!(out, br#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn every_field_is_delimited() {
        // "ab" + "" and "a" + "b" must not encode alike.
        let d = json!({});
        let mut one = content(&d);
        one.actor = "ab";
        one.action = "";
        let mut two = content(&d);
        two.actor = "a";
        two.action = "b";
        assert_ne!(canonical(&one), canonical(&two));
        let mut three = content(&d);
        three.target_kind = None;
        three.target_id = Some("channel");
        assert_ne!(canonical(&content(&d)), canonical(&three));
    }

    #[test]
    fn links_and_hex_round_trip() {
        let h = link(&GENESIS, b"x");
        assert_ne!(h, link(&h, b"x"));
        assert_eq!(unhex(&hex(&h)).unwrap(), h);
        assert_eq!(unhex("0g"), None);
    }
}
