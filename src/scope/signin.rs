//! `SignInScope`: a request that carries no access token but names its tenant
//! (a refresh token's prefix, a sign-in's slug). Nobody is signed in yet,
//! so there is no principal for `Guarded` to judge: this is the one other
//! extractor of a scope, and it opens only tenant transactions without a user.
//!
//! The routing middleware resolves the tenant from exactly the bytes the handler
//! will act on (the buffered body, put back as the payload) and routes the
//! request to the tenant's home region under its residency like any tenant
//! request; it leaves the tenant in the request's extensions (`SignInTenant`),
//! where this extractor takes it. The handler checks that the token it parses
//! names that same tenant. Each such request counts against its client
//! address's anonymous rate limit (the TCP peer, or the client a peer node
//! forwarded: `hop::client_ip`; clients' forwarding headers are not trusted),
//! so guessing tokens is throttled before any database work.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::auth::Role;
use crate::db::{TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{TenantId, UserId};
use crate::limits::RequestClass;
use crate::state::AppState;
use crate::tenancy::TenantRecord;

/// The tenant routing resolved for a token-less sign-in request.
#[derive(Clone)]
pub struct SignInTenant(pub Arc<TenantRecord>);

pub struct SignInScope {
    state: web::Data<AppState>,
    tenant: Arc<TenantRecord>,
    /// The client's address (`routing::hop::client_ip`).
    ip: Option<std::net::IpAddr>,
}

impl SignInScope {
    pub fn tenant(&self) -> &TenantRecord {
        &self.tenant
    }

    /// One password attempt for `username`: refused (429) past the per-account
    /// (tenant + username) or per-address budget (`limits::rate`), before the
    /// directory is asked.
    pub fn password_attempt(&self, username: &str) -> Result<(), ApiError> {
        self.state
            .limits
            .rate
            .check_password(self.tenant.id, username, self.ip)
            .map_err(|denied| {
                self.state.metrics.observe_anonymous_denial();
                ApiError::RateLimited(denied)
            })
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    /// A read-write transaction in the tenant's scope (RLS on), with no user.
    pub async fn write<T>(
        &self,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let class = RequestClass::Write;
        let timeout = class.statement_timeout(&self.state.limits.cost);
        self.state
            .db
            .0
            .tenant_tx_timed(
                self.tenant.id,
                &self.tenant.home_region,
                None,
                Some(timeout),
                TxMode::ReadWrite,
                body,
            )
            .await
    }

    /// How long the access tokens `access_token` makes live, in seconds.
    pub fn access_ttl(&self) -> u64 {
        self.state.verifier.access_ttl()
    }

    /// An access token for `user` with `role`, in today's format.
    pub fn access_token(&self, user: UserId, role: Role) -> Result<String, ApiError> {
        self.state
            .verifier
            .issue(
                user.to_string(),
                Some(*self.tenant.id.as_uuid()),
                role,
                self.state.verifier.access_ttl(),
            )
            .map_err(|e| ApiError::internal(anyhow::anyhow!("signing an access token: {e}")))
    }
}

/// Marks a sign-in request whose client already spent its anonymous limit's
/// token on this node (routing, before the slug's database lookup).
#[derive(Clone, Copy)]
pub struct AnonymousCounted;

/// One token of the anonymous limit (`limits.unauthenticated_*`) of the client
/// at `ip` (`routing::hop::client_ip`), else `429 rate_limited`.
pub fn take_anonymous(ip: Option<std::net::IpAddr>, state: &AppState) -> Result<(), ApiError> {
    let Some(ip) = ip else {
        return Ok(());
    };
    state.limits.rate.check_anonymous(ip).map_err(|denied| {
        state.metrics.observe_anonymous_denial();
        ApiError::RateLimited(denied)
    })
}

impl FromRequest for SignInScope {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let routed = req.extensions().get::<crate::routing::Routed>().is_some();
        let tenant = req.extensions().get::<SignInTenant>().cloned();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let ip = crate::routing::hop::client_ip(req);
        let counted = req.extensions().get::<AnonymousCounted>().is_some();
        Box::pin(async move {
            let state = state
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            if !routed {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "request was not routed"
                )));
            }
            if !counted {
                take_anonymous(ip, &state)?;
            }
            let SignInTenant(tenant) = tenant.ok_or(ApiError::Unauthenticated(
                "invalid or expired refresh token",
            ))?;
            if let Some(refused) = tenant.refusal() {
                return Err(refused);
            }
            Ok(Self { state, tenant, ip })
        })
    }
}
