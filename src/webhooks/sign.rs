//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a secret is
//! `whsec_` + base64 of 32 random bytes; a payload is signed as
//! `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")),
//! and while a rotated-out secret is still valid both signatures are sent,
//! space-separated, so receivers can switch keys without losing a delivery.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "whsec_";

/// A new secret, or `None` if the system's random source failed.
pub fn new_secret() -> Option<String> {
    let mut key = [0u8; 32];
    SystemRandom::new().fill(&mut key).ok()?;
    Some(format!("{PREFIX}{}", STANDARD.encode(key)))
}

fn key_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()
}

/// `v1,<signature>` of one secret, or `None` for a malformed secret.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes(secret)?);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{id}.{timestamp}.").as_bytes());
    ctx.update(body);
    Some(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// The `webhook-signature` header: one signature per valid secret, newest first.
pub fn header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let signatures: Option<Vec<String>> = secrets
        .iter()
        .map(|s| signature(s, id, timestamp, body))
        .collect();
    Some(signatures?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and of its reference
    /// libraries' tests): this key, id, timestamp and body sign to this value.
    #[test]
    fn matches_the_specifications_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets_are_random_and_rotation_sends_both() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && key_bytes(&a).unwrap().len() == 32);
        let both = header(&[&a, &b], "m", 1, b"{}").unwrap();
        let parts: Vec<_> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&a, "m", 1, b"{}").unwrap());
        assert_eq!(parts[1], signature(&b, "m", 1, b"{}").unwrap());
        assert!(signature("nope", "m", 1, b"{}").is_none());
    }
}
