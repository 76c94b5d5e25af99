//! Messages: posting, the newest-first page of a channel, and full-text search.
//! The page is one statement on `messages_page_idx`; search walks the
//! tenant-prefixed GIN index, so it cannot reach another tenant's postings, and
//! ranks a bounded number of its matches. A tenant's policy may seal bodies
//! (`body_enc`, `crypto::messages`): posts seal them, reads open them.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::channels;
use super::error::StoreError;
use crate::crypto::keyring::Keyring;
use crate::crypto::messages::{self as sealing, KeyVersionStale, PlaintextRefused, Sealing};
use crate::db::DbError;
use crate::db::TenantTx;
use crate::db::timestamp::Timestamptz;
use crate::ids::{ChannelId, MessageId, UserId};
use crate::json_write;
use crate::limits::storage;
use crate::outbox::{self, Event};
use crate::pagination::{Keyset, MAX_LIMIT, Page, offset_cursor};

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub body: String,
    #[serde(serialize_with = "crate::json_time::utc")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    #[serde(flatten)]
    pub message: Message,
    /// Relevance (higher is better); results are ordered by it.
    pub rank: f32,
}

/// The first page of a channel and the pages after a cursor: two statements,
/// each followed by its LIMIT (`page_sql`); `body_enc` last: NULL (one byte of
/// the row's null bitmap) unless sealed. The first is also run by `loadtest/`
/// through pgbench: keep them in step.
///
/// Why not one statement with `$3 IS NULL OR (created_at, id) < ($3, $4)` and
/// `LIMIT $5`, as before: PostgreSQL then planned it again at every Bind (a
/// custom plan per execution: `pg_prepared_statements` showed 0 generic plans
/// after 8 executions), because the generic plan's cost, with the limit unknown,
/// stays above the custom plan's; and that generic plan could only filter on
/// the cursor instead of starting the index scan at it. With the limit in the
/// text and no optional condition, each statement's generic plan is the index
/// scan the custom plan is (the cursor an index condition) and is reused after
/// five executions (README, Benchmarks).
pub const PAGE_SQL: &str =
    "SELECT id, channel_id, author_id, body, created_at, body_enc FROM messages
     WHERE tenant_id = $1 AND channel_id = $2
     ORDER BY created_at DESC, id DESC LIMIT ";
pub const PAGE_AFTER_SQL: &str = "SELECT id, channel_id, author_id, body, created_at, body_enc \
     FROM messages
     WHERE tenant_id = $1 AND channel_id = $2 AND (created_at, id) < ($3, $4)
     ORDER BY created_at DESC, id DESC LIMIT ";

/// `PAGE_SQL` (or `PAGE_AFTER_SQL`) with `LIMIT rows`, for every page size a
/// request may ask (1..=MAX_LIMIT, plus the row that tells whether a next page
/// exists): made once, so no request formats SQL, and each connection prepares
/// only the sizes it is asked for.
pub fn page_sql(after: bool, rows: u32) -> Option<&'static str> {
    static FIRST: OnceLock<Vec<String>> = OnceLock::new();
    static AFTER: OnceLock<Vec<String>> = OnceLock::new();
    let (cell, sql) = if after {
        (&AFTER, PAGE_AFTER_SQL)
    } else {
        (&FIRST, PAGE_SQL)
    };
    let all = cell.get_or_init(|| (1..=MAX_LIMIT + 1).map(|n| format!("{sql}{n}")).collect());
    let index = usize::try_from(rows).ok()?.checked_sub(1)?;
    all.get(index).map(String::as_str)
}

/// The body a post writes: NULL (refused by `body NOT NULL`, SQLSTATE 23502) when
/// it comes without ciphertext (`$enc`) while the tenant's committed policy says
/// encrypt — the cached policy the post decided from was stale
/// (`crypto::messages`) — or with a ciphertext of a DEK version (`$version`)
/// that is no longer the tenant's active one — the version the node assumed was
/// stale (`crypto::keyring`). One primary-key read either way.
macro_rules! guarded_body {
    ($body:literal, $enc:literal, $version:literal) => {
        concat!(
            "CASE WHEN ",
            $enc,
            "::bytea IS NULL AND (SELECT t.encrypt_messages FROM tenants t WHERE t.id = \
                $1::uuid) THEN NULL WHEN ",
            $enc,
            "::bytea IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tenant_keys k WHERE \
                k.tenant_id = $1::uuid AND k.version = ",
            $version,
            "::int4 AND k.state = 'active') THEN NULL ELSE ",
            $body,
            "::text END"
        )
    };
}

