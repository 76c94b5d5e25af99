//! A real OpenLDAP for the sign-in tests (recipe: /work/shared/FIXTURES.md).
//! Each `Slapd::start` builds a throwaway `cn=config` and directory in a temp
//! dir owned by `nobody` (`slapadd -n 0`, then `-n 1`), runs `slapd` in the
//! foreground on a free loopback port as `nobody`, and waits until it accepts
//! connections. Drop sends SIGTERM to that PID and waits for it to exit (slapd
//! takes 1–3 s). `.ci/run` installs `slapd ldap-utils`; without them the tests
//! that need a directory say so and skip, unless `MERIDIAN_REQUIRE_SLAPD` is set.

use crate::helpers::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = meridian_local::demo_idp::SUFFIX;
pub const ADMIN_DN: &str = meridian_local::demo_idp::ADMIN_DN;
pub const ADMIN_PW: &str = "admin-secret";
pub const SERVICE_DN: &str = "cn=service,dc=meridian,dc=test";
pub const SERVICE_PW: &str = "service-secret";
pub const PEOPLE: &str = "ou=people,dc=meridian,dc=test";

pub struct Slapd {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

fn slappasswd(secret: &str) -> String {
    let out = Command::new("slappasswd")
        .args(["-s", secret])
        .output()
        .expect("slappasswd");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The instance's `cn=config`: `meridian dev --identity`'s (`demo_idp`), with
/// this fixture's known root password (`modify` binds as the root DN).
fn config_ldif(dir: &Path) -> String {
    meridian_local::demo_idp::config_ldif(dir, &slappasswd(ADMIN_PW))
}

/// A person `uid` with `password` in `ou=people`.
pub fn person(uid: &str, password: &str, email: &str) -> String {
    format!(
        "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
         mail: {email}\nuserPassword: {password}\n\n"
    )
}

/// A `groupOfNames` `cn` whose members are the given uids.
pub fn group(cn: &str, uids: &[&str]) -> String {
    let members: String = uids
        .iter()
        .map(|u| format!("member: uid={u},{PEOPLE}\n"))
        .collect();
    format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n")
}

fn base_ldif() -> String {
    format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: meridian\no: Meridian\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: service\nuserPassword: {SERVICE_PW}\n\n"
    )
}

/// Whether slapd can run here; `false` (after saying so) skips the test.
pub fn available() -> bool {
    let ok = Path::new("/usr/sbin/slapd").exists() && Path::new("/usr/sbin/slapadd").exists();
    if !ok {
        assert!(
            std::env::var_os("MERIDIAN_REQUIRE_SLAPD").is_none(),
            "MERIDIAN_REQUIRE_SLAPD is set but slapd is not installed"
        );
        eprintln!(
            "meridian tests: slapd not installed (apt-get install slapd ldap-utils): LDAP test SKIPPED"
        );
    }
    ok
}

impl Slapd {
    /// A directory holding the service account plus `entries` (LDIF).
    pub fn start(entries: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("meridian-slapd-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("slapd.d")).unwrap();
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("config.ldif"), config_ldif(&dir)).unwrap();
        std::fs::write(dir.join("data.ldif"), base_ldif() + entries).unwrap();
        run(Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(&dir));
        for (db, file) in [("0", "config.ldif"), ("1", "data.ldif")] {
            run(Command::new("runuser")
                .args(["-u", "nobody", "--", "slapadd", "-n", db, "-F"])
                .arg(dir.join("slapd.d"))
                .arg("-l")
                .arg(dir.join(file)));
        }
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let child = Command::new("runuser")
            .args(["-u", "nobody", "--", "slapd", "-d", "0", "-F"])
            .arg(dir.join("slapd.d"))
            .args(["-h", &format!("{url}/")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd");
        crate::helpers::wait_listening(port, Duration::from_secs(10), "slapd");
        Self { child, dir, url }
    }
}

impl Slapd {
    /// Applies `ldif` (changetype records) as the directory's admin.
    pub fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url, "-D", ADMIN_DN, "-w", ADMIN_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        // runuser forwards SIGTERM to slapd; wait for both to exit.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
