//! JSON of the messages page written straight into the response buffer.
//!
//! serde_json escapes every string it writes byte by byte, object keys, uuids and
//! timestamps included, and grows its buffer from 128 bytes by doubling. On the
//! messages page (50 messages: 150 uuids, 50 timestamps, 250 keys) that was 38% of
//! the instructions the node executes per request, the escaping alone 24%
//! (callgrind, README "Benchmarks"). Here keys are constants, uuids and
//! timestamps are copied (they never need escaping), free text is escaped with
//! serde_json's rules in one pass that copies runs of plain bytes, and the buffer
//! is sized once. The bytes are the same serde_json writes for the same value (the
//! unit tests compare both, so a field added to `Message` without its line here
//! fails them); the OpenAPI schema is still the types' (`Page<Message>`). The
//! messages page itself is written from its rows with the same functions
//! (`message`, `page_start`, `page_end`), without a `Message` per row.

use actix_web::body::BoxBody;
use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, Responder};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::pagination::Page;
use crate::store::messages::Message;

/// A value that writes its own JSON (the bytes serde_json would write for it).
pub trait WriteJson {
    fn write_json(&self, out: &mut Vec<u8>);
    /// Roughly how many bytes `write_json` writes: the buffer's first size.
    fn size_hint(&self) -> usize;
}

/// A 200 `application/json` answer of a `WriteJson` value (as `web::Json` answers
/// a `Serialize` one).
pub struct FastJson<T>(pub T);

impl<T: WriteJson> Responder for FastJson<T> {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse<Self::Body> {
        let mut out = Vec::with_capacity(self.0.size_hint());
        self.0.write_json(&mut out);
        HttpResponse::Ok()
            .insert_header(ContentType::json())
            .body(out)
    }
}

/// A 200 `application/json` answer whose bytes are written already (the
/// messages page, written from its rows: `store::messages::page_json`). The
/// buffer becomes the body as it is (`Vec<u8>` → `Bytes` takes the allocation);
/// actix's HTTP/1 encoder still copies it into its write buffer, which it does
/// for every body.
pub struct JsonBytes(pub Vec<u8>);

impl Responder for JsonBytes {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse<Self::Body> {
        HttpResponse::Ok()
            .insert_header(ContentType::json())
            .body(self.0)
    }
}

/// A `Message`'s JSON from its fields (what `Message`'s `WriteJson` writes, so the
/// unit tests against serde_json cover a page written from rows too).
pub fn message(
    out: &mut Vec<u8>,
    id: &Uuid,
    channel_id: &Uuid,
    author_id: &Uuid,
    body: &str,
    created_at: &DateTime<Utc>,
) {
    out.extend_from_slice(b"{\"id\":");
    uuid(out, id);
    out.extend_from_slice(b",\"channel_id\":");
    uuid(out, channel_id);
    out.extend_from_slice(b",\"author_id\":");
    uuid(out, author_id);
    out.extend_from_slice(b",\"body\":");
    string(out, body);
    out.extend_from_slice(b",\"created_at\":");
    timestamp(out, created_at);
    out.push(b'}');
}

/// A `Page`'s JSON before its first item.
pub fn page_start(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"items\":[");
}

/// A `Page`'s JSON after its last item.
pub fn page_end(out: &mut Vec<u8>, next_cursor: Option<&str>) {
    out.extend_from_slice(b"],\"next_cursor\":");
    match next_cursor {
        Some(cursor) => string(out, cursor),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

impl WriteJson for Message {
    fn write_json(&self, out: &mut Vec<u8>) {
        message(
            out,
            self.id.as_uuid(),
            self.channel_id.as_uuid(),
            self.author_id.as_uuid(),
            &self.body,
            &self.created_at,
        );
    }

    fn size_hint(&self) -> usize {
        // Keys and punctuation 70, three uuids 114, a timestamp up to 32.
        216 + self.body.len() + self.body.len() / 8
    }
}

impl<T: WriteJson> WriteJson for Page<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        page_start(out);
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_json(out);
        }
        page_end(out, self.next_cursor.as_deref());
    }

    fn size_hint(&self) -> usize {
        64 + self.items.iter().map(WriteJson::size_hint).sum::<usize>()
    }
}

/// Each byte's two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    table
};

/// A uuid as serde writes it: lower-case, hyphenated, quoted. A byte's two
/// digits come from one table lookup: the page writes 150 uuids, and the
/// `uuid` crate's `encode_lower` cost ≈ 145 instructions each, this ≈ 84
/// (callgrind, README "Benchmarks").
pub fn uuid(out: &mut Vec<u8>, id: &Uuid) {
    let bytes = id.as_bytes();
    let mut buf = [b'-'; 38];
    buf[0] = b'"';
    buf[37] = b'"';
    // Where each byte's digits go: hyphens after the 4th, 6th, 8th and 10th byte.
    const AT: [usize; 16] = [1, 3, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 29, 31, 33, 35];
    for (&byte, &at) in bytes.iter().zip(AT.iter()) {
        let [hi, lo] = HEX_PAIRS[usize::from(byte)];
        buf[at] = hi;
        buf[at + 1] = lo;
    }
    out.extend_from_slice(&buf);
}

/// A timestamp as `json_time::utc` writes it (chrono's text), quoted.
pub fn timestamp(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    let mut buf = [0u8; 30];
    match crate::json_time::write(at, &mut buf) {
        Some(len) => {
            out.push(b'"');
            out.extend_from_slice(&buf[..len]);
            out.push(b'"');
        }
        // Outside the plain case: what `json_time::utc` then writes, chrono's own
        // serialisation (writing to a Vec cannot fail; chrono's text is the fallback).
        None => {
            if serde_json::to_writer(&mut *out, at).is_err() {
                string(
                    out,
                    &at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                );
            }
        }
    }
}

