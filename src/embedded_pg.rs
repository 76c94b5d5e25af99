//! The embedded PostgreSQL: a private cluster from the system's PostgreSQL binaries
//! in a directory of ours, listening on 127.0.0.1 only, for `meridian dev` and the
//! test harness.
//!
//! Nothing is left running: the server runs under a small `sh` supervisor whose
//! stdin is a pipe from this process. When this process exits — normally, by
//! panic, or killed with SIGKILL — the pipe closes, the supervisor's `read`
//! returns and it fast-stops the server. `initdb` refuses to run as root, so as
//! root the cluster belongs to, and runs as, the `postgres` user (via `runuser`).
//!
//! For speed the cluster runs with `fsync=off` and `full_page_writes=off`: it is
//! for development and tests, never for data anyone needs after a power cut.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "PostgreSQL server binaries not found (initdb/postgres); install them with `apt-get install postgresql` (Debian package postgresql-15)"
    )]
    BinariesMissing,
    #[error("embedded PostgreSQL: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("embedded PostgreSQL: {0}")]
    Failed(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

pub struct EmbeddedPg {
    port: u16,
    password: String,
    dir: PathBuf,
    supervisor: Option<Child>,
}

struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// PATH first, then `pg_config --bindir`, then Debian's versioned directories.
    fn find() -> Result<Self, EmbeddedPgError> {
        let has_all = |dir: &Path| {
            ["initdb", "postgres", "pg_isready"]
                .iter()
                .all(|b| dir.join(b).is_file())
        };
        let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
        let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        debian.sort_by_key(|p| std::cmp::Reverse(version_of(p)));
        candidates.extend(debian);
        candidates
            .into_iter()
            .find(|dir| has_all(dir))
            .map(|dir| Self { dir })
            .ok_or(EmbeddedPgError::BinariesMissing)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn version_of(bin_dir: &Path) -> u32 {
    bin_dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A command run as the cluster's owner: ourselves, or `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// As root: hand `path` to the postgres user.
fn give_to_owner(path: &Path) -> Result<(), EmbeddedPgError> {
    if !running_as_root() {
        return Ok(());
    }
    let uid_gid = |flag: &str| -> Result<u32, EmbeddedPgError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(io("running `id`"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                EmbeddedPgError::Failed(
                    "running as root needs a `postgres` user (Debian package postgresql)".into(),
                )
            })
    };
    std::os::unix::fs::chown(path, Some(uid_gid("-u")?), Some(uid_gid("-g")?))
        .map_err(io(format!("chown {}", path.display())))
}

fn random_password() -> Result<String, EmbeddedPgError> {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EmbeddedPgError::Failed("no system randomness".into()))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

fn free_port() -> Result<u16, EmbeddedPgError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port())
}

impl EmbeddedPg {
    /// Creates the cluster in `dir/data` on first use (re-uses it after), starts it
    /// on a free loopback port and waits until it accepts connections.
    pub fn start(dir: &Path) -> Result<EmbeddedPg, EmbeddedPgError> {
        let bins = Binaries::find()?;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        // The server and initdb run with other working directories: absolute paths only.
        let dir =
            &std::fs::canonicalize(dir).map_err(io(format!("resolving {}", dir.display())))?;
        // postgres must be able to reach its directories through this one.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(io(format!("chmod {}", dir.display())))?;
        give_to_owner(dir)?;
        let data = dir.join("data");
        let password_file = dir.join("superuser.password");
        if !data.join("PG_VERSION").exists() {
            Self::init(&bins, dir, &data, &password_file)?;
        }
        let password = std::fs::read_to_string(&password_file)
            .map_err(io(format!("reading {}", password_file.display())))?
            .trim()
            .to_owned();
        let run = dir.join("run");
        std::fs::create_dir_all(&run).map_err(io("creating the socket directory"))?;
        give_to_owner(&run)?;
        let port = free_port()?;
        let supervisor = Self::spawn_server(&bins, dir, &data, &run, port)?;
        let mut pg = EmbeddedPg {
            port,
            password,
            dir: dir.to_owned(),
            supervisor: Some(supervisor),
        };
        pg.wait_ready(&bins)?;
        Ok(pg)
    }

    fn init(
        bins: &Binaries,
        dir: &Path,
        data: &Path,
        password_file: &Path,
    ) -> Result<(), EmbeddedPgError> {
        let _ = std::fs::remove_dir_all(data); // a half-made cluster from an interrupted initdb
        let password = random_password()?;
        let mut file =
            std::fs::File::create(password_file).map_err(io("writing the superuser password"))?;
        file.write_all(password.as_bytes())
            .map_err(io("writing the superuser password"))?;
        std::fs::set_permissions(
            password_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(io("chmod the password file"))?;
        give_to_owner(password_file)?;
        let output = as_owner(&bins.path("initdb"))
            .arg("-D")
            .arg(data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", password_file.display()))
            .current_dir(dir)
            .output()
            .map_err(io("running initdb"))?;
        if !output.status.success() {
            return Err(EmbeddedPgError::Failed(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    fn spawn_server(
        bins: &Binaries,
        dir: &Path,
        data: &Path,
        run: &Path,
        port: u16,
    ) -> Result<Child, EmbeddedPgError> {
        let settings = [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={port}"),
            format!("unix_socket_directories={}", run.display()),
            "fsync=off".into(),
            "synchronous_commit=off".into(),
            "full_page_writes=off".into(),
            "max_connections=300".into(),
            "shared_buffers=128MB".into(),
            "default_transaction_isolation=serializable".into(),
        ];
        let options: String = settings.iter().map(|s| format!(" -c '{s}'")).collect();
        let log = dir.join("postgres.log");
        // The supervisor: start postgres, wait for our end of the pipe to close,
        // then fast-stop (SIGINT) and wait for it.
        let script = format!(
            "'{postgres}' -D '{data}'{options} >>'{log}' 2>&1 & pid=$!; read _ignored; kill -INT $pid 2>/dev/null; wait $pid",
            postgres = bins.path("postgres").display(),
            data = data.display(),
            log = log.display(),
        );
        if !log.exists() {
            std::fs::File::create(&log).map_err(io("creating postgres.log"))?;
            give_to_owner(&log)?;
        }
        as_owner(Path::new("sh"))
            .args(["-c", &script])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting postgres"))
    }

    fn wait_ready(&mut self, bins: &Binaries) -> Result<(), EmbeddedPgError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bins.path("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            let exited = self
                .supervisor
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                return Err(EmbeddedPgError::Failed(format!(
                    "the server did not start; last lines of {}:\n{}",
                    self.dir.join("postgres.log").display(),
                    self.log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for the superuser on database `db` (psql and tokio-postgres accept it).
    pub fn superuser_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Fast shutdown; waits up to 10 s, then kills the supervisor.
    pub fn stop(mut self) -> Result<(), EmbeddedPgError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), EmbeddedPgError> {
        let Some(mut child) = self.supervisor.take() else {
            return Ok(());
        };
        drop(child.stdin.take()); // closes the pipe: the supervisor stops postgres
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child
                .try_wait()
                .map_err(io("waiting for postgres"))?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(EmbeddedPgError::Failed(
            "postgres did not stop within 10 s".into(),
        ))
    }
}

impl Drop for EmbeddedPg {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