/// Who may write a post's `author_id`: the author must be the token's user, still
/// active with the token's role (`$13`; the same predicate as the prologue's
/// `db::tx::USER_STATUS_SQL`). Otherwise the column is NULL and the INSERT fails
/// (SQLSTATE 23502 on `author_id`), aborting the transaction, so a post may send
/// its COMMIT before the prologue's check has answered
/// (`TenantTx::execute_guarded_and_commit`). `$13` NULL (an impersonation's token,
/// checked by its own prologue, which the COMMIT then waits for) skips it.
macro_rules! guarded_author {
    () => {
        "CASE WHEN $13::text IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = \
            $1::uuid AND u.id = $5::uuid AND u.status = 'active' AND u.role = $13::text) THEN \
            $5::uuid END"
    };
}

/// A post on the fast path, in one statement: the shard's charge
/// (`storage::FAST_CHARGE_CTE`) and the INSERT of what it charged. `$1`..`$6` the
/// message, `$7` bytes, `$8` shard, `$9` cap, `$10` the sealed body (NULL:
/// plaintext in `$6`), `$11` its DEK version, `$12` `created_at` (the node's
/// clock, whole microseconds: the event written in the same pipeline carries it),
/// `$13` the token's role (`guarded_author!`). Every refusal is an error, never an
/// empty result, because COMMIT travels behind it: when the shard's grant cannot
/// hold the post the `id` is NULL (SQLSTATE 23502 on `id`: `GrantShort`, the post
/// is redone on the slow path); a refused user (`author_id`) or body (`body`,
/// `guarded_body!`) likewise.
pub const POST_SQL: &str = concat!(
    storage::fast_charge_cte!(),
    " INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, body_enc, \
        created_at)
     SELECT $1::uuid, CASE WHEN c.shard IS NULL THEN NULL ELSE $2::uuid END, $3::text, $4::uuid, ",
    guarded_author!(),
    ", ",
    guarded_body!("$6", "$10", "$11"),
    ", $10::bytea, $12::timestamptz FROM (SELECT 1) AS one LEFT JOIN charged c ON true"
);

/// The redo after a `GrantShort` (and each of its retries): `POST_SQL` as it was
/// before the post became one round trip, writing nothing when the shard's grant
/// cannot hold the post (then the slow path runs in the same transaction), with
/// no user guard (this transaction's COMMIT waits for the prologue). A retry
/// after a conflict may find its shard topped up by another writer's slow path.
const TRY_POST_SQL: &str = concat!(
    storage::fast_charge_cte!(),
    " INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, body_enc, \
        created_at)
     SELECT $1::uuid, $2::uuid, $3::text, $4::uuid, $5::uuid, ",
    guarded_body!("$6", "$10", "$11"),
    ", $10::bytea, $12::timestamptz FROM charged"
);

