//! OIDC sign-in (authorization code + PKCE S256), hand-rolled on `jsonwebtoken`
//! and the SSRF-safe client rather than the `openidconnect` crate: every request
//! to a tenant-named provider must go through `outbound` (address vetting, no
//! redirects, bounded answers), and the id_token checks are the few below.
//!
//! - `state` is `mst_<tenant>_<43 random characters>`: it names its tenant so the
//!   callback is routed to the tenant's home region, and only its SHA-256 is
//!   stored (`oidc_sign_ins`) with the provider, nonce, PKCE verifier and
//!   redirect URI it is bound to. It is good for 10 minutes, once: a tampered
//!   state matches no row, a replayed one finds its row used.
//! - The id_token: an asymmetric algorithm only (never `none` or HMAC), a key
//!   of the provider's JWKS (cached per JWKS URI in moka for an hour, fetched
//!   again when the token names a `kid` the cache lacks, or, for a token without
//!   `kid`, when no cached key verifies it), `iss` = the discovery document's
//!   issuer, `aud` containing the client id (a list is fine), `exp` (30 s
//!   leeway), and `nonce` = the flow's.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::digest;
use serde_json::Value;
use uuid::Uuid;

use super::OidcConfig;
use crate::db::TenantTx;
use crate::error::ApiError;
use crate::ids::{ProviderId, TenantId};
use crate::outbound;
use crate::store::StoreError;

const STATE_PREFIX: &str = "mst_";
const RANDOM_CHARS: usize = 43;
/// How long a started sign-in may take to come back.
pub const FLOW_TTL_SECONDS: i64 = 600;
const JWKS_TTL: Duration = Duration::from_secs(3600);
const LEEWAY_SECONDS: u64 = 30;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random(len: usize) -> Result<String, ApiError> {
    crate::secret::alphanumeric(len)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("no randomness for an OIDC sign-in")))
}

/// A new sign-in's secrets.
pub struct Started {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl Started {
    pub fn new(tenant: TenantId) -> Result<Self, ApiError> {
        Ok(Self {
            state: format!(
                "{STATE_PREFIX}{}_{}",
                tenant.as_uuid().simple(),
                random(RANDOM_CHARS)?
            ),
            nonce: random(32)?,
            // RFC 7636: 43–128 characters of [A-Za-z0-9-._~].
            verifier: random(64)?,
        })
    }

    /// The PKCE S256 challenge: BASE64URL(SHA256(verifier)).
    pub fn challenge(&self) -> String {
        b64(digest::digest(&digest::SHA256, self.verifier.as_bytes()).as_ref())
    }
}

pub fn state_hash(state: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, state.as_bytes())
        .as_ref()
        .to_vec()
}

/// The tenant a `state` names, if it has the shape of one.
pub fn tenant_of_state(state: &str) -> Option<TenantId> {
    let (tenant, random) = state.strip_prefix(STATE_PREFIX)?.split_once('_')?;
    if tenant.len() != 32 || random.len() != RANDOM_CHARS {
        return None;
    }
    Uuid::try_parse(tenant).ok().map(TenantId::from_uuid)
}

/// RFC 3986 unreserved characters pass, everything else is %-encoded.
fn pct(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Where the browser is sent to sign in.
pub fn authorize_url(
    endpoint: &str,
    config: &OidcConfig,
    redirect_uri: &str,
    started: &Started,
) -> String {
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let query = form(&[
        ("response_type", "code"),
        ("client_id", &config.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid email profile"),
        ("state", &started.state),
        ("nonce", &started.nonce),
        ("code_challenge", &started.challenge()),
        ("code_challenge_method", "S256"),
    ]);
    format!("{endpoint}{separator}{query}")
}

/// A sign-in in flight, as the callback finds it.
pub struct Flow {
    pub provider: ProviderId,
    pub nonce: String,
    pub verifier: String,
    pub redirect_uri: String,
}

pub async fn store_flow(
    tx: &TenantTx<'_>,
    provider: ProviderId,
    started: &Started,
    redirect_uri: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO oidc_sign_ins (tenant_id, id, home_region, provider_id, state_hash, nonce, code_verifier, redirect_uri, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + $9::bigint * interval '1 second')",
        &[
            tx.tenant_id().as_uuid(),
            &Uuid::now_v7(),
            &tx.home_region().as_str(),
            provider.as_uuid(),
            &state_hash(&started.state),
            &started.nonce,
            &started.verifier,
            &redirect_uri,
            &FLOW_TTL_SECONDS,
        ],
    )
    .await?;
    Ok(())
}

/// Uses up the flow of `state`: `Err(reason)` when there is none, it expired,
/// or it was used already (a replay).
pub async fn take_flow(
    tx: &TenantTx<'_>,
    state: &str,
) -> Result<Result<Flow, &'static str>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, provider_id, nonce, code_verifier, redirect_uri, used_at IS NOT NULL, expires_at <= now()
             FROM oidc_sign_ins WHERE tenant_id = $1 AND state_hash = $2 FOR UPDATE",
            &[tx.tenant_id().as_uuid(), &state_hash(state)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err("unknown_state"));
    };
    if row.get::<_, bool>(5) {
        return Ok(Err("state_replayed"));
    }
    if row.get::<_, bool>(6) {
        return Ok(Err("state_expired"));
    }
    let id: Uuid = row.get(0);
    tx.execute(
        "UPDATE oidc_sign_ins SET used_at = now() WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), &id],
    )
    .await?;
    Ok(Ok(Flow {
        provider: ProviderId::from_uuid(row.get(1)),
        nonce: row.get(2),
        verifier: row.get(3),
        redirect_uri: row.get(4),
    }))
}

/// Exchanges `code` at the token endpoint; the id_token, or why not.
pub async fn exchange(
    client: &outbound::Client,
    token_endpoint: &str,
    config: &OidcConfig,
    client_secret: Option<&str>,
    code: &str,
    flow: &Flow,
) -> Result<String, String> {
    let url =
        outbound::url::parse(token_endpoint).map_err(|why| format!("token endpoint: {why}"))?;
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", flow.redirect_uri.as_str()),
        ("client_id", config.client_id.as_str()),
        ("code_verifier", flow.verifier.as_str()),
    ];
    if let Some(secret) = client_secret {
        pairs.push(("client_secret", secret));
    }
    let response = client
        .post_form(
            &url,
            &[("Accept", "application/json".into())],
            form(&pairs).as_bytes(),
        )
        .await
        .map_err(|e| format!("token endpoint: {e}"))?;
    if response.status != 200 {
        return Err(format!("token endpoint answered HTTP {}", response.status));
    }
    let body: Value =
        serde_json::from_slice(&response.body).map_err(|e| format!("token answer: {e}"))?;
    body["id_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the token answer has no id_token".into())
}

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

/// The values of `claim` (a list of strings, or one string).
pub fn groups(claims: &Value, claim: &str) -> Vec<String> {
    match &claims[claim] {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::String(one) => vec![one.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_name_their_tenant_and_challenges_follow_rfc_7636() {
        let tenant = TenantId::new_random();
        let started = Started::new(tenant).unwrap();
        assert_eq!(tenant_of_state(&started.state), Some(tenant));
        assert_eq!(tenant_of_state("mst_x_y"), None);
        // RFC 7636 appendix B.
        let known = Started {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            known.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(pct("a b/c"), "a%20b%2Fc");
    }
}
