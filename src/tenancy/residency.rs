//! Residency policies: where a tenant's rows may live and be processed.
//! `{"jurisdiction": "eu"}` or `{"regions": ["europe-west1", …]}`; none = anywhere.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::ids::RegionId;
use crate::topology::{Jurisdiction, Region, Topology};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Residency {
    Jurisdiction(Jurisdiction),
    Regions(Vec<RegionId>),
}

impl Residency {
    pub fn allows(&self, region: &Region) -> bool {
        match self {
            Residency::Jurisdiction(j) => region.jurisdiction == *j,
            Residency::Regions(list) => list.contains(&region.id),
        }
    }

    /// A policy must name known regions and allow at least one.
    pub fn validate(&self, topology: &Topology) -> Result<(), ApiError> {
        match self {
            Residency::Regions(list) if list.is_empty() => Err(ApiError::validation(
                "residency.regions must name at least one region",
            )),
            Residency::Regions(list) => match list.iter().find(|r| topology.get(r).is_none()) {
                Some(unknown) => Err(ApiError::validation(format!(
                    "residency.regions: unknown region `{unknown}`"
                ))),
                None => Ok(()),
            },
            Residency::Jurisdiction(_) => Ok(()),
        }
    }
}

/// Checks that `region` is known and that `policy` (itself valid) allows it: the
/// rule for a home region, a relocation target and a new policy alike.
pub fn check_placement(
    topology: &Topology,
    region: &RegionId,
    policy: Option<&Residency>,
) -> Result<(), ApiError> {
    let known = topology
        .get(region)
        .ok_or_else(|| ApiError::validation(format!("region `{region}` is not a known region")))?;
    if let Some(policy) = policy {
        policy.validate(topology)?;
    }
    if !allows(policy, known) {
        return Err(ApiError::bad_request(
            ErrorCode::ResidencyViolation,
            format!("the residency policy does not allow region `{region}`"),
        ));
    }
    Ok(())
}

/// Whether `region` satisfies an optional policy (`None` allows every region).
pub fn allows(policy: Option<&Residency>, region: &Region) -> bool {
    policy.is_none_or(|p| p.allows(region))
}
