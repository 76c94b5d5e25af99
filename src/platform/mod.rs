//! Platform accounts (issue 14 part 3): the people who run the platform sign in
//! through the platform's own OIDC provider and get a Meridian session with the
//! role `platform_admin` or `operator` and no tenant.
//!
//! - The provider is **settings** (`platform_identity`: issuer, client id,
//!   client secret, redirect URIs), not an API resource: whoever can change
//!   which provider vouches for platform staff can make themselves platform
//!   staff, so that takes deployment access (the settings and the node's
//!   secrets), not a platform admin token that may leak.
//! - A platform user is found by (issuer, subject), never by email, and only
//!   if it was created first (`meridian platform add-admin`, or a platform
//!   admin's `POST /v1/platform/users`): no just-in-time provisioning.
//! - A session is today's access JWT (`sub` = `platform_user:<id>`, no `tid`)
//!   and a refresh token `mpr_<random>` stored as its SHA-256, rotated at each
//!   use, a reused one revoking its family (as for tenants, `sessions`).
//! - Deprovisioning is at once: every request with such a token reads the
//!   user's row (`scope::extract`, one primary-key read of a GLOBAL table on
//!   CockroachDB): disabled, or a role other than the token's, is refused; a
//!   refresh re-reads it in the rotating transaction.
//!
//! `store` holds the three tables' SQL, `bootstrap` the CLI's first admin.

pub mod bootstrap;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::secret::Secret;

/// The `sub` prefix of an access token issued to a platform user.
pub const SUBJECT_PREFIX: &str = "platform_user:";
/// The prefix of a platform refresh token.
pub const REFRESH_PREFIX: &str = "mpr_";
/// The prefix of a platform sign-in's `state`.
pub const STATE_PREFIX: &str = "mps_";

/// The platform's OIDC provider (settings `platform_identity`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformIdentity {
    /// Discovery is read from `{issuer}/.well-known/openid-configuration`; the
    /// id_token's `iss` must equal it. Platform users name it as their issuer.
    pub issuer: String,
    pub client_id: String,
    /// The client secret (`MERIDIAN_PLATFORM_IDENTITY__CLIENT_SECRET`), if the
    /// provider wants one; never logged.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The only places a sign-in may send its answer (exact match).
    pub redirect_uris: Vec<String>,
}

impl PlatformIdentity {
    /// Checked at start, by the rules of the tenants' providers
    /// (`outbound::url::parse` for the URLs).
    pub fn validate(&self) -> Result<(), String> {
        crate::outbound::url::parse(&self.issuer)
            .map_err(|why| format!("platform_identity.issuer: {why}"))?;
        if self.client_id.trim().is_empty() || self.redirect_uris.is_empty() {
            return Err("platform_identity needs a client_id and redirect_uris".into());
        }
        for uri in &self.redirect_uris {
            crate::outbound::url::parse(uri)
                .map_err(|why| format!("platform_identity.redirect_uris: {why}"))?;
        }
        Ok(())
    }

    /// As the tenants' OIDC code reads a provider's settings.
    pub fn oidc(&self) -> crate::identity::OidcConfig {
        crate::identity::OidcConfig {
            issuer: self.issuer.trim_end_matches('/').to_owned(),
            client_id: self.client_id.clone(),
            groups_claim: "groups".into(),
        }
    }
}

/// A platform user's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformUserStatus {
    Active,
    Disabled,
}

impl PlatformUserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    fn parse(raw: &str) -> Self {
        if raw == "active" {
            Self::Active
        } else {
            Self::Disabled
        }
    }
}

/// A person who runs the platform.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlatformUser {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub issuer: String,
    pub subject: String,
    pub email: String,
    /// `platform_admin` or `operator`.
    pub role: Role,
    pub status: PlatformUserStatus,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The platform user an access token's `sub` names, if it names one.
pub fn user_of_subject(sub: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::try_parse(sub.strip_prefix(SUBJECT_PREFIX)?).ok()
}

/// Does `raw` look like a platform refresh token (it says nothing about validity)?
pub fn is_refresh_token(raw: &str) -> bool {
    raw.strip_prefix(REFRESH_PREFIX)
        .is_some_and(|rest| rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_tokens_have_their_shapes() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(user_of_subject(&format!("{SUBJECT_PREFIX}{id}")), Some(id));
        assert_eq!(user_of_subject("alice"), None);
        assert_eq!(user_of_subject(&id.to_string()), None);
        assert!(is_refresh_token(&format!("mpr_{}", "a".repeat(43))));
        assert!(!is_refresh_token(&format!("mrt_{}", "a".repeat(43))));
        assert!(!is_refresh_token("mpr_short"));
    }
}
