//! The hop marker: a forwarded request carries `X-Meridian-Hop`, an HMAC-SHA256
//! (shared node secret) over the origin region, the time, the request id, the
//! method and the path. The request id travels with the hop so that one request
//! has one id on every node it touches.
//! A node serves a request with a valid marker itself — it never forwards twice —
//! and refuses one with a marker it cannot verify: clients cannot forge it to
//! skip routing, and a stale or replayed marker expires after `MAX_AGE_SECS`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;

use crate::auth::keys::unix_now;

pub const HEADER: &str = "x-meridian-hop";
const MAX_AGE_SECS: u64 = 30;

#[derive(Clone)]
pub struct HopSigner {
    key: hmac::Key,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HopCheck {
    /// A genuine marker from a peer node in `from`, for its request `request_id`.
    Valid {
        from: String,
        request_id: String,
    },
    Invalid,
}

impl HopSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    fn payload(from: &str, at: u64, request_id: &str, method: &str, path: &str) -> String {
        format!("{from}\n{at}\n{request_id}\n{method}\n{path}")
    }

    /// Request ids are ours (32 lowercase hex digits); nothing else is carried.
    fn is_request_id(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    pub fn sign(&self, from: &str, request_id: &str, method: &str, path_and_query: &str) -> String {
        let at = unix_now();
        let payload = Self::payload(from, at, request_id, method, path_and_query);
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{from}.{at}.{request_id}.{}", B64.encode(tag.as_ref()))
    }

    pub fn check(&self, marker: &str, method: &str, path_and_query: &str) -> HopCheck {
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
        let payload = Self::payload(from, at, request_id, method, path_and_query);
        match hmac::verify(&self.key, payload.as_bytes(), &tag) {
            Ok(()) => HopCheck::Valid {
                from: from.to_owned(),
                request_id: request_id.to_owned(),
            },
            Err(_) => HopCheck::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_verify_only_with_the_secret_and_for_the_same_request() {
        let signer = HopSigner::new("a shared secret of enough length");
        let id = "0123456789abcdef0123456789abcdef";
        let marker = signer.sign("us-east1", id, "GET", "/v1/channels?limit=5");
        assert_eq!(
            signer.check(&marker, "GET", "/v1/channels?limit=5"),
            HopCheck::Valid {
                from: "us-east1".into(),
                request_id: id.into(),
            }
        );
        // The request id is signed: it cannot be swapped.
        let swapped = marker.replace(id, "ffffffffffffffffffffffffffffffff");
        assert_eq!(
            signer.check(&swapped, "GET", "/v1/channels?limit=5"),
            HopCheck::Invalid
        );
        // Only our id format is carried, even when correctly signed.
        let odd = signer.sign("us-east1", "not-an-id", "GET", "/v1/channels?limit=5");
        assert_eq!(
            signer.check(&odd, "GET", "/v1/channels?limit=5"),
            HopCheck::Invalid
        );
        assert_eq!(
            signer.check(&marker, "POST", "/v1/channels?limit=5"),
            HopCheck::Invalid
        );
        assert_eq!(signer.check(&marker, "GET", "/v1/users"), HopCheck::Invalid);
        let other = HopSigner::new("another secret entirely, also long");
        assert_eq!(
            other.check(&marker, "GET", "/v1/channels?limit=5"),
            HopCheck::Invalid
        );
        for forged in ["", "us-east1", "us-east1.1.abc", "us-east1.notatime.abc"] {
            assert_eq!(
                signer.check(forged, "GET", "/v1/channels?limit=5"),
                HopCheck::Invalid,
                "{forged}"
            );
        }
    }
}
