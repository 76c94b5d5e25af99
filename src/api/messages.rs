//! `/v1/channels/{id}/messages`: members post; every role pages newest first.

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::crypto::messages::{KeyVersionStale, PlaintextRefused, Sealing};
use crate::db::TenantTx;
use crate::error::ApiError;
use crate::ids::{ChannelId, MessageId};
use crate::json_write::JsonBytes;
use crate::limits::RequestClass;
use crate::pagination::{Page, PageQuery};
use crate::scope::post_lanes::Coalesced;
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::state::AppState;
use crate::store::messages::{self, GrantShort, Message};
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    body: String,
}

/// Post a message. The body's size limit (bytes, UTF-8) comes from the plan.
#[utoipa::path(
    tag = "messages",
    request_body = PostMessage,
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    security(("bearer" = [])),
    responses((status = 201, body = Message)),
)]
#[post("/channels/{id}/messages")]
pub async fn post(
    scope: Guarded<Allow<perm::PostMessage>, TenantScope>,
    state: web::Data<AppState>,
    path: IdPath,
    body: super::JsonBody<PostMessage>,
) -> Result<HttpResponse, ApiError> {
    let channel = ChannelId::parse(&path)?;
    let limit = scope.tenant().limits().message_bytes as usize;
    if body.body.len() > limit {
        return Err(ApiError::MessageTooLarge { limit });
    }
    if body.body.trim().is_empty() {
        return Err(ApiError::validation("`body` must not be empty"));
    }
    validate::no_control_chars("body", &body.body)?;
    let author = scope.user_id();
    let storage_cap = scope.tenant().limits().storage_bytes;
    // The policy from the directory cache; when it is stale and the tenant now
    // encrypts, the INSERT refuses the plaintext and the post is redone sealed
    // (`crypto::messages`). Never the other way: a stale "encrypt" seals.
    // A sealed post uses the DEK version this node saw active, which its INSERT
    // checks; when a rotation made it stale, the post is redone reading it.
    let mut seal = scope.tenant().encryption.messages;
    // A plaintext post goes with the tenant's other posts on this node when it
    // can (`scope::post_lanes`); what the batch did not write is posted here on
    // its own, which answers why.
    let mut body = body.into_inner().body;
    // Held until the post is done when this post found its lane idle.
    let mut _lane_turn = None;
    if !seal {
        let message = Message {
            id: MessageId::new_random(),
            channel_id: channel,
            author_id: author,
            body,
            created_at: messages::now_micros(),
        };
        match scope.post_coalesced(message, storage_cap).await? {
            Coalesced::Posted(message) => {
                return Ok(created(
                    format!("/v1/channels/{channel}/messages/{}", message.id),
                    &message,
                ));
            }
            Coalesced::OnItsOwn(message, turn) => {
                body = message.body;
                _lane_turn = turn;
            }
        }
    }
    let mut fresh = false;
    // One round trip unless the transaction's usage shard cannot hold the post:
    // then it is redone on the slow path (`messages::post`).
    let mut fast = true;
    let keyring = &*state.keyring;
    let message = loop {
        let attempt = async |tx: &TenantTx<'_>| {
            let sealing = seal.then_some(Sealing { keyring, fresh });
            let posted =
                messages::post(tx, sealing, channel, author, &body, storage_cap, fast).await?;
            Ok(posted.map_err(ApiError::from))
        };
        // The fast path's statement checks the token's user itself (`POST_SQL`):
        // the prologue need not send the same check before it. The slow path's
        // COMMIT waits for the prologue's check.
        let posted = if fast {
            scope.write_guarded_or_refuse(attempt).await
        } else {
            scope.write_or_refuse(attempt).await
        };
        match posted {
            Err(short) if fast && GrantShort::is(&short) => fast = false,
            Err(refused) if !seal && PlaintextRefused::is(&refused) => seal = true,
            Err(stale) if seal && !fresh && KeyVersionStale::is(&stale) => {
                keyring.forget_active(scope.tenant_id());
                fresh = true;
            }
            other => break other?,
        }
    };
    Ok(created(
        format!("/v1/channels/{channel}/messages/{}", message.id),
        &message,
    ))
}

/// A page of the channel's messages, newest first.
#[utoipa::path(
    tag = "messages",
    params(("id" = uuid::Uuid, Path, description = "Channel id"), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Message>)),
)]
#[get("/channels/{id}/messages")]
pub async fn page(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    state: web::Data<AppState>,
    path: IdPath,
    query: web::Query<PageQuery>,
) -> Result<JsonBytes, ApiError> {
    let channel = ChannelId::parse(&path)?;
    let (limit, after) = (query.limit()?, query.keyset()?);
    // The hottest answer: written from the rows, without serde's per-byte
    // escaping or a `Message` per row (`json_write`, `messages::page_json`).
    Ok(JsonBytes(
        scope
            .read_as(
                RequestClass::page(limit, &scope.limits().cost),
                async |tx| {
                    Ok(messages::page_json(tx, &state.keyring, channel, limit, after).await?)
                },
            )
            .await?,
    ))
}

/// One message.
#[utoipa::path(
    tag = "messages",
    params(("id" = uuid::Uuid, Path, description = "Channel \
        id"), ("message_id" = uuid::Uuid, Path, description = "Message id")),
    security(("bearer" = [])),
    responses((status = 200, body = Message)),
)]
#[get("/channels/{id}/messages/{message_id}")]
pub async fn get(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Message>, ApiError> {
    let (channel, message) = (ChannelId::parse(&path.0)?, MessageId::parse(&path.1)?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(messages::get(tx, &state.keyring, channel, message).await?))
            .await?,
    ))
}
