//! OIDC sign-in (`crate::identity::oidc`): `GET /v1/auth/{tenant_slug}/oidc/start`
//! sends the browser to the tenant's provider; `GET /v1/auth/oidc/callback`
//! takes the code back and answers a session (`api::auth::Session`).
//!
//! Both carry no token: routing takes the tenant from the slug, and for the
//! callback from the `state`'s prefix, and serves them in the tenant's home
//! region (`scope::signin`). Provider traffic (discovery, token, keys) happens
//! outside any transaction. A failed callback answers only "invalid
//! credentials"; the reason goes to the tenant's trail (`login_failed`).

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::auth::Session;
use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::identity::admit::{self, Admission, Claimed};
use crate::identity::oidc::{self, Started};
use crate::identity::{ProviderKind, diagnose, store};
use crate::ids::{ProviderId, UserId};
use crate::scope::SignInScope;
use crate::sessions::RefreshToken;
use crate::sessions::cookie::Delivery;

const REFUSED: ApiError = ApiError::Unauthenticated("invalid credentials");

#[derive(Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// Where the provider sends the browser back: exactly one of the provider's
    /// registered `redirect_uris`.
    redirect_uri: String,
    /// Which OIDC provider; needed only when the tenant has several.
    #[param(value_type = Option<String>, format = Uuid)]
    provider_id: Option<uuid::Uuid>,
}

/// Start an OIDC sign-in: 302 to the tenant's provider.
#[utoipa::path(tag = "sessions",
    params(("tenant_slug" = String, Path, description = "The tenant's slug"), StartQuery),
    responses((status = 302, description = "To the provider's authorization endpoint",
        headers(("Location" = String, description = "The authorization request")))))]
#[get("/auth/{tenant_slug}/oidc/start")]
pub async fn start(
    scope: SignInScope,
    hooks: web::Data<Hooks>,
    slug: web::Path<String>,
    query: web::Query<StartQuery>,
) -> Result<HttpResponse, ApiError> {
    if slug.as_str() != scope.tenant().slug {
        return Err(ApiError::NotFound {
            kind: "identity_provider",
            id: None,
        });
    }
    let provider_id = query.provider_id.map(ProviderId::from_uuid);
    let no_provider = || ApiError::NotFound {
        kind: "identity_provider",
        id: None,
    };
    let (provider, _) = scope
        .write(async |tx| {
            Ok(store::for_signin(tx, &hooks.keyring, ProviderKind::Oidc, provider_id).await?)
        })
        .await?
        .ok_or_else(no_provider)?;
    let config = provider.oidc.as_ref().ok_or_else(no_provider)?;
    // Exact match: no prefix, no open redirect.
    if !provider
        .redirect_uris
        .iter()
        .any(|u| u == &query.redirect_uri)
    {
        return Err(ApiError::validation(
            "`redirect_uri` is not one of the provider's registered redirect URIs",
        ));
    }
    let discovery = diagnose::discover(&hooks.client, config)
        .await
        .map_err(|why| {
            tracing::warn!(provider = %provider.id, %why, "OIDC start: discovery failed");
            ApiError::Unavailable("the tenant's identity provider did not answer")
        })?;
    let started = Started::new(scope.tenant_id())?;
    let redirect_uri = query.redirect_uri.clone();
    scope
        .write(async |tx| Ok(oidc::store_flow(tx, provider.id, &started, &redirect_uri).await?))
        .await?;
    Ok(to_provider(
        &discovery.authorization_endpoint,
        config,
        &redirect_uri,
        &started,
    ))
}

/// The 302 to the provider's authorization endpoint that starts a sign-in
/// (tenant or platform); never cached, as it carries the flow's state.
pub(super) fn to_provider(
    authorization_endpoint: &str,
    config: &crate::identity::OidcConfig,
    redirect_uri: &str,
    started: &Started,
) -> HttpResponse {
    let location = oidc::authorize_url(authorization_endpoint, config, redirect_uri, started);
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    code: Option<String>,
    state: String,
    /// Set by a provider that refused the sign-in.
    error: Option<String>,
    /// `cookie`: the console's variant (the refresh token only in an
    /// `HttpOnly` cookie, a `csrf_token` in the body).
    #[serde(default)]
    #[param(value_type = Option<Delivery>)]
    session: Delivery,
}

enum Outcome {
    Admitted(UserId, Role),
    Refused,
}

/// Finish an OIDC sign-in: exchange the code, check the id_token, answer the session.
#[utoipa::path(tag = "sessions", params(CallbackQuery), responses((status = 200, body = Session)))]
#[get("/auth/oidc/callback")]
pub async fn callback(
    scope: SignInScope,
    hooks: web::Data<Hooks>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    if oidc::tenant_of_state(&query.state) != Some(scope.tenant_id()) {
        return Err(REFUSED);
    }
    let state = query.state.clone();
    let taken = scope
        .write(async |tx| {
            let flow = oidc::take_flow(tx, &state).await?;
            let provider = match &flow {
                Ok(flow) => {
                    store::for_signin(tx, &hooks.keyring, ProviderKind::Oidc, Some(flow.provider))
                        .await?
                }
                Err(_) => None,
            };
            if let Err(reason) = &flow {
                let details = json!({ "method": "oidc", "reason": reason });
                audit::record(tx, "oidc", "login_failed", None, details).await?;
            }
            Ok((flow, provider))
        })
        .await?;
    let (Ok(flow), Some((provider, secret))) = taken else {
        return Err(REFUSED);
    };
    let Some(config) = provider.oidc.clone() else {
        return Err(REFUSED);
    };
    let target = Some(("identity_provider", provider.id.to_string()));
    let checked = oidc::complete(
        &hooks.client,
        &config,
        secret.as_ref().map(|s| s.expose()),
        query.error.as_deref(),
        query.code.as_deref(),
        &flow.redirect_uri,
        &flow.verifier,
        &flow.nonce,
    )
    .await;
    let refresh = RefreshToken::generate(scope.tenant_id())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no randomness for a refresh token")))?;
    let limit = scope.tenant().limits().users;
    let outcome = scope
        .write(async |tx| {
            let claims = match &checked {
                Ok(claims) => claims,
                Err(why) => {
                    let details =
                        json!({ "method": "oidc", "reason": "id_token_refused", "detail": why });
                    audit::record(tx, "oidc", "login_failed", target.clone(), details).await?;
                    return Ok(Outcome::Refused);
                }
            };
            let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
            let actor = format!("oidc:{}", sub.chars().take(64).collect::<String>());
            let claimed = Claimed {
                subject: sub,
                email: claims["email"].as_str().map(str::to_owned),
                display_name: claims["name"].as_str().map(str::to_owned),
                groups: oidc::groups(claims, &config.groups_claim),
            };
            match admit::start_session(tx, &provider, &claimed, limit, &refresh, "oidc").await? {
                Admission::Refused(reason) => {
                    let details = json!({ "method": "oidc", "reason": reason });
                    audit::record(tx, &actor, "login_failed", target.clone(), details).await?;
                    Ok(Outcome::Refused)
                }
                Admission::User(id, role) => Ok(Outcome::Admitted(id, role)),
            }
        })
        .await?;
    match outcome {
        Outcome::Admitted(user, role) => {
            Session::respond(&scope, user, role, &refresh, query.session)
        }
        Outcome::Refused => Err(REFUSED),
    }
}
