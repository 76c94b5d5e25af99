//! The OIDC id_token checks: an asymmetric algorithm only (never `none` or
//! HMAC), a key of the provider's JWKS (cached per JWKS URI in moka for an hour,
//! fetched again when the token names a `kid` the cache lacks, or, for a token
//! without `kid`, when no cached key verifies it), `iss` = the discovery
//! document's issuer, `aud` containing the client id (a list is fine), `exp`
//! (30 s leeway), and `nonce` = the flow's.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::outbound;

const JWKS_TTL: Duration = Duration::from_secs(3600);
const LEEWAY_SECONDS: u64 = 30;

/// The providers' key sets, cached per JWKS URI.
#[derive(Clone)]
pub struct KeyCache {
    sets: moka::future::Cache<String, Arc<JwkSet>>,
}

/// The node's key cache: one per process (key sets are public, so nodes of a
/// process may share them).
pub static KEYS: std::sync::LazyLock<KeyCache> = std::sync::LazyLock::new(KeyCache::default);

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            sets: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(JWKS_TTL)
                .build(),
        }
    }
}

const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl KeyCache {
    async fn fetch(&self, client: &outbound::Client, uri: &str) -> Result<Arc<JwkSet>, String> {
        let set: JwkSet = serde_json::from_value(super::diagnose::get_json(client, uri).await?)
            .map_err(|e| format!("{uri}: not a JWKS: {e}"))?;
        let set = Arc::new(set);
        self.sets.insert(uri.to_owned(), set.clone()).await;
        Ok(set)
    }

    /// The id_token's claims once every check passed, or why it failed.
    pub async fn validate(
        &self,
        client: &outbound::Client,
        jwks_uri: &str,
        id_token: &str,
        issuer: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Value, String> {
        let header =
            jsonwebtoken::decode_header(id_token).map_err(|e| format!("id_token header: {e}"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(format!(
                "id_token algorithm {:?} is not accepted",
                header.alg
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        let cached = self.sets.get(jwks_uri).await;
        let (set, fresh) = match cached {
            Some(set) => (set, false),
            None => (self.fetch(client, jwks_uri).await?, true),
        };
        let claims = match verify(&set, &header, id_token, &validation) {
            Ok(claims) => claims,
            // A key the cache may not have yet: the provider rotated. Fetch once.
            Err(Failure::NoKey | Failure::Signature) if !fresh => {
                let set = self.fetch(client, jwks_uri).await?;
                verify(&set, &header, id_token, &validation).map_err(|f| f.to_string())?
            }
            Err(failure) => return Err(failure.to_string()),
        };
        if claims["nonce"].as_str() != Some(nonce) {
            return Err("id_token nonce does not match".into());
        }
        Ok(claims)
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no key of the provider's JWKS fits the id_token")]
    NoKey,
    #[error("the id_token's signature does not verify")]
    Signature,
    #[error("id_token refused: {0}")]
    Claims(String),
}

fn verify(
    set: &JwkSet,
    header: &jsonwebtoken::Header,
    token: &str,
    validation: &Validation,
) -> Result<Value, Failure> {
    let candidates: Vec<_> = set
        .keys
        .iter()
        .filter(|k| match &header.kid {
            Some(kid) => k.common.key_id.as_deref() == Some(kid),
            None => true,
        })
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .collect();
    if candidates.is_empty() {
        return Err(Failure::NoKey);
    }
    let mut last = Failure::NoKey;
    for key in candidates {
        match jsonwebtoken::decode::<Value>(token, &key, validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => {
                last = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature
                    | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                    | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => Failure::Signature,
                    other => return Err(Failure::Claims(format!("{other:?}"))),
                }
            }
        }
    }
    Err(last)
}
