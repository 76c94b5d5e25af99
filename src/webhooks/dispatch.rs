//! From outbox events to signed HTTP deliveries.
//!
//! `fan_out` sequences the tenant's new events (`outbox::sequence`) and writes one
//! delivery row per (event, enabled endpoint whose filter matches), in the same
//! transaction: an event is sequenced exactly when its deliveries exist.
//! `claim_head`, `send` and `record` send an endpoint's deliveries strictly in sequence order: only
//! the endpoint's oldest pending delivery is ever sent, so a receiver never sees
//! event n+1 before event n (unless n was given up after `max_attempts`). Claiming
//! the head pushes its `next_attempt_at` past the request's time limit in a
//! SERIALIZABLE transaction, so two workers never send it at once. The HTTP call
//! runs outside any transaction; its outcome is written afterwards. Failures back
//! off exponentially with jitter; `disable_after` failures in a row disable the
//! endpoint, with an audit event and a `webhook.disabled` outbox event.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::sign;
use crate::audit;
use crate::db::TenantTx;
use crate::ids::WebhookId;
use crate::outbound::{self, Client};
use crate::outbox::{self, Event};
use crate::store::error::StoreError;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Attempts per delivery before it is marked `failed` and the next one goes.
    pub max_attempts: i32,
    /// Failed attempts in a row (any delivery) that disable an endpoint.
    pub disable_after: i32,
    #[serde(rename = "backoff_base_ms", with = "crate::config::millis")]
    pub backoff_base: Duration,
    #[serde(rename = "backoff_max_ms", with = "crate::config::millis")]
    pub backoff_max: Duration,
    /// Events sequenced per `fan_out` call.
    pub batch: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            disable_after: 20,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3_600),
            batch: 500,
        }
    }
}

/// Sequences up to `batch` new events and writes their deliveries; returns the
/// endpoints that got at least one (each needs a `webhook.deliver` run) and how
/// many events were sequenced.
pub async fn fan_out(tx: &TenantTx<'_>, batch: i64) -> Result<(Vec<WebhookId>, i64), StoreError> {
    let events = outbox::sequence(tx, batch).await?;
    let sequenced = events.len() as i64;
    if events.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let tenant = tx.tenant_id();
    let endpoints: Vec<(Uuid, Vec<String>, DateTime<Utc>)> = tx
        .query(
            "SELECT id, event_types, created_at FROM webhook_endpoints WHERE tenant_id = $1 AND \
                enabled ORDER BY id",
            &[tenant.as_uuid()],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut touched = Vec::new();
    for (endpoint, types, since) in &endpoints {
        for event in &events {
            // An endpoint gets the events from its creation on, of its types.
            let wanted = types.is_empty() || types.contains(&event.kind);
            if !wanted || event.created_at < *since {
                continue;
            }
            let payload = json!({
                "type": event.kind,
                "timestamp": event.created_at,
                "data": {
                    "event_id": event.id, "seq": event.seq, "tenant_id": tenant,
                    "subject_kind": event.subject_kind, "subject_id": event.subject_id,
                    "object": event.data,
                },
            })
            .to_string();
            tx.execute(
                "INSERT INTO webhook_deliveries (tenant_id, id, home_region, endpoint_id, \
                    event_id, seq, event_kind, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, endpoint_id, \
                     event_id) DO NOTHING",
                &[
                    tenant.as_uuid(),
                    &Uuid::now_v7(),
                    &tx.home_region().as_str(),
                    endpoint,
                    &event.id,
                    &event.seq,
                    &event.kind,
                    &payload,
                ],
            )
            .await?;
            if touched.last() != Some(endpoint) {
                touched.push(*endpoint);
            }
        }
    }
    Ok((
        touched.into_iter().map(WebhookId::from_uuid).collect(),
        sequenced,
    ))
}

/// A claimed delivery: everything needed to send it outside a transaction.
pub struct Claimed {
    pub delivery: Uuid,
    pub attempts: i32,
    pub url: String,
    pub secrets: Vec<String>,
    pub payload: String,
}

/// What an endpoint's queue looks like after a claim attempt.
pub enum Head {
    /// Nothing pending (or the endpoint is disabled or gone).
    Empty,
    /// The head is not due yet (backoff, or another worker holds it).
    NotBefore(DateTime<Utc>),
    Claimed(Claimed),
}

/// Claims the endpoint's oldest pending delivery if it is due, for `lease_ms`.
pub async fn claim_head(
    tx: &TenantTx<'_>,
    keyring: &crate::crypto::keyring::Keyring,
    endpoint: WebhookId,
    lease_ms: u64,
) -> Result<Head, StoreError> {
    let row = tx
        .query_opt(
            "SELECT d.id, d.attempts, d.next_attempt_at, d.payload, d.next_attempt_at <= now() AS \
                due,
                    e.url, e.secret, e.secret_sealed, e.previous_expires_at > now() AS \
                        previous_valid, e.previous_secret, e.previous_secret_sealed
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND \
                 e.id = d.endpoint_id
             WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND d.state = 'pending' AND e.enabled
             ORDER BY d.seq LIMIT 1",
            &[tx.tenant_id().as_uuid(), endpoint.as_uuid()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Head::Empty);
    };
    if !row.get::<_, bool>("due") {
        return Ok(Head::NotBefore(row.get("next_attempt_at")));
    }
    let delivery: Uuid = row.get("id");
    tx.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() + $3::bigint * interval '1 \
            millisecond'
         WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), &delivery, &(lease_ms as i64)],
    )
    .await?;
    // Opened here, in Rust: the secrets are sealed at rest (`crypto::secrets`).
    let open = async |sealed: &str, plain: &str| {
        crate::crypto::secrets::open(
            keyring,
            tx,
            "webhook_endpoints",
            *endpoint.as_uuid(),
            row.get(sealed),
            row.get(plain),
        )
        .await
    };
    let mut secrets = Vec::with_capacity(2);
    secrets.extend(open("secret_sealed", "secret").await?);
    if row.get::<_, Option<bool>>("previous_valid") == Some(true) {
        secrets.extend(open("previous_secret_sealed", "previous_secret").await?);
    }
    let secrets: Vec<String> = secrets.iter().map(|s| s.expose().to_owned()).collect();
    Ok(Head::Claimed(Claimed {
        delivery,
        attempts: row.get("attempts"),
        url: row.get("url"),
        secrets,
        payload: row.get("payload"),
    }))
}

