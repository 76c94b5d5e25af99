//! Runs PowerDNS on the generated files, in a directory of its own, under the
//! shared `supervisor` (so it dies with us, even on SIGKILL), and stops it on
//! `stop` or Drop. As root, PowerDNS drops to the `pdns` user after reading its
//! configuration; the zone it reads after that, so the directory is made theirs.

use std::fs::{self, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::config::{named_conf, pdns_conf};
use super::resolver::resolver;
use super::zone::{Plan, zone_file};
use super::{GeoDnsError, GeoDnsOptions, io};
use crate::supervisor;
use meridian::topology::Topology;

/// A running PowerDNS; stopped by `stop()`, on Drop, or when this process dies.
pub struct GeoDns {
    address: SocketAddr,
    dir: PathBuf,
    api_name: String,
    /// Holds the write end of the supervisor's stdin: closing it stops the server.
    supervisor: Option<Child>,
}

fn find_pdns() -> Result<PathBuf, GeoDnsError> {
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Debian installs it in sbin, which a non-root PATH may lack.
    find_pdns_in(
        path.into_iter()
            .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from)),
    )
}

fn find_pdns_in(dirs: impl IntoIterator<Item = PathBuf>) -> Result<PathBuf, GeoDnsError> {
    dirs.into_iter()
        .map(|d| d.join("pdns_server"))
        .find(|p| p.is_file())
        .ok_or(GeoDnsError::PdnsMissing)
}

/// The `pdns` user's ids when we are root (PowerDNS is told to drop to it).
fn pdns_user() -> Result<Option<(u32, u32)>, GeoDnsError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("pdns")
        .ok()
        .flatten()
        .ok_or(GeoDnsError::NoPdnsUser)?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

