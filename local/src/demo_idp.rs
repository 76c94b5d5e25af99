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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `port` accepts connections, or the supervised server exits.
fn wait_listening(child: &mut Child, port: u16, what: &str, log: &Path) -> anyhow::Result<()> {
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
fn log_file(log: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))
}

/// Stops a supervised server, waiting up to `timeout`, then kills its group.
fn stop_supervised(child: &mut Child, timeout: Duration) {
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

/// The throwaway OpenLDAP.
pub struct DemoLdap {
    child: Option<Child>,
    dir: PathBuf,
    pub url: String,
    pub service_password: String,
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// `command` as `nobody` when we are root (slapd must not run as root), else as we are.
fn unprivileged(program: &str) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

/// `Err` with the one line saying what to install, after trying to install it
/// (`packages`: root with apt-get only).
fn require_slapd() -> anyhow::Result<()> {
    let present = || {
        ["slapd", "slapadd"]
            .iter()
            .all(|b| Path::new("/usr/sbin").join(b).exists())
    };
    if present() {
        return Ok(());
    }
    match crate::packages::install(&["slapd", "ldap-utils"]) {
        Ok(()) if present() => Ok(()),
        Ok(()) => bail!("slapd is not installed (apt-get install slapd ldap-utils)"),
        Err(why) => bail!("slapd is not installed (apt-get install slapd ldap-utils; {why})"),
    }
}

/// The `cn=config` LDIF of a throwaway instance in `dir` (suffix `SUFFIX`, root
/// `ADMIN_DN` with `root_pw`); also the api tests' (`tests/api/slapd.rs`).
pub fn config_ldif(dir: &Path, root_pw: &str) -> String {
    let schema = |name: &str| format!("include: file:///etc/ldap/schema/{name}.ldif\n\n");
    format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {pid}\n\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
         olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
         {core}{cosine}{inet}{nis}\
         dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\n\n\
         dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\n\
         olcDatabase: {{0}}config\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcSuffix: {SUFFIX}\n\
         olcRootDN: {ADMIN_DN}\nolcRootPW: {root_pw}\nolcDbDirectory: {db}\n\
         olcDbMaxSize: 104857600\n",
        pid = dir.join("slapd.pid").display(),
        core = schema("core"),
        cosine = schema("cosine"),
        inet = schema("inetorgperson"),
        nis = schema("nis"),
        db = dir.join("db").display(),
    )
}

/// The base entries, the service account, the people and their groups.
fn data_ldif(service_password: &str, users: &[DemoUser]) -> String {
    let mut out = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: meridian\n\
         o: Meridian\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: service\nuserPassword: {service_password}\n\n"
    );
    for u in users {
        out += &format!(
            "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
             sn: {uid}\nmail: {email}\nuserPassword: {pw}\n\n",
            uid = u.uid,
            email = u.email,
            pw = u.password
        );
    }
    let mut groups: Vec<&str> = users
        .iter()
        .flat_map(|u| u.groups.iter().copied())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        out += &format!("dn: cn={group},{GROUPS}\nobjectClass: groupOfNames\ncn: {group}\n");
        for u in users.iter().filter(|u| u.groups.contains(&group)) {
            out += &format!("member: uid={},{PEOPLE}\n", u.uid);
        }
        out += "\n";
    }
    out
}

