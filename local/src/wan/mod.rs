//! WAN latency emulation for local multi-region runs (`meridian dev --wan`). The
//! kernel here has no netem, so a userspace `DelayProxy` sits on each region's
//! public address and relays to the node on its internal address (same IP, port
//! plus 10000), delaying each direction by half the round trip between the
//! connecting side's location (`Locator`) and the region (`Latency`, from
//! `regions/latency.toml`). The database is not delayed.

mod latency;
mod locate;
mod proxy;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

pub use latency::{DEFAULT_LOCAL_RTT, Latency, LatencyError};
pub use locate::{Ipv4Net, Locator};
pub use proxy::DelayProxy;

use meridian::ids::RegionId;
use meridian::topology::Topology;

/// The file, in the regions directory, with the round-trip matrix.
pub const LATENCY_FILE: &str = "latency.toml";

/// A node behind a proxy listens on its public port plus this.
pub const INTERNAL_PORT_OFFSET: u16 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum WanError {
    #[error(transparent)]
    Latency(#[from] LatencyError),
    #[error("{0}")]
    Topology(String),
}

/// Who is where, and how far apart the regions are.
#[derive(Clone, Debug)]
pub struct Wan {
    latency: Latency,
    locator: Locator,
}

impl Wan {
    pub fn new(latency: Latency, locator: Locator) -> Self {
        Self { latency, locator }
    }

    /// Reads `<regions_dir>/latency.toml`, checked against the topology.
    pub fn load(regions_dir: &Path, topology: &Topology) -> Result<Self, WanError> {
        let latency = Latency::load(&regions_dir.join(LATENCY_FILE), topology)?;
        let locator = Locator::new(topology).map_err(WanError::Topology)?;
        Ok(Self::new(latency, locator))
    }

    /// The delay each way for a connection from `source` to a node of `region`:
    /// half the round trip, or nothing for a source in no region.
    pub fn one_way(&self, source: IpAddr, region: &RegionId) -> Duration {
        self.locator
            .locate(source)
            .map_or(Duration::ZERO, |from| self.latency.rtt(from, region) / 2)
    }
}

/// Where a node listens when its proxy holds the public address.
pub fn internal_address(public: SocketAddr) -> Result<SocketAddr, WanError> {
    let port = public
        .port()
        .checked_add(INTERNAL_PORT_OFFSET)
        .ok_or_else(|| {
            WanError::Topology(format!(
                "{public}: port + {INTERNAL_PORT_OFFSET} is beyond 65535; pick a lower port in the \
                region file"
            ))
        })?;
    Ok(SocketAddr::new(public.ip(), port))
}
