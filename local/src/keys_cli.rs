//! `meridian keys …`: rotation of the JWT key set file (see `auth::rotation`).
//! Prints kids and roles, never a private key. Running nodes put a changed file
//! in force within `auth.keys_poll_interval_ms` (`auth::reload`): no restart.
//! Also KEK rotation for tenant data keys (`crypto::kek_rotation`):
//! `rotate-kek` (local provider) and `rewrap`, through the settings' database.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use figment::Figment;
use figment::providers::Serialized;
use meridian::auth::rotation;
use meridian::config::Settings;
use meridian::crypto::kek_rotation;

#[derive(Args)]
pub struct KeysArgs {
    /// The key set file (default: MERIDIAN_AUTH__KEYS_FILE, else <state-dir>/keys.json).
    #[arg(long, global = true)]
    file: Option<PathBuf>,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Kids, which one signs, which hold a private key (never the private key itself).
    List,
    /// Add a new Ed25519 key, for verification only until promoted.
    Add {
        /// The new key's id (default: k<unix seconds>).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Make a key the signing key; the previous one stays for verification.
    Promote {
        /// The key to sign with from now on (see `meridian keys list`).
        kid: String,
    },
    /// Remove a key that no longer signs: tokens it signed stop verifying.
    Retire {
        /// The key to remove; it must not be the signing key.
        kid: String,
    },
    /// The key set without private keys, for nodes that only verify.
    ExportPublic {
        /// Write it here (atomically, mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Local KEK provider: a new KEK version for a jurisdiction (the old one
    /// stays to unwrap); then `meridian keys rewrap`. Recorded in the platform trail.
    RotateKek {
        /// us, eu or apac.
        #[arg(long)]
        jurisdiction: String,
        #[command(flatten)]
        node: NodeSettings,
    },
    /// Rewrap every live tenant DEK not under its jurisdiction's current KEK
    /// (local provider after rotate-kek; AWS KMS after a key replacement).
    /// Data is not re-encrypted. Idempotent: run it again to resume.
    Rewrap {
        /// Only this jurisdiction (us, eu or apac); default: all.
        #[arg(long)]
        jurisdiction: Option<String>,
        /// Tenants per transaction.
        #[arg(long, default_value_t = 20)]
        batch: u32,
        #[command(flatten)]
        node: NodeSettings,
    },
}

/// Whose settings the KEK commands use: a node's (database, encryption.*).
#[derive(Args)]
struct NodeSettings {
    /// The region whose settings to use: us-east1, europe-west1, europe-west3,
    /// europe-north1, asia-southeast1 (regions/*.toml).
    #[arg(long, env = "MERIDIAN_REGION", default_value = "us-east1")]
    region: String,
    /// Where the region files are.
    #[arg(long, env = "MERIDIAN_REGIONS_DIR", default_value = "regions")]
    regions_dir: PathBuf,
}

impl NodeSettings {
    fn load(&self, base: Figment) -> anyhow::Result<Settings> {
        let base = base
            .merge(Serialized::default("region", &self.region))
            .merge(Serialized::default("regions_dir", &self.regions_dir));
        Ok(Settings::load(base)?)
    }
}

const ACTOR: &str = "cli:keys";

/// `rotate-kek` and `rewrap` (async: they use the database); `None` for the
/// key set actions, which `run` does.
pub async fn run_kek(base: &Figment, args: &KeysArgs) -> Option<anyhow::Result<()>> {
    match &args.action {
        KeysAction::RotateKek { jurisdiction, node } => Some(
            async {
                let settings = node.load(base.clone())?;
                let rotated = kek_rotation::rotate_local_kek(settings, jurisdiction, ACTOR).await?;
                println!(
                    "{}: KEK {} (version {}) now wraps new DEKs; {} still unwraps",
                    rotated.jurisdiction, rotated.current_id, rotated.version, rotated.previous_id
                );
                println!(
                    "running nodes read the file on their next new key or unknown KEK; now run                      `meridian keys rewrap --jurisdiction {}`",
                    rotated.jurisdiction
                );
                Ok(())
            }
            .await,
        ),
        KeysAction::Rewrap {
            jurisdiction,
            batch,
            node,
        } => Some(
            async {
                let settings = node.load(base.clone())?;
                let report = kek_rotation::rewrap_from_settings(
                    settings,
                    jurisdiction.as_deref(),
                    *batch,
                    ACTOR,
                )
                .await?;
                println!(
                    "checked {} tenant(s); rewrapped {} DEK version(s) of {} tenant(s)",
                    report.tenants_checked, report.versions_rewrapped, report.tenants_rewrapped
                );
                Ok(())
            }
            .await,
        ),
        _ => None,
    }
}

const RESTART: &str = "running nodes that read this file pick the change up within a second \
                       (auth.keys_poll_interval_ms); nodes with their own copy once it is \
                       distributed";

pub fn run(default_file: &Path, args: KeysArgs) -> anyhow::Result<()> {
    let path = args.file.as_deref().unwrap_or(default_file);
    match args.action {
        KeysAction::List => {
            println!(
                "{:<24} {:<8} {:<11} public_key",
                "kid", "role", "private_key"
            );
            for key in rotation::list(path)? {
                let role = if key.signing { "signing" } else { "verify" };
                let private = if key.has_private_key { "present" } else { "-" };
                println!("{:<24} {role:<8} {private:<11} {}", key.kid, key.public_key);
            }
        }
        KeysAction::Add { kid } => {
            let kid = rotation::add(path, kid.as_deref())?;
            println!("added {kid} (verification only) to {}", path.display());
            println!("{RESTART}; then `meridian keys promote {kid}`");
        }
        KeysAction::Promote { kid } => {
            let previous = rotation::promote(path, &kid)?;
            match previous {
                Some(old) => println!("{kid} now signs; {old} still verifies"),
                None => println!("{kid} signs"),
            }
            println!("{RESTART}");
        }
        KeysAction::Retire { kid } => {
            rotation::retire(path, &kid)?;
            println!("retired {kid}: tokens it signed stop verifying");
            println!("{RESTART}");
        }
        KeysAction::RotateKek { .. } | KeysAction::Rewrap { .. } => {
            anyhow::bail!("internal: KEK commands run through run_kek")
        }
        KeysAction::ExportPublic { out } => {
            let public = rotation::export_public(path)?;
            match out {
                Some(out) => {
                    rotation::write_key_file(&out, &public)?;
                    println!("wrote {}", out.display());
                }
                None => println!("{public}"),
            }
        }
    }
    Ok(())
}
