//! `/v1/usage`: a tenant's limits and what it uses of them (owners and admins).

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ai_ledger::{self, AiUsage};
use crate::error::ApiError;
use crate::limits::denials::DenialCounts;
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::store::{usage, users};
use crate::tenancy::Limits;

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

#[utoipa::path(tag = "usage", security(("bearer" = [])), responses((status = 200, body = Usage)))]
#[get("/usage")]
pub async fn get(
    scope: Guarded<Allow<perm::ReadUsage>, TenantScope>,
) -> Result<web::Json<Usage>, ApiError> {
    let (storage_bytes, user_count, ai_tokens) = scope
        .read(async |tx| {
            Ok((
                usage::storage_bytes(tx).await?,
                users::count(tx).await?,
                ai_ledger::month_usage(tx).await?,
            ))
        })
        .await?;
    let tenant = scope.tenant();
    Ok(web::Json(Usage {
        limits: tenant.limits(),
        storage_bytes,
        users: user_count.max(0) as u64,
        ai_tokens,
        in_flight_requests: scope.limits().concurrency.in_flight(tenant),
        denials: scope.limits().denials.totals(tenant.id),
    }))
}
