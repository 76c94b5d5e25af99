//! `meridian dev`: the embedded PostgreSQL, migrated, plus one `meridian serve`
//! process per region on its loopback address — all in one state directory, all
//! stopped on Ctrl-C or SIGTERM. Nodes are separate processes so a drill can kill one.
//! With `--geodns`, also the local GeoDNS (PowerDNS, see `geodns`) in front of them.
//! With `--identity`, also demo identity providers (OpenLDAP and an OIDC mock, see
//! `demo_idp`) for the sign-in walk-through.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::demo_idp::DemoIdentity;
use crate::dev_tls;
use crate::embedded_pg::EmbeddedPg;
use crate::geodns::{GeoDns, GeoDnsOptions};
use crate::wan::{self, DelayProxy};
use meridian::auth::KeySet;
use meridian::db::migrate;
use meridian::topology::{Region, Topology};

/// Files in the state directory.
pub struct StateDir(pub PathBuf);

impl StateDir {
    pub fn keys(&self) -> PathBuf {
        self.0.join("keys.json")
    }
    /// The local key provider's KEKs (`encryption.kek_file`), one per jurisdiction.
    pub fn keks(&self) -> PathBuf {
        self.0.join("keks.json")
    }
    /// The key that signs audit checkpoints and receipts (`signing.key_file`).
    pub fn signing_key(&self) -> PathBuf {
        self.0.join("signing-key.json")
    }
    fn pg(&self) -> PathBuf {
        self.0.join("pg")
    }
    fn app_password(&self) -> PathBuf {
        self.0.join("app.password")
    }
    fn hop_secret(&self) -> PathBuf {
        self.0.join("hop.secret")
    }
    fn geodns(&self) -> PathBuf {
        self.0.join("geodns")
    }
    fn tls(&self) -> PathBuf {
        self.0.join("tls")
    }
}

pub const DATABASE: &str = "meridian";

/// The embedded cluster, migrated, with the service role's URL.
pub struct LocalDatabase {
    pub pg: EmbeddedPg,
    /// Migrations this start applied (empty when the schema was up to date).
    pub applied: Vec<String>,
    pub superuser_url: String,
    pub app_url: String,
}

/// Starts (or re-uses) the embedded cluster, creates the database, migrates.
pub async fn prepare_database(state: &StateDir) -> anyhow::Result<LocalDatabase> {
    std::fs::create_dir_all(&state.0).with_context(|| format!("creating {}", state.0.display()))?;
    let pg_dir = state.pg();
    let pg = tokio::task::spawn_blocking(move || EmbeddedPg::start(&pg_dir)).await??;
    create_database_if_missing(&pg.superuser_url("postgres"), DATABASE).await?;
    let password = ensure_secret(&state.app_password())?;
    let superuser_url = pg.superuser_url(DATABASE);
    let applied = migrate::run(
        &superuser_url,
        Some(&password),
        Some(meridian::db::Dialect::Postgres),
    )
    .await?
    .applied;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let app_url = format!(
        "postgres://meridian_app:{password}@127.0.0.1:{}/{DATABASE}",
        pg.port()
    );
    Ok(LocalDatabase {
        pg,
        applied,
        superuser_url,
        app_url,
    })
}

