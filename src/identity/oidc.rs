//! OIDC sign-in (authorization code + PKCE S256), hand-rolled on `jsonwebtoken`
//! and the SSRF-safe client rather than the `openidconnect` crate: every request
//! to a tenant-named provider must go through `outbound` (address vetting, no
//! redirects, bounded answers), and the id_token checks are few.
//!
//! - `state` is `mst_<tenant>_<43 random characters>`: it names its tenant so the
//!   callback is routed to the tenant's home region, and only its SHA-256 is
//!   stored (`oidc_sign_ins`) with the provider, nonce, PKCE verifier and
//!   redirect URI it is bound to. It is good for 10 minutes, once: a tampered
//!   state matches no row, a replayed one finds its row used.
//! - The id_token is checked in `id_token` (algorithm, JWKS key, `iss`, `aud`,
//!   `exp`, `nonce`).

use base64::Engine;
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
        "INSERT INTO oidc_sign_ins (tenant_id, id, home_region, provider_id, state_hash, nonce,
                                    code_verifier, redirect_uri, expires_at)
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
            "SELECT id, provider_id, nonce, code_verifier, redirect_uri, used_at IS NOT NULL,
                    expires_at <= now()
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
    redirect_uri: &str,
    verifier: &str,
) -> Result<String, String> {
    let url =
        outbound::url::parse(token_endpoint).map_err(|why| format!("token endpoint: {why}"))?;
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", config.client_id.as_str()),
        ("code_verifier", verifier),
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

/// The provider's side of a callback, shared by tenant and platform sign-in:
/// the provider's own refusal, then the code exchanged at the discovered token
/// endpoint (with the flow's PKCE verifier) and the id_token validated (`iss`
/// from discovery, `aud` = the client id, the flow's nonce). The claims, or why
/// not (for the `login_failed` audit event; never shown to the caller).
#[allow(clippy::too_many_arguments)]
pub async fn complete(
    client: &outbound::Client,
    config: &OidcConfig,
    client_secret: Option<&str>,
    provider_error: Option<&str>,
    code: Option<&str>,
    redirect_uri: &str,
    verifier: &str,
    nonce: &str,
) -> Result<Value, String> {
    if let Some(error) = provider_error {
        return Err(format!(
            "the provider refused: {}",
            error.chars().take(100).collect::<String>()
        ));
    }
    let code = code.ok_or_else(|| "no code".to_owned())?;
    let discovery = super::diagnose::discover(client, config).await?;
    let id_token = exchange(
        client,
        &discovery.token_endpoint,
        config,
        client_secret,
        code,
        redirect_uri,
        verifier,
    )
    .await?;
    super::id_token::KEYS
        .validate(
            client,
            &discovery.jwks_uri,
            &id_token,
            &discovery.issuer,
            &config.client_id,
            nonce,
        )
        .await
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
