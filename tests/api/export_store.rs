//! The export store's two backends (`compliance::storage`): the same operations
//! against a directory and against a real local S3 (moto, as for KMS:
//! `tests/api/kms.rs`), and a node on the S3 store building, serving (with
//! Range) and sweeping an export end to end. The node takes its AWS
//! credentials from the environment, which a test cannot set for its own
//! process, so that part runs in a child process (`s3_export_node_child`).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use meridian::compliance::storage::{ExportStorage, S3Settings};
use meridian::compliance::{ExportSettings, StoreKind};
use meridian::ids::{RegionId, TenantId};
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::kms::{Moto, SECRET, moto_bin, run_child_with_aws_env};

const BUCKET: &str = "meridian-test-exports";

/// A directory of its own, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("meridian-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn credentials() -> Credentials {
    Credentials::new("AKIDMERIDIANTEST", SECRET, None, None, "meridian-tests")
}

/// The bucket on `endpoint`, as the nodes of a region see it.
fn s3_settings(endpoint: &str) -> S3Settings {
    S3Settings {
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.into()),
        force_path_style: true,
        // The smallest part S3 takes: a 12 MiB object goes up in three.
        part_size_mib: 5,
    }
}

/// Makes the bucket, as terraform does (`terraform/modules/region/exports.tf`).
async fn make_bucket(endpoint: &str) {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials())
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("CreateBucket on moto");
}

async fn read_from(store: &ExportStorage, key: &str, offset: u64) -> Vec<u8> {
    let mut reader = store.open_at(key, offset).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}

/// Files left under `dir` (spool files of the S3 store, or the dir store's).
fn files_under(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// Create/commit (multipart above a part, a single put below, an empty
/// object), reads from any offset, removal, and a tenant's prefix removed
/// without touching another tenant's objects: the same on both backends.
async fn exercise(store: &ExportStorage, spool: &Path) {
    let region = RegionId::parse("us-east1").unwrap();
    let (a, b) = (TenantId::new_random(), TenantId::new_random());
    let big: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let keys = [
        ExportStorage::key(&region, a, uuid::Uuid::new_v4(), 1),
        ExportStorage::key(&region, a, uuid::Uuid::new_v4(), 1),
        ExportStorage::key(&region, b, uuid::Uuid::new_v4(), 1),
    ];
    let bodies: [&[u8]; 3] = [&big, b"", b"tenant b's archive"];
    for (key, body) in keys.iter().zip(bodies) {
        let mut upload = store.create(key).unwrap();
        upload.write_all(body).unwrap();
        assert!(!store.exists(key).await.unwrap(), "visible before commit");
        upload.commit().await.unwrap();
        assert!(store.exists(key).await.unwrap());
    }
    assert_eq!(read_from(store, &keys[0], 0).await, big);
    let offset = 7 * 1024 * 1024 + 13;
    assert_eq!(
        read_from(store, &keys[0], offset).await,
        big[offset as usize..]
    );
    assert_eq!(read_from(store, &keys[1], 0).await, b"");
    let missing = store
        .open_at(&ExportStorage::key(&region, a, uuid::Uuid::new_v4(), 1), 0)
        .await;
    assert_eq!(
        missing.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound)
    );

    store.remove_tenant(&region, a).await.unwrap();
    assert!(!store.exists(&keys[0]).await.unwrap());
    assert!(!store.exists(&keys[1]).await.unwrap());
    assert_eq!(read_from(store, &keys[2], 0).await, b"tenant b's archive");
    store.remove(&keys[2]).await.unwrap();
    assert!(!store.exists(&keys[2]).await.unwrap());
    // Removing what is gone is no error (the sweep may run twice).
    store.remove(&keys[2]).await.unwrap();
    store.remove_tenant(&region, a).await.unwrap();
    // Keys that could leave the root or name another prefix are refused.
    for bad in ["../x", "us-east1//x", "us-east1/./x"] {
        assert!(store.create(bad).is_err(), "{bad}");
        assert!(store.remove(bad).await.is_err(), "{bad}");
    }
    assert_eq!(files_under(spool), 0, "spool or partial files left behind");
}

