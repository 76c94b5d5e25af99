//! The hop marker: a forwarded request carries `X-Meridian-Hop`, an HMAC-SHA256
//! (shared node secret) over the origin region, the time, the request id and the
//! request itself: method, path and query, a SHA-256 of the caller's
//! `Authorization` header and a SHA-256 of the body and the client's host. The
//! request id travels with the hop so that one request has one id on every node
//! it touches. The client's address travels beside it in `X-Meridian-Client`,
//! signed together with the marker (`client_header`), so that the next node
//! keeps its per-address limits on the client, not on the forwarding node (whose
//! address every client it forwards would otherwise share); a header of its own
//! rather than a line of the marker, so markers of nodes of the version before
//! verify unchanged in both directions during a rolling upgrade.
//! A node serves a request with a valid marker itself — it never forwards twice —
//! and refuses one with a marker it cannot verify: clients cannot forge it to
//! skip routing. A captured marker serves only the request it was made for (any
//! other token, body, query, path or method breaks the HMAC), only within
//! `MAX_AGE_SECS`, and only once per node (its tag is remembered while it could
//! still verify).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::{digest, hmac};

use crate::auth::keys::unix_now;

pub const HEADER: &str = "x-meridian-hop";
/// `<address>;<HMAC over the marker and the address>`: the client the forwarder
/// served (its TCP peer); set by the forwarder only, never passed through.
pub const CLIENT_HEADER: &str = "x-meridian-client";
/// The forwarder signs just before sending, so only clock skew between nodes
/// and the network need room; a short window bounds what a captured marker is worth.
const MAX_AGE_SECS: u64 = 10;
/// Tags seen on this node, kept for as long as their marker could verify (it is
/// accepted from `at - MAX_AGE_SECS` to `at + MAX_AGE_SECS`).
const SEEN_TTL: Duration = Duration::from_secs(2 * MAX_AGE_SECS + 1);
/// Bounds the replay memory; well above the forwarded requests a node receives in
/// `SEEN_TTL`.
const SEEN_CAPACITY: u64 = 500_000;

#[derive(Clone)]
pub struct HopSigner {
    key: hmac::Key,
    seen: moka::sync::Cache<[u8; 32], ()>,
}

/// What a marker is bound to: everything of the request a handler acts on.
pub struct HopRequest<'a> {
    pub method: &'a str,
    /// The routed path (`routing::path`) and the query exactly as received.
    pub path_and_query: &'a str,
    /// The `Authorization` header values, in order, each followed by `\n`
    /// (header values cannot contain one); empty without the header.
    pub authorization: &'a [u8],
    pub body: &'a [u8],
    /// The tenant host the client sent the request to, normalised
    /// (`routing::host`), carried in `X-Forwarded-Host`; empty for any other
    /// host. Signed, so the next node checks the tenant-subdomain binding on
    /// the client's host.
    pub host: &'a str,
    /// The `CLIENT_HEADER` received with the marker (empty: none, as from a
    /// forwarder of the version before); not part of the marker's payload.
    pub client: &'a str,
}

