//! The environment variables the `meridian` help names are real variable names
//! (a region-list substitution once turned `MERIDIAN_REGIONS_DIR` into
//! `MERIDIAN_us-east1, europe-west1, … (regions/*.toml)_DIR`).

use std::process::Command;

fn help(command: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args([command, "--help"])
        .output()
        .expect("running meridian");
    assert!(out.status.success(), "meridian {command} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_regions_dir_is_read_from_meridian_regions_dir() {
    for command in ["serve", "dev"] {
        let text = help(command);
        assert!(
            text.contains("[env: MERIDIAN_REGIONS_DIR="),
            "meridian {command} --help:\n{text}"
        );
        let names: Vec<&str> = text
            .split("[env: ")
            .skip(1)
            .filter_map(|rest| rest.split('=').next())
            .collect();
        for name in &names {
            assert!(
                name.starts_with("MERIDIAN_")
                    && name[9..]
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'_'),
                "meridian {command}: env var `{name}`"
            );
        }
    }
}
