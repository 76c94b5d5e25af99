//! Typed identifiers. A `TenantId` and a `UserId` are both UUIDs on the wire but
//! cannot be swapped in code. Parsing from a path gives a clear 400 (`invalid_id`).
//!
//! Holding a `TenantId` grants nothing: access to a tenant's data needs a
//! `TenantScope`, which only the auth extractor (or a verified platform admin)
//! can make.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new_random() -> Self {
                // v7: time-ordered, so inserts land at the right edge of the index.
                Self(Uuid::now_v7())
            }
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
            /// Parses a path segment; anything but a UUID is a 400, never a 500.
            pub fn parse(raw: &str) -> Result<Self, ApiError> {
                Uuid::from_str(raw).map(Self).map_err(|_| {
                    ApiError::bad_request(ErrorCode::InvalidId, format!("`{}` is not a valid {} id \
                        (expected a UUID)", truncate(raw), $what))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(TenantId, "tenant");
typed_id!(UserId, "user");
typed_id!(ChannelId, "channel");
typed_id!(MessageId, "message");
typed_id!(EventId, "audit event");
typed_id!(JobId, "job");
typed_id!(WebhookId, "webhook");
typed_id!(DeliveryId, "delivery");
typed_id!(SummaryId, "summary");
typed_id!(ProviderId, "identity provider");
typed_id!(ImpersonationId, "impersonation");
typed_id!(ExportId, "export");
typed_id!(ErasureId, "erasure");
typed_id!(TenantErasureId, "tenant erasure");
typed_id!(CalendarAccountId, "calendar account");
typed_id!(CalendarId, "calendar");
typed_id!(CalendarEventId, "calendar event");
typed_id!(CalendarGrantId, "calendar grant");

/// Echoing user input back in an error is useful; echoing a megabyte of it is not.
fn truncate(raw: &str) -> &str {
    match raw.char_indices().nth(64) {
        Some((at, _)) => &raw[..at],
        None => raw,
    }
}

/// A region name as CockroachDB knows it (e.g. `europe-west1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct RegionId(String);

impl RegionId {
    /// Region ids are lowercase letters, digits and dashes (CockroachDB region names).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= 63
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "`{raw}` is not a valid region id (lowercase letters, digits and dashes)"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
