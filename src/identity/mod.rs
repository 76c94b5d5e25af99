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
//! `store` holds the table's SQL, `diagnose` the `/test` route's checks.

pub mod admit;
pub mod diagnose;
pub mod external;
pub mod ldap;
pub mod oidc;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::ApiError;
use crate::validate;

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

/// Field names in errors are the body's, so a client knows which to fix.
fn bounded(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = validate::text(field, value, max)?;
    if value.contains(['\n', '\r', '\t']) {
        return Err(ApiError::validation(format!("`{field}` must be one line")));
    }
    Ok(value)
}

/// An absolute URL with one of `schemes`, a host, no fragment and no spaces.
pub fn absolute_url(field: &str, raw: &str, schemes: &[&str]) -> Result<String, ApiError> {
    let value = bounded(field, raw, 2048)?;
    let refused = || {
        ApiError::validation(format!(
            "`{field}` must be an absolute {} URL with a host and no fragment",
            schemes.join(" or ")
        ))
    };
    let (scheme, rest) = value.split_once("://").ok_or_else(refused)?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let ok = schemes.contains(&scheme)
        && !host.is_empty()
        && !host.contains('@')
        && !value.contains('#')
        && !value.contains(char::is_whitespace);
    if ok { Ok(value) } else { Err(refused()) }
}

fn domain(raw: &str) -> Result<String, ApiError> {
    let d = raw.trim().to_ascii_lowercase();
    let ok = (3..=253).contains(&d.len())
        && d.contains('.')
        && !d.starts_with(['.', '-'])
        && !d.ends_with(['.', '-'])
        && d.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(d)
    } else {
        Err(ApiError::validation(format!(
            "`allowed_email_domains`: `{}` is not a domain name",
            raw.chars().take(64).collect::<String>()
        )))
    }
}

pub fn check_oidc(c: &OidcConfig) -> Result<OidcConfig, ApiError> {
    Ok(OidcConfig {
        issuer: absolute_url("oidc.issuer", &c.issuer, &["http", "https"])?
            .trim_end_matches('/')
            .to_owned(),
        client_id: bounded("oidc.client_id", &c.client_id, 256)?,
        groups_claim: bounded("oidc.groups_claim", &c.groups_claim, 128)?,
    })
}

pub fn check_ldap(c: &LdapConfig) -> Result<LdapConfig, ApiError> {
    if !(100..=30_000).contains(&c.timeout_ms) {
        return Err(ApiError::validation(
            "`ldap.timeout_ms` must be between 100 and 30000",
        ));
    }
    let attribute = |field, v: &str| {
        let v = bounded(field, v, 64)?;
        if v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            Ok(v)
        } else {
            Err(ApiError::validation(format!(
                "`{field}` must be an attribute name (letters, digits, dashes)"
            )))
        }
    };
    Ok(LdapConfig {
        url: absolute_url("ldap.url", &c.url, &["ldap", "ldaps"])?,
        bind_dn: bounded("ldap.bind_dn", &c.bind_dn, 1024)?,
        base_dn: bounded("ldap.base_dn", &c.base_dn, 1024)?,
        group_base_dn: c
            .group_base_dn
            .as_deref()
            .map(|dn| bounded("ldap.group_base_dn", dn, 1024))
            .transpose()?,
        username_attribute: attribute("ldap.username_attribute", &c.username_attribute)?,
        group_member_attribute: attribute(
            "ldap.group_member_attribute",
            &c.group_member_attribute,
        )?,
        timeout_ms: c.timeout_ms,
    })
}

pub fn check_mappings(mappings: &[RoleMapping]) -> Result<Vec<RoleMapping>, ApiError> {
    if mappings.len() > 100 {
        return Err(ApiError::validation(
            "`role_mappings` may list at most 100 mappings",
        ));
    }
    mappings
        .iter()
        .map(|m| {
            if !m.role.is_tenant_role() {
                return Err(ApiError::validation(
                    "`role_mappings`: `role` must be one of owner, admin, member, viewer, compliance",
                ));
            }
            Ok(RoleMapping {
                group: bounded("role_mappings.group", &m.group, 1024)?,
                role: m.role,
            })
        })
        .collect()
}

pub fn check_default_role(role: Option<Role>) -> Result<Option<Role>, ApiError> {
    match role {
        Some(r) if !r.is_tenant_role() => Err(ApiError::validation(
            "`default_role` must be one of owner, admin, member, viewer, compliance",
        )),
        other => Ok(other),
    }
}

pub fn check_domains(domains: &[String]) -> Result<Vec<String>, ApiError> {
    if domains.len() > 50 {
        return Err(ApiError::validation(
            "`allowed_email_domains` may list at most 50 domains",
        ));
    }
    let mut out = domains
        .iter()
        .map(|d| domain(d))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

pub fn check_redirect_uris(uris: &[String]) -> Result<Vec<String>, ApiError> {
    if uris.len() > 20 {
        return Err(ApiError::validation(
            "`redirect_uris` may list at most 20 URIs",
        ));
    }
    let mut out = uris
        .iter()
        .map(|u| absolute_url("redirect_uris", u, &["http", "https"]))
        .collect::<Result<Vec<_>, _>>()?;
    out.dedup();
    Ok(out)
}

pub fn check_secret(secret: &crate::secret::Secret) -> Result<(), ApiError> {
    let value = secret.expose();
    if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "`secret` must be 1–1024 characters without control characters",
        ));
    }
    Ok(())
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

    #[test]
    fn urls_and_domains_are_checked() {
        assert!(absolute_url("u", "https://idp.example/realm", &["https"]).is_ok());
        for bad in [
            "idp.example",
            "ftp://idp.example",
            "https://",
            "https://u@idp.example",
            "https://idp.example/#x",
            "https://idp.example/a b",
        ] {
            assert!(absolute_url("u", bad, &["http", "https"]).is_err(), "{bad}");
        }
        assert_eq!(
            check_domains(&["Example.COM".into(), "example.com".into()]).unwrap(),
            ["example.com"]
        );
        assert!(check_domains(&["*.example.com".into()]).is_err());
    }
}
