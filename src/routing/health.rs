//! Region health as this node sees it: peers are probed on `/readyz`, and the
//! drained flags come from `region_state` in the database, so every node agrees on
//! drains. A region is healthy when it is not drained and (for peers) answered its
//! last probe. Until the first probe, peers count as healthy.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::RegionId;

#[derive(Clone, Copy, Debug, Default, Serialize, ToSchema)]
pub struct RegionStatus {
    pub drained: bool,
    /// Whether the last probe of the region's node answered `/readyz` with 200.
    pub reachable: bool,
}

pub struct RegionHealth {
    here: RegionId,
    states: RwLock<HashMap<RegionId, RegionStatus>>,
}

impl RegionHealth {
    pub fn new(here: RegionId, regions: impl Iterator<Item = RegionId>) -> Self {
        let states = regions
            .map(|r| {
                (
                    r,
                    RegionStatus {
                        drained: false,
                        reachable: true,
                    },
                )
            })
            .collect();
        Self {
            here,
            states: RwLock::new(states),
        }
    }

    pub fn is_healthy(&self, region: &RegionId) -> bool {
        self.status(region)
            .is_some_and(|s| !s.drained && (s.reachable || *region == self.here))
    }

    pub fn status(&self, region: &RegionId) -> Option<RegionStatus> {
        self.states
            .read()
            .ok()
            .and_then(|states| states.get(region).copied())
    }

    pub fn snapshot(&self) -> BTreeMap<RegionId, RegionStatus> {
        self.states
            .read()
            .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    pub fn is_drained_here(&self) -> bool {
        self.status(&self.here).is_some_and(|s| s.drained)
    }

    pub fn set_drained(&self, drained: &[RegionId]) {
        if let Ok(mut states) = self.states.write() {
            for (region, status) in states.iter_mut() {
                status.drained = drained.contains(region);
            }
        }
    }

    pub fn set_reachable(&self, region: &RegionId, reachable: bool) {
        if let Ok(mut states) = self.states.write()
            && let Some(status) = states.get_mut(region)
        {
            status.reachable = reachable;
        }
    }
}

/// One probe of a peer's readiness.
pub async fn probe(client: &awc::Client, base: &str, timeout: Duration) -> bool {
    let request = client.get(format!("{base}/readyz")).timeout(timeout).send();
    matches!(request.await, Ok(response) if response.status().is_success())
}
