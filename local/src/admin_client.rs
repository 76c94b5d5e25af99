//! The operator commands of the CLI (`meridian region …`, `meridian tenant …`):
//! platform-admin calls to any node's API, with a short-lived token signed by the
//! local key set. Answers come back as JSON values for `output` to print; an
//! error answer becomes an `ApiFailure` carrying the API's `code` and `detail`.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use meridian::auth::{Role, TokenVerifier};

/// An error answer of the API, shown as one line: status, `code`, `detail`.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl std::error::Error for ApiFailure {}

impl ApiFailure {
    fn from_answer(status: u16, body: &Value) -> Self {
        let text = |key: &str| body[key].as_str().map(str::to_owned);
        Self {
            status,
            code: text("code").unwrap_or_else(|| "http_error".into()),
            detail: text("detail").unwrap_or_else(|| format!("the node answered {status}")),
        }
    }
}

pub struct AdminClient {
    node: String,
    token: String,
    client: awc::Client,
}

impl AdminClient {
    /// A client calling `node` as a platform admin.
    pub fn new(node: &str, verifier: &TokenVerifier) -> anyhow::Result<Self> {
        let token = verifier.issue("meridian-cli".into(), None, Role::PlatformAdmin, 600)?;
        Ok(Self::with_token(node, token))
    }

    /// A client calling `node` with `token` (e.g. a tenant user's, to check it).
    pub fn with_token(node: &str, token: String) -> Self {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .disable_redirects()
            .finish();
        Self {
            node: node.trim_end_matches('/').to_owned(),
            token,
            client,
        }
    }

