//! `POST /v1/identity-providers/{id}/test`: is the provider reachable and does
//! its configuration work? Each check says what it tried and what it saw, and
//! the run stops at the first failure (a later check would only repeat it).
//!
//! - OIDC: the discovery document (`{issuer}/.well-known/openid-configuration`)
//!   is fetched, its `issuer` must equal the configured one (an id_token's `iss`
//!   is checked against it) and it must name the endpoints the code flow uses;
//!   then the JWKS it names must hold at least one key.
//! - LDAP: connect, bind as the service account, read the base DN.
//!
//! Everything goes through the SSRF-safe client (`outbound`): a tenant cannot
//! make a node probe its internal network through this route.

use ldap3::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use super::{LdapConfig, OidcConfig, ldap};
use crate::outbound;
use crate::secret::Secret;

#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnosis {
    /// Every check passed.
    pub ok: bool,
    /// The checks run, in order; the first failure ends the run.
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

struct Run(Vec<Check>);

impl Run {
    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        });
    }

    fn fail(mut self, name: &str, detail: impl Into<String>) -> Diagnosis {
        self.0.push(Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        });
        Diagnosis {
            ok: false,
            checks: self.0,
        }
    }

    fn done(self) -> Diagnosis {
        Diagnosis {
            ok: true,
            checks: self.0,
        }
    }
}

/// The OIDC discovery document's fields the sign-in uses.
#[derive(Debug, serde::Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// GETs `url` as JSON through the SSRF-safe client, or says why not.
pub async fn get_json(client: &outbound::Client, url: &str) -> Result<serde_json::Value, String> {
    let parsed = outbound::url::parse(url).map_err(|why| format!("{url}: {why}"))?;
    let response = client
        .get(&parsed)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status != 200 {
        return Err(format!("{url} answered HTTP {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// The provider's discovery document, checked against the configured issuer.
pub async fn discover(client: &outbound::Client, config: &OidcConfig) -> Result<Discovery, String> {
    let url = format!("{}/.well-known/openid-configuration", config.issuer);
    let doc: Discovery = serde_json::from_value(get_json(client, &url).await?)
        .map_err(|e| format!("{url}: not an OpenID Provider configuration: {e}"))?;
    if doc.issuer.trim_end_matches('/') != config.issuer {
        return Err(format!(
            "the document's issuer `{}` is not the configured `{}`; id_tokens would be refused",
            doc.issuer, config.issuer
        ));
    }
    Ok(doc)
}

pub async fn oidc(client: &outbound::Client, config: &OidcConfig) -> Diagnosis {
    let mut run = Run(Vec::new());
    let doc = match discover(client, config).await {
        Ok(doc) => doc,
        Err(why) => return run.fail("discovery", why),
    };
    run.pass(
        "discovery",
        format!(
            "issuer matches; authorization endpoint {}, token endpoint {}",
            doc.authorization_endpoint, doc.token_endpoint
        ),
    );
    let keys = match get_json(client, &doc.jwks_uri).await {
        Ok(jwks) => jwks["keys"].as_array().map_or(0, Vec::len),
        Err(why) => return run.fail("jwks", why),
    };
    if keys == 0 {
        return run.fail("jwks", format!("{} lists no keys", doc.jwks_uri));
    }
    run.pass("jwks", format!("{} lists {keys} key(s)", doc.jwks_uri));
    run.done()
}

pub async fn ldap(
    client: &outbound::Client,
    config: &LdapConfig,
    secret: Option<&Secret>,
) -> Diagnosis {
    let mut run = Run(Vec::new());
    let mut conn = match ldap::connect(client, config).await {
        Ok(conn) => conn,
        Err(why) => return run.fail("connect", why.to_string()),
    };
    run.pass("connect", format!("connected to {}", config.url));
    let Some(password) = secret else {
        return run.fail(
            "service_bind",
            "no secret (the service account's password) is set",
        );
    };
    match ldap::bind(&mut conn, config, &config.bind_dn, password.expose()).await {
        Ok(true) => run.pass("service_bind", format!("bound as {}", config.bind_dn)),
        Ok(false) => {
            return run.fail(
                "service_bind",
                format!(
                    "the directory refused the credentials of {}",
                    config.bind_dn
                ),
            );
        }
        Err(why) => return run.fail("service_bind", why.to_string()),
    }
    let base = ldap::search(
        &mut conn,
        config,
        &config.base_dn,
        Scope::Base,
        "(objectClass=*)",
        vec!["1.1"],
    )
    .await;
    let _ = conn.unbind().await;
    match base {
        Ok(entries) if !entries.is_empty() => {
            run.pass("base_dn", format!("{} exists", config.base_dn));
            run.done()
        }
        Ok(_) => run.fail("base_dn", format!("{} was not found", config.base_dn)),
        Err(why) => run.fail("base_dn", why.to_string()),
    }
}
