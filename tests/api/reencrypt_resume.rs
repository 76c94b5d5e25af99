//! A re-encryption interrupted for real (issue 15 §3): the worker running the
//! `keys.reencrypt` job dies mid-run — its task is torn down between two
//! awaits, so its open batch transaction is cut off with its connection and
//! its lease is never renewed nor released — and another node's worker, once
//! the lease has expired, finishes the job. Every message is then under the
//! new version and reads back as written, none was lost or sealed twice (each
//! row counted once in `rewritten`), reads succeed in the middle of the run,
//! and the old version is marked drained only at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian::crypto::keyring::Keyring;
use meridian::crypto::provider::LocalFileProvider;
use meridian::crypto::rotation::{REENCRYPT_KIND, Reencrypt};
use meridian::crypto::seal_messages::SealMessages;
use meridian::db::Database;
use meridian::ids::RegionId;
use meridian::jobs::{JobContext, JobError, JobHandler, JobSettings, Registry, WorkerPool};
use meridian::tenancy::Directory;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, cluster, fresh_database, regions_dir, spawn_app_with, test_settings,
};

const ROWS: usize = 120;
const BATCH: u32 = 3;

/// The real re-encryption handler, on a worker that dies when told to: the
/// run is dropped where it stands (as a killed process would leave it) and the
/// task ends without recording anything.
struct Dying {
    inner: Reencrypt,
    kill: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait(?Send)]
impl JobHandler for Dying {
    fn kind(&self) -> &'static str {
        REENCRYPT_KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        tokio::select! {
            done = self.inner.run(ctx, payload) => done,
            _ = self.kill.notified() => panic!("worker killed in the middle of the job (test)"),
        }
    }
}

/// A worker pool ("node") on the test's database, running `reencrypt`.
fn node(db: &Database, keyring: &Arc<Keyring>, reencrypt: impl JobHandler) -> Arc<WorkerPool> {
    let registry = Registry::default().with(reencrypt).with(SealMessages {
        keyring: keyring.clone(),
        batch: BATCH,
    });
    let settings = JobSettings {
        enabled: true,
        workers: 2,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(1),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        platform_concurrent: 1,
        shutdown_grace: Duration::from_secs(1),
    };
    WorkerPool::new(
        db.clone(),
        Directory::new(db.clone(), 1_000),
        RegionId::parse("us-east1").unwrap(),
        registry,
        settings,
        Default::default(),
    )
}

/// Messages of the tenant whose body is sealed under `version`.
async fn under(db: &tokio_postgres::Client, tenant: Uuid, version: u32) -> i64 {
    let mut header = vec![1u8];
    header.extend_from_slice(&version.to_be_bytes());
    db.query_one(
        "SELECT count(*) FROM messages WHERE tenant_id = $1
           AND substring(body_enc FROM 1 FOR 5) = $2",
        &[&tenant, &header],
    )
    .await
    .unwrap()
    .get(0)
}

/// (state, attempts) of the job.
async fn job_state(db: &tokio_postgres::Client, job: Uuid) -> (String, i32) {
    let row = db
        .query_one("SELECT state, attempts FROM jobs WHERE id = $1", &[&job])
        .await
        .unwrap();
    (row.get(0), row.get(1))
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
async fn a_reencryption_whose_worker_dies_is_finished_by_another_node() {
    let mut settings = test_settings(&fresh_database().await);
    // Only the two pools below run jobs.
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings.clone()).await;
    let db = Database::connect(&settings.database).unwrap();
    let provider = LocalFileProvider::ensure(&cluster().kek_file, &["apac", "eu", "us"]).unwrap();
    let topology = meridian::topology::Topology::load(&regions_dir()).unwrap();
    let keyring = Arc::new(Keyring::new(
        Arc::new(provider),
        Arc::new(topology),
        &settings.encryption,
    ));

    let t = app.provision("reencrypt-crash").await;
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
    for i in 0..ROWS {
        let body = format!("message {i} of the crash test");
        messages.push((app.post_message(&t, channel, &body).await, body));
    }
    let su = app.superuser_client().await;
    assert_eq!(under(&su, t.id, 1).await, ROWS as i64);

    let rotated = app
        .post(
            &format!("/v1/tenants/{}/keys/rotate", t.id),
            &app.platform_token(),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 202, "{}", rotated.body);
    let job: Uuid = rotated.body["job_id"].as_str().unwrap().parse().unwrap();

    // Node A starts the job; once a few batches are in, it dies.
    let kill = Arc::new(tokio::sync::Notify::new());
    let a = node(
        &db,
        &keyring,
        Dying {
            inner: Reencrypt {
                keyring: keyring.clone(),
                batch: BATCH,
            },
            kill: kill.clone(),
        },
    );
    let started = Instant::now();
    loop {
        a.poll_once().await.unwrap();
        if under(&su, t.id, 2).await >= 15 {
            kill.notify_one();
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "node A never progressed"
        );
        actix_web::rt::time::sleep(Duration::from_millis(2)).await;
    }
    // Let the kill land (the task unwinds at its current await).
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let at_kill = under(&su, t.id, 2).await;
    assert!(
        (15..ROWS as i64).contains(&at_kill),
        "the kill must land mid-run: {at_kill} of {ROWS} re-encrypted"
    );
    let (state, attempts) = job_state(&su, job).await;
    assert_eq!(
        (state.as_str(), attempts),
        ("running", 1),
        "A's lease is still held"
    );
    // Nothing moves while A is dead.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        under(&su, t.id, 2).await,
        at_kill,
        "a dead worker made progress"
    );

    // In the middle: both versions at rest, every message reads, the old
    // version is retired but not drained.
    assert_eq!(under(&su, t.id, 1).await + at_kill, ROWS as i64);
    read_all(&app, &t.owner_token, channel, &messages).await;
    let keys = app
        .get(&format!("/v1/tenants/{}/keys", t.id), &t.owner_token)
        .await;
    assert_eq!(
        keys.body["versions"][0]["state"], "retired",
        "{}",
        keys.body
    );
    assert!(
        keys.body["versions"][0]["drained_at"].is_null(),
        "{}",
        keys.body
    );
    assert_eq!(
        keys.body["pending_reencryption"],
        ROWS as i64 - at_kill,
        "{}",
        keys.body
    );

    // Node B takes the job over once A's lease has expired, and finishes it.
    let b = node(
        &db,
        &keyring,
        Reencrypt {
            keyring: keyring.clone(),
            batch: BATCH,
        },
    );
    let started = Instant::now();
    while job_state(&su, job).await.0 != "succeeded" {
        b.expire_leases().await.unwrap();
        b.poll_once().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "node B did not finish: {:?}",
            job_state(&su, job).await
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(job_state(&su, job).await, ("succeeded".to_owned(), 2));
    assert_eq!(under(&su, t.id, 2).await, ROWS as i64);
    read_all(&app, &t.owner_token, channel, &messages).await;
    let keys = app
        .get(&format!("/v1/tenants/{}/keys", t.id), &t.owner_token)
        .await;
    // Each message re-sealed exactly once over both runs: the batch cut off
    // with node A rolled back together with its count.
    assert_eq!(
        keys.body["versions"][1]["rewritten"], ROWS as i64,
        "{}",
        keys.body
    );
    assert_eq!(keys.body["pending_reencryption"], 0, "{}", keys.body);
    assert!(
        keys.body["versions"][0]["drained_at"].is_string(),
        "{}",
        keys.body
    );
}
