//! User erasure (`POST /v1/users/{id}/erasure`): the tenant's policy, read in
//! the requesting transaction, decides what happens to the user's messages:
//! `anonymize` attributes them (and the channels they created) to the tombstone
//! id [`TOMBSTONE`], `delete` removes them, and the summaries of every channel
//! they posted in (a summary may quote them). Either way the outbox events and
//! webhook deliveries that copied their posts are scrubbed, and in the last
//! transaction their user row loses its personal fields (email, display name;
//! status `deleted`), their linked identities and sessions are deleted, their
//! subject key is deleted (so the personal details the audit trail sealed with
//! it, `audit::personal`, never open again while the chain verifies), the
//! tenant's stored exports are expired (they may hold the user's data), and the
//! signed receipt is stored. One transaction per batch of `exports.batch_rows`
//! rows; each batch adds its counts to the erasure row in its own transaction,
//! so a resumed job goes on where the last stopped and the totals stay exact.
//! A search between batches can still find messages of the user not yet
//! reached; the user's own row is erased last, in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::receipt::{self, SignedReceipt};
use super::storage::ExportStorage;
use crate::audit;
use crate::crypto::rotation::job_error;
use crate::crypto::signing::Signer;
use crate::db::{TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{ErasureId, JobId, UserId};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::store::error::StoreError;

pub const KIND: &str = "users.erase";
/// The author of an erased user's kept messages: no user has this id.
pub const TOMBSTONE: Uuid = Uuid::nil();

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Erasure {
    pub id: ErasureId,
    pub user_id: UserId,
    /// `anonymize` or `delete` (the tenant's policy when it was asked for).
    pub policy: String,
    /// `queued` or `done`.
    pub state: String,
    pub job_id: Option<JobId>,
    /// Rows changed or removed so far, per table.
    #[schema(value_type = Object)]
    pub counts: Value,
    /// The signed receipt, once done.
    pub receipt: Option<SignedReceipt>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn from_row(row: &Row) -> Result<(Erasure, String), StoreError> {
    let receipt = row
        .get::<_, Option<Value>>("receipt")
        .map(serde_json::from_value)
        .transpose()
        .map_err(StoreError::internal)?;
    Ok((
        Erasure {
            id: ErasureId::from_uuid(row.get("id")),
            user_id: UserId::from_uuid(row.get("subject_user")),
            policy: row.get("policy"),
            state: row.get("state"),
            job_id: row.get::<_, Option<Uuid>>("job_id").map(JobId::from_uuid),
            counts: row.get("counts"),
            receipt,
            created_at: row.get("created_at"),
            finished_at: row.get("finished_at"),
        },
        row.get("requested_by"),
    ))
}

pub async fn get(tx: &TenantTx<'_>, id: ErasureId) -> Result<Erasure, StoreError> {
    Ok(get_with_requester(tx, id).await?.0)
}

async fn get_with_requester(
    tx: &TenantTx<'_>,
    id: ErasureId,
) -> Result<(Erasure, String), StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, subject_user, policy, state, job_id, counts, receipt, created_at,
                    finished_at, requested_by
             FROM erasures WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?
        .ok_or(StoreError::not_found("erasure", *id.as_uuid()))?;
    from_row(&row)
}

/// The tenant's user erasure policy, read in `tx` (never from the cache).
pub async fn policy(tx: &TenantTx<'_>) -> Result<String, StoreError> {
    Ok(crate::store::tenants::erasure_policy::get(tx)
        .await?
        .erasure)
}

/// Records an erasure of `user` (checked to exist; the last active owner is
/// refused) under the tenant's current policy.
pub async fn create(
    tx: &TenantTx<'_>,
    id: ErasureId,
    user: UserId,
    requested_by: &str,
) -> Result<String, StoreError> {
    let tenant = tx.tenant_id();
    let row = tx
        .query_opt(
            "SELECT role, status FROM users WHERE tenant_id = $1 AND id = $2",
            &[tenant.as_uuid(), user.as_uuid()],
        )
        .await?
        .ok_or(StoreError::not_found("user", *user.as_uuid()))?;
    let (role, status): (String, String) = (row.get(0), row.get(1));
    if role == "owner"
        && status == "active"
        && crate::store::users::count_active_owners(tx).await? <= 1
    {
        return Err(StoreError::LastOwner);
    }
    let policy = policy(tx).await?;
    tx.execute(
        "INSERT INTO erasures (tenant_id, id, home_region, subject_user, policy, requested_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            tenant.as_uuid(),
            id.as_uuid(),
            &tx.home_region().as_str(),
            user.as_uuid(),
            &policy,
            &requested_by,
        ],
    )
    .await?;
    Ok(policy)
}

pub async fn set_job(tx: &TenantTx<'_>, id: ErasureId, job: JobId) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE erasures SET job_id = $3 WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), id.as_uuid(), job.as_uuid()],
    )
    .await?;
    Ok(())
}

/// One step of an erasure: a statement over at most `$3` rows of the user
/// `$2` in tenant `$1`, answering how many it changed.
struct Step {
    table: &'static str,
    sql: &'static str,
}

