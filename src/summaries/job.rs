//! The `summary.create` job: reserve AI tokens on the tenant's ledger
//! (`crate::limits::ledger`) for what the engine will read, run the engine, then
//! commit the tokens used (and store the summary) or release them on failure.
//! Over the cap, the reservation fails and the summary fails with nothing run.

use serde_json::{Value, json};

use super::{extractive, store};
use crate::db::TxMode;
use crate::ids::SummaryId;
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::limits::ledger::AiLedger;
use crate::outbox::{self, Event};
use crate::tenancy::Directory;

pub const KIND: &str = "summary.create";

pub struct CreateSummary {
    pub ledger: AiLedger,
    pub directory: Directory,
    /// Messages read at most (the newest of the window).
    pub max_messages: i64,
}

fn retry(err: impl std::fmt::Display) -> JobError {
    JobError::Retry(err.to_string())
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
        let loaded = ctx
            .tenant_tx(TxMode::ReadOnly, async |tx| {
                let Some(summary) = store::pending(tx, id).await? else {
                    return Ok(None);
                };
                let messages = store::messages(tx, &summary, limit).await?;
                Ok(Some((summary, messages)))
            })
            .await
            .map_err(retry)?;
        let Some((summary, messages)) = loaded else {
            return Ok(json!({ "already": "finished" }));
        };
        let bodies: Vec<String> = messages.iter().map(|(_, b)| b.clone()).collect();
        let estimate: u64 = bodies
            .iter()
            .map(|b| extractive::tokens(b).len() as u64)
            .sum::<u64>()
            .max(1);
        let reservation = match self.ledger.reserve(&tenant, estimate).await {
            Ok(r) => r,
            Err(err) => {
                let why = format!("AI token reservation refused: {err}");
                ctx.tenant_tx(TxMode::ReadWrite, async |tx| {
                    Ok(store::finish(tx, id, Err(why.clone())).await?)
                })
                .await
                .map_err(retry)?;
                return Err(JobError::Permanent(why));
            }
        };
        let k = usize::try_from(summary.max_sentences).unwrap_or(5);
        let (chosen, read) = extractive::summarise(&bodies, k);
        let used = read.min(reservation.tokens);
        let sentences = json!(
            chosen
                .iter()
                .map(|s| json!({ "message_id": messages[s.message].0, "text": s.text }))
                .collect::<Vec<_>>()
        );
        let text = chosen
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let stored = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                store::finish(tx, id, Ok((text.clone(), sentences.clone(), used as i64))).await?;
                outbox::record(
                    tx,
                    Event::new(
                        "summary.completed",
                        ("summary", id.to_string()),
                        json!({ "summary_id": id, "channel_id": summary.channel_id }),
                    ),
                )
                .await?;
                Ok(())
            })
            .await;
        match stored {
            Ok(()) => {
                self.ledger
                    .commit(&tenant, reservation, used)
                    .await
                    .map_err(retry)?;
                Ok(json!({ "tokens_used": used, "sentences": chosen.len() }))
            }
            Err(err) => {
                self.ledger
                    .release(&tenant, reservation)
                    .await
                    .map_err(retry)?;
                Err(retry(err))
            }
        }
    }
}
