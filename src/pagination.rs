//! Pages and opaque cursors. A keyset cursor encodes the last item's
//! `(created_at, id)`; an offset cursor serves ranked results (search). Cursors are
//! positions, not capabilities: one never widens what the scope can read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// Ranked results are paged by offset; deeper than this, refine the query.
pub const MAX_OFFSET: u32 = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_request(
                "invalid_query",
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
        decode_text(raw)
            .and_then(|text| text.strip_prefix("o1:").and_then(|n| n.parse::<u32>().ok()))
            .filter(|n| *n <= MAX_OFFSET)
            .ok_or_else(invalid_cursor)
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

    fn decode(raw: &str) -> Result<Self, ApiError> {
        let text = decode_text(raw).ok_or_else(invalid_cursor)?;
        let mut parts = text
            .strip_prefix("k1:")
            .ok_or_else(invalid_cursor)?
            .splitn(2, ':');
        let micros = parts.next().and_then(|m| m.parse::<i64>().ok());
        let at = micros.and_then(DateTime::<Utc>::from_timestamp_micros);
        let id = parts.next().and_then(|i| Uuid::parse_str(i).ok());
        match (at, id) {
            (Some(at), Some(id)) => Ok(Self { at, id }),
            _ => Err(invalid_cursor()),
        }
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

fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "cursor is not one this API issued")
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
