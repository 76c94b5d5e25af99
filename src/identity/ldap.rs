//! Talking to a tenant's LDAP directory (`ldap3`'s async API): connect with a
//! timeout to an address the SSRF rules allow, bind, search. Every operation
//! carries the provider's `timeout_ms`, so a directory that stops answering
//! holds a request for that long at most.
//!
//! The host of a tenant-supplied `ldap://` URL is resolved and vetted like a
//! webhook's (`outbound`: internal ranges refused, loopback only in dev/test),
//! and a plain `ldap://` connection goes to the vetted address itself.
//! `ldaps://` connects by name (TLS needs it for the certificate), after the
//! name was vetted: a DNS answer that changes between the two is the gap left.

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::LdapConfig;
use crate::outbound;

/// What went wrong, in words a tenant admin can act on (never the password).
#[derive(Debug, thiserror::Error)]
pub enum LdapFailure {
    #[error("{0}")]
    Refused(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the directory did not answer within {0} ms")]
    Timeout(u32),
    #[error("{0}")]
    Operation(String),
}

pub fn timeout(config: &LdapConfig) -> Duration {
    Duration::from_millis(u64::from(config.timeout_ms))
}

/// `ldap[s]://host[:port]` → (scheme, host, port).
fn split(url: &str) -> Result<(&str, &str, u16), LdapFailure> {
    let refused = || LdapFailure::Refused(format!("`{url}` is not an ldap:// or ldaps:// URL"));
    let (scheme, rest) = url.split_once("://").ok_or_else(refused)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let default = if scheme == "ldaps" { 636 } else { 389 };
    // A port is what follows the last `:` when that is all digits (an IPv6
    // literal's colons sit inside its brackets).
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse().map_err(|_| refused())?)
        }
        _ => (authority, default),
    };
    if host.is_empty() || !matches!(scheme, "ldap" | "ldaps") {
        return Err(refused());
    }
    Ok((scheme, host, port))
}

/// A connection, driven on this thread's runtime, to the directory of `config`.
pub async fn connect(client: &outbound::Client, config: &LdapConfig) -> Result<Ldap, LdapFailure> {
    let (scheme, host, port) = split(&config.url)?;
    let probe =
        outbound::url::parse(&format!("http://{host}:{port}/")).map_err(LdapFailure::Refused)?;
    let addr = client
        .vetted_address(&probe)
        .await
        .map_err(|e| LdapFailure::Refused(e.to_string()))?;
    let target = if scheme == "ldap" {
        format!("ldap://{addr}")
    } else {
        config.url.clone()
    };
    let settings = LdapConnSettings::new().set_conn_timeout(timeout(config));
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &target)
        .await
        .map_err(|e| match e {
            ldap3::LdapError::Timeout { .. } => LdapFailure::Timeout(config.timeout_ms),
            other => LdapFailure::Connect(other.to_string()),
        })?;
    ldap3::drive!(conn);
    Ok(ldap)
}

fn failed(config: &LdapConfig, what: &str) -> impl Fn(ldap3::LdapError) -> LdapFailure {
    let ms = config.timeout_ms;
    let what = what.to_owned();
    move |e| match e {
        ldap3::LdapError::Timeout { .. } => LdapFailure::Timeout(ms),
        other => LdapFailure::Operation(format!("{what}: {other}")),
    }
}

/// Simple bind; `Ok(false)` for wrong credentials (result code 49).
pub async fn bind(
    ldap: &mut Ldap,
    config: &LdapConfig,
    dn: &str,
    password: &str,
) -> Result<bool, LdapFailure> {
    // An empty password is an unauthenticated bind (RFC 4513 §5.1.2), which
    // "succeeds" without checking anything: never a sign-in.
    if password.is_empty() {
        return Ok(false);
    }
    let result = ldap
        .with_timeout(timeout(config))
        .simple_bind(dn, password)
        .await
        .map_err(failed(config, "bind"))?;
    match result.rc {
        0 => Ok(true),
        49 => Ok(false),
        rc => Err(LdapFailure::Operation(format!(
            "bind answered result code {rc} ({})",
            result.text
        ))),
    }
}

/// The entries under `base` matching `filter` (already escaped by the caller).
pub async fn search(
    ldap: &mut Ldap,
    config: &LdapConfig,
    base: &str,
    scope: Scope,
    filter: &str,
    attributes: Vec<&str>,
) -> Result<Vec<SearchEntry>, LdapFailure> {
    let (entries, _) = ldap
        .with_timeout(timeout(config))
        .search(base, scope, filter, attributes)
        .await
        .map_err(failed(config, "search"))?
        .success()
        .map_err(failed(config, "search"))?;
    Ok(entries.into_iter().map(SearchEntry::construct).collect())
}

/// A directory user whose password checked out.
#[derive(Debug)]
pub struct DirectoryUser {
    /// `entryUUID` when the directory has it (stable across renames), else the DN.
    pub subject: String,
    pub dn: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// The `cn` and the DN of every group listing the user.
    pub groups: Vec<String>,
}

fn first(entry: &SearchEntry, attribute: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .and_then(|(_, values)| values.first().cloned())
}

