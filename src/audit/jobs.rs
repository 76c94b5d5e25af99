//! The periodic checkpoint jobs: every `audit.checkpoint_interval_ms` (default
//! an hour, `seal::AuditSettings`), each tenant's trail
//! (a job per tenant, in its home region) and each region's platform trail (a
//! job per region) get a signed checkpoint of their head, unless it has not
//! moved since the last one (the checkpoint at that seq is kept).

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::rotation::job_error;
use crate::crypto::signing::Signer;
use crate::db::TxMode;
use crate::jobs::{JobContext, JobError, JobHandler, Registry, Schedule, ScheduleScope};

pub const TENANT_KIND: &str = "audit_checkpoint";
pub const PLATFORM_KIND: &str = "audit_platform_checkpoint";
/// The two handlers and their schedules, every `every`
/// (`audit.checkpoint_interval_ms`).
pub fn register(registry: Registry, signer: &Arc<Signer>, every: Duration) -> Registry {
    registry
        .with(TenantCheckpoint {
            signer: signer.clone(),
        })
        .with(PlatformCheckpoint {
            signer: signer.clone(),
        })
        .every(Schedule {
            kind: TENANT_KIND,
            every,
            scope: ScheduleScope::EachTenant,
            max_attempts: 5,
        })
        .every(Schedule {
            kind: PLATFORM_KIND,
            every,
            scope: ScheduleScope::Region,
            max_attempts: 5,
        })
}

pub struct TenantCheckpoint {
    pub signer: Arc<Signer>,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for TenantCheckpoint {
    fn kind(&self) -> &'static str {
        TENANT_KIND
    }

    async fn run(
        &self,
        ctx: &JobContext,
        _payload: &serde_json::Value,
    ) -> Result<serde_json::Value, JobError> {
        let taken = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                Ok(super::checkpoint::take_tenant(tx, &self.signer, "periodic").await?)
            })
            .await
            .map_err(job_error)?;
        Ok(serde_json::json!({ "seq": taken.map(|c| c.seq) }))
    }
}

pub struct PlatformCheckpoint {
    pub signer: Arc<Signer>,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for PlatformCheckpoint {
    fn kind(&self) -> &'static str {
        PLATFORM_KIND
    }

    async fn run(
        &self,
        ctx: &JobContext,
        _payload: &serde_json::Value,
    ) -> Result<serde_json::Value, JobError> {
        let region = ctx.region.clone();
        let taken = ctx
            .platform_tx(TxMode::ReadWrite, async |tx| {
                Ok(super::checkpoint::take_platform(tx, &self.signer, &region, "periodic").await?)
            })
            .await
            .map_err(job_error)?;
        Ok(serde_json::json!({ "seq": taken.map(|c| c.seq) }))
    }
}
