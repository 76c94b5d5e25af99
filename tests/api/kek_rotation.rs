//! KEK rotation (issue 15 §3, `crypto::kek_rotation`): a new local KEK version,
//! then `rewrap` moves every DEK onto it. The DEKs' wrapping is all that
//! changes: every ciphertext stays byte for byte, and everything still opens,
//! on a fresh node and on the node that loaded the KEK file before the rotation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use meridian::crypto::kek_rotation::{rewrap_from_settings, rotate_local_kek};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, cluster, fresh_database, spawn_app_with, test_settings};

/// A KEK file of the test's own (rotating the cluster's would affect every test).
pub struct OwnKeks(pub PathBuf);

impl OwnKeks {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("meridian-keks-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keks.json");
        std::fs::copy(&cluster().kek_file, &path).unwrap();
        Self(path)
    }
}

impl Drop for OwnKeks {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Every ciphertext of the tenant at rest: (table.column/row id) → bytes.
async fn ciphertexts(app: &TestApp, tenant: Uuid) -> BTreeMap<String, Vec<u8>> {
    let db = app.superuser_client().await;
    let mut all = BTreeMap::new();
    for (table, column) in [
        ("messages", "body_enc"),
        ("webhook_endpoints", "secret_sealed"),
        ("identity_providers", "secret_sealed"),
    ] {
        let sql = format!(
            "SELECT id, {column} FROM {table} WHERE tenant_id = $1 AND {column} IS NOT NULL"
        );
        for row in db.query(&sql, &[&tenant]).await.unwrap() {
            let id: Uuid = row.get(0);
            all.insert(format!("{table}.{column}/{id}"), row.get(1));
        }
    }
    all
}

/// (version, state, kek_id, wrapped) of the tenant's DEKs.
async fn wrapped(app: &TestApp, tenant: Uuid) -> Vec<(i32, String, String, Vec<u8>)> {
    let db = app.superuser_client().await;
    db.query(
        "SELECT version, state, kek_id, wrapped FROM tenant_keys WHERE tenant_id = $1
         ORDER BY version",
        &[&tenant],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

async fn read_all(app: &TestApp, token: &str, channel: Uuid, messages: &[(Uuid, String)]) {
    for (id, body) in messages {
        let one = app
            .get(&format!("/v1/channels/{channel}/messages/{id}"), token)
            .await;
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(one.body["body"], json!(body), "{}", one.body);
    }
}

#[actix_web::test]
async fn kek_rotation_rewraps_deks_only_and_every_ciphertext_stays_as_it_was() {
    let keks = OwnKeks::new();
    let mut settings = test_settings(&fresh_database().await);
    settings.encryption.kek_file = keks.0.clone();
    let app = spawn_app_with(settings.clone()).await;
    let t = app.provision("kek-rotation").await;
    let policy = app
        .patch(
            &format!("/v1/tenants/{}/encryption", t.id),
            &t.owner_token,
            json!({ "messages": true }),
        )
        .await;
    assert_eq!(policy.status, 200, "{}", policy.body);
    let channel = app.create_channel(&t, "general").await;
    let mut messages = Vec::new();
    for i in 0..3 {
        let body = format!("before the DEK rotation {i}");
        messages.push((app.post_message(&t, channel, &body).await, body));
    }
    app.create_webhook(&t, json!({ "url": "http://127.0.0.1:9/hook" }))
        .await;
    // Two DEK versions (v1 retired, v2 active), both to be rewrapped.
    let keys_path = format!("/v1/tenants/{}/keys", t.id);
    let rotated = app
        .post(&format!("{keys_path}/rotate"), &t.owner_token, json!({}))
        .await;
    assert_eq!(rotated.status, 202, "{}", rotated.body);
    let mut drained = false;
    for _ in 0..300 {
        let keys = app.get(&keys_path, &t.owner_token).await;
        drained = keys.body["versions"][0]["drained_at"].is_string();
        if drained {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(drained, "the re-encryption did not finish in 30 s");
    let body = "after the DEK rotation".to_owned();
    messages.push((app.post_message(&t, channel, &body).await, body));

    let before = ciphertexts(&app, t.id).await;
    let keys_before = wrapped(&app, t.id).await;
    assert_eq!(keys_before.len(), 2, "{keys_before:?}");
    assert_eq!(before.len(), 5, "4 bodies and a webhook secret: {before:?}");

    let kek = rotate_local_kek(settings.clone(), "us", "test:kek")
        .await
        .unwrap();
    assert_eq!(kek.previous_id, keys_before[0].2);
    // One tenant per transaction: the batches are exercised too.
    let report = rewrap_from_settings(settings.clone(), Some("us"), 1, "test:kek")
        .await
        .unwrap();
    assert_eq!(report.versions_rewrapped, 2, "{report:?}");
    assert_eq!(report.tenants_rewrapped, 1, "{report:?}");

    assert_eq!(
        ciphertexts(&app, t.id).await,
        before,
        "a ciphertext changed"
    );
    let keys_after = wrapped(&app, t.id).await;
    for ((v, state, kek_id, blob), (_, state_before, _, blob_before)) in
        keys_after.iter().zip(&keys_before)
    {
        assert_eq!(kek_id, &kek.current_id, "version {v} not moved");
        assert_eq!(state, state_before, "version {v}'s state changed");
        assert_ne!(blob, blob_before, "version {v} not rewrapped");
    }
    // A fresh node (empty DEK cache) opens everything through the new KEK.
    let fresh = spawn_app_with(settings.clone()).await;
    read_all(&fresh, &t.owner_token, channel, &messages).await;
    // The node that loaded the file before the rotation, once its cached DEKs
    // expired (TTL 2 s in tests), unwraps under the KEK it had never seen.
    actix_web::rt::time::sleep(Duration::from_millis(2_500)).await;
    read_all(&app, &t.owner_token, channel, &messages).await;

    // Idempotent: nothing left to move.
    let again = rewrap_from_settings(settings.clone(), None, 20, "test:kek")
        .await
        .unwrap();
    assert_eq!(again.versions_rewrapped, 0, "{again:?}");
    assert_eq!(wrapped(&app, t.id).await, keys_after);

    // Each step is in the platform trail.
    assert_eq!(app.platform_events("kek_rotated", 1).await.len(), 1);
    let rewrapped = app.platform_events("deks_rewrapped", 1).await;
    assert_eq!(rewrapped.len(), 1, "{rewrapped:?}");
    assert_eq!(rewrapped[0]["details"]["versions"], json!([1, 2]));
    assert_eq!(app.platform_events("kek_rewrap_finished", 2).await.len(), 2);
}