    /// Status and JSON body (null when there is none). A 307 (a tenant served by
    /// another region) is followed with the token: awc, like `curl -L`, would drop
    /// `Authorization` on another host.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut url = format!("{}{path}", self.node);
        for _ in 0..MAX_REDIRECTS {
            let request = self
                .client
                .request(method.parse()?, &url)
                .insert_header(("Authorization", format!("Bearer {}", self.token)));
            let sent = match &body {
                Some(body) => request.send_json(body).await,
                None => request.send().await,
            };
            let mut response = sent.map_err(|e| {
                anyhow::anyhow!("cannot reach {url}: {e} (is `meridian dev` running? see --node)")
            })?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            if let (307, Some(location)) = (status, location) {
                url = location;
                continue;
            }
            let value = response.json().limit(16 << 20).await.unwrap_or(Value::Null);
            return Ok((status, value));
        }
        bail!("{path}: more than {MAX_REDIRECTS} redirects")
    }

    /// The answer's body; an error status is an `ApiFailure`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method, path, body).await?;
        if status >= 400 {
            return Err(ApiFailure::from_answer(status, &value).into());
        }
        Ok(value)
    }

    /// `GET /v1/regions`, with each region's `state`: `serving`, `drained` or
    /// `unreachable`. A drained node fails its own `/readyz` on purpose, so its
    /// peers' probe says "not reachable"; that is not an outage, and `reachable` is
    /// left out for drained regions rather than reported as `false`.
    pub async fn region_status(&self) -> anyhow::Result<Value> {
        let mut status = self.request("GET", "/v1/regions", None).await?;
        if let Some(regions) = status["regions"].as_array_mut() {
            for region in regions {
                let drained = region["drained"].as_bool().unwrap_or(false);
                let reachable = region["reachable"].as_bool().unwrap_or(false);
                let state = match (drained, reachable) {
                    (true, _) => "drained",
                    (false, true) => "serving",
                    (false, false) => "unreachable",
                };
                if let Some(object) = region.as_object_mut() {
                    if drained {
                        object.remove("reachable");
                    }
                    object.insert("state".into(), json!(state));
                }
            }
        }
        Ok(status)
    }

    /// The drain's impact (who fails over where, who becomes unavailable).
    pub async fn drain_impact(&self, region: &str) -> anyhow::Result<Value> {
        self.request(
            "POST",
            &format!("/v1/regions/{region}/drain"),
            Some(json!({ "dry_run": true })),
        )
        .await
    }

    /// Drains (the impact is checked by the caller first).
    pub async fn drain(&self, region: &str, force: bool) -> anyhow::Result<Value> {
        self.request(
            "POST",
            &format!("/v1/regions/{region}/drain"),
            Some(json!({ "force": force })),
        )
        .await
    }

    pub async fn undrain(&self, region: &str) -> anyhow::Result<Value> {
        self.request(
            "POST",
            &format!("/v1/regions/{region}/undrain"),
            Some(json!({})),
        )
        .await
    }

    /// Starts relocations for every tenant of `region`; `refused` lists those
    /// that cannot move.
    pub async fn evacuate(&self, region: &str) -> anyhow::Result<Value> {
        self.request(
            "POST",
            &format!("/v1/regions/{region}/evacuate"),
            Some(json!({})),
        )
        .await
    }

    /// The tenant directory, or the tenant with exactly `slug` (0 or 1 items).
    pub async fn tenants(&self, slug: Option<&str>) -> anyhow::Result<Value> {
        let path = match slug {
            Some(slug) => format!("/v1/tenants?slug={slug}&limit=200"),
            None => "/v1/tenants?limit=200".to_owned(),
        };
        self.request("GET", &path, None).await
    }

    /// Starts a relocation; with `wait`, polls (calling `progress` on each poll)
    /// until it is done, and fails when it failed.
    pub async fn relocate(
        &self,
        tenant: &str,
        to: &str,
        wait: bool,
        mut progress: impl FnMut(&Value),
    ) -> anyhow::Result<Value> {
        let path = format!("/v1/tenants/{tenant}/relocation");
        let started = self
            .request("POST", &path, Some(json!({ "to_region": to })))
            .await?;
        if !wait {
            return Ok(started);
        }
        loop {
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            let job = self.request("GET", &path, None).await?;
            progress(&job);
            match job["status"].as_str() {
                Some("done") => return Ok(job),
                Some("failed") => bail!(
                    "relocation failed: {}",
                    job["error"].as_str().unwrap_or("no reason given")
                ),
                _ => {}
            }
        }
    }

    /// Whether the token's user exists in its tenant with exactly the token's
    /// role, asked of the node with the token itself (`GET /v1/users/{user}`).
    /// `Err` says what is wrong in words a person can act on.
    pub async fn check_user(
        node: &str,
        verifier: &TokenVerifier,
        tenant: uuid::Uuid,
        user: uuid::Uuid,
        role: Role,
    ) -> anyhow::Result<()> {
        let path = format!("/v1/users/{user}");
        // The requested role first; the others only to say which one the user has.
        let others = TENANT_ROLES
            .iter()
            .filter_map(|r| Role::parse(r))
            .filter(|r| *r != role);
        for probe in std::iter::once(role).chain(others) {
            let token = verifier.issue(user.to_string(), Some(tenant), probe, 60)?;
            let client = Self::with_token(node, token);
            let (status, body) = client
                .call("GET", &path, None)
                .await
                .context("checking the user against the node (--no-check skips this)")?;
            if status == 200 {
                if probe == role {
                    return Ok(());
                }
                bail!(
                    "user {user} has the role {} in tenant {tenant}, not {}; no token signed",
                    role_name(probe),
                    role_name(role)
                );
            }
            if status != 401 {
                let failure = ApiFailure::from_answer(status, &body);
                bail!("checking user {user} of tenant {tenant}: {failure}; no token signed");
            }
            if body["detail"].as_str() == Some("the token's tenant does not exist") {
                bail!("tenant {tenant} does not exist (at {node}); no token signed");
            }
        }
        bail!(
            "user {user} does not exist in tenant {tenant} or is not active (at {node}); no token \
                signed"
        )
    }
}

/// Redirects `call` follows; one is the most routing ever answers.
const MAX_REDIRECTS: usize = 3;

/// The tenant roles `meridian token --role` takes.
pub const TENANT_ROLES: [&str; 5] = ["owner", "admin", "member", "viewer", "compliance"];

fn role_name(role: Role) -> &'static str {
    TENANT_ROLES
        .into_iter()
        .find(|name| Role::parse(name) == Some(role))
        .unwrap_or("platform_admin")
}