pub async fn create_database_if_missing(maintenance_url: &str, name: &str) -> anyhow::Result<()> {
    let (client, connection) =
        tokio_postgres::connect(maintenance_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// A random alphanumeric secret kept in `path` (mode 0600), created on first use.
pub fn ensure_secret(path: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    let secret = random_alphanumeric(32)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    Ok(secret)
}

pub fn random_alphanumeric(len: usize) -> anyhow::Result<String> {
    Ok(meridian::secret::alphanumeric(len)?)
}

/// A node's admin (metrics) listener under `meridian dev`: the region file's
/// `local.admin_address` (default: the node's IP, port 9090), on `admin_port`
/// when given. Passed to the node explicitly, so what is checked, bound and
/// printed is one address even when `--wan` moves the public listener.
pub fn admin_address(region: &Region, admin_port: Option<u16>) -> std::net::SocketAddr {
    let mut address = region.local_admin_address;
    if let Some(port) = admin_port {
        address.set_port(port);
    }
    address
}

/// What `meridian dev` runs.
pub struct DevOptions {
    pub state: StateDir,
    pub regions_dir: PathBuf,
    /// A subset of regions (default: all).
    pub only: Option<Vec<String>>,
    pub wan: bool,
    pub geodns_port: Option<u16>,
    pub admin_port: Option<u16>,
    /// Seconds before a dead node is restarted; 0 leaves it down.
    pub restart_after: u64,
    /// Serve https with a local CA (`dev_tls`).
    pub tls: bool,
    /// Run demo identity providers (`demo_idp`) and let the nodes reach loopback.
    pub identity: bool,
}

/// Runs the local topology until Ctrl-C/SIGTERM. A node that dies is reported and
/// restarted after `restart_after` seconds while the other regions keep serving
/// (a crash drill, `loadtest/drill.sh kill`). With `wan`, each node listens on its
/// internal address behind a `wan::DelayProxy` that holds the public one (see
/// `docs/wan-emulation.md`).
pub async fn run(options: DevOptions) -> anyhow::Result<()> {
    let DevOptions {
        state,
        regions_dir,
        only,
        wan,
        geodns_port,
        admin_port,
        restart_after,
        tls,
        identity,
    } = options;
    let topology = Topology::load(&regions_dir)?;
    let regions: Vec<_> = match &only {
        Some(names) => names
            .iter()
            .map(|n| {
                topology.find(n).with_context(|| {
                    format!("unknown region `{n}` (see {})", regions_dir.display())
                })
            })
            .collect::<Result<_, _>>()?,
        None => topology.regions().collect(),
    };
    // A node that cannot bind would exit, while `wait_ready` might be answered by
    // whatever holds the address (e.g. another `meridian dev`): refuse up front.
    for region in &regions {
        let admin = admin_address(region, admin_port);
        if admin == region.local_address {
            bail!(
                "{} ({}): the admin listener cannot share the node's address; pick another \
                    --admin-port",
                admin,
                region.id
            );
        }
        for address in [region.local_address, admin] {
            std::net::TcpListener::bind(address).with_context(|| {
                format!(
                    "{address} ({}) is in use: is another `meridian dev` running?",
                    region.id
                )
            })?;
        }
    }
    let proxies = if wan {
        Some(start_wan_proxies(&regions_dir, &topology, &regions).await?)
    } else {
        None
    };
    // Before anything else starts: a missing slapd or Python is a one-line error.
    // Stopped when `run` returns (its Drop waits for slapd).
    let identity = if identity {
        let dir = state.0.clone();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Some(tokio::task::spawn_blocking(move || DemoIdentity::start(&dir)).await??)
    } else {
        None
    };
    KeySet::ensure_file(&state.keys())?;
    // Created once here, before the nodes start, so they share one KEK per
    // jurisdiction (each node would otherwise race to create the file).
    let jurisdictions: std::collections::BTreeSet<&str> = topology
        .regions()
        .map(|r| meridian::crypto::keyring::jurisdiction_name(r.jurisdiction))
        .collect();
    meridian::crypto::provider::LocalFileProvider::ensure(
        &state.keks(),
        &jurisdictions.into_iter().collect::<Vec<_>>(),
    )?;
    meridian::crypto::signing::ensure_key_file(&state.signing_key()).map_err(anyhow::Error::msg)?;
    let db = prepare_database(&state).await?;
    println!("postgres {}", db.superuser_url);

    let hop_secret = ensure_secret(&state.hop_secret())?;
    let tls = if tls {
        let addresses: Vec<_> = topology.regions().map(|r| r.local_address).collect();
        let files = dev_tls::prepare(&state.tls(), &addresses)?;
        let client = files.client_config()?;
        Some((files, client))
    } else {
        None
    };
    let node = NodeLaunch {
        exe: std::env::current_exe()?,
        state: state.0.clone(),
        regions_dir: regions_dir.clone(),
        wan,
        admin_port,
        app_url: db.app_url.clone(),
        hop_secret,
        tls: tls.as_ref().map(|(files, _)| files.clone()),
        allow_loopback: identity.is_some(),
    };
    let readiness = tls.as_ref().map(|(_, client)| client.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut nodes: Vec<(String, Child)> = Vec::new();
    for region in &regions {
        nodes.push((region.id.to_string(), node.spawn(region)?));
    }
    for region in &regions {
        wait_ready(
            region.local_address,
            readiness.as_ref(),
            Duration::from_secs(30),
        )
        .await
        .with_context(|| format!("node {} did not become ready", region.id))?;
        println!("node {} {scheme}://{}", region.id, region.local_address);
        println!(
            "metrics {} http://{}/metrics",
            region.id,
            admin_address(region, admin_port)
        );
    }
    if let (Some((files, _)), Some(first)) = (&tls, regions.first()) {
        println!("tls CA {}", files.ca_file.display());
        println!(
            "try: curl --cacert {} https://{}/healthz",
            files.ca_file.display(),
            first.local_address
        );
    }
    if proxies.is_some() {
        println!("wan on ({})", regions_dir.join(wan::LATENCY_FILE).display());
    }
    // Stopped when `run` returns (after the nodes).
    let _geodns = match geodns_port {
        Some(port) => Some(start_geodns(&state, &topology, port).await?),
        None => None,
    };
    if let (Some(identity), Some(first)) = (&identity, regions.first()) {
        print!("{}", identity.describe());
        print_provider_requests(identity, &format!("{scheme}://{}", first.local_address));
    }
    println!("ready");

    let outcome = supervise(
        &mut nodes,
        &regions,
        &node,
        restart_after,
        readiness.as_ref(),
    )
    .await;
    for (region, child) in &nodes {
        println!("stopping node {region}");
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for (region, child) in &mut nodes {
        if tokio::time::timeout(Duration::from_secs(35), child.wait())
            .await
            .is_err()
        {
            tracing::warn!(%region, "node did not stop in time; killing it");
            let _ = child.kill().await;
        }
    }
    for proxy in proxies.into_iter().flatten() {
        proxy.abort();
    }
    tokio::task::spawn_blocking(move || db.pg.stop()).await??;
    outcome
}

/// Binds a delay proxy on each region's public address, in front of the node's
/// internal address; peers keep the public addresses, so hops pay the delay too.
async fn start_wan_proxies(
    regions_dir: &Path,
    topology: &Topology,
    regions: &[&Region],
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let wan = Arc::new(wan::Wan::load(regions_dir, topology)?);
    let mut tasks = Vec::new();
    for region in regions {
        let public = region.local_address;
        let proxy = DelayProxy::bind(
            public,
            wan::internal_address(public)?,
            region.id.clone(),
            wan.clone(),
        )
        .await
        .with_context(|| format!("binding the wan proxy of {} on {public}", region.id))?;
        tasks.push(tokio::spawn(proxy.run()));
    }
    Ok(tasks)
}

/// The local GeoDNS over the whole topology: regions not started count as down.
async fn start_geodns(state: &StateDir, topology: &Topology, port: u16) -> anyhow::Result<GeoDns> {
    let (dir, topology) = (state.geodns(), topology.clone());
    let opts = GeoDnsOptions {
        port,
        ..GeoDnsOptions::default()
    };
    let dns = tokio::task::spawn_blocking(move || GeoDns::start(&dir, &topology, &opts)).await??;
    println!("geodns {}", dns.address());
    Ok(dns)
}

/// The `curl` lines that give a tenant the demo providers (its owner's token in
/// `$TOKEN`), and a sign-in.
fn print_provider_requests(identity: &DemoIdentity, base: &str) {
    let redirect = "http://127.0.0.1:9999/cb";
    println!("identity providers for a tenant (TOKEN=<its owner's token>, SLUG=<its slug>):");
    for body in identity.provider_bodies(redirect) {
        println!(
            "  curl -sS -X POST {base}/v1/identity-providers -H \"authorization: Bearer $TOKEN\" \
             -H 'content-type: application/json' -d '{body}'"
        );
    }
    if let Some(alice) = identity.users.first() {
        println!(
            "  curl -sS -X POST {base}/v1/auth/$SLUG/ldap -H 'content-type: application/json' \
             -d '{{\"username\":\"{}\",\"password\":\"{}\"}}'",
            alice.uid, alice.password
        );
    }
}

/// How to start one region's node (`meridian serve` in its own process).
struct NodeLaunch {
    exe: PathBuf,
    state: PathBuf,
    regions_dir: PathBuf,
    wan: bool,
    admin_port: Option<u16>,
    app_url: String,
    hop_secret: String,
    tls: Option<dev_tls::DevTls>,
    /// `--identity`: the demo providers listen on loopback, which the outbound
    /// client refuses unless told otherwise (dev/test only).
    allow_loopback: bool,
}

impl NodeLaunch {
    fn spawn(&self, region: &Region) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.exe);
        if self.wan {
            // Hops leave from the node's own IP so the peer's proxy sees the region.
            command
                .env(
                    "MERIDIAN_HTTP__BIND",
                    wan::internal_address(region.local_address)?.to_string(),
                )
                .env(
                    "MERIDIAN_ROUTING__SOURCE_ADDRESS",
                    region.local_address.ip().to_string(),
                );
        }
        if let Some(tls) = &self.tls {
            // Peers default to https:// too when the listener has TLS.
            command
                .env("MERIDIAN_HTTP__TLS__CERT_FILE", &tls.cert_file)
                .env("MERIDIAN_HTTP__TLS__KEY_FILE", &tls.key_file)
                .env("MERIDIAN_ROUTING__HOP_CA_FILE", &tls.ca_file);
        }
        if self.allow_loopback {
            command.env("MERIDIAN_OUTBOUND__ALLOW_LOOPBACK", "true");
        }
        if std::env::var_os("MERIDIAN_LOG__FILTER").is_none() {
            // actix's start-up lines ("starting N workers", …) would land between
            // the `node`/`ready` lines, once per node.
            command.env("MERIDIAN_LOG__FILTER", "info,actix_server=warn");
        }
        command
            .args([
                "--state-dir".as_ref(),
                self.state.as_os_str(),
                "serve".as_ref(),
                "--region".as_ref(),
                region.id.as_str().as_ref(),
            ])
            .arg("--regions-dir")
            .arg(&self.regions_dir)
            .env(
                "MERIDIAN_ADMIN__BIND",
                admin_address(region, self.admin_port).to_string(),
            )
            .env("MERIDIAN_DATABASE__URL", &self.app_url)
            .env("MERIDIAN_AUTH__KEYS_FILE", self.state.join("keys.json"))
            .env(
                "MERIDIAN_ENCRYPTION__KEK_FILE",
                self.state.join("keks.json"),
            )
            .env("MERIDIAN_LOG__FORMAT", "pretty")
            .env("MERIDIAN_ROUTING__HOP_SECRET", &self.hop_secret)
            .env("MERIDIAN_ROUTING__REDIRECT_TO_PEERS", "true")
            // No load balancer locally: peers notice a stopping node within a probe.
            .env("MERIDIAN_HTTP__SHUTDOWN_GRACE_MS", "1000")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the node of {}", region.id))
    }
}

/// Until Ctrl-C/SIGTERM: a node that exits is reported (the other regions keep
/// serving; their probes fail its tenants over) and, unless `restart_after` is 0,
/// started again after that many seconds.
async fn supervise(
    nodes: &mut [(String, Child)],
    regions: &[&Region],
    launch: &NodeLaunch,
    restart_after: u64,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Index of a dead node and when to restart it (never when `restart_after` is 0).
    let mut dead: Vec<(usize, Option<Instant>)> = Vec::new();
    loop {
        let running: Vec<usize> = (0..nodes.len())
            .filter(|i| !dead.iter().any(|(d, _)| d == i))
            .collect();
        let next_restart = dead.iter().filter_map(|(_, at)| *at).min();
        let exited = async {
            if running.is_empty() {
                return std::future::pending().await;
            }
            let waits = nodes
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| running.contains(i))
                .map(|(i, (_, child))| Box::pin(async move { (i, child.wait().await) }));
            futures_util::future::select_all(waits).await.0
        };
        let restart = async {
            match next_restart {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            (i, status) = exited => {
                let region = &nodes[i].0;
                let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                if restart_after == 0 {
                    println!("node {region} died ({how}); the other regions keep serving; restart \
                        `meridian dev` to bring it back");
                    dead.push((i, None));
                } else {
                    println!("node {region} died ({how}); the other regions keep serving; \
                        restarting it in {restart_after} s");
                    dead.push((i, Some(Instant::now() + Duration::from_secs(restart_after))));
                }
            }
            () = restart => {
                let now = Instant::now();
                let is_due = |at: &Option<Instant>| at.is_some_and(|at| at <= now);
                let due: Vec<usize> =
                    dead.iter().filter(|(_, at)| is_due(at)).map(|(i, _)| *i).collect();
                dead.retain(|(_, at)| !is_due(at));
                for i in due {
                    let region = regions[i];
                    nodes[i].1 = launch.spawn(region)?;
                    match wait_ready(region.local_address, tls, Duration::from_secs(30)).await {
                        Ok(()) => println!("node {} restarted \
                            {}://{}", region.id, if tls.is_some() { "https" } else { "http" },
                            region.local_address),
                        Err(err) => println!("node {} restarted but is not ready: \
                            {err:#}", region.id),
                    }
                }
            }
        }
    }
}

/// Polls `GET /readyz` until it answers 200 (over https when `tls` is given).
pub async fn wait_ready(
    address: std::net::SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = match tls {
            Some(tls) => dev_tls::https_status(address, "/readyz", tls).await,
            None => http_status(address, "/readyz").await,
        };
        if status.ok() == Some(200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{address} not ready after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn http_status(address: std::net::SocketAddr, path: &str) -> anyhow::Result<u16> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    dev_tls::status_over(stream, &address.to_string(), path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_port_moves_every_nodes_admin_listener() {
        let topology = Topology::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../regions"
        )))
        .unwrap();
        let us = topology.find("us-east1").unwrap();
        assert_eq!(admin_address(us, None), "127.0.0.11:9090".parse().unwrap());
        assert_eq!(
            admin_address(us, Some(9190)),
            "127.0.0.11:9190".parse().unwrap()
        );
    }
}
