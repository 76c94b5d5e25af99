//! What a tenant uses of its limits (`/v1/usage`) and the users cap. The exact
//! figures come from the database in the caller's transaction (storage shards,
//! the AI ledger, the users table); the node-local ones (requests in flight,
//! denials) from this node's limiters.

use serde::Serialize;
use utoipa::ToSchema;

use super::denials::DenialCounts;
use super::ledger::{self, AiUsage};
use super::{NodeLimits, storage};
use crate::db::TenantTx;
use crate::store::error::StoreError;
use crate::store::users;
use crate::tenancy::{Limits, TenantRecord};

#[derive(Serialize, ToSchema)]
pub struct Usage {
    limits: Limits,
    storage_bytes: u64,
    users: u64,
    ai_tokens: AiUsage,
    /// On the node that answered: requests of this tenant in flight now.
    in_flight_requests: u32,
    /// On the node that answered, since it started: requests refused by each limit.
    denials: DenialCounts,
}

/// The exact figures, read in one transaction of the tenant.
pub struct Measured {
    storage_bytes: u64,
    users: i64,
    ai_tokens: AiUsage,
}

pub async fn measure(tx: &TenantTx<'_>) -> Result<Measured, StoreError> {
    Ok(Measured {
        storage_bytes: storage::storage_bytes(tx).await?,
        users: users::count(tx).await?,
        ai_tokens: ledger::month_usage(tx).await?,
    })
}

/// The tenant's usage report: `measured` with this node's figures.
pub fn report(tenant: &TenantRecord, limits: &NodeLimits, measured: Measured) -> Usage {
    Usage {
        limits: tenant.limits(),
        storage_bytes: measured.storage_bytes,
        users: measured.users.max(0) as u64,
        ai_tokens: measured.ai_tokens,
        in_flight_requests: limits.concurrency.in_flight(tenant),
        denials: limits.denials.totals(tenant.id),
    }
}

/// Refuses a new user when the tenant has `cap` users already. Call in the
/// transaction that inserts the user: SERIALIZABLE makes this count-then-insert
/// safe against concurrent creates.
pub async fn ensure_user_room(tx: &TenantTx<'_>, cap: u32) -> Result<(), StoreError> {
    if users::count(tx).await? >= i64::from(cap) {
        return Err(StoreError::PlanLimit {
            detail: format!("the plan allows {cap} users"),
        });
    }
    Ok(())
}
