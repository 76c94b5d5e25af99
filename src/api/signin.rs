//! `POST /v1/auth/{tenant_slug}/ldap`: password sign-in against the tenant's
//! LDAP directory → a session (`api::auth::Session`).
//!
//! Routing took the tenant from the slug and sent the request to its home
//! region (`scope::signin`), so the password check and any provisioning run
//! where the tenant's residency allows. Attempts are rate limited per tenant +
//! username and per client address before the directory is asked. Every
//! refusal answers only "invalid credentials" (no user enumeration); the reason
//! goes to the tenant's audit trail (`login_failed`), committed even though the
//! sign-in fails. The directory is asked outside any transaction.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::Session;
use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::identity::admit::{self, Admission, Claimed};
use crate::identity::{ProviderKind, ldap, store};
use crate::ids::{ProviderId, UserId};
use crate::scope::SignInScope;
use crate::secret::Secret;
use crate::sessions::RefreshToken;
use crate::sessions::cookie::DeliveryQuery;

const REFUSED: ApiError = ApiError::Unauthenticated("invalid credentials");

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSignIn {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: Secret,
    /// Which LDAP provider; needed only when the tenant has several.
    #[schema(value_type = Option<String>, format = Uuid)]
    provider_id: Option<uuid::Uuid>,
}

enum Outcome {
    Admitted(UserId, Role),
    Refused,
}

/// Sign in with a directory username and password (`?session=cookie`: the
/// console's variant, the refresh token only in an `HttpOnly` cookie).
#[utoipa::path(tag = "sessions", request_body = PasswordSignIn,
    params(("tenant_slug" = String, Path, description = "The tenant's slug"), DeliveryQuery),
    responses((status = 200, body = Session)))]
#[post("/auth/{tenant_slug}/ldap")]
pub async fn sign_in_ldap(
    scope: SignInScope,
    hooks: web::Data<Hooks>,
    slug: web::Path<String>,
    delivery: web::Query<DeliveryQuery>,
    body: super::JsonBody<PasswordSignIn>,
) -> Result<HttpResponse, ApiError> {
    // Routing resolved the tenant from this path; anything else is no tenant.
    if slug.as_str() != scope.tenant().slug {
        return Err(REFUSED);
    }
    let username = body.username.trim();
    if username.is_empty() || username.chars().count() > 256 || username.contains(char::is_control)
    {
        return Err(REFUSED);
    }
    scope.password_attempt(username)?;
    let provider_id = body.provider_id.map(ProviderId::from_uuid);
    let Some((provider, secret)) = scope
        .write(async |tx| {
            Ok(store::for_signin(tx, &hooks.keyring, ProviderKind::Ldap, provider_id).await?)
        })
        .await?
    else {
        return Err(REFUSED);
    };
    let (Some(config), Some(secret)) = (&provider.ldap, secret) else {
        return Err(REFUSED);
    };
    let checked = ldap::authenticate(
        &hooks.client,
        config,
        secret.expose(),
        username,
        body.password.expose(),
    )
    .await;
    let actor = format!("ldap:{}", username.chars().take(64).collect::<String>());
    let target = Some(("identity_provider", provider.id.to_string()));
    let found = match checked {
        Ok(found) => found,
        Err(failure) => {
            tracing::warn!(
                provider = %provider.id, error = %failure,
                "LDAP sign-in: directory failed"
            );
            scope
                .write(async |tx| {
                    let details =
                        json!({ "reason": "directory_unavailable", "detail": failure.to_string() });
                    Ok(audit::record(tx, &actor, "login_failed", target.clone(), details).await?)
                })
                .await?;
            return Err(ApiError::Unavailable(
                "the tenant's directory did not answer",
            ));
        }
    };
    let refresh = RefreshToken::generate(scope.tenant_id())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no randomness for a refresh token")))?;
    let limit = scope.tenant().limits().users;
    let outcome = scope
        .write(async |tx| {
            let failed = async |reason: &str| {
                let details = json!({ "reason": reason });
                audit::record(tx, &actor, "login_failed", target.clone(), details).await
            };
            let Some(user) = &found else {
                failed("invalid_credentials").await?;
                return Ok(Outcome::Refused);
            };
            let claimed = Claimed {
                subject: user.subject.clone(),
                email: user.email.clone(),
                display_name: user.display_name.clone(),
                groups: user.groups.clone(),
            };
            match admit::start_session(tx, &provider, &claimed, limit, &refresh, "ldap").await? {
                Admission::Refused(reason) => {
                    failed(reason).await?;
                    Ok(Outcome::Refused)
                }
                Admission::User(id, role) => Ok(Outcome::Admitted(id, role)),
            }
        })
        .await?;
    match outcome {
        Outcome::Admitted(user, role) => {
            Session::respond(&scope, user, role, &refresh, delivery.session)
        }
        Outcome::Refused => Err(REFUSED),
    }
}