/// The slow path's INSERT (after `storage::charge_storage`): `$7` the sealed
/// body, `$8` its DEK version, `$9` `created_at`. Its COMMIT waits for the
/// prologue's user check (`TenantTx::execute_and_commit`).
const SLOW_POST_SQL: &str = concat!(
    "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, body_enc, \
        created_at)
     VALUES ($1, $2, $3, $4, $5, ",
    guarded_body!("$6", "$7", "$8"),
    ", $7, $9)"
);

/// One message of a channel (`get`).
pub const GET_SQL: &str =
    "SELECT id, channel_id, author_id, body, created_at, body_enc FROM messages
     WHERE tenant_id = $1 AND channel_id = $2 AND id = $3";

/// Every statement here selects `id, channel_id, author_id, body, created_at` first, in that order: columns are read
/// by position (a lookup by name compares names for every field of every row).
/// A sealed body reads as '' here; `opened` puts the plaintext in.
fn from_row(row: &Row) -> Message {
    Message {
        id: MessageId::from_uuid(row.get(0)),
        channel_id: ChannelId::from_uuid(row.get(1)),
        author_id: UserId::from_uuid(row.get(2)),
        body: row.get(3),
        created_at: row.get::<_, Timestamptz>(4).0,
    }
}

/// The sealed body of a row selected with `PAGE_SQL`/`GET_SQL`, if sealed.
fn sealed(row: &Row) -> Option<Vec<u8>> {
    row.get(5)
}

/// `message` with its sealed body (if any) opened in place.
async fn opened(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    mut message: Message,
    sealed: Option<Vec<u8>>,
) -> Result<Message, StoreError> {
    if let Some(sealed) = sealed {
        message.body = sealing::open_body(keyring, tx, message.id, &sealed).await?;
    }
    Ok(message)
}

/// Posts a message, charging its bytes to the tenant's storage quota in the same
/// transaction: over the quota, nothing is written. The outer error fails the
/// transaction; the inner one is a refusal (`quota_exceeded`) decided in a
/// transaction that must commit (see `limits::storage`). `seal`: the tenant's
/// policy encrypts bodies (from the directory cache; if that copy is stale and
/// the committed policy encrypts, the INSERT refuses the plaintext and this
/// fails with `PlaintextRefused`, for the caller to redo sealed; if the DEK
/// version `seal` assumed is no longer active, it fails with `KeyVersionStale`,
/// for the caller to redo with a fresh read). The quota charges the
/// plaintext's bytes either way.
///
/// Usually one round trip (`fast`): the prologue, the charge + INSERT
/// (`POST_SQL`), the outbox event and its dispatch job, and COMMIT go out
/// together. When the transaction's shard cannot hold the post, that fails with
/// `GrantShort` and the caller redoes the post with `fast` false: the slow path,
/// which takes a grant from the central row (or commits the refusal) and waits
/// for the prologue before its COMMIT.
pub async fn post(
    tx: &TenantTx<'_>,
    seal: Option<Sealing<'_>>,
    channel: ChannelId,
    author: UserId,
    body: &str,
    storage_cap: u64,
    fast: bool,
) -> Result<Result<Message, StoreError>, StoreError> {
    let id = MessageId::new_random();
    let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
    let cap = i64::try_from(storage_cap).unwrap_or(i64::MAX);
    let shard = storage::shard_param(tx);
    let tenant = tx.tenant_id();
    let region = tx.home_region().as_str();
    // The guard checks the author: it must be the user whose token the prologue
    // checks (a user's token posts as its user; an impersonation passes None).
    let role = match tx.token_user() {
        Some((user, _)) if user != author => {
            return Err(StoreError::internal(anyhow::anyhow!(
                "a post's author is not the token's user"
            )));
        }
        token => token.map(|(_, role)| role),
    };
    let (body_enc, version) = match seal {
        Some(sealing) => {
            let (sealed, version) = sealing::seal_post_body(sealing, tx, id, body).await?;
            (Some(sealed), Some(version_param(version)?))
        }
        None => (None, None),
    };
    let sealed_body = body_enc.is_some();
    let stored_body = if sealed_body { "" } else { body };
    // Written by the node, so the event (built before anything is sent) carries
    // exactly what the row stores: whole microseconds, as `timestamptz` keeps them.
    let created_at = now_micros();
    let message = Message {
        id,
        channel_id: channel,
        author_id: author,
        body: body.to_owned(),
        created_at,
    };
    let event = outbox::Pending::new(
        tx,
        Event::new(
            outbox::MESSAGE_POSTED,
            ("message", id.to_string()),
            event_data(&message, sealed_body),
        ),
    );
    let refused = || {
        if sealed_body {
            StoreError::internal(KeyVersionStale)
        } else {
            StoreError::internal(PlaintextRefused)
        }
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        tenant.as_uuid(),
        id.as_uuid(),
        &region,
        channel.as_uuid(),
        author.as_uuid(),
        &stored_body,
    ];
    let (insert_event, dispatch) = (event.insert(), event.dispatch());
    let event_statements: [(&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]); 2] = [
        (outbox::INSERT_SQL, &insert_event[..]),
        (outbox::DISPATCH_IF_HOOKED_SQL, &dispatch[..]),
    ];
    if fast {
        let mut fast_params = params.to_vec();
        fast_params.extend_from_slice(&[
            &bytes,
            &shard,
            &cap,
            &body_enc,
            &version,
            &created_at,
            &role,
        ]);
        // The channel is checked by the INSERT's foreign key (tenant_id,
        // channel_id): no statement of its own, and another tenant's channel is
        // missing like any other id (the key includes the tenant). Any failure
        // aborts the transaction: nothing was charged, no event written.
        return match tx
            .execute_guarded_and_commit((POST_SQL, &fast_params[..]), &event_statements)
            .await
        {
            Ok(()) => Ok(Ok(message)),
            Err(err) if channel_missing(&err) => Err(channels::not_found(channel)),
            Err(err) if not_null_on(&err, "body") => Err(refused()),
            Err(err) if not_null_on(&err, "id") => Err(StoreError::internal(GrantShort)),
            // The token's user is not active with its role. The post's guard is
            // its transaction's only user check (`TokenCheck::UserGuardedByWrite`,
            // `TenantScope::write_guarded_or_refuse`): 401. (Where the prologue
            // checks too, it refused in the same snapshot, and `run` answers that.)
            Err(err) if not_null_on(&err, "author_id") => Err(DbError::UserRefused.into()),
            Err(err) => Err(err.into()),
        };
    }
    let mut try_params = params.to_vec();
    try_params.extend_from_slice(&[&bytes, &shard, &cap, &body_enc, &version, &created_at]);
    match tx.execute(TRY_POST_SQL, &try_params).await {
        Ok(0) => {}
        Ok(_) => {
            tx.execute_and_commit(&event_statements).await?;
            return Ok(Ok(message));
        }
        Err(err) if channel_missing(&err) => return Err(channels::not_found(channel)),
        Err(err) if not_null_on(&err, "body") => return Err(refused()),
        Err(err) => return Err(err.into()),
    }
    // The slow path decides a refusal that is committed: the channel first, so a
    // missing channel is a 404 whatever the quota says.
    channels::ensure_exists(tx, channel).await?;
    if let Err(refused) = storage::charge_storage(tx, body.len() as u64, storage_cap).await? {
        return Ok(Err(refused));
    }
    let mut slow_params = params.to_vec();
    slow_params.extend_from_slice(&[&body_enc, &version, &created_at]);
    match tx.execute(SLOW_POST_SQL, &slow_params).await {
        Ok(_) => {}
        Err(err) if not_null_on(&err, "body") => return Err(refused()),
        Err(err) => return Err(err.into()),
    }
    // The post's last statements: COMMIT goes with them, once the prologue's
    // user check has answered.
    tx.execute_and_commit(&event_statements).await?;
    Ok(Ok(message))
}

