//! Platform sign-in (`crate::platform`): `GET /v1/auth/platform/oidc/start`
//! sends the browser to the platform's provider (settings `platform_identity`),
//! `GET /v1/auth/platform/oidc/callback` takes the code back and answers a
//! platform session; `POST /v1/auth/platform/refresh` rotates its refresh
//! token, `POST /v1/auth/platform/logout` ends its family.
//!
//! The OIDC checks are the tenants' (`identity::oidc`, `identity::id_token`:
//! discovery, the JWKS cache, state, nonce, PKCE, `iss`/`aud`/`exp`), with the
//! flow in `platform_oidc_sign_ins`. The user is the platform user created for
//! (issuer, subject) and still active; nobody else gets in, and every refusal
//! answers only "invalid credentials" (the reason goes to the platform trail,
//! `platform_login_failed`).
//!
//! The console's variant (`?session=cookie` on the callback) is the tenant
//! sessions' (`sessions::cookie`) in the platform's own jar: the refresh token
//! only as the `__Secure-mpr` cookie on `/v1/auth/platform`, a `csrf_token` in
//! the body, refresh and logout by the cookie with `X-Meridian-CSRF`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::identity::diagnose;
use crate::identity::oidc::{self, Started};
use crate::platform::{self, PlatformIdentity, PlatformUserStatus, store};
use crate::scope::PlatformSignIn;
use crate::sessions;
use crate::sessions::cookie::{self, Delivery};

const REFUSED: ApiError = ApiError::Unauthenticated("invalid credentials");
const REFRESH_REFUSED: ApiError = ApiError::Unauthenticated("invalid or expired refresh token");

/// The platform's provider; without one nobody can sign in to the platform,
/// which is answered like any sign-in that cannot succeed (401).
fn configured(hooks: &Hooks) -> Result<&PlatformIdentity, ApiError> {
    hooks
        .platform_identity
        .as_ref()
        .ok_or(ApiError::Unauthenticated(
            "this platform has no identity provider (settings `platform_identity`)",
        ))
}

fn random(len: usize) -> Result<String, ApiError> {
    crate::secret::alphanumeric(len)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("no randomness for a platform sign-in")))
}

/// A platform session: like a tenant's, without a tenant.
#[derive(Serialize, ToSchema)]
pub struct PlatformSession {
    /// A bearer JWT for the API (`sub` = `platform_user:<id>`, no `tid`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// `mpr_…`, single use: a refresh returns the next one; presenting a used
    /// one ends the session. Absent for a console session (`session=cookie`),
    /// whose refresh token is only in the `__Secure-mpr` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Console sessions only: send it back in `X-Meridian-CSRF` with a refresh
    /// or logout that uses the cookie. It changes with every refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: uuid::Uuid,
    /// `platform_admin` or `operator`.
    pub role: Role,
}

fn session(
    scope: &PlatformSignIn,
    user: uuid::Uuid,
    role: Role,
    refresh_token: &str,
    delivery: Delivery,
) -> Result<HttpResponse, ApiError> {
    let by_cookie = delivery == Delivery::Cookie;
    let body = PlatformSession {
        access_token: scope.access_token(user, role)?,
        token_type: "Bearer",
        expires_in: scope.access_ttl(),
        refresh_token: (!by_cookie).then(|| refresh_token.to_owned()),
        csrf_token: by_cookie.then(|| cookie::csrf_token(refresh_token)),
        user_id: user,
        role,
    };
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if by_cookie {
        response.cookie(cookie::PLATFORM.set(refresh_token));
    }
    Ok(response.json(body))
}

/// A refused refresh or logout; a console's dead cookie is removed with it.
fn refused(delivery: Delivery) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&REFRESH_REFUSED);
    if delivery == Delivery::Cookie {
        let _ = response.add_cookie(&cookie::PLATFORM.clear());
    }
    response
}

/// The refresh token a platform refresh or logout presents: the body's (an API
/// client), else the platform cookie's (the console), which needs the CSRF
/// token. The tenant cookie is never read here.
fn presented(
    req: &HttpRequest,
    body: &PlatformRefreshRequest,
) -> Result<(String, Delivery), ApiError> {
    if let Some(token) = &body.refresh_token {
        return Ok((token.clone(), Delivery::Body));
    }
    let token = cookie::PLATFORM.presented(req).ok_or(REFRESH_REFUSED)?;
    cookie::check_csrf(req, &token)?;
    Ok((token, Delivery::Cookie))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PlatformStartQuery {
    /// Exactly one of `platform_identity.redirect_uris`.
    redirect_uri: String,
}

/// Start a platform sign-in: 302 to the platform's provider.
#[utoipa::path(tag = "platform", params(PlatformStartQuery),
    responses((status = 302, description = "To the provider's authorization endpoint",
        headers(("Location" = String, description = "The authorization request")))))]
