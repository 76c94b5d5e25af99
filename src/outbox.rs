//! The transactional outbox: every state change the API makes writes one event
//! row, through `record`, in the transaction that makes the change — so an event
//! exists exactly when its change committed, and webhooks (`crate::webhooks`)
//! never announce a change that rolled back nor miss one that did not.
//!
//! Writers insert with `seq` NULL and touch no per-tenant counter (a counter row
//! updated by every post would be the hot row `V6` removed from the write path).
//! The per-tenant order is assigned afterwards by `sequence`, run by the
//! dispatcher with the tenant's head row locked: events it finds get the next numbers in
//! `(created_at, id)` order (`created_at` is the insert's `clock_timestamp()`, so events of
//! one transaction keep their order). An event committed before another transaction began
//! is sequenced no later than that transaction's events (it is either in an earlier batch,
//! or in the same batch with an earlier `created_at`), so the order respects causality, and
//! once given, a number never changes.
//!
//! Events of a tenant with an enabled webhook also enqueue an `outbox.dispatch`
//! job in the same transaction (`crate::jobs`), which runs `sequence` and the
//! fan-out; other tenants' events wait unsequenced (a webhook created later
//! receives only events from its creation on).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::TenantTx;
use crate::ids::JobId;
use crate::store::error::StoreError;

/// Every event kind the API records (also the webhook filter vocabulary).
pub const KINDS: &[&str] = &[
    "tenant.created",
    "tenant.updated",
    "tenant.relocated",
    "user.added",
    "user.updated",
    "user.removed",
    "channel.created",
    "channel.deleted",
    "message.posted",
    "webhook.disabled",
    "summary.completed",
];

/// One state change, as `record` stores it.
pub struct Event {
    pub kind: &'static str,
    /// What changed: (`channel`, its id) …
    pub subject: Option<(&'static str, String)>,
    pub data: Value,
}

impl Event {
    pub fn new(kind: &'static str, subject: (&'static str, String), data: Value) -> Self {
        debug_assert!(KINDS.contains(&kind), "unlisted event kind {kind}");
        Self {
            kind,
            subject: Some(subject),
            data,
        }
    }
}

/// A sequenced event, as the dispatcher reads it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StoredEvent {
    pub id: Uuid,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// Writes `event` in the caller's transaction: it commits or rolls back with the
/// change it describes.
pub async fn record(tx: &TenantTx<'_>, event: Event) -> Result<Uuid, StoreError> {
    let pending = Pending::new(tx, event);
    let (params, dispatch) = (pending.insert(), pending.dispatch());
    let (inserted, dispatched) = futures_util::join!(
        tx.execute(INSERT_SQL, &params),
        tx.execute(DISPATCH_IF_HOOKED_SQL, &dispatch),
    );
    inserted?;
    dispatched?;
    Ok(pending.id)
}

/// An event's two statements with their parameters, for a caller that sends
/// them in its own pipeline with COMMIT (the post: `store::messages`): the INSERT and the
/// dispatch job. Neither depends on the other's answer (the job only names the
/// event); should the INSERT fail, the transaction is aborted and the job is not
/// written either.
pub struct Pending<'a> {
    pub id: Uuid,
    tenant: Uuid,
    region: &'a str,
    kind: &'static str,
    subject_kind: Option<&'static str>,
    subject_id: Option<String>,
    data: Value,
    job: Uuid,
    payload: Value,
}

type Params<'p, const N: usize> = [&'p (dyn tokio_postgres::types::ToSql + Sync); N];

impl<'a> Pending<'a> {
    pub fn new(tx: &'a TenantTx<'_>, event: Event) -> Self {
        let id = Uuid::now_v7();
        let (subject_kind, subject_id) = event
            .subject
            .map_or((None, None), |(k, i)| (Some(k), Some(i)));
        Self {
            id,
            tenant: *tx.tenant_id().as_uuid(),
            region: tx.home_region().as_str(),
            kind: event.kind,
            subject_kind,
            subject_id,
            data: event.data,
            job: *JobId::new_random().as_uuid(),
            payload: json!({ "event_id": id }),
        }
    }

