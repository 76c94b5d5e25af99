//! Sessions (`crate::sessions`): `POST /v1/auth/refresh` rotates a refresh token
//! into a new access token and refresh token, `POST /v1/auth/logout` ends the
//! token's family, `GET /v1/me` says who an access token is. Refresh and logout
//! carry no access token: routing took their tenant from the refresh token
//! (`scope::signin`), and every refusal says only "invalid or expired refresh
//! token", whatever the reason.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::identity::store as providers;
use crate::identity::{admit, external, ldap, role_for};
use crate::ids::{ImpersonationId, RegionId, TenantId, UserId};
use crate::impersonation;
use crate::scope::{Authenticated, Guarded, SignInScope, TenantScope};
use crate::sessions::cookie::{self, Delivery};
use crate::sessions::{self, RefreshToken, store};
use crate::store::StoreError;
use crate::store::users::{self, User, UserStatus};

const REFUSED: ApiError = ApiError::Unauthenticated("invalid or expired refresh token");

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// `mrt_…`, from a sign-in or the previous refresh. The console leaves it
    /// out (`{}`): its token is the `__Secure-mrt` cookie, and the request
    /// must carry the session's CSRF token in `X-Meridian-CSRF`.
    #[serde(default)]
    refresh_token: Option<String>,
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
    /// the session. Absent for a console session (`session=cookie`), whose
    /// refresh token is only in the `__Secure-mrt` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Console sessions only: send it back in `X-Meridian-CSRF` with a refresh
    /// or logout that uses the cookie. It changes with every refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
}

impl Session {
    /// The answer that starts or renews a session, its refresh token delivered
    /// as `delivery` says (in the body, or only in the cookie).
    pub(crate) fn respond(
        scope: &SignInScope,
        user: UserId,
        role: Role,
        refresh_token: &RefreshToken,
        delivery: Delivery,
    ) -> Result<HttpResponse, ApiError> {
        let token = refresh_token.expose();
        let by_cookie = delivery == Delivery::Cookie;
        let session = Self {
            access_token: scope.access_token(user, role)?,
            token_type: "Bearer",
            expires_in: scope.access_ttl(),
            refresh_token: (!by_cookie).then(|| token.to_owned()),
            csrf_token: by_cookie.then(|| cookie::csrf_token(token)),
            tenant_id: scope.tenant_id(),
            user_id: user,
            role,
        };
        let mut response = HttpResponse::Ok();
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if by_cookie {
            response.cookie(cookie::set(token));
        }
        Ok(response.json(session))
    }
}

/// The refresh token a refresh or logout presents, and how: the body's (an API
/// client), else the cookie's, which needs the CSRF token. Routing chose the
/// tenant by the same rule (`routing::middleware::signin_tenant`).
fn presented(req: &HttpRequest, body: &RefreshRequest) -> Result<(String, Delivery), ApiError> {
    if let Some(token) = &body.refresh_token {
        return Ok((token.clone(), Delivery::Body));
    }
    let token = cookie::presented(req).ok_or(REFUSED)?;
    cookie::check_csrf(req, &token)?;
    Ok((token, Delivery::Cookie))
}

/// A refusal; a console's dead cookie is removed with it.
fn refused(delivery: Delivery) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&REFUSED);
    if delivery == Delivery::Cookie {
        let _ = response.add_cookie(&cookie::clear());
    }
    response
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

/// What the directory says of an LDAP session's user at a refresh.
enum Directory {
    /// Not an LDAP session (or its token is unknown: the rotation refuses it).
    NotAsked,
    /// Gone, out of every mapped group, or the provider disabled.
    Refuses,
    /// Admitted with this role (the provider's mapping of the user's groups now).
    Admits(Role),
}

/// For a session started through an LDAP provider: does the directory still
/// admit the user (account there, in a mapped group), and with which role?
/// Asked outside any transaction; a directory that does not answer fails the
/// refresh (503) without ending the session.
async fn directory_admits(
    scope: &SignInScope,
    hooks: &Hooks,
    hash: &[u8],
) -> Result<Directory, ApiError> {
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
            let secret = providers::secret_of(tx, &hooks.keyring, provider).await?;
            let subject = external::subject_of(tx, provider, stored.user).await?;
            Ok(Some((config, secret, subject)))
        })
        .await?;
    let Some((provider, secret, subject)) = found else {
        return Ok(Directory::NotAsked);
    };
    let Some(config) = &provider.ldap else {
        return Ok(Directory::NotAsked);
    };
    let (Some(secret), Some(subject), true) = (secret, subject, provider.enabled) else {
        return Ok(Directory::Refuses);
    };
    match ldap::recheck(&hooks.client, config, secret.expose(), &subject).await {
        Ok(Some(groups)) => Ok(
            match role_for(&provider.role_mappings, provider.default_role, &groups) {
                Some(role) => Directory::Admits(role),
                None => Directory::Refuses,
            },
        ),
        Ok(None) => Ok(Directory::Refuses),
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
/// that is gone or out of every mapped group ends the session, and a changed
/// group membership gives the user its newly mapped role (never demoting the
/// tenant's last owner).
#[utoipa::path(tag = "sessions", request_body = RefreshRequest,
    responses((status = 200, body = Session)))]