impl HopRequest<'_> {
    fn payload(&self, from: &str, at: u64, request_id: &str) -> String {
        let sha = |bytes: &[u8]| B64.encode(digest::digest(&digest::SHA256, bytes));
        format!(
            "{from}\n{at}\n{request_id}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.path_and_query,
            sha(self.authorization),
            sha(self.body),
            self.host
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HopCheck {
    /// A genuine marker from a peer node in `from`, for its request `request_id`.
    Valid {
        from: String,
        request_id: String,
        /// The client the forwarder served, when it said (`CLIENT_HEADER`).
        client: Option<std::net::IpAddr>,
    },
    Invalid,
}

impl HopSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            seen: moka::sync::Cache::builder()
                .max_capacity(SEEN_CAPACITY)
                .time_to_live(SEEN_TTL)
                .build(),
        }
    }

    /// Request ids are ours (32 lowercase hex digits); nothing else is carried.
    fn is_request_id(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    pub fn sign(&self, from: &str, request_id: &str, request: &HopRequest<'_>) -> String {
        let at = unix_now();
        let tag = hmac::sign(&self.key, request.payload(from, at, request_id).as_bytes());
        format!("{from}.{at}.{request_id}.{}", B64.encode(tag.as_ref()))
    }

    /// The `CLIENT_HEADER` that goes with `marker`: the client's address, bound
    /// to this very marker (and so to its request) by the nodes' key.
    pub fn client_header(&self, marker: &str, client: &str) -> String {
        let tag = hmac::sign(&self.key, Self::client_payload(marker, client).as_bytes());
        format!("{client};{}", B64.encode(tag.as_ref()))
    }

    fn client_payload(marker: &str, client: &str) -> String {
        format!("client\n{marker}\n{client}")
    }

    /// The address a `CLIENT_HEADER` carries, if it was made for `marker`.
    fn check_client(&self, marker: &str, header: &str) -> Option<std::net::IpAddr> {
        let (client, tag) = header.split_once(';')?;
        let tag = B64.decode(tag).ok()?;
        hmac::verify(
            &self.key,
            Self::client_payload(marker, client).as_bytes(),
            &tag,
        )
        .ok()?;
        client.parse().ok()
    }

    /// Verifies `marker` for `request`, and the client's address sent with it;
    /// a valid marker is spent (a second check of it on this node fails).
    pub fn check(&self, marker: &str, request: &HopRequest<'_>) -> HopCheck {
        let mut parts = marker.splitn(4, '.');
        let (Some(from), Some(at), Some(request_id), Some(tag)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return HopCheck::Invalid;
        };
        let (Ok(at), Ok(tag)) = (at.parse::<u64>(), B64.decode(tag)) else {
            return HopCheck::Invalid;
        };
        if unix_now().abs_diff(at) > MAX_AGE_SECS || !Self::is_request_id(request_id) {
            return HopCheck::Invalid;
        }
        let payload = request.payload(from, at, request_id);
        if hmac::verify(&self.key, payload.as_bytes(), &tag).is_err() {
            return HopCheck::Invalid;
        }
        // A client's address not made for this marker: the hop is refused.
        let client = match request.client {
            "" => None,
            header => match self.check_client(marker, header) {
                Some(client) => Some(client),
                None => return HopCheck::Invalid,
            },
        };
        // Only a verified tag is remembered, so garbage cannot fill the cache.
        let Ok(tag) = <[u8; 32]>::try_from(tag.as_slice()) else {
            return HopCheck::Invalid;
        };
        if !self.seen.entry(tag).or_insert(()).is_fresh() {
            return HopCheck::Invalid;
        }
        HopCheck::Valid {
            from: from.to_owned(),
            request_id: request_id.to_owned(),
            client,
        }
    }
}