#[actix_web::test]
async fn both_stores_commit_read_at_offsets_and_remove_a_tenant() {
    let dir = TempDir::new();
    let settings = ExportSettings {
        dir: dir.path().join("store"),
        ..ExportSettings::default()
    };
    let store = settings.storage(None);
    exercise(&store, &dir.path().join("store").join(".spool")).await;

    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin);
    make_bucket(&moto.endpoint).await;
    let spool = TempDir::new();
    let settings = ExportSettings {
        store: StoreKind::S3,
        dir: spool.path().to_owned(),
        s3: s3_settings(&moto.endpoint),
        ..ExportSettings::default()
    };
    settings.validate().unwrap();
    let store = settings.storage(Some(credentials()));
    store.check().await.unwrap();
    exercise(&store, spool.path()).await;

    // A bucket that is not there: the start-up check says so.
    let mut wrong = settings.clone();
    wrong.s3.bucket = "no-such-bucket".into();
    let err = wrong
        .storage(Some(credentials()))
        .check()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
}

#[test]
fn the_s3_store_needs_a_bucket_and_a_sane_part_size() {
    let mut settings = ExportSettings {
        store: StoreKind::S3,
        ..ExportSettings::default()
    };
    assert!(
        settings
            .validate()
            .unwrap_err()
            .contains("exports.s3.bucket")
    );
    settings.s3 = s3_settings("http://127.0.0.1:1");
    settings.validate().unwrap();
    settings.s3.part_size_mib = 4;
    assert!(settings.validate().unwrap_err().contains("part_size_mib"));
}

/// A node with `exports.store = "s3"` (child process: see the module doc).
#[actix_web::test]
async fn a_node_on_the_s3_store_builds_serves_and_sweeps_an_export() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin);
    make_bucket(&moto.endpoint).await;
    run_child_with_aws_env(
        "export_store::s3_export_node_child",
        &[("MERIDIAN_TEST_S3_ENDPOINT", moto.endpoint.as_str())],
    );
}

/// Run only by the test above, with AWS credentials in its environment.
#[actix_web::test]
#[ignore = "run by a_node_on_the_s3_store_builds_serves_and_sweeps_an_export"]
async fn s3_export_node_child() {
    use crate::exports::{download, finished, request};
    let endpoint = std::env::var("MERIDIAN_TEST_S3_ENDPOINT").expect("run by the parent test");
    let mut settings = crate::helpers::test_settings(&crate::helpers::fresh_database().await);
    let spool = TempDir::new();
    settings.exports.store = StoreKind::S3;
    settings.exports.dir = spool.path().to_owned();
    settings.exports.s3 = s3_settings(&endpoint);
    settings.exports.ttl = Duration::from_secs(3);
    settings.exports.sweep_interval = Duration::from_millis(500);
    settings.jobs.poll_interval = Duration::from_millis(100);
    let store = settings.exports.storage(None);
    let app = crate::helpers::spawn_app_with(settings).await;
    let t = app.provision("s3-export").await;
    let channel = app.create_channel(&t, "bulk").await;
    for i in 0..20 {
        app.post_message(&t, channel, &format!("stored in the bucket {i}"))
            .await;
    }
    let id = request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    let export = finished(&app, &t.owner_token, id).await;
    assert_eq!(export["state"], "ready", "{export}");
    let whole = download(&app, &t.owner_token, id, None).await;
    assert_eq!(whole.status, 200);
    let files = crate::exports::unzip(&whole.bytes);
    assert_eq!(files["messages.ndjson"].lines().count(), 20);
    let tail = download(&app, &t.owner_token, id, Some("bytes=100-")).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.bytes, whole.bytes[100..]);
    // Stored in the bucket under the region/tenant prefix, nothing spooled left.
    let key: String = app
        .superuser_client()
        .await
        .query_one("SELECT object_key FROM exports WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(key.starts_with(&format!("us-east1/{}/", t.id)), "{key}");
    assert!(store.exists(&key).await.unwrap(), "{key} not in the bucket");
    assert_eq!(files_under(spool.path()), 0);
    // Expiry: the sweep deletes the object.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.exists(&key).await.unwrap() && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!store.exists(&key).await.unwrap(), "the sweep left {key}");
}