/// The post's fast statement found its shard's grant too small (`POST_SQL`): the
/// caller redoes the post on the slow path, in a new transaction (this one was
/// aborted and wrote nothing).
#[derive(Debug)]
pub struct GrantShort;

impl std::fmt::Display for GrantShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the usage shard's grant cannot hold the post")
    }
}

impl std::error::Error for GrantShort {}

impl GrantShort {
    /// Whether `err` is this (carried as an internal error's cause).
    pub fn is(err: &crate::error::ApiError) -> bool {
        matches!(err, crate::error::ApiError::Internal(cause) if cause.is::<GrantShort>())
    }
}

/// Now, truncated to whole microseconds (what `timestamptz` stores).
pub(crate) fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The post's outbox event (a refused post writes none). A sealed body stays out
/// of it (events are stored, and webhook deliveries made from them): the event
/// says `body_encrypted` and the receiver fetches the message through the API.
pub(crate) fn event_data(message: &Message, sealed: bool) -> serde_json::Value {
    if sealed {
        json!({ "message": SealedPost {
            id: message.id,
            channel_id: message.channel_id,
            author_id: message.author_id,
            created_at: message.created_at,
            body_encrypted: true,
        } })
    } else {
        json!({ "message": message })
    }
}

/// A sealed post as its event carries it: the message without its body.
#[derive(Serialize)]
struct SealedPost {
    id: MessageId,
    channel_id: ChannelId,
    author_id: UserId,
    #[serde(serialize_with = "crate::json_time::utc")]
    created_at: DateTime<Utc>,
    body_encrypted: bool,
}

/// The post's INSERT wrote NULL into `column` (SQLSTATE 23502): one of its
/// guards refused. PostgreSQL names the column in the error's field; the
/// message names it on both dialects.
pub(crate) fn not_null_on(err: &DbError, column: &str) -> bool {
    db_error(err).is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::NOT_NULL_VIOLATION
            && (db.column() == Some(column)
                || db
                    .message()
                    .starts_with(&format!("null value in column \"{column}\"")))
    })
}

/// A DEK version as its `int4` column takes it.
fn version_param(version: u32) -> Result<i32, StoreError> {
    i32::try_from(version)
        .map_err(|_| StoreError::internal(anyhow::anyhow!("DEK version {version} out of range")))
}

fn db_error(err: &DbError) -> Option<&tokio_postgres::error::DbError> {
    let DbError::Other(cause) = err else {
        return None;
    };
    cause
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::as_db_error)
}

/// The post's INSERT failed on its channel's foreign key (SQLSTATE 23503, the
/// constraint of that key: the same name on PostgreSQL and CockroachDB).
fn channel_missing(err: &DbError) -> bool {
    db_error(err).is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION
            && db.constraint() == Some("messages_tenant_id_channel_id_fkey")
    })
}