/// The entry for `username` under the base DN (as the service account), or
/// `None` when there is not exactly one. The username is escaped (RFC 4515):
/// `*)(uid=*` searches for that literal name.
pub async fn find_user(
    conn: &mut Ldap,
    config: &LdapConfig,
    username: &str,
) -> Result<Option<SearchEntry>, LdapFailure> {
    let filter = format!(
        "({}={})",
        config.username_attribute,
        ldap3::ldap_escape(username)
    );
    let mut entries = search(
        conn,
        config,
        &config.base_dn,
        Scope::Subtree,
        &filter,
        vec!["mail", "cn", "displayName", "entryUUID"],
    )
    .await?;
    Ok(if entries.len() == 1 {
        entries.pop()
    } else {
        None
    })
}

/// The groups (`cn` and DN) whose member attribute names `dn`.
pub async fn groups_of(
    conn: &mut Ldap,
    config: &LdapConfig,
    dn: &str,
) -> Result<Vec<String>, LdapFailure> {
    let base = config.group_base_dn.as_deref().unwrap_or(&config.base_dn);
    let filter = format!(
        "({}={})",
        config.group_member_attribute,
        ldap3::ldap_escape(dn)
    );
    let entries = search(conn, config, base, Scope::Subtree, &filter, vec!["cn"]).await?;
    let mut groups = Vec::new();
    for entry in entries {
        if let Some(cn) = first(&entry, "cn") {
            groups.push(cn);
        }
        groups.push(entry.dn);
    }
    Ok(groups)
}

/// Checks `username`'s password: service bind, search, bind as the user, then
/// (as the service account again) the user's groups. `Ok(None)`: no such user
/// or a wrong password, which the caller answers alike.
pub async fn authenticate(
    client: &outbound::Client,
    config: &LdapConfig,
    service_password: &str,
    username: &str,
    password: &str,
) -> Result<Option<DirectoryUser>, LdapFailure> {
    let mut conn = connect(client, config).await?;
    let result = authenticate_on(&mut conn, config, service_password, username, password).await;
    let _ = conn.unbind().await;
    result
}

async fn authenticate_on(
    conn: &mut Ldap,
    config: &LdapConfig,
    service_password: &str,
    username: &str,
    password: &str,
) -> Result<Option<DirectoryUser>, LdapFailure> {
    if !bind(conn, config, &config.bind_dn, service_password).await? {
        return Err(LdapFailure::Operation(
            "the directory refused the service account's credentials".into(),
        ));
    }
    let Some(entry) = find_user(conn, config, username).await? else {
        return Ok(None);
    };
    if !bind(conn, config, &entry.dn, password).await? {
        return Ok(None);
    }
    if !bind(conn, config, &config.bind_dn, service_password).await? {
        return Err(LdapFailure::Operation(
            "the directory refused the service account's credentials".into(),
        ));
    }
    let groups = groups_of(conn, config, &entry.dn).await?;
    Ok(Some(DirectoryUser {
        subject: first(&entry, "entryUUID").unwrap_or_else(|| entry.dn.clone()),
        email: first(&entry, "mail"),
        display_name: first(&entry, "displayName").or_else(|| first(&entry, "cn")),
        dn: entry.dn,
        groups,
    }))
}

/// The groups of the directory user `subject` (an `entryUUID`, or a DN for
/// directories without one), or `None` when the account is gone.
pub async fn recheck(
    client: &outbound::Client,
    config: &LdapConfig,
    service_password: &str,
    subject: &str,
) -> Result<Option<Vec<String>>, LdapFailure> {
    let mut conn = connect(client, config).await?;
    let result = recheck_on(&mut conn, config, service_password, subject).await;
    let _ = conn.unbind().await;
    result
}

async fn recheck_on(
    conn: &mut Ldap,
    config: &LdapConfig,
    service_password: &str,
    subject: &str,
) -> Result<Option<Vec<String>>, LdapFailure> {
    if !bind(conn, config, &config.bind_dn, service_password).await? {
        return Err(LdapFailure::Operation(
            "the directory refused the service account's credentials".into(),
        ));
    }
    let filter = format!("(entryUUID={})", ldap3::ldap_escape(subject));
    let mut found = search(
        conn,
        config,
        &config.base_dn,
        Scope::Subtree,
        &filter,
        vec!["1.1"],
    )
    .await
    // A subject that is a DN is not valid entryUUID syntax: look it up by DN.
    .unwrap_or_default();
    if found.is_empty() && subject.contains('=') {
        found = search(
            conn,
            config,
            subject,
            Scope::Base,
            "(objectClass=*)",
            vec!["1.1"],
        )
        .await
        .unwrap_or_default();
    }
    let [entry] = found.as_slice() else {
        return Ok(None);
    };
    Ok(Some(groups_of(conn, config, &entry.dn).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_host_and_port() {
        assert_eq!(
            split("ldap://127.0.0.1:3890").unwrap(),
            ("ldap", "127.0.0.1", 3890)
        );
        assert_eq!(
            split("ldaps://dir.example").unwrap(),
            ("ldaps", "dir.example", 636)
        );
        assert!(split("http://dir.example").is_err());
        assert!(split("ldap://:389").is_err());
    }
}
