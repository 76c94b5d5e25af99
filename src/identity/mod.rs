//! A tenant's identity providers (issue 14): what an OIDC or LDAP provider is
//! configured with, and the rules that input must follow before it is stored.
//!
//! - `config`: the settings of the provider's kind that are not secret, stored
//!   as JSON. The secret (the OIDC client secret, the LDAP service account's
//!   password) is a `Secret` on the way in and its own column at rest
//!   (`identity_providers.secret`), never returned and never logged, so the
//!   data-protection issue can encrypt that one column in place.
//! - `role_mappings`: a group (an OIDC `groups_claim` value, an LDAP group's `cn`
//!   or DN) → a tenant role; `default_role` for users in no mapped group (none:
//!   such users are refused). Mapping to `owner` or `compliance` is an owner's
//!   decision, like granting those roles (`store::owners::check_mapping`).
//! - `redirect_uris`: the only places a sign-in may send its answer (exact match).
//!
//! `checks` holds the rules input must follow, `store` the table's SQL,
//! `diagnose` the `/test` route's checks, `id_token` the OIDC id_token checks.

pub mod admit;
mod checks;
pub mod diagnose;
pub mod external;
pub mod id_token;
pub mod ldap;
pub mod oidc;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;

pub use checks::{
    check_default_role, check_domains, check_ldap, check_mappings, check_oidc, check_redirect_uris,
    check_secret,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Oidc,
    Ldap,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Ldap => "ldap",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "oidc" => Some(Self::Oidc),
            "ldap" => Some(Self::Ldap),
            _ => None,
        }
    }
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_username_attribute() -> String {
    "uid".into()
}

fn default_group_member_attribute() -> String {
    "member".into()
}

fn default_timeout_ms() -> u32 {
    5000
}

/// An OIDC provider (authorization code flow with PKCE).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL; discovery is read from `{issuer}/.well-known/openid-configuration`
    /// and the id_token's `iss` must equal it.
    pub issuer: String,
    pub client_id: String,
    /// The id_token claim listing the user's groups, matched against `role_mappings`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

/// An LDAP directory: users are searched under `base_dn` by `username_attribute`
/// (as the service account `bind_dn`), then bound as to check their password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// The service account that searches the directory.
    pub bind_dn: String,
    pub base_dn: String,
    /// Where groups are searched (entries whose `group_member_attribute` holds
    /// the user's DN); default: `base_dn`.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    #[serde(default = "default_username_attribute")]
    pub username_attribute: String,
    /// The attribute of a group entry that lists its members' DNs.
    #[serde(default = "default_group_member_attribute")]
    pub group_member_attribute: String,
    /// Connect and per-operation timeout.
    #[serde(default = "default_timeout_ms")]
    #[schema(minimum = 100, maximum = 30000)]
    pub timeout_ms: u32,
}

/// Members of `group` get `role`; the first matching mapping in the list wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub group: String,
    pub role: Role,
}

/// Roles that carry more than an admin's rights (see `store::owners`).
pub fn is_privileged(role: Role) -> bool {
    matches!(role, Role::Owner | Role::Compliance)
}

/// Does this mapping set (with its default role) hand out a privileged role?
pub fn grants_privileged(mappings: &[RoleMapping], default_role: Option<Role>) -> bool {
    mappings.iter().any(|m| is_privileged(m.role)) || default_role.is_some_and(is_privileged)
}

/// The role for a user in `groups`: the first mapping that names one of them,
/// else the default; `None`: the provider admits no such user.
pub fn role_for(
    mappings: &[RoleMapping],
    default_role: Option<Role>,
    groups: &[String],
) -> Option<Role> {
    mappings
        .iter()
        .find(|m| groups.iter().any(|g| g == &m.group))
        .map(|m| m.role)
        .or(default_role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_the_first_matching_group_or_the_default() {
        let mappings = vec![
            RoleMapping {
                group: "admins".into(),
                role: Role::Admin,
            },
            RoleMapping {
                group: "staff".into(),
                role: Role::Member,
            },
        ];
        let groups = |g: &[&str]| g.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            role_for(&mappings, None, &groups(&["staff", "admins"])),
            Some(Role::Admin)
        );
        assert_eq!(role_for(&mappings, None, &groups(&["other"])), None);
        assert_eq!(
            role_for(&mappings, Some(Role::Viewer), &groups(&[])),
            Some(Role::Viewer)
        );
        assert!(!grants_privileged(&mappings, Some(Role::Viewer)));
        assert!(grants_privileged(&mappings, Some(Role::Compliance)));
    }
}
