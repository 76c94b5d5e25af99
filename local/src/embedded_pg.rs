//! The embedded PostgreSQL: a private cluster from the system's PostgreSQL binaries
//! in a directory of ours (`data/`, `superuser.password`, `postgres.log`), listening
//! on 127.0.0.1 only, for `meridian dev` and the test harness.
//!
//! Nothing is left running: the server runs under `supervisor`, which fast-stops
//! it (SIGINT) when this process exits, however it exits. `initdb` refuses to run
//! as root, so as root the cluster belongs to, and runs as, the `postgres` user
//! (via `runuser`).
//!
//! For speed the cluster runs with `fsync=off`, `synchronous_commit=off` and
//! `full_page_writes=off`: it is for development and tests, never for data anyone
//! needs after a power cut.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::supervisor;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "PostgreSQL server binaries not found (initdb/postgres); install them with `apt-get \
            install postgresql` (Debian package postgresql-15)"
    )]
    BinariesMissing,
    #[error(
        "running as root, but there is no `postgres` user to own the cluster (it comes with the \
            Debian package postgresql)"
    )]
    NoPostgresUser,
    #[error(
        "the postgres user cannot reach {0} (a parent directory is closed to it, e.g. /root); use \
            a directory it can traverse"
    )]
    Unreachable(PathBuf),
    #[error("embedded PostgreSQL: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("initdb failed:\n{0}")]
    Initdb(String),
    #[error("PostgreSQL did not start ({reason}); last lines of {log}:\n{tail}")]
    StartFailed {
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error("PostgreSQL did not stop within 10 s; it was killed")]
    StopTimeout,
    #[error("no system randomness for the superuser password")]
    Randomness,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

/// A running cluster; stopped by `stop()`, on Drop, or when this process dies.
pub struct EmbeddedPg {
    port: u16,
    password: String,
    dir: PathBuf,
    /// Holds the write end of the supervisor's stdin: closing it stops the server.
    supervisor: Option<Child>,
}

const SETTINGS: [&str; 8] = [
    "listen_addresses=127.0.0.1",
    // TCP only: a socket path under a deep temp dir can exceed 107 bytes.
    "unix_socket_directories=",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
    "shared_buffers=128MB",
    "default_transaction_isolation=serializable",
];

/// Extra server configuration for one start: TLS and a pg_hba.conf of the
/// caller's (the database TLS tests; `start` uses none).
#[derive(Clone, Debug, Default)]
pub struct ServerExtras {
    /// `ssl = on` with this certificate chain and key, both PEM.
    pub tls: Option<(String, String)>,
    /// PEM CA that client certificates must chain to (`ssl_ca_file`), for `cert`
    /// authentication.
    pub client_ca_pem: Option<String>,
    /// The whole pg_hba.conf, replacing initdb's (e.g. `hostssl` lines only).
    pub hba: Option<String>,
}

impl ServerExtras {
    /// Writes the files into `dir` (owned by the server's user; the key 0600, as
    /// PostgreSQL demands) and returns the `-c` settings naming them.
    fn apply(&self, owner: Owner, dir: &Path) -> Result<Vec<String>, EmbeddedPgError> {
        let write = |name: &str, text: &str| -> Result<PathBuf, EmbeddedPgError> {
            let path = dir.join(name);
            let _ = fs::remove_file(&path);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(format!("writing {}", path.display())))?;
            file.write_all(text.as_bytes())
                .map_err(io(format!("writing {}", path.display())))?;
            owner.give(&path)?;
            Ok(path)
        };
        let mut settings = Vec::new();
        if let Some((cert, key)) = &self.tls {
            let cert = write("server.crt", cert)?;
            let key = write("server.key", key)?;
            settings.push("ssl=on".to_owned());
            settings.push(format!("ssl_cert_file={}", cert.display()));
            settings.push(format!("ssl_key_file={}", key.display()));
        }
        if let Some(ca) = &self.client_ca_pem {
            let ca = write("client-ca.crt", ca)?;
            settings.push(format!("ssl_ca_file={}", ca.display()));
        }
        if let Some(hba) = &self.hba {
            let hba = write("pg_hba.extra.conf", hba)?;
            settings.push(format!("hba_file={}", hba.display()));
        }
        Ok(settings)
    }
}

struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
    pg_isready: PathBuf,
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

impl Binaries {
    /// initdb and postgres from one directory, so their versions match: PATH,
    /// then `pg_config --bindir`, then Debian's newest /usr/lib/postgresql/*/bin.
    fn find() -> Result<Self, EmbeddedPgError> {
        let has_server = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
        let pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let mut debian: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .map(|entries| {
                let version = |n: &str| n.split('.').map(|p| p.parse().unwrap_or(0)).collect();
                entries
                    .flatten()
                    .map(|e| (version(&e.file_name().to_string_lossy()), e.path()))
                    .collect()
            })
            .unwrap_or_default();
        debian.sort();
        let dir = path_dirs()
            .into_iter()
            .chain(pg_config)
            .chain(debian.into_iter().rev().map(|(_, p)| p.join("bin")))
            .find(|d| has_server(d))
            .ok_or(EmbeddedPgError::BinariesMissing)?;
        let pg_isready = std::iter::once(dir.clone())
            .chain(path_dirs())
            .map(|d| d.join("pg_isready"))
            .find(|p| p.is_file())
            .ok_or(EmbeddedPgError::BinariesMissing)?;
        Ok(Self {
            initdb: dir.join("initdb"),
            postgres: dir.join("postgres"),
            pg_isready,
        })
    }
}

/// Who runs initdb and the server: we ourselves, or the `postgres` user when we
/// are root (which initdb refuses).
#[derive(Clone, Copy)]
enum Owner {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl Owner {
    fn detect() -> Result<Self, EmbeddedPgError> {
        // The second field of `Uid:` is the effective uid, what initdb checks.
        let euid = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            let line = s.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            line.split_whitespace().nth(1)?.parse::<u32>().ok()
        });
        if euid != Some(0) {
            return Ok(Owner::Me);
        }
        // The Debian package creates `postgres` as a local user: /etc/passwd has it.
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd
            .lines()
            .find_map(|line| {
                let mut fields = line.strip_prefix("postgres:")?.split(':').skip(1);
                let uid = fields.next()?.parse().ok()?;
                let gid = fields.next()?.parse().ok()?;
                Some(Owner::Postgres { uid, gid })
            })
            .ok_or(EmbeddedPgError::NoPostgresUser)
    }

    fn command(self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match self {
            Owner::Me => Command::new(program),
            Owner::Postgres { .. } => {
                let runuser = ["/usr/sbin/runuser", "/sbin/runuser"]
                    .into_iter()
                    .find(|p| Path::new(p).is_file())
                    .unwrap_or("runuser");
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            }
        }
    }

    fn give(self, path: &Path) -> Result<(), EmbeddedPgError> {
        match self {
            Owner::Me => Ok(()),
            Owner::Postgres { uid, gid } => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(io(format!("chown {}", path.display()))),
        }
    }
}

fn random_password() -> Result<String, EmbeddedPgError> {
    meridian::secret::alphanumeric(32).map_err(|_| EmbeddedPgError::Randomness)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A postmaster.pid naming a live process blocks start-up. A postgres may still be
/// shutting down after its owner died (restart right after Ctrl-C or kill): give
/// it time. After a crash the pid may since belong to an unrelated process (pids
/// are small and soon reused in containers): then the file is stale. A dead pid
/// postgres handles itself.
fn settle_pid_file(data: &Path) -> Result<(), EmbeddedPgError> {
    let file = data.join("postmaster.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Some(pid) = postmaster_pid(data) else {
            return Ok(());
        };
        match fs::read_to_string(format!("/proc/{pid}/comm")) {
            Err(_) => return Ok(()),
            Ok(comm) if !matches!(comm.trim(), "postgres" | "postmaster") => {
                return fs::remove_file(&file).map_err(io("removing a stale postmaster.pid"));
            }
            // Still running after the wait: postgres will say who holds the lock.
            Ok(_) if Instant::now() >= deadline => return Ok(()),
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The first line of postmaster.pid, which exists while the postmaster runs.
fn postmaster_pid(data: &Path) -> Option<i32> {
    let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

impl EmbeddedPg {
    /// Initialises `dir` (creating the cluster with initdb if `dir/data` does not
    /// exist yet; re-using it otherwise), and starts the server on 127.0.0.1 on a
    /// free TCP port. Blocking (std::process), fine to call from startup code or
    /// inside spawn_blocking.
    pub fn start(dir: &Path) -> Result<EmbeddedPg, EmbeddedPgError> {
        Self::start_with(dir, &ServerExtras::default())
    }

    /// `start` with the extra configuration of `extras` (TLS, pg_hba.conf).
    pub fn start_with(dir: &Path, extras: &ServerExtras) -> Result<EmbeddedPg, EmbeddedPgError> {
        let bins = match Binaries::find() {
            Err(EmbeddedPgError::BinariesMissing)
                if crate::packages::install(&["postgresql"]).is_ok() =>
            {
                Binaries::find()?
            }
            found => found?,
        };
        let owner = Owner::detect()?;
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        // initdb and the server run elsewhere: absolute paths only.
        let dir = fs::canonicalize(dir).map_err(io(format!("resolving {}", dir.display())))?;
        if let Owner::Postgres { .. } = owner {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .map_err(io(format!("chmod {}", dir.display())))?;
            owner.give(&dir)?;
            // Fail here, clearly, rather than with initdb's "permission denied".
            let reachable = (owner.command("/bin/sh"))
                .args(["-c", "test -w \"$1\"", "sh"])
                .arg(&dir)
                .status();
            if !reachable.is_ok_and(|s| s.success()) {
                return Err(EmbeddedPgError::Unreachable(dir));
            }
        }
        let data = dir.join("data");
        let password_file = dir.join("superuser.password");
        if !data.exists() {
            Self::init(&bins, owner, &dir, &password_file)?;
        }
        let password = fs::read_to_string(&password_file)
            .map_err(io(format!("reading {}", password_file.display())))?
            .trim()
            .to_owned();
        let extra_settings = extras.apply(owner, &dir)?;
        let log = dir.join("postgres.log");
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        owner.give(&log)?;
        settle_pid_file(&data)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(io("finding a free port"))?
                .port();
            let log_offset = log_file.metadata().map(|m| m.len()).unwrap_or(0);
            let stderr = log_file.try_clone().map_err(io("sharing postgres.log"))?;
            let mut cmd =
                supervisor::command(owner.command("/bin/sh"), "INT", &log, &bins.postgres);
            cmd.arg("-D")
                .arg(&data)
                .args(["-c", &format!("port={port}")]);
            for setting in SETTINGS
                .iter()
                .copied()
                .chain(extra_settings.iter().map(String::as_str))
            {
                cmd.args(["-c", setting]);
            }
            let supervisor = cmd
                .current_dir(&dir)
                .stderr(stderr)
                .spawn()
                .map_err(io("starting postgres"))?;
            let mut pg = EmbeddedPg {
                port,
                password: password.clone(),
                dir: dir.clone(),
                supervisor: Some(supervisor),
            };
            let Err(reason) = pg.wait_ready(&bins.pg_isready, &data) else {
                return Ok(pg);
            };
            drop(pg);
            // Someone else may take the port between our probe and postgres's bind.
            if attempts < 3
                && crate::supervisor::log_since(&log, log_offset).contains("Address already in use")
            {
                continue;
            }
            let text = crate::supervisor::log_since(&log, 0);
            let lines: Vec<&str> = text.lines().collect();
            return Err(EmbeddedPgError::StartFailed {
                reason,
                tail: lines[lines.len().saturating_sub(20)..].join("\n"),
                log,
            });
        }
    }

    fn init(
        bins: &Binaries,
        owner: Owner,
        dir: &Path,
        password_file: &Path,
    ) -> Result<(), EmbeddedPgError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(password_file)
            .map_err(io("writing the superuser password"))?;
        file.write_all(random_password()?.as_bytes())
            .map_err(io("writing the superuser password"))?;
        fs::set_permissions(password_file, fs::Permissions::from_mode(0o600))
            .map_err(io("chmod the superuser password file"))?;
        owner.give(password_file)?;
        // Built aside and renamed when complete, so an existing `data` is always a
        // whole cluster, even after a crash during initdb.
        let staging = dir.join("data.initdb");
        let mut failure = String::new();
        for locale in ["--locale=C.UTF-8", "--no-locale"] {
            let _ = fs::remove_dir_all(&staging);
            let out = owner
                .command(&bins.initdb)
                .arg("-D")
                .arg(&staging)
                .args(["-U", "postgres", "--auth=scram-sha-256", "--encoding=UTF8"])
                .arg(locale)
                .arg(format!("--pwfile={}", password_file.display()))
                .current_dir(dir)
                .output()
                .map_err(io("running initdb"))?;
            if out.status.success() {
                return fs::rename(&staging, dir.join("data"))
                    .map_err(io("moving the new cluster into place"));
            }
            failure = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(EmbeddedPgError::Initdb(failure))
    }

    fn wait_ready(&mut self, pg_isready: &Path, data: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = self.port.to_string();
        loop {
            if let Some(child) = self.supervisor.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("the server exited: {status}"));
            }
            // The pid file's port tells it is our postmaster that pg_isready reaches.
            let ours = fs::read_to_string(data.join("postmaster.pid"))
                .is_ok_and(|t| t.lines().nth(3).map(str::trim) == Some(port.as_str()));
            let ready = ours
                && Command::new(pg_isready)
                    .args(["-q", "-h", "127.0.0.1", "-p", &port])
                    .status()
                    .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("not accepting connections after 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL for the cluster's superuser (a postgres:// URL that psql and
    /// tokio-postgres accept), for database `db`.
    pub fn superuser_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{}",
            percent_encode(&self.password),
            self.port,
            percent_encode(db)
        )
    }

    /// Stops the server (fast shutdown) and waits for it to exit. Also done on Drop.
    pub fn stop(mut self) -> Result<(), EmbeddedPgError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), EmbeddedPgError> {
        let Some(mut child) = self.supervisor.take() else {
            return Ok(());
        };
        if supervisor::stop(&mut child, Duration::from_secs(10))
            .map_err(io("waiting for postgres"))?
        {
            return Ok(());
        }
        // Fast shutdown hung: immediate shutdown (SIGQUIT) of the postmaster.
        if let Some(pid) = postmaster_pid(&self.dir.join("data")) {
            use nix::sys::signal::{Signal, kill};
            let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGQUIT);
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(EmbeddedPgError::StopTimeout)
    }
}

impl Drop for EmbeddedPg {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select_one(pg: &EmbeddedPg) -> String {
        let out = Command::new("psql")
            .arg(pg.superuser_url("postgres"))
            .args(["-tAc", "select 1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn starts_stops_and_restarts_on_the_same_dir() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root =
            std::env::temp_dir().join(format!("meridian-epg-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&root).unwrap();

        let pg = EmbeddedPg::start(&root.join("a")).unwrap();
        assert_eq!(select_one(&pg), "1");
        let port = pg.port();
        pg.stop().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

        let again = EmbeddedPg::start(&root.join("a")).unwrap();
        // A second cluster at the same time, as the test harness may have.
        let other = EmbeddedPg::start(&root.join("b")).unwrap();
        assert_ne!(again.port(), other.port());
        assert_eq!(select_one(&again), "1");
        assert_eq!(select_one(&other), "1");
        drop(again);
        drop(other);
        fs::remove_dir_all(&root).unwrap();
    }
}
