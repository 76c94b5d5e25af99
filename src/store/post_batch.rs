//! Coalesced posts: several plaintext posts of one tenant written by one
//! statement, in one transaction (`scope::post_lanes` gathers them). Per post the
//! database then does the row work only — the message, its search postings, its
//! outbox event and dispatch job — while the transaction, the prologue, the
//! shard's charge and the statement itself are paid once per batch
//! (`loadtest/post-batch.sh`: eight posts a transaction write 1.4× the rows a
//! second of the bare autocommit INSERT).
//!
//! Each post keeps its own guards, evaluated per row in the statement's one
//! snapshot: its author still active with its token's role, its channel, the
//! tenant's plaintext policy. A post that fails one is left out (the others are
//! written); its request posts it again on its own path (`messages::post`), which
//! answers why. The batch's bytes are charged to the transaction's usage shard as
//! the single post's are (`storage::fast_charge_cte!`): when the shard's grant
//! cannot hold them all, the statement fails (nothing written, `grant_short`) and
//! the lane writes the batch again after taking a grant for it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::messages::{Message, event_data, not_null_on};
use crate::db::{DbError, TenantTx};
use crate::ids::JobId;
use crate::limits::storage;
use crate::outbox;

/// The batch's statement. `$1` tenant; `$2`..`$11` one array element per post
/// (message id, channel, author, token role, body, bytes, `created_at`, event id,
/// event data, dispatch job id); `$12` home region, `$13` shard, `$14` cap, `$15`
/// the event kind, `$16` the dispatch job's kind and `$17` its attempts. Returns
/// the ids written. The guards are scalar subqueries, one primary-key probe per
/// post: an `EXISTS` was planned as a join that read all the tenant's users once
/// per batch, a cost growing with the tenant. `ok` is referenced by every write,
/// so it is evaluated once (materialised): the message, its event and its job
/// are written for exactly the same posts. The INSERT writes every row of `ok` or
/// fails: a NULL id (SQLSTATE 23502) when the shard's grant is short.
pub const BATCH_POST_SQL: &str = "WITH p AS (
       SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                            $7::int8[], $8::timestamptz[], $9::uuid[], $10::jsonb[], $11::uuid[])
         WITH ORDINALITY AS p(id, channel_id, author_id, role, body, bytes, created_at,
                              event_id, event_data, job_id, ord)),
     ok AS (
       SELECT p.* FROM p
        WHERE (SELECT u.status = 'active' AND u.role = p.role FROM users u
                WHERE u.tenant_id = $1::uuid AND u.id = p.author_id) IS TRUE
          AND (SELECT true FROM channels c WHERE c.tenant_id = $1::uuid AND c.id = p.channel_id)
              IS TRUE
          AND (SELECT t.encrypt_messages FROM tenants t WHERE t.id = $1::uuid) IS NOT TRUE),
     charged AS (
       UPDATE tenant_usage_shards SET used_bytes = used_bytes + (SELECT coalesce(sum(bytes), 0) FROM ok)
        WHERE tenant_id = $1::uuid AND shard = $13::int2 AND cap_bytes = $14::int8
          AND used_bytes + (SELECT coalesce(sum(bytes), 0) FROM ok) <= granted_bytes
        RETURNING shard),
     posted AS (
       INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, body_enc,
                             created_at)
       SELECT $1::uuid, CASE WHEN c.shard IS NULL THEN NULL ELSE ok.id END, $12::text,
              ok.channel_id, ok.author_id, ok.body, NULL::bytea, ok.created_at
         FROM ok LEFT JOIN charged c ON true
       RETURNING id),
     events AS (
       INSERT INTO outbox_events (tenant_id, id, home_region, kind, subject_kind, subject_id, data)
       SELECT $1::uuid, ok.event_id, $12::text, $15::text, 'message', ok.id::text, ok.event_data
         FROM ok ORDER BY ok.ord),
     dispatch AS (
       INSERT INTO jobs (id, tenant_id, home_region, kind, payload, max_attempts)
       SELECT ok.job_id, $1::uuid, $12::text, $16::text,
              jsonb_build_object('event_id', ok.event_id), $17::int4
         FROM ok
        WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.tenant_id = $1::uuid AND w.enabled))
SELECT id FROM posted";

/// One post waiting for its batch: the message as it will be stored (the node's
/// id and `created_at`, as the single path writes them) and the token's role,
/// which the statement checks the author still has.
#[derive(Debug)]
pub struct BatchPost {
    pub message: Message,
    pub role: &'static str,
}

/// Writes `posts` (all of `tx`'s tenant, plaintext, one cap) and commits with the
/// statement, in the prologue's round trip (`TenantTx::query_guarded_and_commit`;
/// the transaction is opened with `TokenCheck::RowsGuarded`). Returns the ids
/// written; a post not among them was written by nothing.
pub async fn post_batch(
    tx: &TenantTx<'_>,
    posts: &[BatchPost],
    storage_cap: u64,
) -> Result<Vec<Uuid>, DbError> {
    let n = posts.len();
    let (mut ids, mut channels, mut authors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut roles, mut bodies, mut bytes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut created, mut event_ids, mut events, mut jobs) = (
        Vec::<DateTime<Utc>>::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for post in posts {
        let m = &post.message;
        ids.push(*m.id.as_uuid());
        channels.push(*m.channel_id.as_uuid());
        authors.push(*m.author_id.as_uuid());
        roles.push(post.role);
        bodies.push(m.body.as_str());
        bytes.push(i64::try_from(m.body.len()).unwrap_or(i64::MAX));
        created.push(m.created_at);
        event_ids.push(Uuid::now_v7());
        events.push(event_data(m, false));
        jobs.push(*JobId::new_random().as_uuid());
    }
    let cap = i64::try_from(storage_cap).unwrap_or(i64::MAX);
    let shard = storage::shard_param(tx);
    let region = tx.home_region().as_str();
    let rows = tx
        .query_guarded_and_commit(
            BATCH_POST_SQL,
            &[
                tx.tenant_id().as_uuid(),
                &ids,
                &channels,
                &authors,
                &roles,
                &bodies,
                &bytes,
                &created,
                &event_ids,
                &events,
                &jobs,
                &region,
                &shard,
                &cap,
                &outbox::MESSAGE_POSTED,
                &outbox::DISPATCH_KIND,
                &outbox::DISPATCH_ATTEMPTS,
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The batch's statement failed because the shard's grant could not hold it (its
/// NULL id, as the single post's `GrantShort`): nothing was written.
pub fn grant_short(err: &DbError) -> bool {
    not_null_on(err, "id")
}
