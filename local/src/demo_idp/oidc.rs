//! The demo OIDC provider: PyPI `oidc-provider-mock` (the tests' pin), installed
//! on first use into a venv under the state dir, run under the supervisor.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{DemoUser, OIDC_MOCK_PIN, free_port, log_file, stop_supervised, wait_listening};
use crate::supervisor;

/// The OIDC mock.
pub struct DemoOidc {
    child: Option<Child>,
    pub issuer: String,
}

/// The mock's executable in `venv`, installed there on first use.
fn oidc_mock_bin(venv: &Path) -> anyhow::Result<PathBuf> {
    let bin = venv.join("bin/oidc-provider-mock");
    if bin.exists() {
        return Ok(bin);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        bail!(
            "cannot make a Python venv in {} (install python3 and python3-venv)",
            venv.display()
        );
    }
    eprintln!("installing {OIDC_MOCK_PIN} into {}", venv.display());
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--timeout", "20", OIDC_MOCK_PIN])
        .status()
        .is_ok_and(|s| s.success());
    if !installed || !bin.exists() {
        bail!("cannot install {OIDC_MOCK_PIN} (pip install needs PyPI and Python 3.10+)");
    }
    Ok(bin)
}

impl DemoOidc {
    /// Starts the mock with `users`' claims; its venv is `venv`.
    pub fn start(venv: &Path, users: &[DemoUser]) -> anyhow::Result<Self> {
        let bin = oidc_mock_bin(venv)?;
        let port = free_port()?;
        let log = venv.with_extension("log");
        let mut command = supervisor::command(Command::new("/bin/sh"), "TERM", &log, &bin);
        command.stderr(log_file(&log)?);
        command.args(["-p", &port.to_string(), "-H", "127.0.0.1"]);
        for u in users {
            let claims = serde_json::json!({"sub": u.uid, "email": u.email, "groups": u.groups});
            command.args(["--user-claims", &claims.to_string()]);
        }
        let mut oidc = DemoOidc {
            child: Some(command.spawn().context("starting oidc-provider-mock")?),
            issuer: format!("http://127.0.0.1:{port}"),
        };
        if let Some(child) = oidc.child.as_mut() {
            wait_listening(child, port, "oidc-provider-mock", &log)?;
        }
        Ok(oidc)
    }
}

impl Drop for DemoOidc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_supervised(&mut child, Duration::from_secs(5));
        }
    }
}
