//! `/v1/channels`: admins create and delete channels; every role reads them.

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::audit;
use crate::error::ApiError;
use crate::ids::ChannelId;
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::store::channels::{self, Channel};
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    #[schema(min_length = 1, max_length = 80)]
    name: String,
    #[schema(max_length = 500)]
    topic: Option<String>,
}

#[utoipa::path(
    tag = "channels",
    request_body = CreateChannel,
    security(("bearer" = [])),
    responses((status = 201, body = Channel)),
)]
#[post("/channels")]
pub async fn create(
    scope: Guarded<Allow<perm::ManageChannels>, TenantScope>,
    body: super::JsonBody<CreateChannel>,
) -> Result<HttpResponse, ApiError> {
    let name = validate::text("name", &body.name, 80)?;
    let topic = match body.topic.as_deref() {
        Some(topic) => {
            validate::no_control_chars("topic", topic)?;
            if topic.chars().count() > 500 {
                return Err(ApiError::validation(
                    "`topic` must be at most 500 characters",
                ));
            }
            topic.trim().to_owned()
        }
        None => String::new(),
    };
    let user = scope.user_id();
    let channel = scope
        .write(async |tx| {
            let channel = channels::create(tx, &name, &topic, user).await?;
            audit::record(
                tx,
                &user.to_string(),
                "channel_created",
                Some(("channel", channel.id.to_string())),
                json!({ "name": name }),
            )
            .await?;
            Ok(channel)
        })
        .await?;
    Ok(created(format!("/v1/channels/{}", channel.id), &channel))
}

#[utoipa::path(
    tag = "channels",
    params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Channel>)),
)]
#[get("/channels")]
pub async fn list(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Channel>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(channels::list(tx, limit, after).await?))
            .await?,
    ))
}

#[utoipa::path(
    tag = "channels",
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    security(("bearer" = [])),
    responses((status = 200, body = Channel)),
)]
#[get("/channels/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Channel>, ApiError> {
    let id = ChannelId::parse(&path)?;
    Ok(web::Json(
        scope
            .read(async |tx| Ok(channels::get(tx, id).await?))
            .await?,
    ))
}

/// Delete a channel and all its messages.
#[utoipa::path(
    tag = "channels",
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    security(("bearer" = [])),
    responses((status = 204)),
)]
#[delete("/channels/{id}")]
pub async fn delete(
    scope: Guarded<Allow<perm::ManageChannels>, TenantScope>,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let id = ChannelId::parse(&path)?;
    let user = scope.user_id().to_string();
    scope
        .write(async |tx| {
            channels::delete(tx, id).await?;
            Ok(audit::record(
                tx,
                &user,
                "channel_deleted",
                Some(("channel", id.to_string())),
                json!({}),
            )
            .await?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
