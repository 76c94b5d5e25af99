//! The regions terraform deploys must be exactly the regions the nodes know.
//!
//! - The nodes' topology: `regions/*.toml` (every file but `latency.toml`), field `id`.
//! - Terraform's single list of regions: the keys of `regions` in
//!   `terraform/regions.json` (read by `terraform/main.tf` with `jsondecode(file(…))`),
//!   each mapped to an AWS region that has an aliased provider in
//!   `terraform/providers.tf`.
//!
//! A region added on one side only fails here (and in `terraform validate`, whose
//! guards in `terraform/main.tf` check the same thing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Region ids from `<dir>/*.toml`, skipping `latency.toml`. Panics on a file
/// without an `id` or whose `id` differs from its file name.
fn region_file_ids(dir: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml")
            || path.file_name().and_then(|n| n.to_str()) == Some("latency.toml")
        {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let id = table
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{}: no string field `id`", path.display()));
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert_eq!(id, stem, "{}: id must match the file name", path.display());
        ids.insert(id.to_owned());
    }
    ids
}

/// `regions` of terraform's regions.json: region id → its settings object.
fn terraform_regions(path: &Path) -> BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let regions = json
        .get("regions")
        .and_then(|r| r.as_object())
        .unwrap_or_else(|| panic!("{}: no object `regions`", path.display()));
    regions
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `Err` naming every region present on one side only.
fn compare(region_files: &BTreeSet<String>, terraform: &BTreeSet<String>) -> Result<(), String> {
    let only_files: Vec<&String> = region_files.difference(terraform).collect();
    let only_terraform: Vec<&String> = terraform.difference(region_files).collect();
    if only_files.is_empty() && only_terraform.is_empty() {
        return Ok(());
    }
    Err(format!(
        "regions/*.toml and terraform/regions.json disagree: \
         only in regions/: {only_files:?}; only in terraform/regions.json: {only_terraform:?}"
    ))
}

/// AWS regions of the `provider "aws"` blocks in providers.tf (its `region = "…"` lines).
fn provider_aws_regions(providers_tf: &str) -> BTreeSet<String> {
    providers_tf
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("region"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .filter_map(|value| value.trim().strip_prefix('"')?.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn terraform_deploys_exactly_the_regions_in_region_files() {
    let files = region_file_ids(&repo().join("regions"));
    let terraform: BTreeSet<String> = terraform_regions(&repo().join("terraform/regions.json"))
        .into_keys()
        .collect();
    assert!(!files.is_empty(), "no region files found in regions/");
    if let Err(message) = compare(&files, &terraform) {
        panic!("{message}");
    }
}

#[test]
fn every_region_maps_to_its_own_aws_region_with_a_provider() {
    let providers = std::fs::read_to_string(repo().join("terraform/providers.tf"))
        .expect("terraform/providers.tf");
    let wired = provider_aws_regions(&providers);
    assert!(
        wired.contains("us-east-1"),
        "could not read the providers' regions: {wired:?}"
    );
    let regions = terraform_regions(&repo().join("terraform/regions.json"));
    let mut seen = BTreeMap::new();
    for (id, settings) in &regions {
        let aws = settings
            .get("aws_region")
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("regions.json: {id} has no aws_region"));
        assert!(
            wired.contains(aws),
            "regions.json: {id} maps to {aws}, which has no provider \"aws\" block in terraform/providers.tf (have {wired:?})"
        );
        if let Some(other) = seen.insert(aws.to_owned(), id.clone()) {
            panic!("regions.json: {other} and {id} both map to {aws}");
        }
        let cidr = settings.get("vpc_cidr").and_then(|v| v.as_str());
        assert!(
            cidr.is_some_and(|c| c.ends_with("/16")),
            "regions.json: {id} needs a vpc_cidr /16, got {cidr:?}"
        );
    }
}

#[test]
fn a_region_on_one_side_only_is_reported() {
    // The readers and the comparison on a scratch copy that disagrees.
    let dir =
        std::env::temp_dir().join(format!("meridian-terraform-regions-{}", std::process::id()));
    let regions_dir = dir.join("regions");
    std::fs::create_dir_all(&regions_dir).unwrap();
    let region = |id: &str| format!("id = \"{id}\"\njurisdiction = \"eu\"\n");
    std::fs::write(
        regions_dir.join("europe-west1.toml"),
        region("europe-west1"),
    )
    .unwrap();
    std::fs::write(
        regions_dir.join("europe-west3.toml"),
        region("europe-west3"),
    )
    .unwrap();
    std::fs::write(regions_dir.join("latency.toml"), "[rtt_ms]\n").unwrap();
    std::fs::write(
        dir.join("regions.json"),
        r#"{"regions": {"europe-west1": {"aws_region": "eu-west-1"}, "us-east1": {"aws_region": "us-east-1"}}}"#,
    )
    .unwrap();

    let files = region_file_ids(&regions_dir);
    let terraform: BTreeSet<String> = terraform_regions(&dir.join("regions.json"))
        .into_keys()
        .collect();
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(
        files,
        BTreeSet::from(["europe-west1".to_owned(), "europe-west3".to_owned()])
    );
    let error = compare(&files, &terraform).expect_err("the sets differ");
    assert!(
        error.contains("only in regions/: [\"europe-west3\"]"),
        "{error}"
    );
    assert!(
        error.contains("only in terraform/regions.json: [\"us-east1\"]"),
        "{error}"
    );
    assert!(compare(&files, &files).is_ok());
}

#[test]
fn provider_regions_are_read_from_providers_tf() {
    let text = "# region = \"commented-out\"\nprovider \"aws\" {\n  alias  = \"x\"\n  region = \"eu-west-1\"\n}\n";
    assert_eq!(
        provider_aws_regions(text),
        BTreeSet::from(["eu-west-1".to_owned()])
    );
}