/// The steps of the policy, in order. Each is repeated until it changes no row.
fn steps(policy: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    // What copied a post or the user's row: the outbox events (a post's data
    // names its author; `user.*` events carry the user) and the deliveries
    // made from them. The deliveries first: they are found through the events.
    steps.push(Step {
        table: "webhook_deliveries",
        sql: "UPDATE webhook_deliveries SET payload = '{\"erased\":true}'
              WHERE tenant_id = $1 AND id IN (
                SELECT d.id FROM webhook_deliveries d JOIN outbox_events e
                  ON e.tenant_id = d.tenant_id AND e.id = d.event_id
                WHERE d.tenant_id = $1 AND d.payload <> '{\"erased\":true}'
                  AND (e.data -> 'message' ->> 'author_id' = $2::uuid::text
                       OR (e.subject_kind = 'user' AND e.subject_id = $2::uuid::text))
                LIMIT $3)",
    });
    steps.push(Step {
        table: "outbox_events",
        sql: "UPDATE outbox_events SET data = '{\"erased\":true}'::jsonb
              WHERE tenant_id = $1 AND id IN (
                SELECT id FROM outbox_events
                WHERE tenant_id = $1 AND data <> '{\"erased\":true}'::jsonb
                  AND (data -> 'message' ->> 'author_id' = $2::uuid::text
                       OR (subject_kind = 'user' AND subject_id = $2::uuid::text))
                LIMIT $3)",
    });
    if policy == "delete" {
        steps.push(Step {
            table: "channel_summaries",
            sql: "DELETE FROM channel_summaries WHERE tenant_id = $1 AND id IN (
                    SELECT s.id FROM channel_summaries s
                    WHERE s.tenant_id = $1 AND EXISTS (
                      SELECT 1 FROM messages m WHERE m.tenant_id = $1
                        AND m.channel_id = s.channel_id AND m.author_id = $2)
                    LIMIT $3)",
        });
        steps.push(Step {
            table: "messages",
            sql: "DELETE FROM messages WHERE tenant_id = $1 AND id IN (
                    SELECT id FROM messages WHERE tenant_id = $1 AND author_id = $2 LIMIT $3)",
        });
    } else {
        steps.push(Step {
            table: "messages",
            sql: "UPDATE messages SET author_id = '00000000-0000-0000-0000-000000000000'
                  WHERE tenant_id = $1 AND id IN (
                    SELECT id FROM messages WHERE tenant_id = $1 AND author_id = $2 LIMIT $3)",
        });
    }
    steps.push(Step {
        table: "channels",
        sql: "UPDATE channels SET created_by = '00000000-0000-0000-0000-000000000000'
              WHERE tenant_id = $1 AND id IN (
                SELECT id FROM channels WHERE tenant_id = $1 AND created_by = $2 LIMIT $3)",
    });
    steps
}

/// Adds `n` to `counts[table]` of the erasure (in the batch's transaction).
async fn count(tx: &TenantTx<'_>, id: ErasureId, table: &str, n: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE erasures SET counts = jsonb_set(counts, ARRAY[$3::text],
            to_jsonb(COALESCE((counts ->> $3::text)::bigint, 0) + $4::bigint))
         WHERE tenant_id = $1 AND id = $2",
        &[
            tx.tenant_id().as_uuid(),
            id.as_uuid(),
            &table,
            &i64::try_from(n).unwrap_or(i64::MAX),
        ],
    )
    .await?;
    Ok(())
}

/// The last transaction: the user's row, identities, sessions, calendar grants
/// and links, and subject key; returns the rows changed per table.
async fn erase_user_row(
    tx: &TenantTx<'_>,
    user: UserId,
) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let (t, u) = (tx.tenant_id(), user);
    let ids = tx
        .execute(
            "DELETE FROM external_identities WHERE tenant_id = $1 AND user_id = $2",
            &[t.as_uuid(), u.as_uuid()],
        )
        .await?;
    let sessions = tx
        .execute(
            "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND user_id = $2",
            &[t.as_uuid(), u.as_uuid()],
        )
        .await?;
    let users = tx
        .execute(
            "UPDATE users SET email = 'erased-' || id::text || '@erased.invalid',
                display_name = 'erased user', status = 'deleted', updated_at = now()
             WHERE tenant_id = $1 AND id = $2",
            &[t.as_uuid(), u.as_uuid()],
        )
        .await?;
    // Their calendar grants (V34) name them, and their linked calendars are
    // their personal data: both go (the links' events by V23's cascade). A
    // grant created concurrently read the user's row (`FOR SHARE`), which this
    // transaction updates, and inserted into the grants this one reads: under
    // SERIALIZABLE one of the two fails and is retried, and a retried grant
    // finds the user erased (`calendar_grant_user_unknown`).
    let grants = tx
        .execute(
            "DELETE FROM calendar_grants WHERE tenant_id = $1 AND user_id = $2",
            &[t.as_uuid(), u.as_uuid()],
        )
        .await?;
    let calendars = tx
        .execute(
            "DELETE FROM calendar_links WHERE tenant_id = $1 AND user_id = $2",
            &[t.as_uuid(), u.as_uuid()],
        )
        .await?;
    // The key that sealed the user's personal details in the audit trail
    // (`audit::personal`): without it they never open again, and the chain,
    // which hashes only the ciphertext, still verifies.
    let keys = tx
        .execute(
            crate::audit::personal::DELETE_KEY_SQL,
            &[t.as_uuid(), u.as_uuid()],
        )
        .await?;
    Ok(vec![
        ("external_identities", ids),
        ("refresh_tokens", sessions),
        ("subject_keys", keys),
        ("calendar_grants", grants),
        ("calendar_links", calendars),
        ("users", users),
    ])
}

