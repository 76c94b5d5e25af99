//! `meridian keys …` end to end: the real binary on a key file in a temp dir, and
//! tokens checked the way a node checks them (a fresh load of the file).

use std::path::{Path, PathBuf};
use std::process::Command;

use meridian::auth::{KeySet, TokenVerifier};
use meridian::config::AuthSettings;

struct StateDir(PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn meridian(state: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env_remove("MERIDIAN_AUTH__KEYS_FILE")
        .output()
        .expect("running meridian");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(state: &Path, args: &[&str]) -> String {
    let (success, text) = meridian(state, args);
    assert!(success, "meridian {args:?} failed: {text}");
    text
}

fn verifies(keys: &Path, token: &str) -> bool {
    let verifier = TokenVerifier::new(
        KeySet::load(keys).expect("key file loads"),
        &AuthSettings::default_local(),
    );
    verifier.verify(token).is_ok()
}

#[test]
fn rotation_through_the_cli() {
    let state =
        StateDir(std::env::temp_dir().join(format!("meridian-keys-cli-{}", uuid::Uuid::new_v4())));
    let keys = state.0.join("keys.json");
    // Only `dev` and `migrate` create a key set; the other commands refuse without one.
    std::fs::create_dir_all(&state.0).unwrap();
    KeySet::ensure_file(&keys).unwrap();
    let before = ok(&state.0, &["token", "--platform-admin"])
        .trim()
        .to_owned();
    let listed = ok(&state.0, &["keys", "list"]);
    let old_kid = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(listed.contains("signing"), "{listed}");
    assert!(!listed.contains("private_key_pkcs8"), "{listed}");

    let added = ok(&state.0, &["keys", "add", "--kid", "k-next"]);
    assert!(added.contains("added k-next"), "{added}");
    ok(&state.0, &["keys", "promote", "k-next"]);
    let after = ok(&state.0, &["token", "--platform-admin"])
        .trim()
        .to_owned();
    assert!(
        verifies(&keys, &before),
        "old token while the old key is present"
    );
    assert!(verifies(&keys, &after));

    let (success, refused) = meridian(&state.0, &["keys", "retire", "k-next"]);
    assert!(!success && refused.contains("signing key"), "{refused}");

    let public = state.0.join("public.json");
    ok(
        &state.0,
        &["keys", "export-public", "--out", public.to_str().unwrap()],
    );
    assert!(
        !std::fs::read_to_string(&public)
            .unwrap()
            .contains("private")
    );
    assert!(verifies(&public, &before) && verifies(&public, &after));

    ok(&state.0, &["keys", "retire", &old_kid]);
    assert!(!verifies(&keys, &before), "old token after retire");
    assert!(verifies(&keys, &after));
    let listed = ok(
        &state.0,
        &["keys", "--file", keys.to_str().unwrap(), "list"],
    );
    assert!(
        !listed.contains(&old_kid) && listed.contains("k-next"),
        "{listed}"
    );
}

#[test]
fn token_role_operator_mints_a_platform_token_without_tenant() {
    let state =
        StateDir(std::env::temp_dir().join(format!("meridian-op-token-{}", uuid::Uuid::new_v4())));
    let keys = state.0.join("keys.json");
    std::fs::create_dir_all(&state.0).unwrap();
    KeySet::ensure_file(&keys).unwrap();
    let token = ok(
        &state.0,
        &["token", "--role", "operator", "--subject", "sre-ana"],
    )
    .trim()
    .to_owned();
    let verifier = TokenVerifier::new(KeySet::load(&keys).unwrap(), &AuthSettings::default_local());
    let claims = verifier.verify(&token).expect("operator token verifies");
    assert_eq!(claims.role, meridian::auth::Role::Operator);
    assert_eq!(claims.tid, None);
    assert_eq!(claims.sub, "sre-ana");

    let tenant = uuid::Uuid::new_v4().to_string();
    let (success, text) = meridian(
        &state.0,
        &[
            "token", "--role", "operator", "--tenant", &tenant, "--user", &tenant,
        ],
    );
    assert!(
        !success,
        "an operator token with a tenant was minted: {text}"
    );
    assert!(text.contains("names no tenant"), "{text}");
}
