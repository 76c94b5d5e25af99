//! Pages and opaque cursors. A keyset cursor encodes the last item's
//! `(created_at, id)`; an offset cursor serves ranked results (search). Cursors are
//! positions, not capabilities: one never widens what the scope can read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// Ranked results are paged by offset; deeper than this, refine the query.
pub const MAX_OFFSET: u32 = 10_000;
/// The earliest instant PostgreSQL and CockroachDB can store, 4714-11-24 00:00 UTC
/// BC (Julian day 0), in Unix microseconds. The latest they can store (294276 AD)
/// is past chrono's range, so chrono bounds a cursor from above.
const MIN_TIMESTAMP_MICROS: i64 = -210_866_803_200_000_000;

#[derive(Debug, Deserialize, IntoParams)]
// Named as query parameters so optional ones are documented as absent, not `null`.
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(max_length = 256)]
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("limit must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    pub fn keyset(&self) -> Result<Option<Keyset>, ApiError> {
        self.cursor.as_deref().map(Keyset::decode).transpose()
    }

    pub fn offset(&self) -> Result<u32, ApiError> {
        let Some(raw) = self.cursor.as_deref() else {
            return Ok(0);
        };
        let text = decode_text(raw).ok_or_else(invalid_cursor)?;
        let offset = text
            .strip_prefix("o1:")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n <= MAX_OFFSET)
            .ok_or_else(invalid_cursor)?;
        // Only the exact text this API issues: no sign, no leading zeros.
        canonical(raw, offset_cursor(offset))?;
        Ok(offset)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Position after an item in `(created_at DESC, id DESC)` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyset {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Keyset {
    pub fn encode(&self) -> String {
        B64.encode(format!("k1:{}:{}", self.at.timestamp_micros(), self.id))
    }

    /// Every field is checked: a timestamp the databases cannot hold would reach
    /// the query as a parameter and fail there (a 500), not here (a 400).
    fn decode(raw: &str) -> Result<Self, ApiError> {
        let text = decode_text(raw).ok_or_else(invalid_cursor)?;
        let mut parts = text
            .strip_prefix("k1:")
            .ok_or_else(invalid_cursor)?
            .splitn(2, ':');
        let micros = parts
            .next()
            .and_then(|m| m.parse::<i64>().ok())
            .filter(|m| *m >= MIN_TIMESTAMP_MICROS);
        // `None` past chrono's range, which ends before the databases' does.
        let at = micros.and_then(DateTime::<Utc>::from_timestamp_micros);
        let id = parts.next().and_then(|i| Uuid::parse_str(i).ok());
        let key = match (at, id) {
            (Some(at), Some(id)) => Self { at, id },
            _ => return Err(invalid_cursor()),
        };
        // Only the exact text this API issues: `Uuid::parse_str` also takes upper
        // case, braces, `urn:uuid:` and the simple form, `i64` a sign and zeros.
        canonical(raw, Some(key.encode()))?;
        Ok(key)
    }
}

pub fn offset_cursor(offset: u32) -> Option<String> {
    (offset <= MAX_OFFSET).then(|| B64.encode(format!("o1:{offset}")))
}

/// Builds a page from up to `limit + 1` rows: the extra row only says "there is more".
pub fn keyset_page<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Keyset) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|last| key(last).encode())
    } else {
        None
    };
    Page { items, next_cursor }
}

fn decode_text(raw: &str) -> Option<String> {
    if raw.len() > 256 {
        return None;
    }
    B64.decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// A cursor is accepted only as the exact text this API would have issued for the
/// position it decodes to.
fn canonical(raw: &str, issued: Option<String>) -> Result<(), ApiError> {
    match issued {
        Some(issued) if issued == raw => Ok(()),
        _ => Err(invalid_cursor()),
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request(
        ErrorCode::InvalidCursor,
        "cursor is not one this API issued",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_round_trips_and_garbage_is_rejected() {
        let key = Keyset {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        let query = PageQuery {
            limit: None,
            cursor: Some(key.encode()),
        };
        assert_eq!(query.keyset().unwrap(), Some(key));
        for bad in ["", "!!", "azEx", &B64.encode("k1:notanumber:x")] {
            let query = PageQuery {
                limit: None,
                cursor: Some(bad.to_owned()),
            };
            assert!(query.keyset().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cursor_bounds_are_the_databases_and_chronos() {
        let min = DateTime::<Utc>::from_timestamp_micros(MIN_TIMESTAMP_MICROS).unwrap();
        assert_eq!(min.to_rfc3339(), "-4713-11-24T00:00:00+00:00");
        let id = Uuid::nil();
        let at = |micros: i64| {
            PageQuery {
                limit: None,
                cursor: Some(B64.encode(format!("k1:{micros}:{id}"))),
            }
            .keyset()
        };
        assert!(at(MIN_TIMESTAMP_MICROS).is_ok());
        assert!(at(MIN_TIMESTAMP_MICROS - 1).is_err());
        let max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
        assert!(at(max).is_ok());
        assert!(at(max + 1).is_err());
        assert!(at(i64::MIN).is_err() && at(i64::MAX).is_err());
        let offset = |text: &str| {
            PageQuery {
                limit: None,
                cursor: Some(B64.encode(text)),
            }
            .offset()
        };
        assert_eq!(offset("o1:50").unwrap(), 50);
        for bad in ["o1:+50", "o1:050", "o1:-1", "o1:10001", "o1:NaN"] {
            assert!(offset(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn limits_outside_the_range_are_rejected() {
        for (limit, ok) in [
            (None, true),
            (Some(1), true),
            (Some(200), true),
            (Some(0), false),
            (Some(201), false),
        ] {
            assert_eq!(
                PageQuery {
                    limit,
                    cursor: None
                }
                .limit()
                .is_ok(),
                ok,
                "{limit:?}"
            );
        }
    }
}