#[get("/auth/platform/oidc/start")]
pub async fn start(
    scope: PlatformSignIn,
    hooks: web::Data<Hooks>,
    query: web::Query<PlatformStartQuery>,
) -> Result<HttpResponse, ApiError> {
    let identity = configured(&hooks)?;
    if !identity
        .redirect_uris
        .iter()
        .any(|u| u == &query.redirect_uri)
    {
        return Err(ApiError::validation(
            "`redirect_uri` is not one of the platform's registered redirect URIs",
        ));
    }
    let config = identity.oidc();
    let discovery = diagnose::discover(&hooks.client, &config)
        .await
        .map_err(|why| {
            tracing::warn!(%why, "platform OIDC start: discovery failed");
            ApiError::Unavailable("the platform's identity provider did not answer")
        })?;
    let started = Started {
        state: format!("{}{}", platform::STATE_PREFIX, random(43)?),
        nonce: random(32)?,
        verifier: random(64)?,
    };
    let redirect_uri = query.redirect_uri.clone();
    let hash = oidc::state_hash(&started.state);
    scope
        .write(async |tx| {
            store::store_flow(tx, &hash, &started.nonce, &started.verifier, &redirect_uri).await?;
            Ok(())
        })
        .await?;
    Ok(super::oidc::to_provider(
        &discovery.authorization_endpoint,
        &config,
        &redirect_uri,
        &started,
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct PlatformCallbackQuery {
    code: Option<String>,
    state: String,
    /// Set by a provider that refused the sign-in.
    error: Option<String>,
    /// `cookie`: the console's variant (the refresh token only in the
    /// `HttpOnly` `__Secure-mpr` cookie, a `csrf_token` in the body).
    #[serde(default)]
    #[param(value_type = Option<Delivery>)]
    session: Delivery,
}

enum Outcome {
    Admitted(uuid::Uuid, Role),
    Refused,
}

/// Finish a platform sign-in: exchange the code, check the id_token, find the
/// platform user by (issuer, subject), answer the session.
#[utoipa::path(tag = "platform", params(PlatformCallbackQuery),
    responses((status = 200, body = PlatformSession)))]
#[get("/auth/platform/oidc/callback")]
pub async fn callback(
    scope: PlatformSignIn,
    hooks: web::Data<Hooks>,
    query: web::Query<PlatformCallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let identity = configured(&hooks)?;
    let config = identity.oidc();
    let hash = oidc::state_hash(&query.state);
    let flow = scope
        .write(async |tx| {
            let flow = store::take_flow(tx, &hash).await?;
            if let Err(reason) = &flow {
                let details = json!({ "method": "oidc", "reason": reason });
                audit::record_platform(tx, "oidc", "platform_login_failed", None, details).await?;
            }
            Ok(flow)
        })
        .await?;
    let Ok(flow) = flow else {
        return Err(REFUSED);
    };
    let checked = oidc::complete(
        &hooks.client,
        &config,
        identity.client_secret.as_ref().map(|s| s.expose()),
        query.error.as_deref(),
        query.code.as_deref(),
        &flow.redirect_uri,
        &flow.verifier,
        &flow.nonce,
    )
    .await;
    let issued = sessions_token()?;
    let outcome = scope
        .write(async |tx| {
            let failed = async |actor: &str, reason: &str, detail: Option<&str>| {
                let details = json!({ "method": "oidc", "reason": reason, "detail": detail });
                audit::record_platform(tx, actor, "platform_login_failed", None, details).await
            };
            let claims = match &checked {
                Ok(claims) => claims,
                Err(why) => {
                    failed("oidc", "id_token_refused", Some(why)).await?;
                    return Ok(Outcome::Refused);
                }
            };
            let sub = claims["sub"].as_str().unwrap_or_default();
            let actor = format!("oidc:{}", sub.chars().take(64).collect::<String>());
            let user = store::find(tx, &config.issuer, sub).await?;
            let Some(user) = user else {
                failed(&actor, "unknown_platform_user", None).await?;
                return Ok(Outcome::Refused);
            };
            if user.status != PlatformUserStatus::Active {
                failed(&actor, "platform_user_disabled", None).await?;
                return Ok(Outcome::Refused);
            }
            let family = uuid::Uuid::now_v7();
            store::insert_token(tx, family, user.id, &sessions::hash(&issued)).await?;
            let actor = format!("{}{}", platform::SUBJECT_PREFIX, user.id);
            let details = json!({ "method": "oidc", "role": user.role, "family_id": family });
            audit::record_platform(tx, &actor, "platform_login_succeeded", None, details).await?;
            Ok(Outcome::Admitted(user.id, user.role))
        })
        .await?;
    match outcome {
        Outcome::Admitted(user, role) => session(&scope, user, role, &issued, query.session),
        Outcome::Refused => Err(REFUSED),
    }
}

fn sessions_token() -> Result<String, ApiError> {
    Ok(format!("{}{}", platform::REFRESH_PREFIX, random(43)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformRefreshRequest {
    /// `mpr_…`, from the sign-in or the previous refresh. The console leaves
    /// it out (`{}`): its token is the `__Secure-mpr` cookie, and the request
    /// must carry the session's CSRF token in `X-Meridian-CSRF`.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Exchange a platform refresh token for a new session (the token is used
/// up). The platform user is re-read: disabled ends the session, a changed
/// role is in the new access token.
#[utoipa::path(tag = "platform", request_body = PlatformRefreshRequest,
    responses((status = 200, body = PlatformSession)))]
#[post("/auth/platform/refresh")]
pub async fn refresh(
    req: HttpRequest,
    scope: PlatformSignIn,
    body: super::JsonBody<PlatformRefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let (presented, delivery) = presented(&req, &body)?;
    if !platform::is_refresh_token(&presented) {
        return Ok(refused(delivery));
    }
    let hash = sessions::hash(&presented);
    let next = sessions_token()?;
    let outcome = scope
        .write(async |tx| {
            let Some(stored) = store::find_token(tx, &hash).await? else {
                return Ok(Outcome::Refused);
            };
            let actor = format!("{}{}", platform::SUBJECT_PREFIX, stored.user);
            if !stored.active {
                let revoked = store::revoke_family(tx, stored.family).await?;
                let details = json!({ "family_id": stored.family, "sessions_ended": revoked });
                audit::record_platform(tx, &actor, "refresh_reuse_detected", None, details).await?;
                return Ok(Outcome::Refused);
            }
            let user = store::get(tx, stored.user).await?;
            let user = user.filter(|u| u.status == PlatformUserStatus::Active);
            let (false, Some(user)) = (stored.expired, user) else {
                store::revoke_family(tx, stored.family).await?;
                return Ok(Outcome::Refused);
            };
            store::mark_rotated(tx, stored.id).await?;
            store::insert_token(tx, stored.family, user.id, &sessions::hash(&next)).await?;
            Ok(Outcome::Admitted(user.id, user.role))
        })
        .await?;
    match outcome {
        Outcome::Admitted(user, role) => session(&scope, user, role, &next, delivery),
        Outcome::Refused => Ok(refused(delivery)),
    }
}

/// End the platform session a refresh token belongs to (`204`, also for a
/// token already used up or unknown). A console logout (by the cookie, with
/// its CSRF token) also removes the cookie.
#[utoipa::path(tag = "platform", request_body = PlatformRefreshRequest,
    responses((status = 204)))]
#[post("/auth/platform/logout")]
pub async fn logout(
    req: HttpRequest,
    scope: PlatformSignIn,
    body: super::JsonBody<PlatformRefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let (presented, delivery) = presented(&req, &body)?;
    if !platform::is_refresh_token(&presented) {
        return Ok(refused(delivery));
    }
    let hash = sessions::hash(&presented);
    scope
        .write(async |tx| {
            if let Some(stored) = store::find_token(tx, &hash).await? {
                store::revoke_family(tx, stored.family).await?;
            }
            Ok(())
        })
        .await?;
    let mut response = HttpResponse::NoContent();
    if delivery == Delivery::Cookie {
        response.cookie(cookie::PLATFORM.clear());
    }
    Ok(response.finish())
}