/// What serde_json writes for a byte of a string: 0 for the byte itself, else the
/// letter of its short escape, or `u` for `\u00XX`.
const fn escape_of(byte: u8) -> u8 {
    match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x00..=0x1f => b'u',
        _ => 0,
    }
}

const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = escape_of(i as u8);
        i += 1;
    }
    table
};

/// Whether any byte of `word` needs an escape: below 0x20, `"` or `\`. The
/// usual word-at-a-time tests (exact for "any byte": a borrow can only turn up
/// a false byte above a true one).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) != 0
}

/// A string with serde_json's escaping (`"`, `\`, control characters; everything
/// else, non-ASCII included, as it is), quoted. Runs of plain bytes are copied
/// at once, and found eight bytes at a time: a byte at a time through the
/// table, a page's bodies cost ≈ 8.5 instructions per byte (callgrind).
pub fn string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (from, to) = match bytes[i..].first_chunk::<8>() {
            Some(word) if !needs_escape(u64::from_le_bytes(*word)) => {
                i += 8;
                continue;
            }
            Some(_) => (i, i + 8),
            None => (i, bytes.len()),
        };
        for (at, &byte) in bytes[from..to]
            .iter()
            .enumerate()
            .map(|(k, b)| (from + k, b))
        {
            let escape = ESCAPE[usize::from(byte)];
            if escape == 0 {
                continue;
            }
            out.extend_from_slice(&bytes[start..at]);
            match escape {
                b'u' => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ]),
                letter => out.extend_from_slice(&[b'\\', letter]),
            }
            start = at + 1;
        }
        i = to;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::ids::{ChannelId, MessageId, UserId};

    fn message(body: &str, at: DateTime<Utc>) -> Message {
        Message {
            id: MessageId::from_uuid(Uuid::new_v4()),
            channel_id: ChannelId::from_uuid(Uuid::new_v4()),
            author_id: UserId::from_uuid(Uuid::new_v4()),
            body: body.to_owned(),
            created_at: at,
        }
    }

    fn ours<T: WriteJson>(value: &T) -> String {
        let mut out = Vec::new();
        value.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn uuids_are_written_as_serde_json_writes_them() {
        let mut ids = vec![Uuid::nil(), Uuid::max(), Uuid::now_v7()];
        ids.extend((0..10_000).map(|_| Uuid::new_v4()));
        for id in ids {
            let mut out = Vec::new();
            uuid(&mut out, &id);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&id).unwrap()
            );
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii = String::new();
        for b in 0u8..128 {
            every_ascii.push(char::from(b));
        }
        for text in [
            "",
            "plain",
            &every_ascii,
            "\"quoted\" \\ back\\slash",
            "tab\there\nnew line\r\u{8}\u{c}\u{1f}\u{7f}",
            "ünïcødé — 日本語 🎉 \u{2028}\u{2029}",
            "\u{0}",
            "ends with escape\n",
        ] {
            let mut out = Vec::new();
            string(&mut out, text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn random_strings_are_escaped_as_serde_json_escapes_them() {
        // Every length up to 40 and mixes of plain, escaped and non-ASCII
        // characters, so an escape falls at every place of an eight-byte word.
        let alphabet = [
            'a', 'Z', ' ', '~', '"', '\\', '\n', '\u{1}', '\u{1f}', '\u{7f}', 'é', '🎉',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 41) as usize;
            let text: String = (0..len)
                .map(|_| match next() % 16 {
                    // Mostly plain letters, as in real bodies.
                    pick @ 0..12 => alphabet[pick as usize],
                    _ => 'm',
                })
                .collect();
            let mut out = Vec::new();
            string(&mut out, &text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_page_is_written_as_serde_json_writes_it() {
        let instants = [
            Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            // Outside json_time's plain case: chrono's text.
            NaiveDate::from_ymd_opt(10_000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        ];
        for next_cursor in [None, Some("azE6MTcwMDAwMDAwMDAwMDAwMDoxMjM=".to_owned())] {
            let page = Page {
                items: instants
                    .iter()
                    .zip(["hello", "with \"quotes\"\n", "ünï 🎉", "", "\u{1}", "x"])
                    .map(|(at, body)| message(body, *at))
                    .collect(),
                next_cursor,
            };
            assert_eq!(ours(&page), serde_json::to_string(&page).unwrap());
        }
        let empty: Page<Message> = Page {
            items: Vec::new(),
            next_cursor: None,
        };
        assert_eq!(ours(&empty), serde_json::to_string(&empty).unwrap());
    }

    #[test]
    fn the_size_hint_covers_a_typical_page() {
        let page = Page {
            items: (0..50)
                .map(|i| {
                    message(
                        &format!("message number {i} with a body of ordinary length"),
                        Utc.timestamp_opt(1_700_000_000 + i, 123_456_000).unwrap(),
                    )
                })
                .collect(),
            next_cursor: Some("azE6MTcwMDAwMDAwMDAwMDAwMDoxMjM=".to_owned()),
        };
        let written = ours(&page).len();
        assert!(
            page.size_hint() >= written,
            "{} < {written}",
            page.size_hint()
        );
        assert!(
            page.size_hint() < written * 2,
            "{} vs {written}",
            page.size_hint()
        );
    }
}
