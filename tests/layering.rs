//! The line between the server and the local environment: the server library
//! (`meridian`, `src/`) never depends on or imports `meridian-local` (`local/`:
//! embedded PostgreSQL, supervisor, package installer, `dev`, GeoDNS, WAN
//! emulation, admin client, the CLI). Only the tests may use it, as a
//! dev-dependency. Issue 12, part 3.

use std::path::{Path, PathBuf};

const LOCAL_PACKAGE: &str = "meridian-local";
const LOCAL_CRATE: &str = "meridian_local";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names of the dependencies in a `[dependencies]`-like table, with the package a
/// `package = "…"` rename points at, and whether a `path` leads into `local/`.
fn offending(table: Option<&toml::Value>) -> Vec<String> {
    let Some(table) = table.and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    table
        .iter()
        .filter(|(name, spec)| {
            let package = spec.get("package").and_then(toml::Value::as_str);
            let path = spec.get("path").and_then(toml::Value::as_str);
            name.as_str() == LOCAL_PACKAGE
                || package == Some(LOCAL_PACKAGE)
                || path.is_some_and(|p| Path::new(p).components().any(|c| c.as_os_str() == "local"))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Every dependency table that builds the library: `[dependencies]`,
/// `[build-dependencies]` and their `[target.'…'.…]` forms (not dev-dependencies).
fn build_dependency_tables(manifest: &toml::Value) -> Vec<(String, Option<&toml::Value>)> {
    let mut tables = vec![
        ("dependencies".to_owned(), manifest.get("dependencies")),
        (
            "build-dependencies".to_owned(),
            manifest.get("build-dependencies"),
        ),
    ];
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for (cfg, target) in targets {
            for kind in ["dependencies", "build-dependencies"] {
                tables.push((format!("target.{cfg}.{kind}"), target.get(kind)));
            }
        }
    }
    tables
}

fn manifest_dependents(text: &str) -> Vec<String> {
    let manifest: toml::Value = toml::from_str(text).expect("Cargo.toml parses");
    build_dependency_tables(&manifest)
        .into_iter()
        .flat_map(|(table, deps)| {
            offending(deps)
                .into_iter()
                .map(move |name| format!("[{table}] {name}"))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `file:line` of every mention of the local crate in Rust source under `dir`.
fn imports(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains(LOCAL_CRATE) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_server_library_does_not_depend_on_the_local_environment() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let found = manifest_dependents(&text);
    assert!(
        found.is_empty(),
        "the server crate must not depend on {LOCAL_PACKAGE} (a dev-dependency is fine): {found:?}"
    );
}

#[test]
fn no_server_module_imports_the_local_environment() {
    let found = imports(&root().join("src"));
    assert!(
        found.is_empty(),
        "server modules must not use {LOCAL_CRATE} (move the code to local/ or into the server): {found:#?}"
    );
}

/// The checks above can fail: each kind of dependency is caught.
#[test]
fn the_manifest_check_catches_every_form_of_dependency() {
    for manifest in [
        "[dependencies]\nmeridian-local = { path = \"local\" }",
        "[dependencies]\nlocal = { package = \"meridian-local\", path = \"x\" }",
        "[dependencies]\nhelpers = { path = \"./local\" }",
        "[build-dependencies]\nmeridian-local = \"0.1\"",
        "[target.'cfg(unix)'.dependencies]\nmeridian-local = { path = \"local\" }",
    ] {
        assert_eq!(manifest_dependents(manifest).len(), 1, "{manifest}");
    }
    assert!(
        manifest_dependents("[dev-dependencies]\nmeridian-local = { path = \"local\" }").is_empty()
    );
}