impl DemoLdap {
    /// Builds the directory in a fresh temp dir (owned by `nobody`, which must
    /// reach it: the state dir may sit under a private home) and starts slapd.
    pub fn start(users: &[DemoUser]) -> anyhow::Result<Self> {
        require_slapd()?;
        let dir = std::env::temp_dir().join(format!("meridian-demo-ldap-{}", uuid::Uuid::new_v4()));
        let mut ldap = DemoLdap {
            child: None,
            dir: dir.clone(),
            url: String::new(),
            service_password: crate::dev::random_alphanumeric(16)?,
        };
        std::fs::create_dir_all(dir.join("slapd.d"))?;
        std::fs::create_dir_all(dir.join("db"))?;
        // The root DN's password is never used: a random one nobody sees.
        let root_pw = crate::dev::random_alphanumeric(24)?;
        std::fs::write(dir.join("config.ldif"), config_ldif(&dir, &root_pw))?;
        std::fs::write(
            dir.join("data.ldif"),
            data_ldif(&ldap.service_password, users),
        )?;
        if nix::unistd::geteuid().is_root() {
            run(Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(&dir))?;
        }
        for (db, file) in [("0", "config.ldif"), ("1", "data.ldif")] {
            run(unprivileged("slapadd")
                .args(["-n", db, "-F"])
                .arg(dir.join("slapd.d"))
                .arg("-l")
                .arg(dir.join(file)))?;
        }
        let port = free_port()?;
        ldap.url = format!("ldap://127.0.0.1:{port}");
        let log = dir.join("slapd.log");
        let (sh, server) = if nix::unistd::geteuid().is_root() {
            (Command::new("/bin/sh"), "runuser")
        } else {
            (Command::new("/bin/sh"), "slapd")
        };
        let mut command = supervisor::command(sh, "TERM", &log, server);
        if server == "runuser" {
            command.args(["-u", "nobody", "--", "slapd"]);
        }
        let child = command
            .stderr(log_file(&log)?)
            .args(["-d", "0", "-F"])
            .arg(dir.join("slapd.d"))
            .args(["-h", &format!("{}/", ldap.url)])
            .spawn()
            .context("starting slapd")?;
        let child = ldap.child.insert(child);
        wait_listening(child, port, "slapd", &log)?;
        Ok(ldap)
    }
}

impl Drop for DemoLdap {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_supervised(&mut child, Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The OIDC mock.
pub struct DemoOidc {
    child: Option<Child>,
    pub issuer: String,
}

/// The mock's executable in `venv`, installed there on first use.
fn oidc_mock_bin(venv: &Path) -> anyhow::Result<PathBuf> {
    let bin = venv.join("bin/oidc-provider-mock");
    if bin.exists() {
        return Ok(bin);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        bail!(
            "cannot make a Python venv in {} (install python3 and python3-venv)",
            venv.display()
        );
    }
    eprintln!("installing {OIDC_MOCK_PIN} into {}", venv.display());
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--timeout", "20", OIDC_MOCK_PIN])
        .status()
        .is_ok_and(|s| s.success());
    if !installed || !bin.exists() {
        bail!("cannot install {OIDC_MOCK_PIN} (pip install needs PyPI and Python 3.10+)");
    }
    Ok(bin)
}

impl DemoOidc {
    /// Starts the mock with `users`' claims; its venv is `venv`.
    pub fn start(venv: &Path, users: &[DemoUser]) -> anyhow::Result<Self> {
        let bin = oidc_mock_bin(venv)?;
        let port = free_port()?;
        let log = venv.with_extension("log");
        let mut command = supervisor::command(Command::new("/bin/sh"), "TERM", &log, &bin);
        command.stderr(log_file(&log)?);
        command.args(["-p", &port.to_string(), "-H", "127.0.0.1"]);
        for u in users {
            let claims = serde_json::json!({"sub": u.uid, "email": u.email, "groups": u.groups});
            command.args(["--user-claims", &claims.to_string()]);
        }
        let mut oidc = DemoOidc {
            child: Some(command.spawn().context("starting oidc-provider-mock")?),
            issuer: format!("http://127.0.0.1:{port}"),
        };
        if let Some(child) = oidc.child.as_mut() {
            wait_listening(child, port, "oidc-provider-mock", &log)?;
        }
        Ok(oidc)
    }
}

impl Drop for DemoOidc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_supervised(&mut child, Duration::from_secs(5));
        }
    }
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
        let pins = include_str!("../../tests/api/pytools.txt");
        assert!(pins.lines().any(|l| l == OIDC_MOCK_PIN), "{pins}");
    }

    #[test]
    fn groups_list_their_members() {
        let users = demo_users().unwrap();
        let ldif = data_ldif("pw", &users);
        assert!(ldif.contains(&format!(
            "dn: cn=engineering,{GROUPS}\nobjectClass: groupOfNames\ncn: engineering\n\
             member: uid=alice,{PEOPLE}\n\n"
        )));
        assert!(!ldif.contains("cn=,"), "carol's empty groups make no group");
        assert_ne!(users[0].password, users[1].password);
    }
}
