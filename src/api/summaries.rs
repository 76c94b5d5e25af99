//! `/v1/channels/{id}/summaries`: members ask for a summary of a channel (202 and
//! a job); anyone who reads the channel reads it. A tenant whose month of AI
//! tokens is spent gets 403 `ai_quota_exceeded` and no job. The engine is the
//! tenant's choice (`summaries::gate`), decided in the transaction that enqueues:
//! 409 `ai_engine_outside_residency` when the external engine's region is outside
//! the tenant's residency and the tenant has not opted in, 409
//! `ai_engine_unavailable` when no external engine is configured.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::ids::{ChannelId, JobId, SummaryId};
use crate::jobs::{self, NewJob};
use crate::limits::ledger;
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::state::AppState;
use crate::store::channels;
use crate::store::tenants::ai_engine as tenant_ai;
use crate::summaries::gate;
use crate::summaries::job::KIND;
use crate::summaries::store::{self, NewSummary, Summary};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSummary {
    /// Messages from this time on (default: the channel's start).
    since: Option<DateTime<Utc>>,
    /// Messages before this time (default: now).
    until: Option<DateTime<Utc>>,
    /// 1–20 (default 5).
    max_sentences: Option<i32>,
}

#[derive(Serialize, ToSchema)]
pub struct SummaryAccepted {
    pub id: SummaryId,
    pub job_id: JobId,
    pub state: String,
}

/// Ask for a summary of a channel; made by a background job.
#[utoipa::path(tag = "summaries", request_body = RequestSummary,
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    security(("bearer" = [])), responses((status = 202, body = SummaryAccepted)))]
#[post("/channels/{id}/summaries")]
pub async fn create(
    scope: Guarded<Allow<perm::RequestSummary>, TenantScope>,
    state: web::Data<AppState>,
    hooks: web::Data<Hooks>,
    path: super::IdPath,
    body: super::JsonBody<RequestSummary>,
) -> Result<HttpResponse, ApiError> {
    let channel = ChannelId::parse(&path)?;
    let max_sentences = body.max_sentences.unwrap_or(5);
    if !(1..=20).contains(&max_sentences) {
        return Err(ApiError::validation(
            "`max_sentences` must be between 1 and 20",
        ));
    }
    if let (Some(since), Some(until)) = (body.since, body.until)
        && since >= until
    {
        return Err(ApiError::validation("`since` must be before `until`"));
    }
    let cap = scope.tenant().limits().ai_tokens_per_month;
    let mut new = NewSummary {
        id: SummaryId::new_random(),
        channel,
        since: body.since,
        until: body.until,
        max_sentences,
        engine: "extractive",
        requested_by: scope.user_id(),
    };
    let job = scope
        .write(async |tx| {
            channels::ensure_exists(tx, channel).await?;
            // The engine from the tenant row as this transaction reads it (not the
            // directory cache): an opt-out or a residency change is never missed.
            let (ai, policy) = tenant_ai::get(tx).await?;
            let external = Some(&hooks.summaries.openai);
            new.engine = gate::decide(&ai, policy.as_ref(), external, &state.topology)?.as_str();
            // Checked in the transaction that enqueues: over the cap, nothing runs.
            let usage = ledger::month_usage(tx).await?;
            if usage.used + usage.reserved >= cap {
                return Err(ApiError::AiQuotaExceeded(format!(
                    "this month's AI tokens are spent ({} used, {} held, cap {cap})",
                    usage.used, usage.reserved
                )));
            }
            store::create(tx, &new).await?;
            let mut job = NewJob::new(KIND, serde_json::json!({ "summary_id": new.id }));
            job.idempotency_key = Some(format!("summary:{}", new.id));
            job.max_attempts = 3;
            let job = jobs::enqueue(tx, job).await?;
            store::set_job(tx, new.id, job).await?;
            Ok(job)
        })
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/channels/{channel}/summaries/{}", new.id),
        ))
        .json(SummaryAccepted {
            id: new.id,
            job_id: job,
            state: "queued".into(),
        }))
}

#[utoipa::path(tag = "summaries", params(("id" = uuid::Uuid, Path, description = "Channel id"),
    ("summary_id" = uuid::Uuid, Path, description = "Summary id")), security(("bearer" = [])),
    responses((status = 200, body = Summary)))]
#[get("/channels/{id}/summaries/{summary_id}")]
pub async fn get(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    state: web::Data<crate::state::AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Summary>, ApiError> {
    let (channel, id) = (ChannelId::parse(&path.0)?, SummaryId::parse(&path.1)?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(store::get(tx, &state.keyring, channel, id).await?))
            .await?,
    ))
}
