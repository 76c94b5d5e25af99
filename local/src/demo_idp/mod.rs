//! `meridian dev --identity`: demo identity providers for the README's sign-in
//! walk-through — a throwaway OpenLDAP (`slapd`, as `nobody` when we are root)
//! and the OIDC mock (PyPI `oidc-provider-mock`, in a venv under the state dir,
//! installed on first use), each on a free loopback port, with demo users whose
//! passwords are made per run and printed.
//!
//! Both run under `supervisor` (stopped when we exit, even by SIGKILL). Stopping
//! waits for slapd, which takes 1–3 s after SIGTERM (runuser forwards the
//! signal). The recipes are /work/shared/FIXTURES.md's, as in the tests'
//! fixtures (`tests/api/slapd.rs`, `tests/api/oidc.rs`): `config_ldif` is
//! shared with them; the data LDIF, the start/stop code and the mock's start
//! stay duplicated there (a few lines each; the tests' versions panic, these
//! answer errors, and they add `modify` and per-test people).

mod ldap;
mod oidc;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use ldap::{DemoLdap, config_ldif};
pub use oidc::DemoOidc;

use crate::supervisor;

/// The mock's pin; a unit test keeps it equal to `tests/api/pytools.txt`'s.
pub const OIDC_MOCK_PIN: &str = "oidc-provider-mock==0.3.4";
pub const SUFFIX: &str = "dc=meridian,dc=test";
pub const PEOPLE: &str = "ou=people,dc=meridian,dc=test";
pub const GROUPS: &str = "ou=groups,dc=meridian,dc=test";
pub const SERVICE_DN: &str = "cn=service,dc=meridian,dc=test";
pub const ADMIN_DN: &str = "cn=admin,dc=meridian,dc=test";

/// A demo person: in the directory (with `password`) and known to the OIDC
/// mock (which asks for no password: its form takes the `sub`).
#[derive(Clone, Debug)]
pub struct DemoUser {
    pub uid: &'static str,
    pub email: String,
    pub groups: &'static [&'static str],
    pub password: String,
}

/// alice (`engineering`), bob (`admins`), carol (no group: refused unless the
/// provider has a default role).
fn demo_users() -> anyhow::Result<Vec<DemoUser>> {
    let people: [(&str, &[&str]); 3] = [
        ("alice", &["engineering"]),
        ("bob", &["admins"]),
        ("carol", &[]),
    ];
    people
        .into_iter()
        .map(|(uid, groups)| {
            Ok(DemoUser {
                uid,
                email: format!("{uid}@example.com"),
                groups,
                password: crate::dev::random_alphanumeric(16)?,
            })
        })
        .collect()
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `port` accepts connections, or the supervised server exits.
pub(super) fn wait_listening(
    child: &mut Child,
    port: u16,
    what: &str,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let tail = || supervisor::log_since(log, 0);
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}): {}", tail().trim());
        }
        if Instant::now() >= deadline {
            bail!(
                "{what} did not listen on 127.0.0.1:{port}: {}",
                tail().trim()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The supervisor's own stderr ("Terminated" when it stops the server) goes to
/// the server's log, not to `meridian dev`'s terminal.
pub(super) fn log_file(log: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))
}

/// Stops a supervised server, waiting up to `timeout`, then kills its group.
pub(super) fn stop_supervised(child: &mut Child, timeout: Duration) {
    if supervisor::stop(child, timeout).unwrap_or(false) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait();
}

/// Both providers and the users they know; dropped, both stop.
pub struct DemoIdentity {
    pub users: Vec<DemoUser>,
    pub ldap: DemoLdap,
    pub oidc: DemoOidc,
}

impl DemoIdentity {
    /// Starts both; the mock's venv lives in `state_dir/oidc-mock`.
    pub fn start(state_dir: &Path) -> anyhow::Result<Self> {
        let users = demo_users()?;
        let ldap = DemoLdap::start(&users)?;
        let oidc = DemoOidc::start(&state_dir.join("oidc-mock"), &users)?;
        Ok(Self { users, ldap, oidc })
    }

    /// What `meridian dev --identity` prints: the `oidc`/`ldap` lines, the users,
    /// and the requests that give a tenant these providers.
    pub fn describe(&self) -> String {
        let mut out = format!("oidc {}\nldap {}\n", self.oidc.issuer, self.ldap.url);
        out += &format!(
            "ldap service {SERVICE_DN} password {} base {PEOPLE} groups {GROUPS}\n",
            self.ldap.service_password
        );
        for u in &self.users {
            out += &format!(
                "demo user {} password {} email {} groups [{}]\n",
                u.uid,
                u.password,
                u.email,
                u.groups.join(",")
            );
        }
        out
    }

    /// The `POST /v1/identity-providers` bodies for a tenant (`ldap`, `oidc`).
    pub fn provider_bodies(&self, redirect_uri: &str) -> [serde_json::Value; 2] {
        let mappings = serde_json::json!([
            {"group": "admins", "role": "admin"},
            {"group": "engineering", "role": "member"},
        ]);
        [
            serde_json::json!({
                "kind": "ldap", "name": "demo-ldap",
                "ldap": {"url": self.ldap.url, "bind_dn": SERVICE_DN, "base_dn": PEOPLE,
                         "group_base_dn": GROUPS},
                "secret": self.ldap.service_password,
                "role_mappings": mappings,
            }),
            serde_json::json!({
                "kind": "oidc", "name": "demo-oidc",
                "oidc": {"issuer": self.oidc.issuer, "client_id": "meridian"},
                "secret": "demo-client-secret",
                "role_mappings": mappings,
                "allowed_email_domains": ["example.com"],
                "redirect_uris": [redirect_uri],
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mock_pin_is_the_tests_pin() {
        let pins = include_str!("../../../tests/api/pytools.txt");
        assert!(pins.lines().any(|l| l == OIDC_MOCK_PIN), "{pins}");
    }

    #[test]
    fn groups_list_their_members() {
        let users = demo_users().unwrap();
        let ldif = ldap::data_ldif("pw", &users);
        assert!(ldif.contains(&format!(
            "dn: cn=engineering,{GROUPS}\nobjectClass: groupOfNames\ncn: engineering\n\
             member: uid=alice,{PEOPLE}\n\n"
        )));
        assert!(!ldif.contains("cn=,"), "carol's empty groups make no group");
        assert_ne!(users[0].password, users[1].password);
    }
}