/// The address a request's per-address limits are kept on: the client's as a
/// peer node signed it for a forwarded request, else the TCP peer's
/// (forwarding headers of clients are not trusted).
pub fn client_ip(req: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
    use actix_web::HttpMessage;
    if let Some(HopCheck::Valid {
        client: Some(client),
        ..
    }) = req.extensions().get::<HopCheck>()
    {
        return Some(*client);
    }
    req.peer_addr().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn request<'a>(
        method: &'a str,
        path: &'a str,
        auth: &'a [u8],
        body: &'a [u8],
    ) -> HopRequest<'a> {
        HopRequest {
            method,
            path_and_query: path,
            authorization: auth,
            body,
            host: "",
            client: "",
        }
    }

    #[test]
    fn markers_verify_only_with_the_secret_and_for_the_same_request() {
        let signer = HopSigner::new("a shared secret of enough length");
        let (auth, body) = (b"Bearer alice\n".as_slice(), br#"{"name":"x"}"#.as_slice());
        let original = request("POST", "/v1/channels?limit=5", auth, body);
        let marker = signer.sign("us-east1", ID, &original);
        // Anything else of the request changed: refused, and the marker is not spent.
        let others = [
            request("GET", "/v1/channels?limit=5", auth, body),
            request("POST", "/v1/users?limit=5", auth, body),
            request("POST", "/v1/channels?limit=6", auth, body),
            request("POST", "/v1/channels", auth, body),
            request("POST", "/v1/channels?limit=5", b"Bearer mallory\n", body),
            request("POST", "/v1/channels?limit=5", b"", body),
            request("POST", "/v1/channels?limit=5", auth, br#"{"name":"y"}"#),
            request("POST", "/v1/channels?limit=5", auth, b""),
        ];
        for other in &others {
            assert_eq!(signer.check(&marker, other), HopCheck::Invalid);
        }
        // The client's host is signed: another tenant's subdomain breaks it.
        let elsewhere = HopRequest {
            host: "acme.api.meridian.test",
            ..request("POST", "/v1/channels?limit=5", auth, body)
        };
        assert_eq!(signer.check(&marker, &elsewhere), HopCheck::Invalid);
        // The request id is signed: it cannot be swapped.
        let swapped = marker.replace(ID, "ffffffffffffffffffffffffffffffff");
        assert_eq!(signer.check(&swapped, &original), HopCheck::Invalid);
        // Only our id format is carried, even when correctly signed.
        let odd = signer.sign("us-east1", "not-an-id", &original);
        assert_eq!(signer.check(&odd, &original), HopCheck::Invalid);
        let other = HopSigner::new("another secret entirely, also long");
        assert_eq!(other.check(&marker, &original), HopCheck::Invalid);
        for forged in ["", "us-east1", "us-east1.1.abc", "us-east1.notatime.abc"] {
            assert_eq!(
                signer.check(forged, &original),
                HopCheck::Invalid,
                "{forged}"
            );
        }
        assert_eq!(
            signer.check(&marker, &original),
            HopCheck::Valid {
                from: "us-east1".into(),
                request_id: ID.into(),
                client: None,
            }
        );
    }

    #[test]
    fn the_clients_address_is_signed_with_its_marker() {
        let signer = HopSigner::new("a shared secret of enough length");
        let plain = request("POST", "/v1/auth/acme/ldap", b"", b"{}");
        let marker = signer.sign("us-east1", ID, &plain);
        let header = signer.client_header(&marker, "192.0.2.7");
        let with = |client| HopRequest {
            client,
            ..request("POST", "/v1/auth/acme/ldap", b"", b"{}")
        };
        // Another address under that tag, another marker's header, or garbage:
        // the hop is refused.
        let other_marker = signer.sign("us-east1", ID, &request("GET", "/v1/me", b"", b""));
        let forged = [
            header.replace("192.0.2.7", "192.0.2.8"),
            signer.client_header(&other_marker, "192.0.2.7"),
            "192.0.2.7".to_owned(),
            "192.0.2.7;AAAA".to_owned(),
        ];
        for other in &forged {
            assert_eq!(
                signer.check(&marker, &with(other)),
                HopCheck::Invalid,
                "{other}"
            );
        }
        assert_eq!(
            signer.check(&marker, &with(&header)),
            HopCheck::Valid {
                from: "us-east1".into(),
                request_id: ID.into(),
                client: Some("192.0.2.7".parse().unwrap()),
            }
        );
        // Without the header (a forwarder of the version before): valid, no client.
        let again = signer.sign("us-east1", "ffffffffffffffffffffffffffffffff", &plain);
        assert_eq!(
            signer.check(&again, &plain),
            HopCheck::Valid {
                from: "us-east1".into(),
                request_id: "ffffffffffffffffffffffffffffffff".into(),
                client: None,
            }
        );
    }

    #[test]
    fn a_marker_is_accepted_once_per_node() {
        let secret = "a shared secret of enough length";
        let signer = HopSigner::new(secret);
        let get = request("GET", "/v1/channels", b"Bearer alice\n", b"");
        let marker = signer.sign("us-east1", ID, &get);
        assert!(matches!(
            signer.check(&marker, &get),
            HopCheck::Valid { .. }
        ));
        assert_eq!(signer.check(&marker, &get), HopCheck::Invalid);
        // Another node has its own memory; a new marker for the same request is fresh.
        assert!(matches!(
            HopSigner::new(secret).check(&marker, &get),
            HopCheck::Valid { .. }
        ));
        let again = signer.sign("us-east1", "fedcba9876543210fedcba9876543210", &get);
        assert!(matches!(signer.check(&again, &get), HopCheck::Valid { .. }));
    }

    #[test]
    fn stale_markers_are_refused() {
        let signer = HopSigner::new("a shared secret of enough length");
        let get = request("GET", "/v1/channels", b"", b"");
        let at = unix_now() - MAX_AGE_SECS - 1;
        let tag = hmac::sign(&signer.key, get.payload("us-east1", at, ID).as_bytes());
        let stale = format!("us-east1.{at}.{ID}.{}", B64.encode(tag.as_ref()));
        assert_eq!(signer.check(&stale, &get), HopCheck::Invalid);
    }
}
