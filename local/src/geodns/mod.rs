//! The local GeoDNS: a PowerDNS Authoritative server (bind backend, LUA records)
//! that answers `api.meridian.test` with the node of the client's region, chosen
//! by the query's source address (`local.client_subnets` in `regions/*.toml`) and
//! by health (`/readyz` of every node), falling back along the region's failover
//! order. `zone` and `config` generate its files from the topology (pure);
//! `server` runs and stops it; `resolver` asks it as a client in a location would.
//! See docs/geodns.md.

mod config;
mod resolver;
mod server;
mod zone;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub use config::{named_conf, pdns_conf};
pub use resolver::resolver;
pub use server::GeoDns;
pub use zone::{Plan, lua_code, zone_file};

use meridian::ids::RegionId;

/// What the GeoDNS serves and where it listens.
#[derive(Clone, Debug)]
pub struct GeoDnsOptions {
    /// The zone PowerDNS is authoritative for.
    pub zone: String,
    /// The name clients resolve; must be inside `zone`.
    pub api_name: String,
    /// Where PowerDNS listens (UDP and TCP).
    pub listen: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// TTL of every record, in seconds: how long a resolver may keep a region
    /// that has since gone down.
    pub ttl: u32,
    /// The nodes' port for health checks and answers; `None`: the port of the
    /// regions' `local.address` (which must then be common to all).
    pub node_port: Option<u16>,
    /// The region whose preference order clients in no known subnet get;
    /// `None`: the first region of the topology.
    pub default_region: Option<RegionId>,
    /// Seconds a `/readyz` check may take before the node counts as down.
    pub check_timeout_secs: u32,
}

impl Default for GeoDnsOptions {
    fn default() -> Self {
        Self {
            zone: "meridian.test".into(),
            api_name: "api.meridian.test".into(),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 5300,
            ttl: 5,
            node_port: None,
            default_region: None,
            check_timeout_secs: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GeoDnsError {
    #[error(
        "pdns_server not found; install PowerDNS Authoritative with its bind backend: `apt-get \
            install pdns-server pdns-backend-bind`"
    )]
    PdnsMissing,
    #[error(
        "PowerDNS has no bind backend (libbindbackend.so); install it: `apt-get install \
            pdns-backend-bind`"
    )]
    BindBackendMissing,
    #[error(
        "running as root, but there is no `pdns` user for PowerDNS to run as (it comes with the \
            Debian package pdns-server)"
    )]
    NoPdnsUser,
    #[error(
        "the pdns user cannot read {0} (a parent directory is closed to it, e.g. /root); use a \
            state directory it can traverse"
    )]
    Unreachable(PathBuf),
    #[error("GeoDNS topology: {0}")]
    Topology(String),
    #[error("GeoDNS options: {0}")]
    Options(String),
    #[error("GeoDNS: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("PowerDNS did not start ({reason}); last lines of {log}:\n{tail}")]
    StartFailed {
        reason: String,
        log: PathBuf,
        tail: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> GeoDnsError {
    let context = context.into();
    move |source| GeoDnsError::Io { context, source }
}
