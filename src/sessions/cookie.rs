//! The console's session delivery (issue 14 part 2): the refresh token in a
//! cookie the console's scripts cannot read, guarded against cross-site
//! requests by a CSRF token.
//!
//! - API clients keep both tokens in the JSON body (the default). A sign-in
//!   with `?session=cookie` answers the refresh token only as the cookie
//!   `__Secure-mrt` (`HttpOnly; Secure; SameSite=Strict; Path=/v1/auth`,
//!   host-only) and never in the body. `Path=/v1/auth` keeps it off every other
//!   API request; that rules out the `__Host-` prefix (it requires `Path=/`), so
//!   the name carries `__Secure-` (a browser accepts it only over https with
//!   `Secure`) and no `Domain` (it is not sent to tenant subdomains or other
//!   hosts).
//! - CSRF: a signed double submit. The body of a console session carries
//!   `csrf_token` = BASE64URL(SHA-256("meridian-csrf\0" ‖ refresh token)); a
//!   refresh or logout that uses the cookie must send it back in the
//!   `X-Meridian-CSRF` header. Another site can make a browser send the cookie
//!   (SameSite=Strict already stops that in current browsers) but cannot read
//!   the token nor set a custom header without a CORS preflight this API does
//!   not grant. The token is derived from the refresh token, so it needs no
//!   storage and changes with every rotation; a wrong or missing one is `403
//!   csrf_failed`. Knowing it gives nothing: it cannot be turned back into the
//!   refresh token.
//! - Platform sessions (`api::platform_auth`) have their own jar: `__Secure-mpr`
//!   on `Path=/v1/auth/platform`, read only by the platform's refresh and
//!   logout. The tenant cookie's path covers `/v1/auth/platform` too, but no
//!   platform route reads it, and the platform cookie is never sent to (nor
//!   read by) the tenant routes: neither session can be refreshed as the other.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration};
use base64::Engine;
use ring::digest;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::REFRESH_TTL_SECONDS;
use crate::error::ApiError;

/// The refresh token's cookie.
pub const COOKIE: &str = "__Secure-mrt";
/// The header a cookie refresh or logout carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-meridian-csrf";
/// The only path the cookie is sent to.
pub const PATH: &str = "/v1/auth";

/// A cookie a console session's refresh token lives in: its name and the only
/// path it is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jar {
    pub name: &'static str,
    pub path: &'static str,
}

/// Tenant sessions (`api::auth`).
pub const TENANT: Jar = Jar {
    name: COOKIE,
    path: PATH,
};

/// Platform sessions (`api::platform_auth`): another name and a narrower path,
/// so a platform refresh token is never sent to the tenant routes.
pub const PLATFORM: Jar = Jar {
    name: "__Secure-mpr",
    path: "/v1/auth/platform",
};

impl Jar {
    /// The cookie that holds `refresh_token`.
    pub fn set(self, refresh_token: &str) -> Cookie<'static> {
        Cookie::build(self.name, refresh_token.to_owned())
            .path(self.path)
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Strict)
            .max_age(Duration::seconds(REFRESH_TTL_SECONDS))
            .finish()
    }

    /// The cookie that removes it (same name, path and attributes, expired).
    pub fn clear(self) -> Cookie<'static> {
        let mut cookie = self.set("");
        cookie.make_removal();
        cookie
    }

    /// The refresh token in `req`'s cookie of this jar, if any.
    pub fn presented(self, req: &HttpRequest) -> Option<String> {
        req.cookie(self.name)
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// Where a session's refresh token goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// In the JSON body (API clients).
    #[default]
    Body,
    /// In the `__Secure-mrt` cookie, with a CSRF token in the body (the console).
    Cookie,
}

/// `?session=cookie` on a sign-in: the console's variant.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// `cookie`: the refresh token is set as an `HttpOnly` cookie and left out
    /// of the body, which carries a `csrf_token` instead.
    #[serde(default)]
    pub session: Delivery,
}

/// The CSRF token that goes with `refresh_token`.
pub fn csrf_token(refresh_token: &str) -> String {
    let mut input = b"meridian-csrf\0".to_vec();
    input.extend_from_slice(refresh_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest::digest(&digest::SHA256, &input).as_ref())
}

/// The tenant cookie that holds `refresh_token`.
pub fn set(refresh_token: &str) -> Cookie<'static> {
    TENANT.set(refresh_token)
}

/// The tenant cookie's removal.
pub fn clear() -> Cookie<'static> {
    TENANT.clear()
}

/// The refresh token in `req`'s tenant cookie, if any.
pub fn presented(req: &HttpRequest) -> Option<String> {
    TENANT.presented(req)
}

/// The CSRF check of a request that uses the cookie `refresh_token`.
pub fn check_csrf(req: &HttpRequest, refresh_token: &str) -> Result<(), ApiError> {
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let expected = csrf_token(refresh_token);
    // Every byte is compared: the time says nothing about how much matched.
    let expected = expected.as_bytes();
    let same = sent.len() == expected.len()
        && sent
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::CsrfFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_secure_strict_and_scoped_to_auth() {
        let text = set("mrt_x").to_string();
        for part in [
            "__Secure-mrt=mrt_x",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/v1/auth",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"), "{text}");
        let cleared = clear().to_string();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a").len(), 43);
    }

    #[test]
    fn the_platform_cookie_has_its_own_name_and_a_narrower_path() {
        let text = PLATFORM.set("mpr_x").to_string();
        for part in [
            "__Secure-mpr=mpr_x",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/v1/auth/platform",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"), "{text}");
        assert_ne!(PLATFORM.name, TENANT.name);
    }
}
