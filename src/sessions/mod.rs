//! Meridian sessions (issue 14): a short-lived access JWT in today's format
//! (signed by `auth::keys`, checked like every token) plus an opaque refresh
//! token.
//!
//! A refresh token is `mrt_<tenant id, 32 hex>_<43 random characters>`. It names
//! its tenant so that a refresh, which carries no access token, is routed to the
//! tenant's home region like every tenant request (`routing::middleware` reads
//! the tenant from the same body the handler acts on). Only its SHA-256 is
//! stored (`refresh_tokens.token_hash`): a database read gives no usable token.
//!
//! Every refresh rotates: the presented token becomes `rotated` and a new one of
//! the same family is issued, in one transaction. Presenting a rotated (or
//! revoked) token again means it was copied: the whole family is revoked and
//! `refresh_reuse_detected` goes to the tenant's audit trail. A refresh also
//! re-reads the user in that transaction: a disabled or deleted user's family
//! ends there.
//!
//! `store` holds the table's SQL; `cookie` the console's delivery of the
//! refresh token (an `HttpOnly` cookie and its CSRF check).

pub mod cookie;
pub mod store;

use ring::digest;
use uuid::Uuid;

use crate::ids::TenantId;

/// How long an access token lives.
pub const ACCESS_TTL_SECONDS: u64 = 15 * 60;
/// How long a refresh token can be used (each rotation starts a new period).
pub const REFRESH_TTL_SECONDS: i64 = 30 * 24 * 3600;

const PREFIX: &str = "mrt_";
const RANDOM_CHARS: usize = 43;

/// A refresh token, as handed to the client.
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new token for `tenant`; `None` when the system has no randomness.
    pub fn generate(tenant: TenantId) -> Option<Self> {
        let random = crate::secret::alphanumeric(RANDOM_CHARS).ok()?;
        Some(Self(format!(
            "{PREFIX}{}_{random}",
            tenant.as_uuid().simple()
        )))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> Vec<u8> {
        hash(&self.0)
    }
}

/// The SHA-256 stored for `token`.
pub fn hash(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// The tenant a refresh token names, if it has the token's shape. Says nothing
/// about whether the token is valid: that is the database's answer.
pub fn tenant_of(token: &str) -> Option<TenantId> {
    let rest = token.strip_prefix(PREFIX)?;
    let (tenant, random) = rest.split_once('_')?;
    if tenant.len() != 32
        || random.len() != RANDOM_CHARS
        || !random.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return None;
    }
    Uuid::try_parse(tenant).ok().map(TenantId::from_uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_tenant_and_nothing_else_parses() {
        let tenant = TenantId::new_random();
        let token = RefreshToken::generate(tenant).unwrap();
        assert_eq!(tenant_of(token.expose()), Some(tenant));
        assert_eq!(token.hash().len(), 32);
        assert_ne!(
            RefreshToken::generate(tenant).unwrap().expose(),
            token.expose()
        );
        let other = token.expose().replace("mrt_", "xrt_");
        for bad in [
            other.as_str(),
            "mrt_",
            "mrt_nothex_abc",
            &token.expose()[..token.expose().len() - 1],
        ] {
            assert_eq!(tenant_of(bad), None, "{bad}");
        }
    }
}