#[post("/auth/refresh")]
pub async fn refresh(
    req: HttpRequest,
    scope: SignInScope,
    hooks: web::Data<Hooks>,
    body: super::JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let (presented, delivery) = presented(&req, &body)?;
    // Routing chose the tenant from this same token; a mismatch cannot be one.
    if sessions::tenant_of(&presented) != Some(scope.tenant_id()) {
        return Ok(refused(delivery));
    }
    let hash = sessions::hash(&presented);
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
            let refused = matches!(admitted, Directory::Refuses);
            let (false, Some(user), false) = (stored.expired, user, refused) else {
                // Expired, the user disabled or deleted here, or gone from the
                // directory: deprovisioning ends the session.
                store::revoke_family(tx, stored.family).await?;
                return Ok(Outcome::Refused);
            };
            // The directory's role now, as a sign-in would give it (never
            // demoting the last owner), in the transaction that issues the token.
            let role = match admitted {
                Directory::Admits(role) => admit::apply_role(tx, &user, role).await?,
                Directory::NotAsked | Directory::Refuses => user.role,
            };
            store::mark_rotated(tx, stored.id).await?;
            store::insert(tx, stored.family, stored.user, stored.provider, &next).await?;
            Ok(Outcome::Rotated(user.id, role))
        })
        .await?;
    match outcome {
        Outcome::Rotated(user, role) => Session::respond(&scope, user, role, &next, delivery),
        Outcome::Refused => Ok(refused(delivery)),
    }
}

/// End the session a refresh token belongs to (every token of its family).
/// Answers 204 for a token that is already used up or unknown: logging out
/// twice is not an error. A console logout (by the cookie, with its CSRF
/// token) also removes the cookie.
#[utoipa::path(tag = "sessions", request_body = RefreshRequest, responses((status = 204)))]
#[post("/auth/logout")]
pub async fn logout(
    req: HttpRequest,
    scope: SignInScope,
    body: super::JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let (presented, delivery) = presented(&req, &body)?;
    if sessions::tenant_of(&presented) != Some(scope.tenant_id()) {
        return Ok(refused(delivery));
    }
    let hash = sessions::hash(&presented);
    scope
        .write(async |tx| {
            if let Some(stored) = store::find(tx, &hash).await? {
                store::revoke_family(tx, stored.family).await?;
            }
            Ok(())
        })
        .await?;
    let mut response = HttpResponse::NoContent();
    if delivery == Delivery::Cookie {
        response.cookie(cookie::clear());
    }
    Ok(response.finish())
}

#[derive(Serialize, ToSchema)]
pub struct MeTenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub home_region: RegionId,
}

/// The impersonation a `/v1/me` request acts under (its token's `act`).
#[derive(Serialize, ToSchema)]
pub struct MeImpersonation {
    pub id: ImpersonationId,
    /// The platform admin acting.
    pub actor: String,
    pub mode: impersonation::Mode,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Who the token is: a user of the tenant, or an impersonation of it (then
/// `user` is absent: an impersonation is nobody in the tenant's user list).
#[derive(Serialize, ToSchema)]
pub struct Me {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    pub tenant: MeTenant,
    /// The role the token acts with.
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonation: Option<MeImpersonation>,
}

/// The signed-in user (or the impersonation) and the tenant.
#[utoipa::path(tag = "sessions", security(("bearer" = [])), responses((status = 200, body = Me)))]
#[get("/me")]
pub async fn me(scope: Guarded<Authenticated, TenantScope>) -> Result<web::Json<Me>, ApiError> {
    let (user, impersonation) = match scope.impersonation() {
        // The scope's prologue has already confirmed the row is live; it is
        // read again here for its mode and end.
        Some(imp) => {
            let id = imp.id;
            let row = scope
                .read(async |tx| Ok(impersonation::store::get(tx, id).await?))
                .await?
                .ok_or(ApiError::NotFound {
                    kind: "impersonation",
                    id: None,
                })?;
            let me = MeImpersonation {
                id: row.id,
                actor: row.actor,
                mode: row.mode,
                expires_at: row.expires_at,
            };
            (None, Some(me))
        }
        None => {
            let id = scope.user_id();
            let user = scope.read(async |tx| Ok(users::get(tx, id).await?)).await?;
            (Some(user), None)
        }
    };
    let tenant = scope.tenant();
    Ok(web::Json(Me {
        user,
        tenant: MeTenant {
            id: tenant.id,
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            home_region: tenant.home_region.clone(),
        },
        role: scope.role(),
        impersonation,
    }))
}
