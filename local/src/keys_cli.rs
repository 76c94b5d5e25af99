//! `meridian keys …`: rotation of the JWT key set file (see `auth::rotation`).
//! Prints kids and roles, never a private key. Running nodes put a changed file
//! in force within `auth.keys_poll_interval_ms` (`auth::reload`): no restart.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use meridian::auth::rotation;

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
