//! Which engine may summarise a tenant's channel: the tenant's choice
//! (`tenants.ai_engine`), the node's configured external engine, and the region
//! or jurisdiction that engine runs in against the tenant's residency. The
//! summary request decides in the transaction that enqueues, on the tenant row it
//! re-reads there; the job decides again, on the row as it is then, before
//! anything is sent.

use super::openai::OpenAiSettings;
use crate::error::{ApiError, ErrorCode};
use crate::store::tenants::ai_engine::TenantAi;
use crate::tenancy::Residency;
use crate::tenancy::record::AiEngine;
use crate::tenancy::residency;
use crate::topology::Topology;

/// The engine the tenant's summaries use now, or why none may.
pub fn decide(
    tenant: &TenantAi,
    policy: Option<&Residency>,
    external: Option<&OpenAiSettings>,
    topology: &Topology,
) -> Result<AiEngine, ApiError> {
    if tenant.ai_engine == AiEngine::Extractive {
        return Ok(AiEngine::Extractive);
    }
    let Some(engine) = external.filter(|e| e.enabled()) else {
        return Err(ApiError::Conflict {
            code: ErrorCode::AiEngineUnavailable,
            detail: "the tenant chose the external summary engine, and none is configured here"
                .into(),
        });
    };
    let inside = match engine.jurisdiction {
        // Somewhere in a jurisdiction: a policy of that jurisdiction allows it;
        // a policy listing regions cannot tell whether it is one of them.
        Some(j) => match policy {
            None => true,
            Some(Residency::Jurisdiction(allowed)) => *allowed == j,
            Some(Residency::Regions(_)) => false,
        },
        // A region the topology does not know has no jurisdiction: only a tenant
        // without a residency policy (or one that opted in) may use it.
        None => match topology.find(&engine.region) {
            Some(region) => residency::allows(policy, region),
            None => policy.is_none(),
        },
    };
    if inside || tenant.ai_external_outside_residency {
        Ok(AiEngine::External)
    } else {
        Err(ApiError::Conflict {
            code: ErrorCode::AiEngineOutsideResidency,
            detail: format!(
                "the external summary engine runs in `{}`, outside the tenant's residency; \
                 the tenant has not opted in (`ai_external_outside_residency`)",
                engine.location()
            ),
        })
    }
}
