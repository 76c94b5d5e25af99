//! Where a connection comes from: a source IP inside a region's `client_subnets`
//! is a user in that region; a source IP equal to a region node's IP is that node
//! forwarding a hop; anything else (127.0.0.1: health checks, operator tools) is
//! nowhere in particular and is not delayed.

use std::net::{IpAddr, Ipv4Addr};

use meridian::ids::RegionId;
use meridian::topology::Topology;

/// An IPv4 network, e.g. `127.0.1.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    network: u32,
    mask: u32,
}

impl Ipv4Net {
    pub fn parse(raw: &str) -> Option<Self> {
        let (addr, bits) = raw.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        Some(Self {
            network: u32::from(addr) & mask,
            mask,
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == self.network
    }
}

/// Maps source IPs to regions, from the topology's client subnets and node addresses.
#[derive(Clone, Debug)]
pub struct Locator {
    subnets: Vec<(Ipv4Net, RegionId)>,
    nodes: Vec<(IpAddr, RegionId)>,
}

impl Locator {
    /// Fails on a subnet that is not an IPv4 CIDR (topology loading already
    /// rejects those, so this names the region for a hand-built topology).
    pub fn new(topology: &Topology) -> Result<Self, String> {
        let mut subnets = Vec::new();
        let mut nodes = Vec::new();
        for region in topology.regions() {
            for raw in &region.client_subnets {
                let net = Ipv4Net::parse(raw).ok_or_else(|| {
                    format!(
                        "region {}: client subnet `{raw}` is not an IPv4 CIDR",
                        region.id
                    )
                })?;
                subnets.push((net, region.id.clone()));
            }
            nodes.push((region.local_address.ip(), region.id.clone()));
        }
        Ok(Self { subnets, nodes })
    }

    /// The region a connection from `ip` is in, or `None` for "no delay".
    pub fn locate(&self, ip: IpAddr) -> Option<&RegionId> {
        // A v4-mapped v6 peer (dual-stack listener) is the same client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if let Some((_, region)) = self.nodes.iter().find(|(node, _)| *node == ip) {
            return Some(region);
        }
        let IpAddr::V4(v4) = ip else { return None };
        self.subnets
            .iter()
            .find(|(net, _)| net.contains(v4))
            .map(|(_, region)| region)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn locator() -> Locator {
        let topology = Topology::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../regions"
        )))
        .unwrap();
        Locator::new(&topology).unwrap()
    }

    fn at(locator: &Locator, ip: &str) -> Option<String> {
        locator
            .locate(ip.parse().unwrap())
            .map(|r| r.as_str().to_owned())
    }

    #[test]
    fn subnets_parse_and_contain() {
        let net = Ipv4Net::parse("127.0.1.0/24").unwrap();
        assert!(net.contains(Ipv4Addr::new(127, 0, 1, 0)));
        assert!(net.contains(Ipv4Addr::new(127, 0, 1, 255)));
        assert!(!net.contains(Ipv4Addr::new(127, 0, 2, 1)));
        assert!(
            Ipv4Net::parse("0.0.0.0/0")
                .unwrap()
                .contains(Ipv4Addr::new(8, 8, 8, 8))
        );
        assert!(
            Ipv4Net::parse("10.0.0.1/32")
                .unwrap()
                .contains(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(Ipv4Net::parse("10.0.0.0/33"), None);
        assert_eq!(Ipv4Net::parse("10.0.0.0"), None);
    }

    #[test]
    fn users_are_located_by_their_subnet() {
        let locator = locator();
        assert_eq!(at(&locator, "127.0.1.7").as_deref(), Some("us-east1"));
        assert_eq!(at(&locator, "127.0.2.9").as_deref(), Some("europe-west1"));
        assert_eq!(at(&locator, "127.0.3.5").as_deref(), Some("europe-west3"));
        assert_eq!(
            at(&locator, "127.0.4.200").as_deref(),
            Some("asia-southeast1")
        );
        assert_eq!(
            at(&locator, "::ffff:127.0.2.9").as_deref(),
            Some("europe-west1")
        );
    }

    #[test]
    fn nodes_are_located_by_their_own_address() {
        let locator = locator();
        assert_eq!(at(&locator, "127.0.0.11").as_deref(), Some("us-east1"));
        assert_eq!(
            at(&locator, "127.0.0.41").as_deref(),
            Some("asia-southeast1")
        );
    }

    #[test]
    fn operators_and_probes_are_nowhere() {
        let locator = locator();
        for ip in ["127.0.0.1", "127.0.0.12", "127.0.6.1", "::1", "192.0.2.2"] {
            assert_eq!(at(&locator, ip), None, "{ip}");
        }
    }
}
