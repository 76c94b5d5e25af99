//! Sessions (`crate::sessions`): `POST /v1/auth/refresh` rotates a refresh token
//! into a new access token and refresh token, `POST /v1/auth/logout` ends the
//! token's family, `GET /v1/me` says who an access token is. Refresh and logout
//! carry no access token: routing took their tenant from the refresh token
//! (`scope::signin`), and every refusal says only "invalid or expired refresh
//! token", whatever the reason.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::identity::store as providers;
use crate::identity::{external, ldap, role_for};
use crate::ids::{RegionId, TenantId, UserId};
use crate::scope::{Authenticated, Guarded, SignInScope, TenantScope};
use crate::sessions::{self, RefreshToken, store};
use crate::store::StoreError;
use crate::store::users::{self, User, UserStatus};

const REFUSED: ApiError = ApiError::Unauthenticated("invalid or expired refresh token");

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// `mrt_…`, from a sign-in or the previous refresh.
    refresh_token: String,
}

/// A session: a short-lived access token and the refresh token that renews it.
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// A bearer JWT for the API.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// Single use: a refresh returns the next one. Presenting a used one ends
    /// the session.
    pub refresh_token: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
}

impl Session {
    pub(crate) fn new(
        scope: &SignInScope,
        user: UserId,
        role: Role,
        refresh_token: &RefreshToken,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            access_token: scope.access_token(user, role)?,
            token_type: "Bearer",
            expires_in: sessions::ACCESS_TTL_SECONDS,
            refresh_token: refresh_token.expose().to_owned(),
            tenant_id: scope.tenant_id(),
            user_id: user,
            role,
        })
    }
}

/// What a refresh transaction decided; a refusal is answered after its
/// revocations committed.
enum Outcome {
    Rotated(UserId, Role),
    Refused,
}

/// The user behind a token, if still active.
async fn active_user(tx: &crate::db::TenantTx<'_>, id: UserId) -> Result<Option<User>, ApiError> {
    match users::get(tx, id).await {
        Ok(user) if user.status == UserStatus::Active => Ok(Some(user)),
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// For a session started through an LDAP provider: does the directory still
/// admit the user (account there, in a mapped group)? `None`: not an LDAP
/// session (or its token is unknown: the rotation refuses it). Asked outside
/// any transaction; a directory that does not answer fails the refresh (503)
/// without ending the session.
async fn directory_admits(
    scope: &SignInScope,
    hooks: &Hooks,
    hash: &[u8],
) -> Result<Option<bool>, ApiError> {
    let found = scope
        .write(async |tx| {
            let Some(stored) = store::find(tx, hash).await? else {
                return Ok(None);
            };
            let Some(provider) = stored.provider.filter(|_| stored.active) else {
                return Ok(None);
            };
            let config = match providers::get(tx, provider, false).await {
                Ok(p) => p,
                // Deleted: its sessions were revoked with it.
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(other) => return Err(other.into()),
            };
            let secret = providers::secret_of(tx, provider).await?;
            let subject = external::subject_of(tx, provider, stored.user).await?;
            Ok(Some((config, secret, subject)))
        })
        .await?;
    let Some((provider, secret, subject)) = found else {
        return Ok(None);
    };
    let Some(config) = &provider.ldap else {
        return Ok(None);
    };
    let (Some(secret), Some(subject), true) = (secret, subject, provider.enabled) else {
        return Ok(Some(false));
    };
    match ldap::recheck(&hooks.client, config, secret.expose(), &subject).await {
        Ok(Some(groups)) => Ok(Some(
            role_for(&provider.role_mappings, provider.default_role, &groups).is_some(),
        )),
        Ok(None) => Ok(Some(false)),
        Err(failure) => {
            tracing::warn!(provider = %provider.id, error = %failure, "refresh: directory failed");
            Err(ApiError::Unavailable(
                "the tenant's directory did not answer",
            ))
        }
    }
}

/// Exchange a refresh token for a new session (the token is used up). A
/// session started through LDAP asks the directory again first: an account
/// that is gone or out of every mapped group ends the session.
#[utoipa::path(tag = "sessions", request_body = RefreshRequest,
    responses((status = 200, body = Session)))]
#[post("/auth/refresh")]
pub async fn refresh(
    scope: SignInScope,
    hooks: web::Data<Hooks>,
    body: super::JsonBody<RefreshRequest>,
) -> Result<web::Json<Session>, ApiError> {
    let presented = body.refresh_token.as_str();
    // Routing chose the tenant from this same token; a mismatch cannot be one.
    if sessions::tenant_of(presented) != Some(scope.tenant_id()) {
        return Err(REFUSED);
    }
    let hash = sessions::hash(presented);
    let admitted = directory_admits(&scope, &hooks, &hash).await?;
    let next = RefreshToken::generate(scope.tenant_id())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no randomness for a refresh token")))?;
    let outcome = scope
        .write(async |tx| {
            let Some(stored) = store::find(tx, &hash).await? else {
                return Ok(Outcome::Refused);
            };
            if !stored.active {
                // A used token presented again: someone holds a copy. End
                // every session of the family, the thief's and the user's.
                let revoked = store::revoke_family(tx, stored.family).await?;
                audit::record(
                    tx,
                    &stored.user.to_string(),
                    "refresh_reuse_detected",
                    Some(("user", stored.user.to_string())),
                    json!({ "family_id": stored.family, "sessions_ended": revoked }),
                )
                .await?;
                return Ok(Outcome::Refused);
            }
            let user = active_user(tx, stored.user).await?;
            let (false, Some(user), true) = (stored.expired, user, admitted != Some(false)) else {
                // Expired, the user disabled or deleted here, or gone from the
                // directory: deprovisioning ends the session.
                store::revoke_family(tx, stored.family).await?;
                return Ok(Outcome::Refused);
            };
            store::mark_rotated(tx, stored.id).await?;
            store::insert(tx, stored.family, stored.user, stored.provider, &next).await?;
            Ok(Outcome::Rotated(user.id, user.role))
        })
        .await?;
    match outcome {
        Outcome::Rotated(user, role) => Ok(web::Json(Session::new(&scope, user, role, &next)?)),
        Outcome::Refused => Err(REFUSED),
    }
}

/// End the session a refresh token belongs to (every token of its family).
/// Answers 204 for a token that is already used up or unknown: logging out
/// twice is not an error.
#[utoipa::path(tag = "sessions", request_body = RefreshRequest, responses((status = 204)))]
#[post("/auth/logout")]
pub async fn logout(
    scope: SignInScope,
    body: super::JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = body.refresh_token.as_str();
    if sessions::tenant_of(presented) != Some(scope.tenant_id()) {
        return Err(REFUSED);
    }
    let hash = sessions::hash(presented);
    scope
        .write(async |tx| {
            if let Some(stored) = store::find(tx, &hash).await? {
                store::revoke_family(tx, stored.family).await?;
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct MeTenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub home_region: RegionId,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub tenant: MeTenant,
}

/// The signed-in user and their tenant.
#[utoipa::path(tag = "sessions", security(("bearer" = [])), responses((status = 200, body = Me)))]
#[get("/me")]
pub async fn me(scope: Guarded<Authenticated, TenantScope>) -> Result<web::Json<Me>, ApiError> {
    let id = scope.user_id();
    let user = scope.read(async |tx| Ok(users::get(tx, id).await?)).await?;
    let tenant = scope.tenant();
    Ok(web::Json(Me {
        user,
        tenant: MeTenant {
            id: tenant.id,
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            home_region: tenant.home_region.clone(),
        },
    }))
}
