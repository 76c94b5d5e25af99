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
    pub fn validate(&self, topology: &Topology) -> Result<(), PlacementError> {
        match self {
            Residency::Regions(list) if list.is_empty() => Err(PlacementError::Invalid(
                "residency.regions must name at least one region".into(),
            )),
            Residency::Regions(list) => match list.iter().find(|r| topology.get(r).is_none()) {
                Some(unknown) => Err(PlacementError::Invalid(format!(
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
) -> Result<(), PlacementError> {
    let known = topology.get(region).ok_or_else(|| {
        PlacementError::Invalid(format!("region `{region}` is not a known region"))
    })?;
    if let Some(policy) = policy {
        policy.validate(topology)?;
    }
    if !allows(policy, known) {
        return Err(PlacementError::NotAllowed(format!(
            "the residency policy does not allow region `{region}`"
        )));
    }
    Ok(())
}

/// Why a placement (home region, relocation target, policy) is refused: a
/// domain error, which the API layer answers as 422 `validation_failed` or 400
/// `residency_violation`.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The policy or region is malformed or unknown.
    #[error("{0}")]
    Invalid(String),
    /// A known region the policy does not allow.
    #[error("{0}")]
    NotAllowed(String),
}

impl From<PlacementError> for ApiError {
    fn from(err: PlacementError) -> Self {
        match err {
            PlacementError::Invalid(detail) => ApiError::validation(detail),
            PlacementError::NotAllowed(detail) => {
                ApiError::bad_request(ErrorCode::ResidencyViolation, detail)
            }
        }
    }
}

/// Whether `region` satisfies an optional policy (`None` allows every region).
pub fn allows(policy: Option<&Residency>, region: &Region) -> bool {
    policy.is_none_or(|p| p.allows(region))
}
