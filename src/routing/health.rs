//! Region health as this node sees it: peers are probed on `/readyz`, and the
//! drained flags come from `region_state` in the database, so every node agrees on
//! drains. A region is healthy when it is not drained and (for peers) has not
//! missed `routing.unreachable_after` probes in a row: one answer makes it
//! reachable again, but one lost probe (a busy peer, a dropped packet) does not
//! fail its tenants over. Until the first probe, peers count as healthy.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::RegionId;

#[derive(Clone, Copy, Debug, Default, Serialize, ToSchema)]
pub struct RegionStatus {
    pub drained: bool,
    /// False once `routing.unreachable_after` probes in a row of the region's
    /// node did not get a 200 from `/readyz`; true again at the next 200.
    pub reachable: bool,
}

pub struct RegionHealth {
    here: RegionId,
    states: RwLock<HashMap<RegionId, RegionStatus>>,
    /// Probes missed in a row, per peer.
    missed: RwLock<HashMap<RegionId, u32>>,
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
            missed: RwLock::new(HashMap::new()),
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

    /// Records one probe of `region`: an answer makes it reachable; it becomes
    /// unreachable when this is its `unreachable_after`-th miss in a row.
    pub fn record_probe(&self, region: &RegionId, answered: bool, unreachable_after: u32) {
        let missed = match self.missed.write() {
            Ok(mut missed) => {
                let count = missed.entry(region.clone()).or_default();
                *count = if answered { 0 } else { count.saturating_add(1) };
                *count
            }
            Err(_) => return,
        };
        self.set_reachable(region, missed < unreachable_after.max(1));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_unreachable_only_after_misses_in_a_row() {
        let region = |id| RegionId::parse(id).unwrap();
        let (here, peer) = (region("us-east1"), region("europe-west1"));
        let health = RegionHealth::new(here.clone(), [here, peer.clone()].into_iter());
        health.record_probe(&peer, false, 3);
        health.record_probe(&peer, false, 3);
        assert!(health.is_healthy(&peer), "two misses of three");
        health.record_probe(&peer, true, 3);
        health.record_probe(&peer, false, 3);
        health.record_probe(&peer, false, 3);
        assert!(health.is_healthy(&peer), "an answer restarts the count");
        health.record_probe(&peer, false, 3);
        assert!(!health.is_healthy(&peer), "the third miss in a row");
        health.record_probe(&peer, true, 3);
        assert!(health.is_healthy(&peer), "one answer brings it back");
    }
}
