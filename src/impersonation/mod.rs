//! Impersonation ("view as org", issue 14 part 4): a platform admin's time-boxed
//! (at most an hour), reason-required access to one tenant, with an access token
//! of today's format for that tenant carrying an RFC 8693 `act` claim (the
//! admin) and `imp` (the impersonation's row, also the token's `sub`).
//!
//! - Read-only unless the impersonation was started with `write` and the tenant's
//!   owner-controlled policy (`tenants.impersonation_writes`) allows it; the
//!   policy is read in every writing transaction's prologue (`db::tx`), never
//!   from a cache, and at the start in the transaction that inserts the row.
//! - Every request under it re-reads the row in its tenant transaction (revoked
//!   or expired → 401 at once) and is recorded in the tenant's own audit trail
//!   (`scope::impersonated`).
//! - The row is a tenant row (homed, RLS forced); the start, list and revoke
//!   requests are routed to the tenant's home region (`routing::middleware`).
//!
//! The token acts with the `admin` role: it reads what an admin reads, and can
//! never change the owners' settings, among them the write policy itself, nor
//! list or revoke impersonations (owners' and compliance officers' business).

pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Actor, Claims, Role, TokenVerifier};
use crate::error::ApiError;
use crate::ids::{ImpersonationId, TenantId};

/// Longest impersonation, in minutes (the "≤ 1 hour").
pub const MAX_MINUTES: u32 = 60;
/// When the request names no duration.
pub const DEFAULT_MINUTES: u32 = 15;
/// Longest reason, in characters.
pub const MAX_REASON: usize = 500;
/// The tenant role an impersonation's token acts with.
pub const ROLE: Role = Role::Admin;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Reads only (the default): every write answers 403 `impersonation_read_only`.
    Read,
    /// May write while the tenant's policy allows it.
    Write,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Read => "read",
            Mode::Write => "write",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "read" => Some(Mode::Read),
            "write" => Some(Mode::Write),
            _ => None,
        }
    }
}

/// An impersonation as its tenant's owners see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Impersonation {
    pub id: ImpersonationId,
    pub tenant_id: TenantId,
    /// The platform admin acting.
    pub actor: String,
    pub reason: String,
    pub mode: Mode,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

/// A checked start request.
#[derive(Debug)]
pub struct Start {
    pub reason: String,
    pub minutes: u32,
    pub mode: Mode,
}

impl Start {
    /// `reason` required (1–500 characters, no control characters), `minutes`
    /// 1..=60 (default 15).
    pub fn new(reason: &str, minutes: Option<u32>, write: bool) -> Result<Self, ApiError> {
        let reason = crate::validate::text("reason", reason.trim(), MAX_REASON)?;
        let minutes = minutes.unwrap_or(DEFAULT_MINUTES);
        if !(1..=MAX_MINUTES).contains(&minutes) {
            return Err(ApiError::validation(format!(
                "`minutes` must be 1–{MAX_MINUTES} (an impersonation lasts at most an hour)"
            )));
        }
        let mode = if write { Mode::Write } else { Mode::Read };
        Ok(Self {
            reason,
            minutes,
            mode,
        })
    }
}

/// The access token of `imp`: the tenant, the `admin` role, `act` = the platform
/// admin, `sub` = `imp` = the impersonation, `exp` = its end.
pub fn token(verifier: &TokenVerifier, imp: &Impersonation) -> Result<String, ApiError> {
    let (iss, aud) = verifier.issuer_audience();
    let now = crate::auth::keys::unix_now();
    let exp = u64::try_from(imp.expires_at.timestamp()).map_err(ApiError::internal)?;
    let claims = Claims {
        sub: imp.id.to_string(),
        tid: Some(*imp.tenant_id.as_uuid()),
        role: ROLE,
        iss: iss.to_owned(),
        aud: aud.to_owned(),
        exp,
        iat: now,
        nbf: Some(now),
        act: Some(Actor {
            sub: imp.actor.clone(),
        }),
        imp: Some(*imp.id.as_uuid()),
    };
    verifier.sign(&claims).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_requests_are_bounded() {
        assert!(Start::new("", None, false).is_err(), "reason required");
        assert!(Start::new("   ", None, false).is_err(), "blank reason");
        assert!(Start::new(&"x".repeat(501), None, false).is_err());
        assert!(Start::new("ticket 42", Some(0), false).is_err());
        assert!(Start::new("ticket 42", Some(61), false).is_err());
        let ok = Start::new("ticket 42", None, true).unwrap();
        assert_eq!((ok.minutes, ok.mode), (DEFAULT_MINUTES, Mode::Write));
        assert_eq!(Start::new("t", Some(60), false).unwrap().mode, Mode::Read);
    }
}
