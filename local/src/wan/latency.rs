//! `regions/latency.toml`: the inter-region round-trip matrix the WAN emulation
//! applies. Every pair of known regions must be present (symmetric keys `"a.b"`);
//! an unknown region or a missing pair is reported with the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use meridian::ids::RegionId;
use meridian::topology::Topology;

/// Round trip between two clients or nodes of the same region, when the file does
/// not say (`local_rtt_ms`).
pub const DEFAULT_LOCAL_RTT: Duration = Duration::from_millis(2);

/// Round-trip times between regions.
#[derive(Clone, Debug)]
pub struct Latency {
    local: Duration,
    /// Keyed by the pair in sorted order, so `rtt(a, b) == rtt(b, a)`.
    pairs: BTreeMap<(RegionId, RegionId), Duration>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct LatencyError {
    pub file: PathBuf,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyFile {
    local_rtt_ms: Option<u64>,
    rtt_ms: BTreeMap<String, u64>,
}

/// RTTs above this are a typo (a minute), not a network.
const MAX_RTT_MS: u64 = 60_000;

impl Latency {
    pub fn load(path: &Path, topology: &Topology) -> Result<Self, LatencyError> {
        let text = std::fs::read_to_string(path).map_err(|e| LatencyError {
            file: path.to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path, topology)
    }

    /// Parses the file's text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path, topology: &Topology) -> Result<Self, LatencyError> {
        let invalid = |message: String| LatencyError {
            file: path.to_owned(),
            message,
        };
        // toml's messages already name the offending key and line.
        let file: LatencyFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let local_ms = file
            .local_rtt_ms
            .unwrap_or(DEFAULT_LOCAL_RTT.as_millis() as u64);
        if local_ms > MAX_RTT_MS {
            return Err(invalid(format!(
                "key `local_rtt_ms`: {local_ms} ms is more than {MAX_RTT_MS} ms"
            )));
        }
        let mut pairs = BTreeMap::new();
        for (key, &ms) in &file.rtt_ms {
            let bad = |why: String| invalid(format!("key `rtt_ms.\"{key}\"`: {why}"));
            let Some((a, b)) = key.split_once('.') else {
                return Err(bad(
                    "expected two region ids joined by a dot, e.g. \"us-east1.europe-west1\""
                        .into(),
                ));
            };
            let known = |raw: &str| {
                topology.find(raw).map(|r| r.id.clone()).ok_or_else(|| {
                    bad(format!(
                        "unknown region `{raw}` (no regions/{raw}.toml; known: {})",
                        names(topology)
                    ))
                })
            };
            let (a, b) = (known(a)?, known(b)?);
            if a == b {
                return Err(bad(
                    "a region with itself; set `local_rtt_ms` for same-region round trips".into(),
                ));
            }
            if ms > MAX_RTT_MS {
                return Err(bad(format!("{ms} ms is more than {MAX_RTT_MS} ms")));
            }
            if pairs
                .insert(ordered(a, b), Duration::from_millis(ms))
                .is_some()
            {
                return Err(bad(
                    "the pair is given twice (keys are symmetric: give \"a.b\" or \"b.a\")".into(),
                ));
            }
        }
        let ids: Vec<_> = topology.regions().map(|r| r.id.clone()).collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                if !pairs.contains_key(&ordered(a.clone(), b.clone())) {
                    return Err(invalid(format!(
                        "table `rtt_ms`: missing key \"{a}.{b}\" (every pair of regions needs a \
                            round-trip time)"
                    )));
                }
            }
        }
        Ok(Self {
            local: Duration::from_millis(local_ms),
            pairs,
        })
    }

    /// The round trip between a client or node in `a` and one in `b`; regions
    /// outside the matrix (never after `parse`) count as local.
    pub fn rtt(&self, a: &RegionId, b: &RegionId) -> Duration {
        if a == b {
            return self.local;
        }
        self.pairs
            .get(&ordered(a.clone(), b.clone()))
            .copied()
            .unwrap_or(self.local)
    }
}

fn ordered(a: RegionId, b: RegionId) -> (RegionId, RegionId) {
    if a <= b { (a, b) } else { (b, a) }
}

fn names(topology: &Topology) -> String {
    topology
        .regions()
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../regions"
        )))
        .unwrap()
    }

    fn region(raw: &str) -> RegionId {
        RegionId::parse(raw).unwrap()
    }

    const FILE: &str = "regions/latency.toml";

    fn parse(text: &str) -> Result<Latency, String> {
        Latency::parse(text, Path::new(FILE), &topology()).map_err(|e| e.to_string())
    }

    const FULL: &str = r#"
[rtt_ms]
"us-east1.europe-west1" = 90
"europe-west3.us-east1" = 100
"us-east1.asia-southeast1" = 220
"europe-west1.europe-west3" = 10
"europe-west1.asia-southeast1" = 160
"europe-west3.asia-southeast1" = 150
"us-east1.europe-north1" = 115
"europe-west1.europe-north1" = 30
"europe-west3.europe-north1" = 25
"europe-north1.asia-southeast1" = 190
"#;

    #[test]
    fn the_shipped_matrix_loads_and_is_symmetric() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../regions/latency.toml"
        ));
        let latency = Latency::load(path, &topology()).unwrap();
        let (us, eu) = (region("us-east1"), region("europe-west1"));
        assert_eq!(latency.rtt(&us, &eu), Duration::from_millis(90));
        assert_eq!(latency.rtt(&eu, &us), Duration::from_millis(90));
        assert_eq!(latency.rtt(&us, &us), DEFAULT_LOCAL_RTT);
    }

    #[test]
    fn keys_in_either_order_and_a_local_figure_are_accepted() {
        let latency = parse(&format!("local_rtt_ms = 5\n{FULL}")).unwrap();
        let (us, eu3) = (region("us-east1"), region("europe-west3"));
        assert_eq!(latency.rtt(&us, &eu3), Duration::from_millis(100));
        assert_eq!(latency.rtt(&eu3, &eu3), Duration::from_millis(5));
    }

    #[test]
    fn an_unknown_region_is_named_with_the_file_and_key() {
        let err =
            parse(&FULL.replace("europe-west3.us-east1", "mars-north1.us-east1")).unwrap_err();
        assert!(
            err.contains(FILE)
                && err.contains("mars-north1.us-east1")
                && err.contains("unknown region `mars-north1`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_pair_is_named() {
        let err = parse(&FULL.replace("\"europe-west1.europe-west3\" = 10\n", "")).unwrap_err();
        assert!(
            err.contains(FILE) && err.contains("europe-west1.europe-west3"),
            "{err}"
        );
    }

    #[test]
    fn a_pair_given_twice_a_self_pair_and_a_bad_key_are_rejected() {
        let twice = parse(&format!("{FULL}\"us-east1.europe-west3\" = 100\n")).unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        let itself = parse(&format!("{FULL}\"us-east1.us-east1\" = 1\n")).unwrap_err();
        assert!(itself.contains("local_rtt_ms"), "{itself}");
        let no_dot = parse(&format!("{FULL}\"us-east1\" = 1\n")).unwrap_err();
        assert!(no_dot.contains("two region ids"), "{no_dot}");
        let unknown_field = parse(&format!("jitter_ms = 3\n{FULL}")).unwrap_err();
        assert!(unknown_field.contains("jitter_ms"), "{unknown_field}");
    }
}
