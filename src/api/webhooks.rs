//! `/v1/webhooks`: a tenant's admins and owners configure endpoints that receive
//! its events (`crate::webhooks`), and read each endpoint's delivery log. The
//! secret is returned only by the create and rotate answers.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::audit;
use crate::error::{ApiError, ErrorCode};
use crate::hooks::Hooks;
use crate::ids::WebhookId;
use crate::jobs;
use crate::limits::RequestClass;
use crate::outbox;
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::validate;
use crate::webhooks::jobs::deliver_job;
use crate::webhooks::sign;
use crate::webhooks::store::{self, Delivery, Webhook, WebhookChanges};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `http://host[:port]/path`; internal addresses are refused.
    url: String,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Event types to deliver (see the README); empty or absent: all.
    #[schema(max_items = 11)]
    event_types: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    url: Option<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
    #[schema(max_items = 11)]
    event_types: Option<Vec<String>>,
    /// `true` re-enables a disabled endpoint (and clears its failure streak).
    enabled: Option<bool>,
    /// `true`: a new secret, returned in this answer; the old one keeps signing
    /// for 24 hours.
    rotate_secret: Option<bool>,
}

fn check_url(hooks: &Hooks, url: &str) -> Result<String, ApiError> {
    let url = url.trim();
    match hooks.refuse_url(url) {
        Some(why) => Err(ApiError::bad_request(
            ErrorCode::WebhookUrlRefused,
            format!("`url` is refused: {why}"),
        )),
        None => Ok(url.to_owned()),
    }
}

// The schema's `maxItems` of `event_types` (11) is the number of event kinds.
const _: () = assert!(outbox::KINDS.len() == 11);

fn check_types(types: Option<&Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(types) = types else { return Ok(None) };
    if types.len() > outbox::KINDS.len() {
        return Err(ApiError::validation("`event_types` lists too many types"));
    }
    for t in types {
        if !outbox::KINDS.contains(&t.as_str()) {
            return Err(ApiError::validation(format!(
                "unknown event type `{}` (one of: {})",
                t.chars().take(64).collect::<String>(),
                outbox::KINDS.join(", ")
            )));
        }
    }
    let mut types = types.clone();
    types.sort();
    types.dedup();
    Ok(Some(types))
}

fn check_description(description: Option<&str>) -> Result<Option<String>, ApiError> {
    description
        .map(|d| {
            validate::no_control_chars("description", d)?;
            if d.chars().count() > 500 {
                return Err(ApiError::validation(
                    "`description` must be at most 500 characters",
                ));
            }
            Ok(d.trim().to_owned())
        })
        .transpose()
}

fn new_secret() -> Result<String, ApiError> {
    sign::new_secret()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no randomness for a webhook secret")))
}

/// Add a webhook endpoint (admin); the answer holds its secret, shown only once.
#[utoipa::path(tag = "webhooks", request_body = CreateWebhook, security(("bearer" = [])),
    responses((status = 201, body = Webhook)))]
#[post("/webhooks")]
pub async fn create(
    scope: Guarded<Allow<perm::ManageWebhooks>, TenantScope>,
    hooks: web::Data<Hooks>,
    body: super::JsonBody<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let url = check_url(&hooks, &body.url)?;
    let description = check_description(body.description.as_deref())?.unwrap_or_default();
    let types = check_types(body.event_types.as_ref())?.unwrap_or_default();
    let secret = new_secret()?;
    let user = scope.user_id().to_string();
    let mut webhook = scope
        .write(async |tx| {
            let webhook =
                store::create(tx, &hooks.keyring, &url, &description, &types, &secret).await?;
            audit::record(
                tx,
                &user,
                "webhook_created",
                Some(("webhook", webhook.id.to_string())),
                json!({ "url": url, "event_types": types }),
            )
            .await?;
            Ok(webhook)
        })
        .await?;
    webhook.secret = Some(secret);
    Ok(created(format!("/v1/webhooks/{}", webhook.id), &webhook))
}