    /// The event's INSERT (`INSERT_SQL`).
    pub fn insert(&self) -> Params<'_, 7> {
        [
            &self.tenant,
            &self.id,
            &self.region,
            &self.kind,
            &self.subject_kind,
            &self.subject_id,
            &self.data,
        ]
    }

    /// Its dispatch job, if the tenant has a webhook (`DISPATCH_IF_HOOKED_SQL`).
    pub fn dispatch(&self) -> Params<'_, 6> {
        [
            &self.job,
            &self.tenant,
            &self.region,
            &DISPATCH_KIND,
            &self.payload,
            &DISPATCH_ATTEMPTS,
        ]
    }
}

pub const INSERT_SQL: &str = "INSERT INTO outbox_events (tenant_id, id, home_region, kind, \
    subject_kind, subject_id, data)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Only a tenant with an enabled webhook needs its events dispatched: the
/// `outbox.dispatch` job (`jobs::enqueue`'s columns, no idempotency key) is
/// inserted only then, decided in the statement rather than by a check whose
/// answer the node would wait for; it commits with the event, so no event is left
/// undispatched.
pub const DISPATCH_IF_HOOKED_SQL: &str = "INSERT INTO jobs (id, tenant_id, home_region, kind, \
    payload, max_attempts)
     SELECT $1::uuid, $2::uuid, $3::text, $4::text, $5::jsonb, $6::int4
     WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE tenant_id = $2::uuid AND enabled)";

/// Attempts of a dispatch job before it is dead.
pub const DISPATCH_ATTEMPTS: i32 = 20;

/// A post's event (`store::messages`, `store::post_batch`).
pub const MESSAGE_POSTED: &str = "message.posted";

/// The job kind that sequences events and fans them out (`webhooks::jobs`).
pub const DISPATCH_KIND: &str = "outbox.dispatch";

/// Gives the tenant's unsequenced events (at most `limit`) the next numbers of
/// its sequence and returns them in that order. The head row is locked first, so
/// two dispatchers of one tenant queue instead of handing out a number twice.
pub async fn sequence(tx: &TenantTx<'_>, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let tenant = tx.tenant_id();
    tx.execute(
        "INSERT INTO outbox_heads (tenant_id, home_region) VALUES ($1, $2) ON CONFLICT (tenant_id) \
            DO NOTHING",
        &[tenant.as_uuid(), &tx.home_region().as_str()],
    )
    .await?;
    let last: i64 = tx
        .query_one(
            "SELECT last_seq FROM outbox_heads WHERE tenant_id = $1 FOR UPDATE",
            &[tenant.as_uuid()],
        )
        .await?
        .get(0);
    let rows = tx
        .query(
            "UPDATE outbox_events e SET seq = n.seq FROM (
                 SELECT id, $2::bigint + row_number() OVER (ORDER BY created_at, id) AS seq
                 FROM outbox_events WHERE tenant_id = $1 AND seq IS NULL
                 ORDER BY created_at, id LIMIT $3) n
             WHERE e.tenant_id = $1 AND e.id = n.id
             RETURNING e.id, e.seq, e.kind, e.subject_kind, e.subject_id, e.data, e.created_at",
            &[tenant.as_uuid(), &last, &limit],
        )
        .await?;
    let mut events: Vec<StoredEvent> = rows.iter().map(from_row).collect();
    events.sort_by_key(|e| e.seq);
    if let Some(top) = events.last() {
        tx.execute(
            "UPDATE outbox_heads SET last_seq = $2 WHERE tenant_id = $1",
            &[tenant.as_uuid(), &top.seq],
        )
        .await?;
    }
    Ok(events)
}

fn from_row(row: &tokio_postgres::Row) -> StoredEvent {
    StoredEvent {
        id: row.get("id"),
        seq: row.get("seq"),
        kind: row.get("kind"),
        subject_kind: row.get("subject_kind"),
        subject_id: row.get("subject_id"),
        data: row.get("data"),
        created_at: row.get("created_at"),
    }
}
