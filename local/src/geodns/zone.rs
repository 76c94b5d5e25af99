//! The zone PowerDNS serves, generated from the topology: SOA, NS, one plain A
//! record per region (`<region>.api.meridian.test`) and the LUA A record of the
//! API name that picks a region per client.
//!
//! The LUA record's pattern, and why (PowerDNS 4.7):
//! - ONE `ifurlup` over every node, with `selector='all'` and
//!   `backupSelector='all'`, only tells which nodes are up; the code then walks the
//!   client's preference order itself. Letting `ifurlup` choose would not do: it
//!   picks among its first group with a live node by a selector (random, hashed,
//!   closest), never in an order of ours, and several `ifurlup` calls each start
//!   their own checks.
//! - A check that has not run yet counts as down, and when every node is "down"
//!   4.7 answers through `backupSelector` — with `'all'`, every node, so the walk
//!   answers the client region's own node: the plain geo answer, never a random
//!   region.
//! - `ifurlup` connects to each candidate address and sends the URL's host name
//!   (its host is only a name, mapped to the candidate), on the URL's one port:
//!   hence one loopback address per region on a common port.
//! - The client is the packet's source address (`netmask()` tests `bestwho`,
//!   which is the source while ECS processing is off).
//! - No double quote may appear inside the code: it is itself a quoted string.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use super::{GeoDnsError, GeoDnsOptions};
use meridian::ids::RegionId;
use meridian::topology::Topology;

/// One region's node as the GeoDNS sees it.
#[derive(Clone, Debug)]
pub struct Node {
    pub region: RegionId,
    pub ip: Ipv4Addr,
    pub client_subnets: Vec<String>,
    /// The region itself, then its failover order, then every other region.
    pub preference: Vec<Ipv4Addr>,
}

/// The topology checked and flattened for the zone: every node, and the port
/// they all listen on.
#[derive(Clone, Debug)]
pub struct Plan {
    pub nodes: Vec<Node>,
    pub node_port: u16,
    /// The preference order of clients in no region's subnets.
    pub default_preference: Vec<Ipv4Addr>,
}

fn topology_error(message: String) -> GeoDnsError {
    GeoDnsError::Topology(message)
}

/// A DNS name we write into the zone and into LUA code unescaped: lowercase
/// letters, digits, dashes, dots.
fn check_name(what: &str, name: &str) -> Result<(), GeoDnsError> {
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err(GeoDnsError::Options(format!(
            "{what} `{name}` is not a lowercase DNS name without trailing dot"
        )))
    }
}