/// One message of a channel. A missing channel answers as a missing channel (so a
/// probe of another tenant's channel is audited); a missing message as a message.
pub async fn get(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    channel: ChannelId,
    id: MessageId,
) -> Result<Message, StoreError> {
    match tx
        .query_opt(
            GET_SQL,
            &[tx.tenant_id().as_uuid(), channel.as_uuid(), id.as_uuid()],
        )
        .await?
    {
        Some(row) => opened(keyring, tx, from_row(&row), sealed(&row)).await,
        None => {
            channels::ensure_exists(tx, channel).await?;
            Err(StoreError::NotFound {
                kind: "message",
                id: None,
            })
        }
    }
}

/// Newest first, as the JSON of a `Page<Message>` (`json_write`), written
/// straight from the rows: each body borrowed from its row, no `Message` or body
/// `String` per row (the allocator was ≈ 21% of the page's instructions,
/// README "Benchmarks"). A missing channel is a 404, an empty one an empty page;
/// the existence check only runs when the page is empty.
pub async fn page_json(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    channel: ChannelId,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Vec<u8>, StoreError> {
    let sql = page_sql(after.is_some(), limit + 1).ok_or_else(|| {
        StoreError::from(DbError::Other(anyhow::anyhow!(
            "page size {limit} out of range"
        )))
    })?;
    let (tenant, channel_id) = (tx.tenant_id(), channel.as_uuid());
    let rows = match after {
        None => tx.query(sql, &[tenant.as_uuid(), channel_id]).await?,
        Some(k) => {
            tx.query(sql, &[tenant.as_uuid(), channel_id, &k.at, &k.id])
                .await?
        }
    };
    if rows.is_empty() {
        channels::ensure_exists(tx, channel).await?;
    }
    // The extra row only says "there is more".
    let shown = &rows[..rows.len().min(limit as usize)];
    // A row's JSON is its wire size plus keys, quotes and hyphens (≈ 136 bytes)
    // and the body's escapes: one allocation for a page of ordinary bodies.
    let size: usize = shown
        .iter()
        .map(|row| row.raw_size_bytes() * 9 / 8 + 160)
        .sum();
    let mut out = Vec::with_capacity(64 + size);
    json_write::page_start(&mut out);
    let mut opener = keyring.opener();
    let mut last = None;
    for (i, row) in shown.iter().enumerate() {
        let id: Uuid = column(row, 0)?;
        let created_at = column::<Timestamptz>(row, 4)?.0;
        // Borrowed from the row: no copy of the ciphertext.
        let opened = match column::<Option<&[u8]>>(row, 5)? {
            Some(sealed) => Some(
                sealing::open_body_with(&mut opener, tx, MessageId::from_uuid(id), sealed).await?,
            ),
            None => None,
        };
        let body = match &opened {
            Some(text) => text.as_str(),
            None => column::<&str>(row, 3)?,
        };
        if i > 0 {
            out.push(b',');
        }
        json_write::message(
            &mut out,
            &id,
            &column(row, 1)?,
            &column(row, 2)?,
            body,
            &created_at,
        );
        last = Some(Keyset { at: created_at, id });
    }
    let next_cursor = last
        .filter(|_| rows.len() > shown.len())
        .map(|key| key.encode());
    json_write::page_end(&mut out, next_cursor.as_deref());
    Ok(out)
}

/// Column `i` of a page row: a row the page cannot read is an opaque internal
/// error, not a panic.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(StoreError::internal)
}

/// Ranked full-text search over the tenant's messages. On PostgreSQL the query
/// has `websearch_to_tsquery` syntax (words, "phrases", -exclusions, or); on
/// CockroachDB every word must match (`plainto_tsquery`): see `db::dialect`.
/// At most `candidates` matches are ranked (the first the index yields): a
/// term with fewer matches gets exactly its best results, a common word costs
/// no more than `candidates` rows, and pages end after them.
pub async fn search(
    tx: &TenantTx<'_>,
    query: &str,
    limit: u32,
    offset: u32,
    candidates: u32,
) -> Result<Page<SearchHit>, StoreError> {
    let rows = tx
        .query(
            tx.statements().search,
            &[
                tx.tenant_id().as_uuid(),
                &query,
                &(i64::from(limit) + 1),
                &i64::from(offset),
                &i64::from(candidates.max(1)),
            ],
        )
        .await?;
    let more = rows.len() > limit as usize;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(|row| SearchHit {
            message: from_row(row),
            rank: row.get("rank"),
        })
        .collect();
    let next_cursor = if more {
        offset_cursor(offset + limit)
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}
