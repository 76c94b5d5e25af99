//! Installs a missing Debian package on demand, so that `meridian dev` and
//! `cargo test` work on a fresh Debian machine. Only when running as root with
//! `apt-get` present, and never when `MERIDIAN_NO_INSTALL` is set; otherwise the
//! caller reports which package to install.

use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One install at a time in this process (apt holds a lock anyway).
static INSTALLING: Mutex<()> = Mutex::new(());

/// Tries to install `packages`; `Err` says why it did not.
pub fn install(packages: &[&str]) -> Result<(), String> {
    if std::env::var_os("MERIDIAN_NO_INSTALL").is_some() {
        return Err("MERIDIAN_NO_INSTALL is set".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root".into());
    }
    let _one_at_a_time = INSTALLING.lock().map_err(|_| "install lock poisoned")?;
    eprintln!("installing Debian packages: {}", packages.join(" "));
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running apt-get: {e}"))
            .map(|status| status.success())
    };
    let install_args: Vec<&str> = ["install", "-y", "-qq"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    // A fresh machine's package lists may be missing or stale: update once, retry.
    if apt(&install_args)? || (apt(&["update", "-qq"])? && apt(&install_args)?) {
        Ok(())
    } else {
        Err(format!("apt-get install {} failed", packages.join(" ")))
    }
}