impl Plan {
    pub fn new(topology: &Topology, opts: &GeoDnsOptions) -> Result<Plan, GeoDnsError> {
        check_name("zone", &opts.zone)?;
        check_name("api name", &opts.api_name)?;
        if !opts.api_name.ends_with(&format!(".{}", opts.zone)) {
            return Err(GeoDnsError::Options(format!(
                "api name `{}` is not inside zone `{}`",
                opts.api_name, opts.zone
            )));
        }
        if opts.ttl == 0 || opts.check_timeout_secs == 0 {
            return Err(GeoDnsError::Options(
                "ttl and check timeout must be at least 1 s".into(),
            ));
        }
        let regions: Vec<_> = topology.regions().collect();
        let mut ips = Vec::new();
        for region in &regions {
            let IpAddr::V4(ip) = region.local_address.ip() else {
                return Err(topology_error(format!(
                    "region {}: local.address {} is not IPv4 (the API name is an A record)",
                    region.id, region.local_address
                )));
            };
            if let Some((other, _)) = ips.iter().find(|(_, seen)| *seen == ip) {
                return Err(topology_error(format!(
                    "regions {other} and {} share the address {ip}; health checks probe addresses \
                        on one port, so each region needs its own loopback address",
                    region.id
                )));
            }
            ips.push((region.id.clone(), ip));
        }
        let ip_of = |id: &RegionId| ips.iter().find(|(r, _)| r == id).map(|(_, ip)| *ip);
        let node_port = match opts.node_port {
            Some(port) => port,
            None => {
                let mut ports = regions.iter().map(|r| r.local_address.port());
                let first = ports
                    .next()
                    .ok_or_else(|| topology_error("no regions".into()))?;
                if ports.any(|p| p != first) {
                    return Err(topology_error(
                        "the regions' local.address ports differ; health checks probe every node \
                            on one port"
                            .into(),
                    ));
                }
                first
            }
        };
        let mut nodes = Vec::new();
        for region in &regions {
            let mut preference = Vec::new();
            let wanted = std::iter::once(&region.id)
                .chain(&region.failover)
                .chain(regions.iter().map(|r| &r.id));
            for id in wanted {
                if let Some(ip) = ip_of(id)
                    && !preference.contains(&ip)
                {
                    preference.push(ip);
                }
            }
            nodes.push(Node {
                region: region.id.clone(),
                ip: ip_of(&region.id).unwrap_or(Ipv4Addr::UNSPECIFIED),
                client_subnets: region.client_subnets.clone(),
                preference,
            });
        }
        let default_node = match &opts.default_region {
            Some(id) => nodes.iter().find(|n| n.region == *id).ok_or_else(|| {
                GeoDnsError::Options(format!("default region `{id}` is not in the topology"))
            })?,
            None => nodes
                .first()
                .ok_or_else(|| topology_error("no regions".into()))?,
        };
        Ok(Plan {
            default_preference: default_node.preference.clone(),
            nodes,
            node_port,
        })
    }
}

fn lua_list<T: std::fmt::Display>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("{{{}}}", quoted.join(","))
}

/// The LUA A record's code (one line, single quotes only; leading `;` makes it a
/// statement list rather than an expression).
pub fn lua_code(plan: &Plan, opts: &GeoDnsOptions) -> String {
    let all: Vec<Ipv4Addr> = plan.nodes.iter().map(|n| n.ip).collect();
    let mut code = String::from(";local up = {} ");
    let _ = write!(
        code,
        "for _, a in ipairs(ifurlup('http://{}:{}/readyz', {{{}}}, {{selector='all', \
            backupSelector='all', timeout='{}'}})) do up[a] = true end ",
        opts.api_name,
        plan.node_port,
        lua_list(&all),
        opts.check_timeout_secs
    );
    let _ = write!(
        code,
        "local order = {} ",
        lua_list(&plan.default_preference)
    );
    let mut keyword = "if";
    for node in plan.nodes.iter().filter(|n| !n.client_subnets.is_empty()) {
        let _ = write!(
            code,
            "{keyword} netmask({}) then order = {} ",
            lua_list(&node.client_subnets),
            lua_list(&node.preference)
        );
        keyword = "elseif";
    }
    if keyword == "elseif" {
        code.push_str("end ");
    }
    code.push_str("for _, a in ipairs(order) do if up[a] then return a end end return order[1]");
    code
}

