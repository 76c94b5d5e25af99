//! Timestamps in JSON, written without `core::fmt`.
//!
//! chrono serialises a `DateTime<Utc>` through `Display` into serde_json's
//! `collect_str`, which escapes every fragment the formatter writes — digit by
//! digit. On the messages page (50 timestamps per response) that was about 6% of
//! the node's CPU (README, Benchmarks). This writes the same text chrono does
//! (RFC 3339, `Z`, fractional seconds as chrono's `SecondsFormat::AutoSi`: none,
//! 3, 6 or 9 digits) into a stack buffer and hands it to the serializer as one
//! string; anything outside the plain case (a year past 9999 or before 0, a leap
//! second) is left to chrono. A unit test compares both over many instants.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `#[serde(serialize_with = "crate::json_time::utc")]` for a `DateTime<Utc>`.
pub fn utc<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match write(at, &mut buf) {
        // Only ASCII digits and separators are written.
        Some(len) => match std::str::from_utf8(&buf[..len]) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serde::Serialize::serialize(at, serializer),
        },
        None => serde::Serialize::serialize(at, serializer),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` into `buf`; its length, or `None`
/// when chrono must write it.
pub(crate) fn write(at: &DateTime<Utc>, buf: &mut [u8; 30]) -> Option<usize> {
    // Each accessor of a `DateTime` adds its offset again (zero for UTC, but not
    // free): read the fields from the naive time once.
    let at = at.naive_utc();
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None; // a leap second
    }
    let (fraction, width) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    let mut out = Out { buf, pos: 0 };
    out.digits(year, 4);
    out.byte(b'-');
    out.digits(at.month(), 2);
    out.byte(b'-');
    out.digits(at.day(), 2);
    out.byte(b'T');
    out.digits(at.hour(), 2);
    out.byte(b':');
    out.digits(at.minute(), 2);
    out.byte(b':');
    out.digits(at.second(), 2);
    if width > 0 {
        out.byte(b'.');
        out.digits(fraction, width);
    }
    out.byte(b'Z');
    Some(out.pos)
}

/// At most 30 bytes are written (20 + `.` + 9 digits would be 30 with `Z`).
struct Out<'a> {
    buf: &'a mut [u8; 30],
    pos: usize,
}

impl Out<'_> {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = b;
        }
        self.pos += 1;
    }

    /// `value` as exactly `width` decimal digits, zero-padded.
    fn digits(&mut self, mut value: u32, width: usize) {
        for i in (0..width).rev() {
            if let Some(slot) = self.buf.get_mut(self.pos + i) {
                *slot = b'0' + (value % 10) as u8;
            }
            value /= 10;
        }
        self.pos += width;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn both(at: DateTime<Utc>) -> (String, String) {
        let ours = {
            let mut out = serde_json::Serializer::new(Vec::new());
            utc(&at, &mut out).unwrap();
            String::from_utf8(out.into_inner()).unwrap()
        };
        (ours, serde_json::to_string(&at).unwrap())
    }

    #[test]
    fn writes_what_chrono_writes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut cases: Vec<DateTime<Utc>> = vec![
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 1).unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 999_999_999)
                .unwrap()
                .and_utc(),
            NaiveDate::from_ymd_opt(0, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
            // Outside the plain case: chrono writes them.
            NaiveDate::from_ymd_opt(10_000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
            NaiveDate::from_ymd_opt(-1, 1, 1)
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
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let secs = (seed >> 20) as i64 % 253_402_300_799; // up to 9999-12-31
            let nanos = match seed % 4 {
                0 => 0,
                1 => (seed >> 8) as u32 % 1000 * 1_000_000,
                2 => (seed >> 8) as u32 % 1_000_000 * 1_000,
                _ => (seed >> 8) as u32 % 1_000_000_000,
            };
            cases.push(Utc.timestamp_opt(secs, nanos).unwrap());
        }
        for at in cases {
            let (ours, chrono) = both(at);
            assert_eq!(ours, chrono, "{at:?}");
        }
    }
}
