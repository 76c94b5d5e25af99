//! The hop marker: a forwarded request carries `X-Meridian-Hop`, an HMAC-SHA256
//! (shared node secret) over the origin region, the time, the method and the path.
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

#[derive(Debug, PartialEq, Eq)]
pub enum HopCheck {
    /// A genuine marker from a peer node in `from`.
    Valid {
        from: String,
    },
    Invalid,
}

impl HopSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    fn payload(from: &str, at: u64, method: &str, path_and_query: &str) -> String {
        format!("{from}\n{at}\n{method}\n{path_and_query}")
    }

    pub fn sign(&self, from: &str, method: &str, path_and_query: &str) -> String {
        let at = unix_now();
        let tag = hmac::sign(
            &self.key,
            Self::payload(from, at, method, path_and_query).as_bytes(),
        );
        format!("{from}.{at}.{}", B64.encode(tag.as_ref()))
    }

    pub fn check(&self, marker: &str, method: &str, path_and_query: &str) -> HopCheck {
        let mut parts = marker.splitn(3, '.');
        let (Some(from), Some(at), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            return HopCheck::Invalid;
        };
        let (Ok(at), Ok(tag)) = (at.parse::<u64>(), B64.decode(tag)) else {
            return HopCheck::Invalid;
        };
        if unix_now().abs_diff(at) > MAX_AGE_SECS {
            return HopCheck::Invalid;
        }
        match hmac::verify(
            &self.key,
            Self::payload(from, at, method, path_and_query).as_bytes(),
            &tag,
        ) {
            Ok(()) => HopCheck::Valid {
                from: from.to_owned(),
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
        let marker = signer.sign("us-east1", "GET", "/v1/channels?limit=5");
        assert_eq!(
            signer.check(&marker, "GET", "/v1/channels?limit=5"),
            HopCheck::Valid {
                from: "us-east1".into()
            }
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