/// The zone file (bind format) for `opts.zone`.
pub fn zone_file(plan: &Plan, opts: &GeoDnsOptions) -> String {
    let zone = &opts.zone;
    let ttl = opts.ttl;
    let mut text = format!(
        "; Generated by meridian from regions/*.toml at every GeoDNS start; edits are lost.\n\
         $ORIGIN {zone}.\n$TTL {ttl}\n\
         {zone}. {ttl} IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 {ttl}\n\
         {zone}. {ttl} IN NS ns1.{zone}.\n\
         ns1.{zone}. {ttl} IN A {}\n",
        match opts.listen {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
        }
    );
    // Each region's name, and under it every tenant's host at that region
    // (`{slug}.{region}.<api name>`, where residency redirects send a request
    // that came in on a tenant host).
    for node in &plan.nodes {
        for prefix in ["", "*."] {
            let _ = writeln!(
                text,
                "{prefix}{}.{}. {ttl} IN A {}",
                node.region, opts.api_name, node.ip
            );
        }
    }
    // The API name, and every tenant's subdomain (`{slug}.<api name>`) with the
    // same answer; the region names above are more specific and win over the
    // wildcard.
    let code = lua_code(plan, opts);
    for name in [opts.api_name.clone(), format!("*.{}", opts.api_name)] {
        let _ = writeln!(text, "{name}. {ttl} IN LUA A \"{code}\"");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped() -> Topology {
        Topology::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../regions"
        )))
        .unwrap()
    }

    fn ip(topology: &Topology, region: &str) -> String {
        topology
            .find(region)
            .unwrap()
            .local_address
            .ip()
            .to_string()
    }

    #[test]
    fn every_subnet_maps_to_its_region_then_its_failover_order() {
        let topology = shipped();
        let opts = GeoDnsOptions::default();
        let code = lua_code(&Plan::new(&topology, &opts).unwrap(), &opts);
        for region in topology.regions() {
            let mut order = vec![region.id.as_str().to_owned()];
            order.extend(region.failover.iter().map(|r| r.to_string()));
            let order: Vec<String> = order
                .iter()
                .map(|r| format!("'{}'", ip(&topology, r)))
                .collect();
            let expected = format!(
                "netmask({}) then order = {{{}",
                lua_list(&region.client_subnets),
                order.join(",")
            );
            assert!(code.contains(&expected), "{expected}\nnot in\n{code}");
        }
    }

    #[test]
    fn the_code_has_no_double_quote_and_probes_every_node_by_name() {
        let topology = shipped();
        let opts = GeoDnsOptions {
            node_port: Some(18080),
            ..GeoDnsOptions::default()
        };
        let plan = Plan::new(&topology, &opts).unwrap();
        let code = lua_code(&plan, &opts);
        assert!(!code.contains('"'), "{code}");
        assert!(code.contains("ifurlup('http://api.meridian.test:18080/readyz'"));
        assert!(code.contains("selector='all', backupSelector='all', timeout='1'"));
        assert_eq!(code.matches("ifurlup(").count(), 1, "{code}");
        for region in topology.regions() {
            assert!(code.contains(&format!("'{}'", ip(&topology, region.id.as_str()))));
        }
    }

    #[test]
    fn unknown_clients_get_the_first_regions_order_and_every_region_is_reachable() {
        let topology = shipped();
        let opts = GeoDnsOptions::default();
        let plan = Plan::new(&topology, &opts).unwrap();
        let first = topology.regions().next().unwrap();
        assert_eq!(
            plan.default_preference[0].to_string(),
            ip(&topology, first.id.as_str())
        );
        for node in &plan.nodes {
            assert_eq!(node.preference.len(), plan.nodes.len(), "{node:?}");
        }
    }

    #[test]
    fn the_zone_has_soa_ns_region_records_and_the_lua_record() {
        let topology = shipped();
        let opts = GeoDnsOptions::default();
        let zone = zone_file(&Plan::new(&topology, &opts).unwrap(), &opts);
        assert!(zone.contains("meridian.test. 5 IN SOA ns1.meridian.test."));
        assert!(zone.contains("meridian.test. 5 IN NS ns1.meridian.test."));
        assert!(zone.contains("us-east1.api.meridian.test. 5 IN A 127.0.0.11\n"));
        assert!(zone.contains("\napi.meridian.test. 5 IN LUA A \";local up"));
        assert!(zone.contains("\n*.api.meridian.test. 5 IN LUA A \";local up"));
        assert!(zone.contains("\n*.us-east1.api.meridian.test. 5 IN A 127.0.0.11\n"));
    }

    #[test]
    fn names_outside_the_zone_or_with_odd_characters_are_refused() {
        let topology = shipped();
        for (zone, api) in [
            ("meridian.test", "api.other.test"),
            ("meridian.test", "a'pi.meridian.test"),
        ] {
            let opts = GeoDnsOptions {
                zone: zone.into(),
                api_name: api.into(),
                ..GeoDnsOptions::default()
            };
            assert!(
                matches!(Plan::new(&topology, &opts), Err(GeoDnsError::Options(_))),
                "{api}"
            );
        }
    }
}
