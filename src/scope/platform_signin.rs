//! `PlatformSignIn`: a token-less request of the platform's own sign-in (the
//! OIDC start and callback, refresh and logout of a platform session). It names
//! no tenant, so routing serves it where it lands; nobody is signed in yet, so
//! there is no principal for `Guarded`. It opens only platform transactions
//! (the platform accounts' tables, the platform trail), and every such request
//! counts against its client address's anonymous rate limit first.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::auth::Role;
use crate::db::{PlatformTx, TxMode};
use crate::error::ApiError;
use crate::state::AppState;

pub struct PlatformSignIn {
    state: web::Data<AppState>,
}

impl PlatformSignIn {
    pub async fn write<T>(
        &self,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.state.db.0.platform_tx(TxMode::ReadWrite, body).await
    }

    /// How long the access tokens `access_token` makes live, in seconds.
    pub fn access_ttl(&self) -> u64 {
        self.state.verifier.access_ttl()
    }

    /// An access token for platform user `user` with `role` (no tenant).
    pub fn access_token(&self, user: uuid::Uuid, role: Role) -> Result<String, ApiError> {
        self.state
            .verifier
            .issue(
                format!("{}{user}", crate::platform::SUBJECT_PREFIX),
                None,
                role,
                self.state.verifier.access_ttl(),
            )
            .map_err(|e| ApiError::internal(anyhow::anyhow!("signing an access token: {e}")))
    }
}

impl FromRequest for PlatformSignIn {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let routed = req.extensions().get::<crate::routing::Routed>().is_some();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let ip = crate::routing::hop::client_ip(req);
        // A sign-in carries no access token; one that does is not a sign-in
        // (as a tenant sign-in with a token finds no sign-in tenant).
        let token = req
            .headers()
            .contains_key(actix_web::http::header::AUTHORIZATION);
        Box::pin(async move {
            let state = state
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            if !routed {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "request was not routed"
                )));
            }
            super::signin::take_anonymous(ip, &state)?;
            if token {
                return Err(ApiError::Unauthenticated(
                    "a sign-in request carries no access token",
                ));
            }
            Ok(Self { state })
        })
    }
}
