//! Extractors: `Authorization: Bearer <jwt>` → verified claims → a scope.
//! Headers, query strings and bodies never contribute to the tenant.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::{AppState, Caller, PlatformScope, TenantScope};
use crate::auth::{Claims, Role};
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated("missing bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("malformed authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::Unauthenticated(
            "expected `Authorization: Bearer <token>`",
        )),
    }
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))
}

fn verify(req: &HttpRequest, state: &AppState) -> Result<Claims, ApiError> {
    let token = bearer(req)?;
    state.verifier.verify(token).map_err(|reason| {
        tracing::debug!(%reason, "token refused");
        ApiError::Unauthenticated("invalid or expired token")
    })
}

async fn resolve(state: web::Data<AppState>, claims: Claims) -> Result<Caller, ApiError> {
    if claims.role == Role::PlatformAdmin {
        return Ok(Caller::Platform(PlatformScope {
            db: state.db.clone(),
            admin: claims.sub,
        }));
    }
    // `verify` guarantees a tenant role carries `tid`.
    let tid = claims
        .tid
        .ok_or(ApiError::Unauthenticated("invalid or expired token"))?;
    let user = Uuid::parse_str(&claims.sub)
        .map_err(|_| ApiError::Unauthenticated("invalid or expired token"))?;
    let tenant =
        state
            .directory
            .get(TenantId::from_uuid(tid))
            .await?
            .ok_or(ApiError::Unauthenticated(
                "the token's tenant does not exist",
            ))?;
    if !tenant.is_active() {
        return Err(ApiError::TenantSuspended);
    }
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant.id));
    Ok(Caller::Tenant(TenantScope {
        db: state.db.clone(),
        tenant,
        user: UserId::from_uuid(user),
        role: claims.role,
    }))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified =
            state(req).and_then(|state| verify(req, &state).map(|claims| (state, claims)));
        Box::pin(async move {
            let (state, claims) = verified?;
            resolve(state, claims).await
        })
    }
}

impl FromRequest for TenantScope {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            match caller.await? {
                Caller::Tenant(scope) => Ok(scope),
                Caller::Platform(_) => Err(ApiError::Forbidden(
                    "this route is for tenant users, not platform admins",
                )),
            }
        })
    }
}

impl FromRequest for PlatformScope {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            match caller.await? {
                Caller::Platform(scope) => Ok(scope),
                Caller::Tenant(_) => Err(ApiError::Forbidden("this route is for platform admins")),
            }
        })
    }
}
