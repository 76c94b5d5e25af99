//! The PyPI fixtures' executables (oidc-provider-mock, moto): from the pytools
//! venv `.ci/run` makes under `target/`, else from a venv of their own made here
//! with the pin of `tests/api/pytools.txt`; `None` (the caller's test skipped,
//! with a message) without PyPI, unless `MERIDIAN_REQUIRE_PYTOOLS` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `exe` of the package pinned as `package==…` in pytools.txt; `venv` names the
/// fallback venv, `what` the tests skipped without it.
pub(crate) fn bin(package: &str, exe: &str, venv: &str, what: &str) -> Option<PathBuf> {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for dir in ["pytools", venv] {
        let bin = tmp.join(dir).join("bin").join(exe);
        if bin.exists() {
            return Some(bin);
        }
    }
    let prefix = format!("{package}==");
    let pin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/pytools.txt"),
    )
    .unwrap()
    .lines()
    .find(|l| l.starts_with(&prefix))
    .unwrap_or_else(|| panic!("tests/api/pytools.txt pins {package}"))
    .to_owned();
    let venv = tmp.join(venv);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--timeout", "20", &pin])
            .status()
            .is_ok_and(|s| s.success());
    let bin = venv.join("bin").join(exe);
    if made && bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("MERIDIAN_REQUIRE_PYTOOLS").is_none(),
        "MERIDIAN_REQUIRE_PYTOOLS is set but {pin} cannot be installed"
    );
    eprintln!("meridian tests: {pin} cannot be installed: {what} SKIPPED");
    None
}
