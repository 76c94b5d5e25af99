//! `/v1/jobs`: the tenant's background jobs, for its owners and admins — list,
//! one job, cancel. Jobs are enqueued by the API's own features (`jobs::enqueue`),
//! never directly by clients.

use actix_web::{get, post, web};

use super::IdPath;
use crate::error::ApiError;
use crate::ids::JobId;
use crate::jobs::store::{self, Job};
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};

/// The tenant's jobs, newest first.
#[utoipa::path(tag = "jobs", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Job>)))]
#[get("/jobs")]
pub async fn list(
    scope: Guarded<Allow<perm::ManageJobs>, TenantScope>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Job>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(store::list(tx, limit, after).await?))
            .await?,
    ))
}

/// One job.
#[utoipa::path(tag = "jobs", params(("id" = uuid::Uuid, Path, description = "Job id")),
    security(("bearer" = [])), responses((status = 200, body = Job)))]
#[get("/jobs/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::ManageJobs>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Job>, ApiError> {
    let id = JobId::parse(&path)?;
    Ok(web::Json(
        scope.read(async |tx| Ok(store::get(tx, id).await?)).await?,
    ))
}

/// Cancels a queued or running job (a running job stops at its next lease
/// renewal; its outcome is discarded). A finished job: 409 `job_finished`.
#[utoipa::path(tag = "jobs", params(("id" = uuid::Uuid, Path, description = "Job id")),
    security(("bearer" = [])), responses((status = 200, body = Job)))]
#[post("/jobs/{id}/cancel")]
pub async fn cancel(
    scope: Guarded<Allow<perm::ManageJobs>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Job>, ApiError> {
    let id = JobId::parse(&path)?;
    Ok(web::Json(
        scope
            .write(async |tx| Ok(store::cancel(tx, id).await?))
            .await?,
    ))
}