/// A port free for both UDP and TCP on `ip` right now.
fn free_port(ip: IpAddr) -> Result<u16, GeoDnsError> {
    for _ in 0..20 {
        let udp = UdpSocket::bind((ip, 0)).map_err(io("finding a free port"))?;
        let port = udp.local_addr().map_err(io("finding a free port"))?.port();
        if TcpListener::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(GeoDnsError::Io {
        context: "finding a free port".into(),
        source: std::io::Error::other("no port free for both UDP and TCP"),
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), GeoDnsError> {
    fs::write(path, text).map_err(io(format!("writing {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(io(format!("chmod {}", path.display())))
}

/// Fails clearly when the pdns user cannot read what it must (e.g. under /root).
fn check_reachable(zone_path: &Path) -> Result<(), GeoDnsError> {
    let Some(runuser) = ["/usr/sbin/runuser", "/sbin/runuser"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        return Ok(());
    };
    let readable = Command::new(runuser)
        .args(["-u", "pdns", "--", "test", "-r"])
        .arg(zone_path)
        .status();
    if readable.is_ok_and(|s| s.success()) {
        Ok(())
    } else {
        Err(GeoDnsError::Unreachable(zone_path.to_owned()))
    }
}

impl GeoDns {
    /// Writes PowerDNS's files for `topology` into `dir` (its own directory) and
    /// starts it; returns once it answers the API name (that first query is also
    /// the warm-up that starts the health checks). Blocking: call from start-up
    /// code or inside spawn_blocking.
    pub fn start(
        dir: &Path,
        topology: &Topology,
        opts: &GeoDnsOptions,
    ) -> Result<GeoDns, GeoDnsError> {
        let pdns = match find_pdns() {
            Err(GeoDnsError::PdnsMissing)
                if crate::packages::install(&["pdns-server", "pdns-backend-bind"]).is_ok() =>
            {
                find_pdns()?
            }
            found => found?,
        };
        let plan = Plan::new(topology, opts)?;
        let run_as = pdns_user()?;
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = fs::canonicalize(dir).map_err(io(format!("resolving {}", dir.display())))?;
        if dir.to_string_lossy().contains(['"', '\n']) {
            return Err(GeoDnsError::Options(format!(
                "directory {} has a quote or newline, which PowerDNS's files cannot hold",
                dir.display()
            )));
        }
        if let Some((uid, gid)) = run_as {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .map_err(io(format!("chmod {}", dir.display())))?;
            // PowerDNS writes its control socket here after dropping to pdns.
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io(format!("chown {}", dir.display())))?;
        }
        let zone_path = dir.join(format!("{}.zone", opts.zone));
        write_file(&zone_path, &zone_file(&plan, opts))?;
        write_file(&dir.join("named.conf"), &named_conf(&opts.zone, &zone_path))?;
        if run_as.is_some() {
            check_reachable(&zone_path)?;
        }
        let log = dir.join("pdns.log");
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = match opts.port {
                0 => free_port(opts.listen)?,
                port => port,
            };
            let listen = SocketAddr::new(opts.listen, port);
            // Otherwise whatever already answers there would pass `wait_ready`.
            if let Err(err) = UdpSocket::bind(listen) {
                return Err(GeoDnsError::Options(format!(
                    "{listen} (UDP) is not free: {err}; is another GeoDNS running? (--geodns-port)"
                )));
            }
            write_file(
                &dir.join("pdns.conf"),
                &pdns_conf(&dir, listen, run_as.is_some()),
            )?;
            let log_offset = log_file.metadata().map(|m| m.len()).unwrap_or(0);
            let stderr = log_file.try_clone().map_err(io("sharing pdns.log"))?;
            let child = supervisor::command(Command::new("/bin/sh"), "TERM", &log, &pdns)
                .arg(format!("--config-dir={}", dir.display()))
                .current_dir(&dir)
                .stderr(stderr)
                .spawn()
                .map_err(io("starting pdns_server"))?;
            let reachable_ip = match opts.listen {
                ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                ip => ip,
            };
            let mut geodns = GeoDns {
                address: SocketAddr::new(reachable_ip, port),
                dir: dir.clone(),
                api_name: opts.api_name.clone(),
                supervisor: Some(child),
            };
            let Err(reason) = geodns.wait_ready(Duration::from_secs(10)) else {
                return Ok(geodns);
            };
            drop(geodns);
            let text = crate::supervisor::log_since(&log, log_offset);
            if opts.port == 0 && attempts < 3 && text.contains("Address already in use") {
                continue;
            }
            if text.contains("Unable to load module") && text.contains("bind") {
                return Err(GeoDnsError::BindBackendMissing);
            }
            let lines: Vec<&str> = text.lines().collect();
            return Err(GeoDnsError::StartFailed {
                reason,
                tail: lines[lines.len().saturating_sub(20)..].join("\n"),
                log,
            });
        }
    }

    /// Polls with the API name's question until it is answered. Blocking: runs
    /// the lookups on a runtime of its own.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let step = Duration::from_millis(200);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting a runtime for the readiness check: {e}"))?;
        let resolver =
            runtime.block_on(async { resolver(self.address, self.address.ip(), step, 1) })?;
        loop {
            if let Some(child) = self.supervisor.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("pdns_server exited: {status}"));
            }
            let last = match runtime.block_on(resolver.lookup_ip(self.api_name.as_str())) {
                Ok(found) if found.iter().next().is_some() => return Ok(()),
                Ok(_) => format!("no A record for {}", self.api_name),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!("not answering after {timeout:?}: {last}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where it answers (UDP and TCP).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its directory: pdns.conf, named.conf, the zone, pdns.log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server and waits for it to exit. Also done on Drop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.supervisor.take() else {
            return;
        };
        if supervisor::stop(&mut child, Duration::from_secs(5)).unwrap_or(false) {
            return;
        }
        tracing::warn!("PowerDNS did not stop within 5 s; killing it");
        // The supervisor leads its own process group, which PowerDNS is in.
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.wait();
    }
}

impl Drop for GeoDns {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pdns_server_names_the_packages_to_install() {
        let empty = std::env::temp_dir().join(format!("meridian-nopdns-{}", std::process::id()));
        fs::create_dir_all(&empty).unwrap();
        let err = find_pdns_in([empty.clone()]).unwrap_err().to_string();
        assert!(err.contains("pdns-server pdns-backend-bind"), "{err}");
        fs::remove_dir_all(&empty).unwrap();
    }
}
