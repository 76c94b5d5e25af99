//! The demo OpenLDAP: a throwaway `cn=config` and directory in a temp dir owned
//! by `nobody` (`slapadd -n 0`, then `-n 1`), `slapd` in the foreground as
//! `nobody` under the supervisor; stopping waits for it (1–3 s after SIGTERM).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{
    ADMIN_DN, DemoUser, GROUPS, PEOPLE, SERVICE_DN, SUFFIX, free_port, log_file, stop_supervised,
    wait_listening,
};
use crate::supervisor;

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
pub(super) fn data_ldif(service_password: &str, users: &[DemoUser]) -> String {
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
