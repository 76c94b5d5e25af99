//! The rules a provider's settings must follow before they are stored: one-line
//! bounded text, absolute URLs of the allowed schemes, lower-cased e-mail
//! domains, tenant roles in mappings. Failures are validation errors naming the
//! body's field.

use super::{LdapConfig, OidcConfig, RoleMapping};
use crate::auth::Role;
use crate::error::ApiError;
use crate::validate;

/// Field names in errors are the body's, so a client knows which to fix.
fn bounded(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = validate::text(field, value, max)?;
    if value.contains(['\n', '\r', '\t']) {
        return Err(ApiError::validation(format!("`{field}` must be one line")));
    }
    Ok(value)
}

/// An `http[s]` URL as the outbound client parses it (`outbound::url::parse`,
/// the SSRF-safe rules webhooks use): what is stored is what requests go to, so
/// a host that parser refuses (numeric-looking names such as `2130706433`,
/// user info, a bad port) is refused here, not at sign-in. Loopback addresses
/// parse; whether they may be reached is the client's `allow_loopback` (dev and
/// tests only), decided per request.
fn http_url(field: &str, raw: &str) -> Result<String, ApiError> {
    let value = bounded(field, raw, 2048)?;
    crate::outbound::url::parse(&value)
        .map_err(|why| ApiError::validation(format!("`{field}`: {why}")))?;
    Ok(value)
}

/// `ldap://host[:port][/]` or `ldaps://…`: the host and port read by the same
/// parser (`ldap::connect` parses them so again before connecting).
fn ldap_url(field: &str, raw: &str) -> Result<String, ApiError> {
    let value = bounded(field, raw, 2048)?;
    let refused = |why: &str| ApiError::validation(format!("`{field}`: {why}"));
    let rest = value
        .strip_prefix("ldap://")
        .or_else(|| value.strip_prefix("ldaps://"))
        .ok_or_else(|| refused("the URL must start with ldap:// or ldaps://"))?;
    let parsed = crate::outbound::url::parse(&format!("http://{rest}")).map_err(|w| refused(&w))?;
    if parsed.path != "/" {
        return Err(refused("the URL must name only a host and port"));
    }
    Ok(value)
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
        issuer: http_url("oidc.issuer", &c.issuer)?
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
        url: ldap_url("ldap.url", &c.url)?,
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
                    "`role_mappings`: `role` must be one of \
                     owner, admin, member, viewer, compliance",
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
        .map(|u| http_url("redirect_uris", u))
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
    fn urls_and_domains_are_checked() {
        assert!(http_url("u", "https://idp.example/realm").is_ok());
        assert!(
            http_url("u", "http://127.0.0.1:8080").is_ok(),
            "loopback parses"
        );
        for bad in [
            "idp.example",
            "ftp://idp.example",
            "https://",
            "https://u@idp.example",
            "https://idp.example/#x",
            "https://idp.example/a b",
        ] {
            assert!(http_url("u", bad).is_err(), "{bad}");
        }
        assert!(ldap_url("u", "ldaps://dir.example:636").is_ok());
        assert!(ldap_url("u", "ldap://127.0.0.1:3890/").is_ok());
        for bad in [
            "http://dir.example",
            "ldap://dir.example/ou=x",
            "ldap://2130706433",
        ] {
            assert!(ldap_url("u", bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_domains(&["Example.COM".into(), "example.com".into()]).unwrap(),
            ["example.com"]
        );
        assert!(check_domains(&["*.example.com".into()]).is_err());
    }

    /// The issuer is parsed by the outbound client's parser (issue 14): hosts
    /// it would refuse at sign-in (numeric-looking names that some resolvers
    /// read as an address, a port out of range, a bad name) are refused when
    /// stored. The duplicate parser accepted them all.
    #[test]
    fn the_issuer_follows_the_outbound_url_rules() {
        let oidc = |issuer: &str| OidcConfig {
            issuer: issuer.into(),
            client_id: "meridian".into(),
            groups_claim: "groups".into(),
        };
        for bad in [
            "http://2130706433",
            "http://0x7f.1/realm",
            "http://idp.example:99999",
            "http://exa_mple.com",
        ] {
            assert!(check_oidc(&oidc(bad)).is_err(), "{bad}");
        }
        let ok = check_oidc(&oidc("http://127.0.0.1:8080/realm/")).unwrap();
        assert_eq!(ok.issuer, "http://127.0.0.1:8080/realm");
    }
}
