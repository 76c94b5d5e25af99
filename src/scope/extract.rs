//! Authentication: `Authorization: Bearer <jwt>` → verified claims → a `Caller`
//! (which `guard::Guarded`, the only extractor, narrows to a scope and checks
//! against its policy). Headers, query strings and bodies never contribute to
//! the tenant.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use std::sync::Arc;

use uuid::Uuid;

use std::cell::OnceCell;

use super::confirm::UserCheck;
use super::{Caller, Impersonating, PlatformScope, TenantScope};
use crate::auth::Claims;
use crate::db::TokenCheck;
use crate::error::ApiError;
use crate::ids::{ImpersonationId, TenantId, UserId};
use crate::state::AppState;
use crate::tenancy::TenantRecord;

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
        ApiError::Unauthenticated(reason.client_detail())
    })
}

/// A request without a valid token counts against its client IP's strict limit
/// (the TCP peer, or the client a peer node forwarded: `hop::client_ip`;
/// forwarding headers of clients are not trusted), so floods of bad tokens
/// get 429s.
fn verify_or_limit(req: &HttpRequest, state: &AppState) -> Result<Claims, ApiError> {
    verify(req, state).map_err(|refused| {
        let ip = crate::routing::hop::client_ip(req);
        match ip.map(|ip| state.limits.rate.check_anonymous(ip)) {
            Some(Err(denied)) => {
                state.metrics.observe_anonymous_denial();
                ApiError::RateLimited(denied)
            }
            _ => refused,
        }
    })
}

/// A tenant token already verified and looked up by the routing middleware, kept in
/// the request's extensions so the extractor does not do the same work again.
#[derive(Clone)]
pub(super) struct Resolved {
    pub(super) claims: Claims,
    pub(super) tenant: Arc<TenantRecord>,
}

/// Whether `req` carries a valid platform token (admin or operator).
pub fn carries_platform_token(req: &HttpRequest, state: &AppState) -> bool {
    verify(req, state).is_ok_and(|c| c.role.is_platform_role())
}

/// The tenant the routing middleware resolved for this request, if any (for
/// metrics, after the response).
pub fn resolved_tenant(req: &HttpRequest) -> Option<TenantId> {
    req.extensions().get::<Resolved>().map(|r| r.tenant.id)
}

