//! Key rotation without restart: a running node puts a changed key set file in
//! force within a poll (`auth::reload`, the `key_reload` task).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meridian::auth::{KeySet, Role, TokenVerifier, rotation};

use crate::helpers::{TestApp, cluster, fresh_database, spawn_app_with, test_settings};

/// A key set file of the test's own (the cluster's is shared by every test).
struct OwnKeys(PathBuf);

impl OwnKeys {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("meridian-rotate-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.json");
        std::fs::copy(&cluster().keys_file, &path).unwrap();
        Self(path)
    }
}

impl Drop for OwnKeys {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A platform token signed by the file's signing key as it is now.
fn token_from(path: &Path) -> String {
    let settings = test_settings("unused");
    TokenVerifier::new(KeySet::load(path).unwrap(), &settings.auth)
        .issue("rotation-test".into(), None, Role::PlatformAdmin, 600)
        .unwrap()
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/tenants", token).await.status.as_u16()
}

/// Polls until `token` gets `want` (the node looks at the file every 100 ms here).
async fn eventually(app: &TestApp, token: &str, want: u16) {
    let start = Instant::now();
    loop {
        let got = status(app, token).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {got}, expected {want}, 10 s after the key file changed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_running_node_picks_up_added_promoted_and_retired_keys() {
    let keys = OwnKeys::new();
    let mut settings = test_settings(&fresh_database().await);
    settings.auth.keys_file = keys.0.clone();
    settings.auth.keys_poll_interval = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;

    let old = token_from(&keys.0);
    assert_eq!(status(&app, &old).await, 200);

    // A key the node has never seen: refused until the file names it.
    let new_kid = rotation::add(&keys.0, None).unwrap();
    let old_kid = rotation::promote(&keys.0, &new_kid).unwrap().unwrap();
    let new = token_from(&keys.0);
    eventually(&app, &new, 200).await;
    assert_eq!(
        status(&app, &old).await,
        200,
        "old key kept for verification"
    );

    // A broken file: the node keeps serving with the set in force.
    let good = std::fs::read(&keys.0).unwrap();
    std::fs::write(&keys.0, b"{\"signing_kid\": \"half-writ").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&app, &new).await, 200);
    assert_eq!(status(&app, &old).await, 200);
    std::fs::write(&keys.0, &good).unwrap();

    // Retired: the old key's token (verified and cached above) stops working.
    rotation::retire(&keys.0, &old_kid).unwrap();
    eventually(&app, &old, 401).await;
    let refused = app.get("/v1/tenants", &old).await;
    crate::helpers::assert_problem(&refused, 401, "unauthenticated");
    assert_eq!(status(&app, &new).await, 200);
    app.stop().await;
}
