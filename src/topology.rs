//! The region topology: `regions/*.toml` → regions, jurisdictions, failover order.
//! Files are validated at start; an error names the file and the field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ids::RegionId;

/// A jurisdiction a residency policy can name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Jurisdiction {
    Us,
    Eu,
    Apac,
}

#[derive(Clone, Debug)]
pub struct Region {
    pub id: RegionId,
    pub jurisdiction: Jurisdiction,
    pub public_endpoint: String,
    pub failover: Vec<RegionId>,
    pub local_address: SocketAddr,
    /// The admin (metrics) listener for local runs: `local.admin_address`, or
    /// `local.address`'s IP with port 9090 (`config::default_admin_address`).
    pub local_admin_address: SocketAddr,
    pub client_subnets: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Topology {
    regions: BTreeMap<RegionId, Region>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read region directory {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error("no region files (*.toml) in {0}")]
    Empty(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    id: String,
    jurisdiction: Jurisdiction,
    public_endpoint: String,
    #[serde(default)]
    failover: Vec<String>,
    local: LocalSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalSection {
    address: SocketAddr,
    /// So that a second set of region files can run its nodes next to the first
    /// on the same IPs (other ports).
    #[serde(default)]
    admin_address: Option<SocketAddr>,
    #[serde(default)]
    client_subnets: Vec<String>,
}

/// Files in the regions directory that are not region descriptions.
const NON_REGION_FILES: &[&str] = &["latency.toml"];

impl Topology {
    pub fn load(dir: &Path) -> Result<Self, TopologyError> {
        let read_dir = |source| TopologyError::ReadDir {
            dir: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| NON_REGION_FILES.iter().any(|x| n == *x))
            })
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(TopologyError::Empty(dir.to_owned()));
        }
        let mut regions = BTreeMap::new();
        for path in &paths {
            let region = parse_region_file(path)?;
            if regions.contains_key(&region.id) {
                return Err(invalid(
                    path,
                    format!("field `id`: region `{}` is defined twice", region.id),
                ));
            }
            regions.insert(region.id.clone(), region);
        }
        let topology = Self { regions };
        for path in &paths {
            topology.check_failover(path)?;
        }
        Ok(topology)
    }

    fn check_failover(&self, path: &Path) -> Result<(), TopologyError> {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let Some(region) = self.regions.values().find(|r| r.id.as_str() == stem) else {
            return Ok(());
        };
        for target in &region.failover {
            if !self.regions.contains_key(target) {
                return Err(invalid(
                    path,
                    format!("field `failover`: unknown region `{target}`"),
                ));
            }
            if *target == region.id {
                return Err(invalid(
                    path,
                    "field `failover`: a region cannot fail over to itself".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &RegionId) -> Option<&Region> {
        self.regions.get(id)
    }

    pub fn find(&self, raw: &str) -> Option<&Region> {
        self.regions.values().find(|r| r.id.as_str() == raw)
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }
}

fn invalid(file: &Path, message: String) -> TopologyError {
    TopologyError::Invalid {
        file: file.to_owned(),
        message,
    }
}

fn parse_region_file(path: &Path) -> Result<Region, TopologyError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(path, format!("cannot read: {e}")))?;
    // toml's messages already name the offending field and line.
    let file: RegionFile = toml::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
    let id = RegionId::parse(&file.id).map_err(|m| invalid(path, format!("field `id`: {m}")))?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(id.as_str()) {
        return Err(invalid(
            path,
            format!("field `id`: `{id}` must match the file name"),
        ));
    }
    if !file.public_endpoint.starts_with("https://") && !file.public_endpoint.starts_with("http://")
    {
        return Err(invalid(
            path,
            "field `public_endpoint`: must be an http(s) URL".into(),
        ));
    }
    let failover = file
        .failover
        .iter()
        .map(|r| RegionId::parse(r).map_err(|m| invalid(path, format!("field `failover`: {m}"))))
        .collect::<Result<Vec<_>, _>>()?;
    for subnet in &file.local.client_subnets {
        if !is_ipv4_cidr(subnet) {
            return Err(invalid(
                path,
                format!("field `local.client_subnets`: `{subnet}` is not an IPv4 CIDR"),
            ));
        }
    }
    let local_admin_address = file
        .local
        .admin_address
        .unwrap_or_else(|| crate::config::default_admin_address(file.local.address));
    if local_admin_address == file.local.address {
        return Err(invalid(
            path,
            format!("field `local.admin_address`: {local_admin_address} is `local.address` too"),
        ));
    }
    Ok(Region {
        id,
        jurisdiction: file.jurisdiction,
        public_endpoint: file.public_endpoint,
        failover,
        local_address: file.local.address,
        local_admin_address,
        client_subnets: file.local.client_subnets,
    })
}

fn is_ipv4_cidr(raw: &str) -> bool {
    let Some((addr, bits)) = raw.split_once('/') else {
        return false;
    };
    addr.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    /// A scratch directory, removed when the test ends (passed or panicked), so
    /// test runs leave nothing behind in the temp dir.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("meridian-topology-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    #[test]
    fn the_shipped_regions_load() {
        let topology =
            Topology::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/regions"))).unwrap();
        assert!(topology.find("us-east1").is_some());
    }

    #[test]
    fn a_bad_field_is_reported_with_file_and_field() {
        let dir = scratch("bad");
        write(
            &dir,
            "us-east1.toml",
            "id = \"us-east1\"\njurisdiction = \"mars\"\npublic_endpoint \
                = \"https://x\"\n[local]\naddress = \"127.0.0.11:8080\"\n",
        );
        let err = Topology::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("us-east1.toml") && err.contains("jurisdiction"),
            "{err}"
        );
    }

    #[test]
    fn the_admin_address_comes_from_the_region_file_or_defaults_to_port_9090() {
        let header =
            "id = \"us-east1\"\njurisdiction = \"us\"\npublic_endpoint = \"https://x\"\n[local]\n";
        let dir = scratch("admin-default");
        write(
            &dir,
            "us-east1.toml",
            &format!("{header}address = \"127.0.0.11:8080\"\n"),
        );
        let region = Topology::load(&dir)
            .unwrap()
            .find("us-east1")
            .unwrap()
            .clone();
        assert_eq!(
            region.local_admin_address,
            "127.0.0.11:9090".parse().unwrap()
        );

        let dir = scratch("admin-set");
        write(
            &dir,
            "us-east1.toml",
            &format!(
                "{header}address = \"127.0.0.11:8180\"\nadmin_address = \"127.0.0.11:9190\"\n"
            ),
        );
        let region = Topology::load(&dir)
            .unwrap()
            .find("us-east1")
            .unwrap()
            .clone();
        assert_eq!(
            region.local_admin_address,
            "127.0.0.11:9190".parse().unwrap()
        );

        let dir = scratch("admin-clash");
        write(
            &dir,
            "us-east1.toml",
            &format!(
                "{header}address = \"127.0.0.11:8080\"\nadmin_address = \"127.0.0.11:8080\"\n"
            ),
        );
        let err = Topology::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("us-east1.toml") && err.contains("local.admin_address"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_failover_target_is_rejected() {
        let dir = scratch("failover");
        write(
            &dir,
            "us-east1.toml",
            "id = \"us-east1\"\njurisdiction = \"us\"\npublic_endpoint = \"https://x\"\nfailover = \
                [\"nowhere-1\"]\n[local]\naddress = \"127.0.0.11:8080\"\n",
        );
        let err = Topology::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("failover") && err.contains("nowhere-1"),
            "{err}"
        );
    }
}
