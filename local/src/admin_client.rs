//! The operator commands of the CLI (`meridian region …`, `meridian tenant …`):
//! platform-admin calls to any node's API, with a short-lived token signed by the
//! local key set, printing what the operator needs to decide.

use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use meridian::auth::{Role, TokenVerifier};

pub struct AdminClient {
    node: String,
    token: String,
    client: awc::Client,
}

impl AdminClient {
    pub fn new(node: &str, verifier: &TokenVerifier) -> anyhow::Result<Self> {
        let token = verifier.issue("meridian-cli".into(), None, Role::PlatformAdmin, 600)?;
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        Ok(Self {
            node: node.trim_end_matches('/').to_owned(),
            token,
            client,
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.node);
        let request = self
            .client
            .request(method.parse()?, &url)
            .insert_header(("Authorization", format!("Bearer {}", self.token)));
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        let value = response.json().limit(16 << 20).await.unwrap_or(Value::Null);
        Ok((response.status().as_u16(), value))
    }

    /// Prints the answer; fails on an error status.
    async fn show(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, value) = self.call(method, path, body).await?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        if status >= 400 {
            bail!("the node answered {status}");
        }
        Ok(value)
    }

    pub async fn region_status(&self) -> anyhow::Result<()> {
        self.show("GET", "/v1/regions", None).await.map(drop)
    }

    /// Prints who fails over where and who becomes unavailable; drains unless that
    /// would strand tenants and `force` is off.
    pub async fn drain(&self, region: &str, force: bool) -> anyhow::Result<()> {
        let path = format!("/v1/regions/{region}/drain");
        let (status, impact) = self
            .call("POST", &path, Some(json!({ "dry_run": true })))
            .await?;
        if status != 200 {
            bail!("{status}: {impact}");
        }
        let rows = |key: &str| impact[key].as_array().cloned().unwrap_or_default();
        for t in rows("failover") {
            println!(
                "fails over:  {} ({}) → {}",
                t["slug"], t["tenant_id"], t["to"]
            );
        }
        let stranded = rows("unavailable");
        for t in &stranded {
            println!(
                "UNAVAILABLE: {} ({}): its residency allows no other healthy region",
                t["slug"], t["tenant_id"]
            );
        }
        if !stranded.is_empty() && !force {
            bail!(
                "refusing to drain {region}: {} tenant(s) would be unavailable (use --force)",
                stranded.len()
            );
        }
        self.show("POST", &path, Some(json!({ "force": force })))
            .await
            .map(drop)
    }

    pub async fn undrain(&self, region: &str) -> anyhow::Result<()> {
        self.show(
            "POST",
            &format!("/v1/regions/{region}/undrain"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Starts relocations for every tenant of `region`; lists those that cannot move.
    pub async fn evacuate(&self, region: &str) -> anyhow::Result<()> {
        let report = self
            .show(
                "POST",
                &format!("/v1/regions/{region}/evacuate"),
                Some(json!({})),
            )
            .await?;
        if let Some(refused) = report["refused"].as_array().filter(|r| !r.is_empty()) {
            bail!(
                "{} tenant(s) could not be moved (see `refused` above)",
                refused.len()
            );
        }
        Ok(())
    }

    /// Starts a relocation; with `wait`, polls until it is done or failed.
    pub async fn relocate(&self, tenant: &str, to: &str, wait: bool) -> anyhow::Result<()> {
        let path = format!("/v1/tenants/{tenant}/relocation");
        self.show("POST", &path, Some(json!({ "to_region": to })))
            .await?;
        if !wait {
            return Ok(());
        }
        loop {
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            let (_, job) = self.call("GET", &path, None).await?;
            println!("{} moved {}", job["status"], job["moved"]);
            match job["status"].as_str() {
                Some("done") => return Ok(()),
                Some("failed") => bail!("relocation failed: {}", job["error"]),
                _ => {}
            }
        }
    }
}