#[utoipa::path(tag = "webhooks", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Webhook>)))]
#[get("/webhooks")]
pub async fn list(
    scope: Guarded<Allow<perm::ManageWebhooks>, TenantScope>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Webhook>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read_as(
                RequestClass::page(limit, &scope.limits().cost),
                async |tx| Ok(store::list(tx, limit, after).await?),
            )
            .await?,
    ))
}

#[utoipa::path(tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    security(("bearer" = [])), responses((status = 200, body = Webhook)))]
#[get("/webhooks/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::ManageWebhooks>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Webhook>, ApiError> {
    let id = WebhookId::parse(&path)?;
    Ok(web::Json(
        scope.read(async |tx| Ok(store::get(tx, id).await?)).await?,
    ))
}

/// Change an endpoint, re-enable it, or rotate its secret (the answer then holds
/// the new secret; the old one signs too for 24 hours).
#[utoipa::path(tag = "webhooks", request_body = PatchWebhook,
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    security(("bearer" = [])), responses((status = 200, body = Webhook)))]
#[patch("/webhooks/{id}")]
pub async fn patch(
    scope: Guarded<Allow<perm::ManageWebhooks>, TenantScope>,
    hooks: web::Data<Hooks>,
    path: IdPath,
    body: super::JsonBody<PatchWebhook>,
) -> Result<web::Json<Webhook>, ApiError> {
    let id = WebhookId::parse(&path)?;
    let changes = WebhookChanges {
        url: body
            .url
            .as_deref()
            .map(|u| check_url(&hooks, u))
            .transpose()?,
        description: check_description(body.description.as_deref())?,
        event_types: check_types(body.event_types.as_ref())?,
        enabled: body.enabled,
        new_secret: match body.rotate_secret {
            Some(true) => Some(new_secret()?),
            _ => None,
        },
    };
    let user = scope.user_id().to_string();
    let mut webhook = scope
        .write(async |tx| {
            let webhook = store::update(tx, &hooks.keyring, id, &changes).await?;
            let details = json!({
                "url": changes.url, "event_types": changes.event_types, "enabled": changes.enabled,
                "secret_rotated": changes.new_secret.is_some(),
            });
            audit::record(
                tx,
                &user,
                "webhook_updated",
                Some(("webhook", id.to_string())),
                details,
            )
            .await?;
            if changes.enabled == Some(true) {
                // Re-enabled: its pending deliveries resume (in order).
                jobs::enqueue(tx, deliver_job(id, None)).await?;
            }
            Ok(webhook)
        })
        .await?;
    webhook.secret = changes.new_secret;
    Ok(web::Json(webhook))
}

/// Delete an endpoint and its delivery log.
#[utoipa::path(tag = "webhooks", params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    security(("bearer" = [])), responses((status = 204)))]
#[delete("/webhooks/{id}")]
pub async fn delete(
    scope: Guarded<Allow<perm::ManageWebhooks>, TenantScope>,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let id = WebhookId::parse(&path)?;
    let user = scope.user_id().to_string();
    scope
        .write(async |tx| {
            store::delete(tx, id).await?;
            Ok(audit::record(
                tx,
                &user,
                "webhook_deleted",
                Some(("webhook", id.to_string())),
                json!({}),
            )
            .await?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An endpoint's delivery log, newest first.
#[utoipa::path(tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Webhook id"), PageQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Delivery>)))]
#[get("/webhooks/{id}/deliveries")]
pub async fn deliveries(
    scope: Guarded<Allow<perm::ManageWebhooks>, TenantScope>,
    path: IdPath,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Delivery>>, ApiError> {
    let id = WebhookId::parse(&path)?;
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read_as(
                RequestClass::page(limit, &scope.limits().cost),
                async |tx| Ok(store::deliveries(tx, id, limit, after).await?),
            )
            .await?,
    ))
}
