//! The routing rule, as a pure function of topology, tenant and region health.

use crate::ids::RegionId;
use crate::tenancy::{TenantRecord, residency};
use crate::topology::{Region, Topology};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Process the request on this node.
    Serve,
    /// Send it on to a node of this region and stream the answer back.
    Forward(RegionId),
    /// The tenant's residency excludes this region: send the client there instead.
    Redirect(RegionId),
    /// No healthy region that the tenant's residency allows.
    Unavailable,
}

/// The region that serves `tenant` now: its home region when healthy, else the first
/// healthy region of the home region's failover order that residency allows.
pub fn serving_region<'t>(
    topology: &'t Topology,
    tenant: &TenantRecord,
    healthy: impl Fn(&RegionId) -> bool,
) -> Option<&'t Region> {
    let home = topology.get(&tenant.home_region)?;
    let allowed = |r: &Region| residency::allows(tenant.residency.as_ref(), r) && healthy(&r.id);
    if allowed(home) {
        return Some(home);
    }
    home.failover
        .iter()
        .filter_map(|id| topology.get(id))
        .find(|r| allowed(r))
}

/// What the node of region `here` does with a request of `tenant`.
pub fn decide(
    topology: &Topology,
    here: &RegionId,
    tenant: &TenantRecord,
    healthy: impl Fn(&RegionId) -> bool,
) -> Decision {
    let Some(target) = serving_region(topology, tenant, healthy) else {
        return Decision::Unavailable;
    };
    if target.id == *here {
        return Decision::Serve;
    }
    let here_allowed = topology
        .get(here)
        .is_some_and(|r| residency::allows(tenant.residency.as_ref(), r));
    if here_allowed {
        Decision::Forward(target.id.clone())
    } else {
        Decision::Redirect(target.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ids::TenantId;
    use crate::tenancy::record::LimitOverrides;
    use crate::tenancy::{Plan, Residency, TenantStatus};
    use crate::topology::Jurisdiction;

    fn topology() -> Topology {
        Topology::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/regions"))).unwrap()
    }

    fn tenant(home: &str, residency: Option<Residency>) -> TenantRecord {
        TenantRecord {
            id: TenantId::new_random(),
            slug: "t".into(),
            name: "T".into(),
            home_region: RegionId::parse(home).unwrap(),
            residency,
            plan: Plan::Free,
            limit_overrides: LimitOverrides::default(),
            status: TenantStatus::Active,
            erase_after: None,
            encryption: Default::default(),
            config_version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn r(id: &str) -> RegionId {
        RegionId::parse(id).unwrap()
    }

    #[test]
    fn home_serves_others_forward_and_excluded_regions_redirect() {
        let topology = topology();
        let all_up = |_: &RegionId| true;
        let eu = tenant(
            "europe-west1",
            Some(Residency::Jurisdiction(Jurisdiction::Eu)),
        );
        assert_eq!(
            decide(&topology, &r("europe-west1"), &eu, all_up),
            Decision::Serve
        );
        assert_eq!(
            decide(&topology, &r("europe-west3"), &eu, all_up),
            Decision::Forward(r("europe-west1"))
        );
        assert_eq!(
            decide(&topology, &r("us-east1"), &eu, all_up),
            Decision::Redirect(r("europe-west1"))
        );
        let anywhere = tenant("us-east1", None);
        assert_eq!(
            decide(&topology, &r("asia-southeast1"), &anywhere, all_up),
            Decision::Forward(r("us-east1"))
        );
    }

    #[test]
    fn failover_follows_the_order_residency_allows() {
        let topology = topology();
        let eu = tenant(
            "europe-west1",
            Some(Residency::Jurisdiction(Jurisdiction::Eu)),
        );
        let west1_down = |id: &RegionId| id.as_str() != "europe-west1";
        assert_eq!(
            decide(&topology, &r("europe-west3"), &eu, west1_down),
            Decision::Serve
        );
        assert_eq!(
            decide(&topology, &r("us-east1"), &eu, west1_down),
            Decision::Redirect(r("europe-west3"))
        );
        // europe-west1's failover order continues to us-east1, which the EU policy forbids.
        let eu_down = |id: &RegionId| !id.as_str().starts_with("europe");
        assert_eq!(
            decide(&topology, &r("us-east1"), &eu, eu_down),
            Decision::Unavailable
        );
        // Without a policy the tenant fails over out of the EU.
        let free = tenant("europe-west1", None);
        assert_eq!(
            decide(&topology, &r("us-east1"), &free, eu_down),
            Decision::Serve
        );
    }
}
