//! The webhook jobs. `outbox.dispatch` (one per event of a hooked tenant)
//! sequences the tenant's new events and writes their deliveries, then enqueues a
//! `webhook.deliver` per endpoint that got any — all in one transaction, so a
//! crash leaves either nothing done or everything enqueued. `webhook.deliver`
//! sends an endpoint's deliveries in order until its queue is empty or its head
//! must wait (backoff), and then enqueues itself for that time. Both are safe to
//! run twice: sequencing hands out numbers once, delivery rows are unique per
//! (endpoint, event), and a claimed head is not claimed again until its lease ends
//! (a delivery can still be sent twice if a node dies between sending and
//! recording: receivers deduplicate on `webhook-id`, as the standard expects).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::dispatch::{self, Head, WebhookSettings};
use crate::db::TxMode;
use crate::error::ApiError;
use crate::ids::WebhookId;
use crate::jobs::{self, JobContext, JobError, JobHandler, NewJob};
use crate::outbound::Client;
use crate::outbox::DISPATCH_KIND;

pub const DELIVER_KIND: &str = "webhook.deliver";
/// Deliveries one `webhook.deliver` run sends before handing over to a new job
/// (so one busy endpoint does not hold a worker for ever).
const PER_RUN: usize = 100;

fn retry(err: ApiError) -> JobError {
    JobError::Retry(err.to_string())
}

pub struct Dispatch {
    pub settings: WebhookSettings,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for Dispatch {
    fn kind(&self) -> &'static str {
        DISPATCH_KIND
    }

    async fn run(&self, ctx: &JobContext, _payload: &Value) -> Result<Value, JobError> {
        let batch = self.settings.batch;
        let (endpoints, full) = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                let (endpoints, sequenced) = dispatch::fan_out(tx, batch).await?;
                for endpoint in &endpoints {
                    jobs::enqueue(tx, deliver_job(*endpoint, None)).await?;
                }
                let full = sequenced >= batch;
                if full {
                    // More events than one batch: another dispatch takes the rest.
                    jobs::enqueue(tx, NewJob::new(DISPATCH_KIND, json!({}))).await?;
                }
                Ok((endpoints.len(), full))
            })
            .await
            .map_err(retry)?;
        Ok(json!({ "endpoints": endpoints, "more": full }))
    }
}

pub fn deliver_job(endpoint: WebhookId, run_after: Option<DateTime<Utc>>) -> NewJob {
    NewJob {
        kind: DELIVER_KIND,
        payload: json!({ "endpoint_id": endpoint }),
        idempotency_key: None,
        run_after,
        max_attempts: 20,
    }
}

pub struct Deliver {
    pub settings: WebhookSettings,
    pub client: Client,
    /// Opens the endpoint's sealed secrets.
    pub keyring: std::sync::Arc<crate::crypto::keyring::Keyring>,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for Deliver {
    fn kind(&self) -> &'static str {
        DELIVER_KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let endpoint = payload["endpoint_id"]
            .as_str()
            .and_then(|id| WebhookId::parse(id).ok())
            .ok_or_else(|| JobError::Permanent("payload without endpoint_id".into()))?;
        // The claim outlives the HTTP exchange, so no other worker sends it meanwhile.
        let lease = self.client.settings().total_timeout + Duration::from_secs(5);
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let (mut sent, mut failed) = (0, 0);
        for _ in 0..PER_RUN {
            let head = ctx
                .tenant_tx(TxMode::ReadWrite, async |tx| {
                    Ok(dispatch::claim_head(tx, &self.keyring, endpoint, lease_ms).await?)
                })
                .await
                .map_err(retry)?;
            let claimed = match head {
                Head::Empty => return Ok(json!({ "sent": sent, "failed": failed })),
                Head::NotBefore(at) => {
                    ctx.tenant_tx(TxMode::ReadWrite, async |tx| {
                        Ok(jobs::enqueue(tx, deliver_job(endpoint, Some(at))).await?)
                    })
                    .await
                    .map_err(retry)?;
                    return Ok(json!({ "sent": sent, "failed": failed, "next_at": at }));
                }
                Head::Claimed(claimed) => claimed,
            };
            let outcome = dispatch::send(&self.client, &claimed).await;
            if outcome.succeeded() {
                sent += 1;
            } else {
                failed += 1;
            }
            let disabled = ctx
                .tenant_tx(TxMode::ReadWrite, async |tx| {
                    Ok(dispatch::record(tx, &self.settings, endpoint, &claimed, &outcome).await?)
                })
                .await
                .map_err(retry)?;
            if disabled {
                return Ok(json!({ "sent": sent, "failed": failed, "disabled": true }));
            }
        }
        ctx.tenant_tx(TxMode::ReadWrite, async |tx| {
            Ok(jobs::enqueue(tx, deliver_job(endpoint, None)).await?)
        })
        .await
        .map_err(retry)?;
        Ok(json!({ "sent": sent, "failed": failed, "more": true }))
    }
}