/// The result of one HTTP attempt.
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends one claimed delivery, signed with every valid secret. Never inside a
/// transaction: a slow receiver must not hold a connection or locks.
pub async fn send(client: &Client, claimed: &Claimed) -> Outcome {
    let fail = |error: String| Outcome {
        status: None,
        error: Some(error),
    };
    let url = match outbound::url::parse(&claimed.url) {
        Ok(url) => url,
        Err(why) => return fail(why),
    };
    let id = format!("msg_{}", claimed.delivery.simple());
    let timestamp = Utc::now().timestamp();
    let secrets: Vec<&str> = claimed.secrets.iter().map(String::as_str).collect();
    let Some(signature) = sign::header(&secrets, &id, timestamp, claimed.payload.as_bytes()) else {
        return fail("the endpoint's secret is malformed".into());
    };
    let headers = [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    match client
        .post_json(&url, &headers, claimed.payload.as_bytes())
        .await
    {
        Ok(answer) if (200..300).contains(&answer.status) => Outcome {
            status: Some(answer.status),
            error: None,
        },
        Ok(answer) => Outcome {
            status: Some(answer.status),
            error: Some(format!(
                "the receiver answered {} (redirects are not followed)",
                answer.status
            )),
        },
        Err(err) => fail(err.to_string()),
    }
}

/// Backoff before attempt `attempts + 1`: base · 2^(attempts − 1), capped, plus
/// up to 25% jitter so a receiver coming back is not hit by every retry at once.
pub fn backoff_ms(settings: &WebhookSettings, attempts: i32) -> u64 {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let base = ms(settings.backoff_base)
        .saturating_mul(1u64 << exp)
        .min(ms(settings.backoff_max));
    let jitter = u64::from(Uuid::new_v4().as_bytes()[0]) * base / 1024;
    base + jitter
}

/// Writes an attempt's outcome; on the `disable_after`-th failure in a row the
/// endpoint is disabled, audited and announced. Returns whether it was disabled.
pub async fn record(
    tx: &TenantTx<'_>,
    settings: &WebhookSettings,
    endpoint: WebhookId,
    claimed: &Claimed,
    outcome: &Outcome,
) -> Result<bool, StoreError> {
    let tenant = tx.tenant_id();
    let status = outcome.status.map(i32::from);
    let attempts = claimed.attempts + 1;
    if outcome.succeeded() {
        tx.execute(
            "UPDATE webhook_deliveries SET state = 'succeeded', attempts = $3, last_status = $4, \
                last_error = NULL, delivered_at = now()
             WHERE tenant_id = $1 AND id = $2",
            &[tenant.as_uuid(), &claimed.delivery, &attempts, &status],
        )
        .await?;
        tx.execute(
            "UPDATE webhook_endpoints SET failure_streak = 0 WHERE tenant_id = $1 AND id = $2",
            &[tenant.as_uuid(), endpoint.as_uuid()],
        )
        .await?;
        return Ok(false);
    }
    let state = if attempts >= settings.max_attempts {
        "failed"
    } else {
        "pending"
    };
    let wait = backoff_ms(settings, attempts) as i64;
    tx.execute(
        "UPDATE webhook_deliveries SET state = $3, attempts = $4, last_status = $5, last_error = $6,
                next_attempt_at = now() + $7::bigint * interval '1 millisecond'
         WHERE tenant_id = $1 AND id = $2",
        &[tenant.as_uuid(), &claimed.delivery, &state, &attempts, &status, &outcome.error, &wait],
    )
    .await?;
    let disabled = tx
        .query_opt(
            "UPDATE webhook_endpoints SET failure_streak = failure_streak + 1,
                    enabled = CASE WHEN failure_streak + 1 >= $3 THEN false ELSE enabled END,
                    disabled_reason = CASE WHEN failure_streak + 1 >= $3 THEN $4 ELSE \
                        disabled_reason END,
                    updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND enabled RETURNING NOT enabled, failure_streak",
            &[
                tenant.as_uuid(),
                endpoint.as_uuid(),
                &settings.disable_after,
                &format!(
                    "disabled \
                after {} failed attempts in a row",
                    settings.disable_after
                ),
            ],
        )
        .await?
        .filter(|row| row.get::<_, bool>(0));
    if let Some(row) = disabled {
        let details =
            json!({ "failures_in_a_row": row.get::<_, i32>(1), "last_error": outcome.error });
        audit::record(
            tx,
            "meridian",
            "webhook_disabled",
            Some(("webhook", endpoint.to_string())),
            details.clone(),
        )
        .await?;
        outbox::record(
            tx,
            Event::new(
                "webhook.disabled",
                ("webhook", endpoint.to_string()),
                details,
            ),
        )
        .await?;
        return Ok(true);
    }
    Ok(false)
}
