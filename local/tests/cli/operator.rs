//! The operator and newcomer commands (issue 12, part 2): a state directory
//! without keys is refused, `token` checks the user, `tenant list --slug`,
//! one-line API errors, `region drain --dry-run`, `region status`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{TestApp, cluster, spawn_app};

/// A state directory holding the test cluster's key set (as `meridian dev`'s would).
struct State(PathBuf);

impl State {
    fn empty() -> Self {
        let dir = std::env::temp_dir().join(format!("meridian-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn with_keys() -> Self {
        let state = Self::empty();
        std::fs::copy(&cluster().keys_file, state.0.join("keys.json")).unwrap();
        state
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the binary off the async runtime (the app under test runs on it).
async fn meridian(state: &Path, app: &TestApp, args: &[&str]) -> Run {
    let (state, node) = (state.to_owned(), app.base.clone());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .arg("--state-dir")
            .arg(&state)
            .args(&args)
            .env("MERIDIAN_NODE", &node)
            .env_remove("MERIDIAN_AUTH__KEYS_FILE")
            .env_remove("MERIDIAN_STATE_DIR")
            .env_remove("MERIDIAN_BACKTRACE")
            // Often set for other programs: it must not turn errors into dumps.
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("running meridian");
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// One line on stderr, no Debug dump or raw JSON.
fn assert_one_line_error(run: &Run) {
    assert!(!run.success, "expected a failure: {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(!run.stderr.contains('{'), "{}", run.stderr);
}

#[actix_web::test]
async fn commands_refuse_a_state_dir_without_keys() {
    let app = spawn_app().await;
    let state = State::empty();
    for args in [
        &["token", "--platform-admin"][..],
        &["tenant", "list"],
        &["region", "status"],
    ] {
        let run = meridian(&state.0, &app, args).await;
        assert_one_line_error(&run);
        let keys = state.0.join("keys.json");
        assert!(
            run.stderr.contains(&keys.display().to_string())
                && run.stderr.contains("MERIDIAN_STATE_DIR"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!keys.exists(), "{args:?} created a key set");
    }
}

#[actix_web::test]
async fn token_signs_only_for_an_existing_user_with_that_role() {
    let app = spawn_app().await;
    let state = State::with_keys();
    let tenant = app.provision("acme").await;
    let (t, owner) = (tenant.id.to_string(), tenant.owner_id.to_string());
    let stranger = uuid::Uuid::new_v4().to_string();

    let run = meridian(
        &state.0,
        &app,
        &[
            "token", "--tenant", &t, "--user", &stranger, "--role", "owner",
        ],
    )
    .await;
    assert_one_line_error(&run);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "printed a token: {}", run.stdout);

    let run = meridian(
        &state.0,
        &app,
        &[
            "token", "--tenant", &t, "--user", &owner, "--role", "viewer",
        ],
    )
    .await;
    assert_one_line_error(&run);
    assert!(run.stderr.contains("has the role owner"), "{}", run.stderr);

    let run = meridian(
        &state.0,
        &app,
        &["token", "--tenant", &t, "--user", &owner, "--role", "owner"],
    )
    .await;
    assert!(run.success, "{}", run.stderr);
    let token = run.stdout.trim();
    assert_eq!(app.get("/v1/channels", token).await.status, 200);

    let offline = meridian(
        &state.0,
        &app,
        &[
            "token",
            "--tenant",
            &t,
            "--user",
            &stranger,
            "--role",
            "owner",
            "--no-check",
        ],
    )
    .await;
    assert!(offline.success, "{}", offline.stderr);
}

#[actix_web::test]
async fn tenant_list_finds_a_tenant_by_slug() {
    let app = spawn_app().await;
    let state = State::with_keys();
    let acme = app.provision("acme").await;
    app.provision("acme-eu").await;

    let run = meridian(
        &state.0,
        &app,
        &["--json", "tenant", "list", "--slug", "acme"],
    )
    .await;
    assert!(run.success, "{}", run.stderr);
    let page: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["id"], acme.id.to_string());

    let human = meridian(&state.0, &app, &["tenant", "list"]).await;
    assert!(human.success, "{}", human.stderr);
    assert_eq!(human.stdout.lines().count(), 2, "{}", human.stdout);
    let line = human.stdout.lines().find(|l| l.contains(" acme ")).unwrap();
    assert!(
        line.starts_with(&acme.id.to_string()) && !line.contains('"'),
        "{line}"
    );

    let none = meridian(&state.0, &app, &["tenant", "list", "--slug", "nobody"]).await;
    assert!(
        none.success && none.stdout.trim().is_empty(),
        "{}",
        none.stdout
    );
}

#[actix_web::test]
async fn api_errors_are_one_line_with_code_and_detail() {
    let app = spawn_app().await;
    let state = State::with_keys();
    let missing = uuid::Uuid::new_v4().to_string();
    let run = meridian(
        &state.0,
        &app,
        &["tenant", "relocate", &missing, "--to", "europe-west1"],
    )
    .await;
    assert_one_line_error(&run);
    assert!(
        run.stderr.starts_with("error: 404 not_found: "),
        "{}",
        run.stderr
    );
}

#[actix_web::test]
async fn drain_dry_run_changes_nothing_and_status_names_each_state() {
    let app = spawn_app().await;
    let state = State::with_keys();
    let run = meridian(
        &state.0,
        &app,
        &["region", "drain", "europe-west1", "--dry-run"],
    )
    .await;
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("draining europe-west1:"),
        "{}",
        run.stdout
    );
    let regions = app.get("/v1/regions", &app.platform_token()).await;
    let europe = regions.body["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "europe-west1")
        .unwrap()
        .clone();
    assert_eq!(europe["drained"], false, "--dry-run drained it");

    // Drained: reported as drained, not as unreachable.
    let drained = meridian(&state.0, &app, &["region", "drain", "europe-north1"]).await;
    assert!(drained.success, "{}", drained.stderr);
    let status = meridian(&state.0, &app, &["--json", "region", "status"]).await;
    assert!(status.success, "{}", status.stderr);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let north = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "europe-north1")
        .unwrap();
    assert_eq!(north["state"], "drained", "{north}");
    assert!(north.get("reachable").is_none(), "{north}");
    let human = meridian(&state.0, &app, &["region", "status"]).await;
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("europe-north1") && l.ends_with("drained")),
        "{}",
        human.stdout
    );
}