/// The `users.erase` job.
pub struct EraseUser {
    pub signer: Arc<Signer>,
    pub storage: ExportStorage,
    pub batch: u32,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for EraseUser {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let id = payload["erasure_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(ErasureId::from_uuid)
            .ok_or_else(|| JobError::Permanent("payload has no erasure_id".into()))?;
        let (erasure, requested_by) = ctx
            .tenant_tx(TxMode::ReadOnly, async |tx| {
                Ok(get_with_requester(tx, id).await?)
            })
            .await
            .map_err(job_error)?;
        if erasure.state == "done" {
            return Ok(json!({ "erasure_id": id, "state": "done" }));
        }
        let user = erasure.user_id;
        let limit = i64::from(self.batch);
        for step in steps(&erasure.policy) {
            loop {
                let n = ctx
                    .tenant_tx(TxMode::ReadWrite, async |tx| {
                        let n = tx
                            .execute(
                                step.sql,
                                &[tx.tenant_id().as_uuid(), user.as_uuid(), &limit],
                            )
                            .await
                            .map_err(StoreError::from)?;
                        if n > 0 {
                            count(tx, id, step.table, n).await?;
                        }
                        Ok(n)
                    })
                    .await
                    .map_err(job_error)?;
                if n == 0 {
                    break;
                }
            }
        }
        // The tenant's stored archives may hold the user: expired (files first).
        let ready = ctx
            .tenant_tx(TxMode::ReadOnly, async |tx| {
                Ok(super::exports::all_ready(tx).await?)
            })
            .await
            .map_err(job_error)?;
        for (export, key) in &ready {
            self.storage
                .remove(key)
                .await
                .map_err(|e| JobError::Retry(format!("export store: {e}")))?;
            ctx.tenant_tx(TxMode::ReadWrite, async |tx| {
                Ok(super::exports::mark_expired(tx, *export).await?)
            })
            .await
            .map_err(job_error)?;
        }
        let signer = &self.signer;
        let tenant = ctx.tenant;
        let signed = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                if !ctx.holds_lease(tx).await? {
                    return Ok(None);
                }
                let (current, _) = get_with_requester(tx, id).await?;
                if current.state == "done" {
                    return Ok(current.receipt);
                }
                for (table, n) in erase_user_row(tx, user).await? {
                    count(tx, id, table, n).await?;
                }
                count(tx, id, "exports", ready.len() as u64).await?;
                let (current, _) = get_with_requester(tx, id).await?;
                let finished: DateTime<Utc> = tx.query_one("SELECT now()", &[]).await?.get(0);
                let signed = receipt::sign(
                    signer,
                    json!({
                        "type": "meridian.user_erasure",
                        "receipt_id": id,
                        "tenant_id": tenant,
                        "user_id": user,
                        "policy": current.policy,
                        "counts": current.counts,
                        "requested_by": requested_by,
                        "requested_at": current.created_at,
                        "completed_at": finished,
                    }),
                );
                let stored = serde_json::to_value(&signed).map_err(ApiError::internal)?;
                tx.execute(
                    "UPDATE erasures SET state = 'done', receipt = $3, finished_at = $4
                     WHERE tenant_id = $1 AND id = $2",
                    &[tx.tenant_id().as_uuid(), id.as_uuid(), &stored, &finished],
                )
                .await?;
                audit::record(
                    tx,
                    &requested_by,
                    "user.erased",
                    Some(("user", user.to_string())),
                    json!({ "erasure_id": id, "policy": current.policy, "counts": current.counts }),
                )
                .await?;
                Ok(Some(signed))
            })
            .await
            .map_err(job_error)?;
        let Some(signed) = signed else {
            return Err(JobError::Retry(
                "lost the lease before finishing the erasure".into(),
            ));
        };
        // The platform trail keeps the receipt (at least once: a retry after
        // this point records it again, never loses it).
        ctx.platform_tx(TxMode::ReadWrite, async |tx| {
            Ok(audit::record_platform(
                tx,
                "system",
                "user.erasure_receipt",
                tenant,
                serde_json::to_value(&signed).map_err(ApiError::internal)?,
            )
            .await?)
        })
        .await
        .map_err(job_error)?;
        Ok(json!({ "erasure_id": id, "state": "done" }))
    }
}
