//! The `summary.create` job: pick the summary's engine, reserve AI tokens on the
//! tenant's ledger (`crate::limits::ledger`) for the engine's estimate, run it, then
//! commit the tokens it reports (and store the summary) or release them on
//! failure. Over the cap, the reservation fails and the summary fails with
//! nothing run. An engine error is retried (timeouts, 429, 5xx) or fails the
//! summary at once (other 4xx, malformed answers); the last attempt's error
//! fails it too.

use std::sync::Arc;

use serde_json::{Value, json};

use super::engine::{Engine, EngineError, Extractive, Input};
use super::gate;
use super::openai::OpenAi;
use super::store;
use crate::crypto::keyring::Keyring;
use crate::db::TxMode;
use crate::error::ApiError;
use crate::ids::SummaryId;
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::limits::ledger::{self, AiLedger};
use crate::outbox::{self, Event};
use crate::store::tenants::ai_engine as tenant_ai;
use crate::store::tenants::encryption;
use crate::tenancy::Directory;
use crate::tenancy::record::AiEngine;
use crate::topology::Topology;

pub const KIND: &str = "summary.create";

pub struct CreateSummary {
    pub ledger: AiLedger,
    pub directory: Directory,
    /// Messages read at most (the newest of the window).
    pub max_messages: i64,
    /// The node's OpenAI-compatible engine, if configured.
    pub external: Option<Arc<OpenAi>>,
    pub topology: Arc<Topology>,
    /// Opens sealed bodies, seals the summary of an encrypting tenant.
    pub keyring: Arc<Keyring>,
}

fn retry(err: impl std::fmt::Display) -> JobError {
    JobError::Retry(err.to_string())
}

impl CreateSummary {
    /// Marks the summary failed (no retry will follow) and says why — only while
    /// this run still holds the job's lease, checked in the same transaction: a
    /// stale run (lease expired, job handed to another node) leaves the summary
    /// to the job's current owner.
    async fn fail(&self, ctx: &JobContext, id: SummaryId, why: String) -> Result<Value, JobError> {
        let marked = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                if !ctx.holds_lease(tx).await? {
                    return Ok(false);
                }
                store::finish(tx, None, id, Err(why.clone())).await?;
                Ok(true)
            })
            .await
            .map_err(retry)?;
        if !marked {
            tracing::info!(job_id = %ctx.job_id, "summary job lost its lease; the summary is left \
                to the job's current owner");
        }
        Err(JobError::Permanent(why))
    }
}

#[async_trait::async_trait(?Send)]
impl JobHandler for CreateSummary {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let id = payload["summary_id"]
            .as_str()
            .and_then(|s| SummaryId::parse(s).ok())
            .ok_or_else(|| JobError::Permanent("payload without summary_id".into()))?;
        let tenant_id = ctx
            .tenant
            .ok_or_else(|| JobError::Permanent("no tenant".into()))?;
        let tenant = self
            .directory
            .get(tenant_id)
            .await
            .map_err(retry)?
            .ok_or_else(|| JobError::Permanent("tenant gone".into()))?;
        let limit = self.max_messages;
        let settings = self.external.as_ref().map(|e| e.settings());
        let loaded = ctx
            .tenant_tx(TxMode::ReadOnly, async |tx| {
                let Some(summary) = store::pending(tx, id).await? else {
                    return Ok(None);
                };
                let messages = store::messages(tx, &self.keyring, &summary, limit).await?;
                // The gate again, on the tenant row as it is now: an opt-out or a
                // residency change since the request stops the external call.
                let (ai, policy) = tenant_ai::get(tx).await?;
                let allowed = gate::decide(&ai, policy.as_ref(), settings, &self.topology);
                Ok(Some((summary, messages, allowed)))
            })
            .await
            .map_err(retry)?;
        let Some((summary, messages, allowed)) = loaded else {
            return Ok(json!({ "already": "finished" }));
        };
        let engine: &dyn Engine = match (summary.engine.as_str(), &self.external, allowed) {
            ("extractive", _, _) => &Extractive,
            ("external", Some(external), Ok(AiEngine::External)) => external.as_ref(),
            ("external", _, Ok(AiEngine::Extractive)) => {
                let why = "the tenant no longer uses the external engine".to_owned();
                return self.fail(ctx, id, why).await;
            }
            ("external", _, Err(refused)) => {
                return self.fail(ctx, id, refused.to_string()).await;
            }
            (other, _, _) => {
                let why = format!("the `{other}` engine is not configured on this node");
                return self.fail(ctx, id, why).await;
            }
        };
        let input = Input {
            messages: &messages,
            max_sentences: usize::try_from(summary.max_sentences).unwrap_or(5),
        };
        let reservation = match self
            .ledger
            .reserve_for_job(&tenant, ctx.job_id, engine.estimate(&input))
            .await
        {
            Ok(r) => r,
            Err(err) => {
                let why = format!("AI token reservation refused: {err}");
                return self.fail(ctx, id, why).await;
            }
        };
        let output = match engine.summarise(&input).await {
            Ok(output) => output,
            Err(err) => {
                self.ledger
                    .release(&tenant, reservation)
                    .await
                    .map_err(retry)?;
                let last = ctx.attempt >= ctx.max_attempts;
                return match err {
                    EngineError::Retry(why) if !last => Err(JobError::Retry(why)),
                    EngineError::Retry(why) | EngineError::Permanent(why) => {
                        self.fail(
                            ctx,
                            id,
                            format!("the {} engine failed: {why}", engine.name()),
                        )
                        .await
                    }
                };
            }
        };
        let used = if output.tokens_used > reservation.tokens {
            // The estimate is an upper bound for byte-level tokenisers; an engine
            // counting otherwise is charged what was held, and it is logged.
            tracing::warn!(
                reported = output.tokens_used,
                reserved = reservation.tokens,
                "summary engine reported more tokens than were reserved; committing the reservation"
            );
            reservation.tokens
        } else {
            output.tokens_used
        };
        let stored = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                // A stale run stores nothing (the job's current owner does).
                if !ctx.holds_lease(tx).await? {
                    return Err(ApiError::internal(anyhow::anyhow!(
                        "summary job {} lost its lease before storing",
                        ctx.job_id
                    )));
                }
                // The policy as committed now, not as cached: a summary of a
                // tenant that turned encryption on is never stored in plaintext.
                let seal = encryption::get(tx)
                    .await?
                    .messages
                    .then_some(&*self.keyring);
                store::finish(
                    tx,
                    seal,
                    id,
                    Ok((output.text.clone(), output.sentences.clone(), used as i64)),
                )
                .await?;
                outbox::record(
                    tx,
                    Event::new(
                        "summary.completed",
                        ("summary", id.to_string()),
                        json!({ "summary_id": id, "channel_id": summary.channel_id }),
                    ),
                )
                .await?;
                // The charge commits with the summary, or neither does.
                ledger::commit_in(tx, reservation, used).await
            })
            .await;
        match stored {
            Ok(()) => {
                let sentences = output.sentences.as_array().map_or(0, Vec::len);
                Ok(json!({ "tokens_used": used, "sentences": sentences, "engine": engine.name() }))
            }
            Err(err) => {
                // Released unless the lease expiry already did (then the job's
                // next owner redoes the work under its own reservation).
                if let Err(why) = self.ledger.release(&tenant, reservation).await {
                    tracing::warn!(error = %why, "summary reservation was already settled");
                }
                Err(retry(err))
            }
        }
    }
}
