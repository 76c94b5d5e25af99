//! axe-core (npm `axe-core`, the accessibility engine) for the console's
//! browser tests: its `axe.min.js` is injected into the page through WebDriver
//! (the script runs through DevTools, so the page's Content-Security-Policy,
//! which allows only the node's own scripts, does not apply to it; the console
//! itself never loads it) and `axe.run` reports the page's violations.
//!
//! The package comes from the npm registry, installed on first use into
//! `target/tmp/axe` (`npm install --prefix target/tmp/axe axe-core@AXE_VERSION`;
//! `.ci/run` does the same). Without npm or the package the tests that need it
//! say so and skip, unless `MERIDIAN_REQUIRE_BROWSER` or `CI=true` is set.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::browser::Browser;

/// The axe-core release the scans use (pinned: a new release may add rules).
pub const AXE_VERSION: &str = "4.14.1";

fn required() -> bool {
    std::env::var_os("MERIDIAN_REQUIRE_BROWSER").is_some()
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `axe.min.js`, installing the package first if needed; None (after saying
/// so) when it cannot be had and the run does not require it.
pub fn source() -> Option<String> {
    let prefix = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp/axe");
    let file = prefix.join("node_modules/axe-core/axe.min.js");
    let installed = |file: &PathBuf| {
        std::fs::read_to_string(prefix.join("node_modules/axe-core/package.json"))
            .is_ok_and(|p| p.contains(&format!("\"version\": \"{AXE_VERSION}\"")))
            && file.exists()
    };
    if !installed(&file) {
        let _ = std::fs::create_dir_all(&prefix);
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(format!("axe-core@{AXE_VERSION}"))
            .status();
        if !status.is_ok_and(|s| s.success()) || !installed(&file) {
            assert!(
                !required(),
                "MERIDIAN_REQUIRE_BROWSER or CI is set but axe-core {AXE_VERSION} could not be \
                 installed with npm into {}",
                prefix.display()
            );
            eprintln!(
                "meridian tests: axe-core not installed (needs npm): accessibility scan SKIPPED"
            );
            return None;
        }
    }
    std::fs::read_to_string(&file).ok()
}

/// The serious and critical violations axe finds in the current page, as
/// `rule (impact): target, target…` lines.
pub async fn serious_violations(browser: &Browser, axe: &str) -> Vec<String> {
    let loaded = browser
        .client
        .execute(&format!("{axe}\n;return typeof window.axe;"), vec![])
        .await
        .unwrap();
    assert_eq!(loaded, "object", "axe-core did not load in the page");
    let result = browser
        .client
        .execute_async(
            "const done = arguments[0]; \
             axe.run(document, { resultTypes: ['violations'] }) \
               .then((r) => done(r.violations.map((v) => ({ id: v.id, impact: v.impact, \
                    help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) })))) \
               .catch((e) => done({ error: String(e) }));",
            vec![],
        )
        .await
        .unwrap();
    let Value::Array(violations) = result else {
        panic!("axe.run failed: {result}");
    };
    violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            let targets: Vec<&str> = v["targets"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "{} ({}): {} — {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                targets.join(", ")
            )
        })
        .collect()
}
