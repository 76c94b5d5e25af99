//! Secrets in settings and the one generator of random secrets.
//!
//! `Secret` and `SecretUrl` hold a value that must never reach a log: their
//! `Debug` and `Display` print a placeholder (for a URL, everything but the
//! password), so settings and errors can be logged whole. The value is read with
//! `expose`, at the one place that uses it. Serialisation writes the value itself:
//! figment layers settings by serialising the defaults.
//!
//! `alphanumeric` is the only generator of random secrets (the hop secret and the
//! database password of `meridian dev`, the embedded cluster's password): bytes
//! from the system's CSPRNG, rejection-sampled so every character is equally
//! likely (a plain `byte % 62` favours the first eight characters).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Printed instead of a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// A secret string: `Debug` and `Display` never print it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that uses it (never for a log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A connection URL whose password is secret: `Debug` and `Display` show the
/// rest (user, host, database: what an operator needs to read a log), with the
/// password of `scheme://user:password@host` and any `password=` parameter
/// replaced.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The URL with its password, for the connection (never for a log).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL with every password replaced.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        // `scheme://user:password@host…`: the userinfo ends at the authority's
        // last `@` (a password may contain `@` only percent-encoded, but be safe).
        if let Some(start) = url.find("://").map(|i| i + 3) {
            let authority_end = url[start..]
                .find(['/', '?', '#'])
                .map_or(url.len(), |i| start + i);
            if let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i)
                && let Some(colon) = url[start..at].find(':').map(|i| start + i)
            {
                url.replace_range(colon + 1..at, REDACTED);
            }
        }
        // `password=…` as a query parameter or a key/value connection string.
        let mut from = 0;
        while let Some(found) = url[from..].find("password=") {
            let value = from + found + "password=".len();
            let end = url[value..]
                .find(['&', ' '])
                .map_or(url.len(), |i| value + i);
            url.replace_range(value..end, REDACTED);
            from = value + REDACTED.len();
        }
        url
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The characters of generated secrets: safe in URLs, shells and config files.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Bytes at or above this (the largest multiple of 62 that fits a byte, 4 × 62)
/// are dropped: below it, `byte % 62` hits every character exactly four times.
const UNBIASED_BELOW: u8 = 248;

#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct NoRandomness;

/// A random secret of `len` characters of `ALPHABET`, each equally likely.
pub fn alphanumeric(len: usize) -> Result<String, NoRandomness> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut secret = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while secret.len() < len {
        rng.fill(&mut bytes).map_err(|_| NoRandomness)?;
        let chars = bytes
            .iter()
            .filter(|b| **b < UNBIASED_BELOW)
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        secret.extend(chars.take(len - secret.len()));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2-hop-secret");
        assert_eq!(format!("{secret}"), REDACTED);
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{:#?}", Some(&secret)).contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-hop-secret");
        // Serialised as the value itself (figment's layering needs it).
        assert_eq!(
            serde_json::to_value(&secret).unwrap(),
            serde_json::json!("hunter2-hop-secret")
        );
    }

    #[test]
    fn urls_print_without_their_password() {
        for (url, shown) in [
            (
                "postgres://meridian_app:s3cr%40t@127.0.0.1:5432/meridian",
                "postgres://meridian_app:[redacted]@127.0.0.1:5432/meridian",
            ),
            (
                "postgresql://u:p@ss@host/db?sslmode=require",
                "postgresql://u:[redacted]@host/db?sslmode=require",
            ),
            (
                "postgres://u@host/db?password=topsecret&sslmode=disable",
                "postgres://u@host/db?password=[redacted]&sslmode=disable",
            ),
            (
                "host=localhost user=u password=topsecret dbname=d",
                "host=localhost user=u password=[redacted] dbname=d",
            ),
            ("postgres://u@host/db", "postgres://u@host/db"),
        ] {
            let secret = SecretUrl::new(url);
            assert_eq!(secret.to_string(), shown);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
            for leaked in ["s3cr", "p@ss", "topsecret"] {
                assert!(!format!("{secret:?}").contains(leaked), "{url}");
            }
            assert_eq!(secret.expose(), url);
        }
    }

    #[test]
    fn generated_secrets_use_the_whole_alphabet_evenly() {
        let one = alphanumeric(32).unwrap();
        assert_eq!(one.len(), 32);
        assert!(one.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(one, alphanumeric(32).unwrap());
        // 124,000 characters: each expected 2,000 times (σ ≈ 45). A `% 62` over
        // all 256 byte values gives the first eight characters 5/4 of the others'
        // share (≈ 2,420 against ≈ 1,940); unbiased, every count stays within
        // ±250 (5.6 σ) of 2,000.
        let sample = alphanumeric(124_000).unwrap();
        let mut counts = [0u32; 62];
        for b in sample.bytes() {
            let at = ALPHABET.iter().position(|c| *c == b).unwrap();
            counts[at] += 1;
        }
        for (at, count) in counts.iter().enumerate() {
            assert!(
                (1_750..=2_250).contains(count),
                "`{}` drawn {count} times of 124,000",
                char::from(ALPHABET[at])
            );
        }
    }
}
