//! The path routing decides on. Actix's router does not match the raw request
//! target: it matches `req.match_info().as_str()`, the path with every escape
//! decoded except `%25`, `%2F` and `%2B` (actix-router's `Url`). Deciding on
//! anything else lets `/%761/channels` reach the `/v1` handlers unrouted, so the
//! decision, the forwarded and redirected URL and the hop marker all use the
//! router's own path, and a `/v1` path that could mean something else to another
//! hop is refused.

use crate::error::{ApiError, ErrorCode};

/// Every resource served under this prefix is routed (`api::routes`).
const API_PREFIX: &str = "/v1";

/// Is `router_path` one the router dispatches into the `/v1` scope? It matches a
/// prefix at a segment boundary (actix-router `ResourceDef::static_match`).
fn is_api(router_path: &str) -> bool {
    router_path
        .strip_prefix(API_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Characters that mean the same to every URI parser and router on the way
/// (RFC 3986 `pchar` without `pct-encoded`, plus `/`). Anything else in a
/// decoded path — `%` left over from `%2F`/`%25`/`%2B`, bytes decoded into a
/// space, `?`, `#` or non-ASCII — would change meaning when re-sent.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte)
}

/// The `/v1` path routing decides on, or `None` for a path the router sends to
/// no `/v1` resource. `router_path` must be `req.match_info().as_str()`.
///
/// Escapes of plain characters (`/%761/channels`, `%6E` or `%6e`) are what the
/// router decodes too, so they are routed like the decoded path. Empty and dot
/// segments (`/v1//x`, `/v1/./x`, a trailing `/`) and escapes the router keeps
/// (`%2F` inside a segment) are refused: no client needs them and proxies or
/// peers may normalise them differently.
pub fn api_path(router_path: &str) -> Result<Option<&str>, ApiError> {
    if !is_api(router_path) {
        return Ok(None);
    }
    let refused = |why: &str| {
        Err(ApiError::bad_request(
            ErrorCode::NonCanonicalPath,
            format!("the request path {why}; send the plain path (`/v1/channels/<id>`)"),
        ))
    };
    if !router_path.bytes().all(is_plain) {
        return refused("has an escape or character that is not allowed in an API path");
    }
    let segments = router_path[API_PREFIX.len()..].split('/').skip(1);
    if segments
        .into_iter()
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return refused("has an empty, `.` or `..` segment or a trailing `/`");
    }
    Ok(Some(router_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(path: &str) -> Option<&'static str> {
        api_path(path).err().map(|e| e.code().as_str())
    }

    #[test]
    fn the_router_path_is_classified_like_the_router_matches_it() {
        assert_eq!(api_path("/v1/channels").unwrap(), Some("/v1/channels"));
        assert_eq!(api_path("/v1").unwrap(), Some("/v1"));
        for outside in [
            "/healthz",
            "/v1x/channels",
            "//v1/channels",
            "/V1/channels",
            "/",
        ] {
            assert_eq!(api_path(outside).unwrap(), None, "{outside}");
        }
        for refused in [
            "/v1/",
            "/v1/channels/",
            "/v1//channels",
            "/v1/./channels",
            "/v1/../v1/channels",
            "/v1/channels/..",
            "/v1/channels%2Fabc",
            "/v1/channels/a%25b",
            "/v1/channels/a b",
            "/v1/channels/a?b",
            "/v1/channels/\u{e9}",
        ] {
            assert_eq!(code(refused), Some("non_canonical_path"), "{refused}");
        }
    }

    /// What actix's router sees for a raw path: the same decoding as its `Url`.
    fn router_path(raw: &str) -> String {
        let uri: actix_web::http::Uri = raw.parse().unwrap();
        actix_web::dev::Path::new(actix_web::dev::Url::new(uri))
            .as_str()
            .to_owned()
    }

    #[test]
    fn escaped_paths_are_decided_on_their_decoded_form() {
        for raw in [
            "/%761/channels",
            "/%76%31/channels",
            "/v%31/channels",
            "/v1/cha%6Enels",
            "/v1/cha%6enels",
        ] {
            let decoded = router_path(raw);
            assert_eq!(api_path(&decoded).unwrap(), Some("/v1/channels"), "{raw}");
        }
        for raw in [
            "/v1/channels%2Fx",
            "/v1/%2e/channels",
            "/v1/%2E%2E/v1/channels",
            "/v1/channels%2f",
        ] {
            assert_eq!(code(&router_path(raw)), Some("non_canonical_path"), "{raw}");
        }
        assert_eq!(api_path(&router_path("/%56%31/channels")).unwrap(), None);
    }
}
