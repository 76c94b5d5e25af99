//! Ed25519 (EdDSA) key set with `kid`-based rotation: several verification keys,
//! at most one signing key. Nodes that only verify carry no private key.
//!
//! File format (JSON):
//! `{"signing_kid": "k2", "keys": [{"kid": "k1", "public_key": "<base64url>",
//!   "private_key_pkcs8": "<base64url, optional>"}, …]}`
//! Rotation: add a new key, make it `signing_kid`, keep the old public key until
//! every token it signed has expired, then remove it. A running node picks up
//! each change within `auth.keys_poll_interval_ms` (`auth::reload`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use super::claims::{Claims, Role};
use crate::config::AuthSettings;

/// The key set file as stored; `rotation` edits it, `KeySet::load` reads it.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct KeyFile {
    pub(super) signing_kid: Option<String>,
    pub(super) keys: Vec<KeyEntry>,
}

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct KeyEntry {
    pub(super) kid: String,
    pub(super) public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) private_key_pkcs8: Option<String>,
}

impl KeyEntry {
    /// A fresh Ed25519 key pair.
    pub(super) fn generate(kid: String) -> Result<Self, String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
        Ok(Self {
            kid,
            public_key: B64.encode(pair.public_key().as_ref()),
            private_key_pkcs8: Some(B64.encode(pkcs8.as_ref())),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {message}")]
    File { path: String, message: String },
    #[error("no signing key in the key set")]
    NoSigningKey,
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

pub struct KeySet {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
}

impl KeySet {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read(path).map_err(|e| KeyError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// A key set from the bytes of its file (`path` only names it in errors).
    /// Errors never quote the file: a JSON error gives its position and kind,
    /// not serde's excerpt, which could be key material.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Self, KeyError> {
        let fail = |message: String| KeyError::File {
            path: path.display().to_string(),
            message,
        };
        let file: KeyFile = serde_json::from_slice(text).map_err(|e| {
            fail(format!(
                "not a key set: {:?} error at line {}, column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let mut verifying = HashMap::new();
        let mut signing = None;
        for entry in &file.keys {
            let public = DecodingKey::from_ed_components(&entry.public_key)
                .map_err(|e| fail(format!("key `{}`: bad public_key: {e}", entry.kid)))?;
            verifying.insert(entry.kid.clone(), public);
            if file.signing_kid.as_deref() == Some(entry.kid.as_str()) {
                let der = entry
                    .private_key_pkcs8
                    .as_deref()
                    .map(|raw| B64.decode(raw))
                    .transpose()
                    .map_err(|e| {
                        fail(format!("key `{}`: bad private_key_pkcs8: {e}", entry.kid))
                    })?;
                if let Some(der) = der {
                    Ed25519KeyPair::from_pkcs8(&der).map_err(|e| {
                        fail(format!(
                            "key `{}`: not an Ed25519 PKCS#8 key: {e}",
                            entry.kid
                        ))
                    })?;
                    signing = Some((entry.kid.clone(), EncodingKey::from_ed_der(&der)));
                }
            }
        }
        if verifying.is_empty() {
            return Err(fail("no keys".into()));
        }
        Ok(Self { signing, verifying })
    }

    /// Writes a fresh key set with one signing key (mode 0600) unless `path` exists.
    pub fn ensure_file(path: &Path) -> Result<(), KeyError> {
        if path.exists() {
            return Ok(());
        }
        let fail = |message: String| KeyError::File {
            path: path.display().to_string(),
            message,
        };
        let kid = format!("k{}", unix_now());
        let file = KeyFile {
            signing_kid: Some(kid.clone()),
            keys: vec![KeyEntry::generate(kid).map_err(fail)?],
        };
        let json = serde_json::to_string_pretty(&file).map_err(|e| fail(e.to_string()))?;
        write_private(path, json.as_bytes()).map_err(|e| fail(e.to_string()))
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let (kid, key) = self.signing.as_ref().ok_or(KeyError::NoSigningKey)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }
}

/// Writes a new file readable by its owner only; fails if it exists.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

const VERIFIED_CAPACITY: u64 = 20_000;
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(300);

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a token was refused. The client only ever learns "invalid token".
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token header")]
    Header,
    #[error("token has no kid or an unknown kid")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Rejected(jsonwebtoken::errors::Error),
    #[error("claims are inconsistent with the role")]
    Claims,
    #[error("token expired")]
    Expired,
    #[error("token issued in the future")]
    IssuedInFuture,
}

impl TokenError {
    /// What the 401 may tell the client. Only an unknown `kid` is named: it means
    /// the token was signed with another key set (a CLI run with another state
    /// directory, or a key not rolled out yet), which the caller can fix, and a
    /// `kid` is no secret. Everything else stays "invalid or expired".
    pub fn client_detail(&self) -> &'static str {
        match self {
            Self::UnknownKey => {
                "invalid token: its key id (kid) is unknown to this node; \
                 was it signed with another key set (another MERIDIAN_STATE_DIR)?"
            }
            _ => "invalid or expired token",
        }
    }
}

/// Verifies signature, algorithm, `exp`, `nbf`, `iat`, `iss` and `aud` against the
/// key set; the times with the same leeway.
///
/// An Ed25519 verification costs tens of microseconds; a client sends the same
/// token many times, so verified claims are cached by the exact token text for at
/// most `VERIFIED_TTL`, and `exp` is re-checked on every hit.
///
/// The key set can be replaced while the node runs (`replace_keys`, fed by
/// `auth::reload`). Each cached verification remembers the key set generation
/// it was made under and is only trusted under the same one, so a token of a
/// retired key stops working at the swap, not when its cache entry ages out.
pub struct TokenVerifier {
    keys: RwLock<Arc<KeySet>>,
    /// Bumped after every swap of `keys`.
    generation: AtomicU64,
    verified: moka::sync::Cache<String, (u64, Claims)>,
    leeway: u64,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: u64,
}

impl TokenVerifier {
    pub fn new(keys: KeySet, settings: &AuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = settings.leeway_seconds;
        // Checked when present: a token minted for later must not work now.
        validation.validate_nbf = true;
        Self {
            keys: RwLock::new(Arc::new(keys)),
            generation: AtomicU64::new(0),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
            leeway: settings.leeway_seconds,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl_seconds,
        }
    }

    /// How long the access tokens of sessions live (`auth.access_ttl_seconds`).
    pub fn access_ttl(&self) -> u64 {
        self.access_ttl
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // Read before the keys: a swap replaces the keys first and bumps the
        // generation after, so an entry is never tagged newer than its keys.
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((tagged, claims)) = self.verified.get(token)
            && tagged == generation
        {
            if claims.exp + self.leeway > unix_now() {
                return Ok(claims);
            }
            self.verified.invalidate(token);
            return Err(TokenError::Expired);
        }
        let claims = self.verify_uncached(&self.keys(), token)?;
        self.verified
            .insert(token.to_owned(), (generation, claims.clone()));
        Ok(claims)
    }

    /// The key set in force.
    fn keys(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a whole `Arc` (the swap is one assignment).
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `keys` in force for every verification and signature from now on;
    /// verifications cached under the previous set are no longer trusted.
    pub fn replace_keys(&self, keys: KeySet) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The key ids that verify (sorted), and the one that signs, if any.
    pub fn kids(&self) -> (Vec<String>, Option<String>) {
        let keys = self.keys();
        let mut kids: Vec<String> = keys.verifying.keys().cloned().collect();
        kids.sort();
        (kids, keys.signing.as_ref().map(|(kid, _)| kid.clone()))
    }

    fn verify_uncached(&self, keys: &KeySet, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Header)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.verifying.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(TokenError::Rejected)?
            .claims;
        // jsonwebtoken does not look at `iat`. One from the future means a wrong
        // clock or a token minted ahead of time; neither may be used yet.
        if claims.iat > unix_now() + self.leeway {
            return Err(TokenError::IssuedInFuture);
        }
        // An impersonation's token carries `act` and `imp` together, for a
        // tenant, with the impersonation as its subject: half of it is refused.
        let impersonation_ok = match (&claims.act, claims.imp) {
            (None, None) => true,
            (Some(_), Some(imp)) => claims.tid.is_some() && claims.sub == imp.to_string(),
            _ => false,
        };
        // A platform role has no tenant; every tenant role has one.
        match (claims.role, claims.tid) {
            _ if !impersonation_ok => Err(TokenError::Claims),
            (role, None) if role.is_platform_role() => Ok(claims),
            (role, Some(_)) if role.is_tenant_role() => Ok(claims),
            _ => Err(TokenError::Claims),
        }
    }

    /// Signs `claims` with the signing key in force (an impersonation's token,
    /// whose `exp` is the impersonation's end).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        self.keys().sign(claims)
    }

    /// The `iss` and `aud` this node issues and accepts.
    pub fn issuer_audience(&self) -> (&str, &str) {
        (&self.issuer, &self.audience)
    }

    /// Builds and signs claims for local use (`meridian token`, tests).
    pub fn issue(
        &self,
        sub: String,
        tid: Option<uuid::Uuid>,
        role: Role,
        ttl_seconds: u64,
    ) -> Result<String, KeyError> {
        let now = unix_now();
        self.keys().sign(&Claims {
            sub,
            tid,
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_seconds,
            iat: now,
            nbf: Some(now),
            act: None,
            imp: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> (TokenVerifier, KeySet) {
        let dir = std::env::temp_dir().join(format!("meridian-nbf-{}", uuid::Uuid::new_v4()));
        let path = dir.join("keys.json");
        KeySet::ensure_file(&path).unwrap();
        let settings = AuthSettings::default_local();
        let verifier = TokenVerifier::new(KeySet::load(&path).unwrap(), &settings);
        let signer = KeySet::load(&path).unwrap();
        let _ = std::fs::remove_dir_all(dir);
        (verifier, signer)
    }

    fn claims(iat: u64, nbf: Option<u64>) -> Claims {
        let settings = AuthSettings::default_local();
        Claims {
            sub: "ops".into(),
            tid: None,
            role: Role::PlatformAdmin,
            iss: settings.issuer,
            aud: settings.audience,
            exp: unix_now() + 3600,
            iat,
            nbf,
            act: None,
            imp: None,
        }
    }

    #[test]
    fn minted_tokens_carry_nbf_and_verify() {
        let (verifier, _) = verifier();
        let token = verifier
            .issue("ops".into(), None, Role::PlatformAdmin, 600)
            .unwrap();
        let claims = verifier.verify(&token).unwrap();
        assert_eq!(claims.nbf, Some(claims.iat));
    }

    #[test]
    fn nbf_and_iat_are_checked_with_the_leeway() {
        let (verifier, signer) = verifier();
        let now = unix_now();
        let verify = |c: &Claims| verifier.verify(&signer.sign(c).unwrap());
        assert!(matches!(
            verify(&claims(now, Some(now + 600))),
            Err(TokenError::Rejected(_))
        ));
        assert!(matches!(
            verify(&claims(now + 600, None)),
            Err(TokenError::IssuedInFuture)
        ));
        assert!(verify(&claims(now - 600, Some(now - 600))).is_ok());
        assert!(
            verify(&claims(now + 10, Some(now + 10))).is_ok(),
            "within the leeway"
        );
        assert!(verify(&claims(now, None)).is_ok(), "nbf is optional");
    }
}
