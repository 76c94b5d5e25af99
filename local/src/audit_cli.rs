//! `meridian audit`: verify a trail through a node's API (`verify`), or an
//! exported file offline with the public key alone (`verify-file`); chain a
//! region's pending tenant events now, as the service role (`seal`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use meridian_local::admin_client::AdminClient;
use meridian_local::cli::output::{self, Format};

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Walk a trail's hash chain and check its latest signed checkpoint
    /// (`GET /v1/audit/verify`): the first broken link, or "intact, N events, head <hash>".
    Verify {
        /// A tenant's trail (its id).
        #[arg(long, conflicts_with = "region")]
        tenant: Option<uuid::Uuid>,
        /// A region's platform trail (default: the node's region): us-east1,
        /// europe-west1, europe-west3, europe-north1, asia-southeast1.
        #[arg(long)]
        region: Option<String>,
    },
    /// Verify an export (`GET /v1/audit/export`) offline: every link, and every
    /// checkpoint's signature with the public key. Exits 1 unless the chain is
    /// intact and every checkpoint verifies.
    VerifyFile {
        /// The NDJSON file.
        file: PathBuf,
        /// The signing key (base64url, as `GET /v1/signing-keys` lists it), or a
        /// file holding it.
        #[arg(long)]
        public_key: String,
    },
    /// Chain every tenant event of a region not yet chained (what each node's
    /// sealer does every `audit.seal_interval_ms`), through the database as the
    /// service role; prints the trails and events chained.
    Seal {
        /// The service role's URL (`meridian_app`), as the node has it.
        #[arg(long, env = "MERIDIAN_DATABASE__URL", hide_env_values = true)]
        database_url: String,
        /// The region whose trails to chain: us-east1, europe-west1,
        /// europe-west3, europe-north1, asia-southeast1.
        #[arg(long)]
        region: String,
        /// Events per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: i64,
    },
}

/// `verify` needs a client; `verify-file` does not.
pub fn needs_node(args: &AuditArgs) -> bool {
    matches!(args.action, AuditAction::Verify { .. })
}

pub async fn run(
    client: Option<AdminClient>,
    args: AuditArgs,
    format: Format,
) -> anyhow::Result<()> {
    match args.action {
        AuditAction::Verify { tenant, region } => {
            let client = client.context("no node client")?;
            let query = match (tenant, region) {
                (Some(t), _) => format!("?tenant={t}"),
                (None, Some(r)) => format!("?region={r}"),
                (None, None) => String::new(),
            };
            let path = if query.is_empty() {
                // The platform trail of the node's region.
                let status = client.request("GET", "/v1/regions", None).await?;
                let here = status["region"]
                    .as_str()
                    .context("the node did not say its region; give --region")?
                    .to_owned();
                format!("/v1/audit/verify?region={here}")
            } else {
                format!("/v1/audit/verify{query}")
            };
            let report = client.request("GET", &path, None).await?;
            output::print(format, &report, |r| {
                format!("{}\n", output::scalar(&r["summary"]))
            });
            if report["intact"] != true {
                anyhow::bail!("the trail is broken");
            }
            Ok(())
        }
        AuditAction::Seal {
            database_url,
            region,
            batch,
        } => {
            let mut settings = meridian::config::Settings::default().database;
            settings.url = meridian::secret::SecretUrl::new(database_url);
            let db = meridian::db::Database::connect(&settings)?;
            let region = meridian::ids::RegionId::parse(&region).map_err(anyhow::Error::msg)?;
            let pass = meridian::audit::seal::seal_region(&db, &region, batch).await?;
            let report = serde_json::json!({ "trails": pass.trails, "events": pass.events });
            output::print(format, &report, |r| {
                format!("chained {} events of {} trails\n", r["events"], r["trails"])
            });
            Ok(())
        }
        AuditAction::VerifyFile { file, public_key } => {
            let key_text = match std::fs::read_to_string(&public_key) {
                Ok(text) => text.trim().to_owned(),
                Err(_) => public_key.trim().to_owned(),
            };
            let key = meridian::audit::file::decode_public_key(&key_text)
                .context("--public-key is neither a file nor a base64url Ed25519 key")?;
            let input = std::io::BufReader::new(
                std::fs::File::open(&file).with_context(|| format!("{}", file.display()))?,
            );
            let report = meridian::audit::file::verify(input, &key)?;
            let value = serde_json::to_value(&report)?;
            output::print(format, &value, |r| {
                format!(
                    "{}\ncheckpoints: {} valid, {} invalid; {} events after the last valid one\n",
                    output::scalar(&r["summary"]),
                    r["checkpoints_valid"],
                    r["checkpoints_invalid"].as_array().map_or(0, Vec::len),
                    r["unsigned_tail"],
                )
            });
            if !report.trustworthy() {
                anyhow::bail!("the export does not verify");
            }
            Ok(())
        }
    }
}