/// The tenant a request's token names, if it carries a valid tenant token. For
/// routing, which must know the tenant before any handler runs; a directory
/// error is returned, not taken for "no tenant", so the request is not served unrouted.
pub async fn tenant_of(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Arc<TenantRecord>>, ApiError> {
    let Some((claims, tid)) = verify(req, state).ok().and_then(|c| {
        c.tid
            .filter(|_| c.role.is_tenant_role())
            .map(|tid| (c, tid))
    }) else {
        return Ok(None);
    };
    let Some(tenant) = state.directory.get(TenantId::from_uuid(tid)).await? else {
        return Ok(None);
    };
    req.extensions_mut().insert(Resolved {
        claims,
        tenant: tenant.clone(),
    });
    Ok(Some(tenant))
}

async fn resolve(
    state: web::Data<AppState>,
    claims: Claims,
    looked_up: Option<Arc<TenantRecord>>,
    request: (String, String, String),
) -> Result<Caller, ApiError> {
    if claims.role.is_platform_role() {
        // A token from a platform sign-in stops at once when its user is
        // disabled or given another role (`crate::platform`); one minted with
        // the signing key (`meridian token`) names no platform user.
        if let Some(id) = crate::platform::user_of_subject(&claims.sub) {
            // Boxed (as the directory lookup below): a transaction's future is
            // large, and this one's future is copied whole each time it is moved
            // (≈ 15k instructions of `memcpy` per request before, callgrind, README
            // "Benchmarks").
            let found = Box::pin(
                state
                    .db
                    .0
                    .platform_tx(crate::db::TxMode::ReadOnly, async |tx| {
                        Ok(crate::platform::store::get(tx, id).await?)
                    }),
            )
            .await?;
            let current = found.is_some_and(|u| {
                u.role == claims.role && u.status == crate::platform::PlatformUserStatus::Active
            });
            if !current {
                return Err(ApiError::Unauthenticated("invalid or expired token"));
            }
        }
        return Ok(Caller::Platform(PlatformScope {
            state,
            admin: claims.sub,
            role: claims.role,
        }));
    }
    let refused = || ApiError::Unauthenticated("invalid or expired token");
    // `verify` guarantees a tenant role carries `tid`.
    let tid = claims.tid.ok_or_else(refused)?;
    let user = UserId::from_uuid(Uuid::parse_str(&claims.sub).map_err(|_| refused())?);
    let tenant = match looked_up {
        Some(tenant) => Some(tenant),
        None => Box::pin(state.directory.get(TenantId::from_uuid(tid))).await?,
    };
    let tenant = tenant.ok_or(ApiError::Unauthenticated(
        "the token's tenant does not exist",
    ))?;
    if let Some(refused) = tenant.refusal() {
        return Err(refused);
    }
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant.id));
    // The rate is checked before any database work, so a tenant over it costs
    // the others nothing but this check.
    state.limits.check_rate(&tenant, user)?;
    // An impersonation's token (`act`): its subject is the impersonation, whose
    // row every transaction re-reads instead of a user's.
    let (method, route, path) = request;
    let access = crate::access_log::Access {
        tenant: tenant.id,
        user,
        method,
        route,
        path,
    };
    let (impersonation, access) = match claims.impersonation() {
        Some((id, actor)) => (
            Some(Impersonating {
                id: ImpersonationId::from_uuid(id),
                actor: actor.to_owned(),
                method: access.method,
                route: access.route,
            }),
            None,
        ),
        None => (None, Some(Box::new(access))),
    };
    // The concurrency slot is taken later, by the scope's first transaction.
    let token_check = match &impersonation {
        Some(imp) => TokenCheck::Impersonation(imp.id),
        None => TokenCheck::User(user, claims.role.as_str()),
    };
    let check = UserCheck::new(tenant.id, tenant.home_region.clone(), token_check);
    Ok(Caller::Tenant(TenantScope {
        state,
        tenant,
        user,
        role: claims.role,
        slot: OnceCell::new(),
        expensive: OnceCell::new(),
        metered: std::cell::Cell::new(false),
        check,
        impersonation,
        access: std::cell::Cell::new(access),
    }))
}

/// The verified caller of a request: what every `Guarded` scope starts from.
pub(super) fn caller(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Caller, ApiError>> {
    let resolved = req.extensions().get::<Resolved>().cloned();
    // Fail closed: no scope for a request routing did not decide on; routing
    // resolves every tenant token whose tenant exists.
    let routed = req.extensions().get::<crate::routing::Routed>().is_some();
    let verified = state(req).and_then(|state| match resolved {
        _ if !routed => Err(ApiError::internal(anyhow::anyhow!(
            "request was not routed"
        ))),
        Some(Resolved { claims, tenant }) => Ok((state, claims, Some(tenant))),
        None => verify_or_limit(req, &state)
            .and_then(|claims| match claims.role.is_tenant_role() {
                true => Err(ApiError::Unauthenticated(
                    "the token's tenant does not exist",
                )),
                false => Ok(claims),
            })
            .map(|claims| (state, claims, None)),
    });
    let request = (
        req.method().to_string(),
        req.match_pattern().unwrap_or_else(|| req.path().to_owned()),
        req.path().to_owned(),
    );
    let req = req.clone();
    Box::pin(async move {
        let (state, claims, tenant) = verified?;
        let caller = resolve(state, claims, tenant, request).await?;
        if let Caller::Tenant(scope) = &caller {
            // `confirm_user` checks this user after the handler unless a
            // transaction already did.
            req.extensions_mut().insert(scope.check.clone());
        }
        Ok(caller)
    })
}
