//! The rotation guard (`crypto::rotation::rotate_and_reencrypt`): each data-key
//! rotation re-encrypts all of a tenant's encrypted data on shared workers, so
//! a rotation is refused while the previous one's re-encryption is queued or
//! running (409 `rotation_in_progress`, decided in the transaction that would
//! create the version: of concurrent rotations exactly one wins), and an owner
//! waits `encryption.owner_rotation_interval_ms` between rotations (429
//! `rotation_too_frequent` with `Retry-After`); platform admins do not.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{assert_problem, fresh_database, spawn_app_with, test_settings};

#[actix_web::test]
async fn a_rotation_waits_for_the_last_reencryption_and_owners_for_the_interval() {
    let mut settings = test_settings(&fresh_database().await);
    // This node runs no jobs: the re-encryption job stays queued until a
    // second node (below) runs it.
    settings.jobs.enabled = false;
    settings.encryption.owner_rotation_interval = Duration::from_secs(3600);
    let app = spawn_app_with(settings.clone()).await;
    let t = app.provision("rotation-guard").await;
    app.create_webhook(&t, json!({ "url": "http://127.0.0.1:9/hook" }))
        .await;
    let path = format!("/v1/tenants/{}/keys/rotate", t.id);

    // Four rotations at once, by the owner: one creates version 2 and its job;
    // the others see that job (or lose the race for the version and, retried,
    // see it) and are refused.
    let replies =
        futures_util::future::join_all((0..4).map(|_| app.post(&path, &t.owner_token, json!({}))))
            .await;
    let accepted: Vec<_> = replies.iter().filter(|r| r.status == 202).collect();
    assert_eq!(
        accepted.len(),
        1,
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let job = accepted[0].body["job_id"].as_str().unwrap().to_owned();
    for refused in replies.iter().filter(|r| r.status != 202) {
        assert_problem(refused, 409, "rotation_in_progress");
        assert!(
            refused.body["detail"].as_str().unwrap().contains(&job),
            "{}",
            refused.body
        );
    }
    // A platform admin is refused too while the job is queued.
    let admin = app.post(&path, &app.platform_token(), json!({})).await;
    assert_problem(&admin, 409, "rotation_in_progress");
    let keys = app
        .get(&format!("/v1/tenants/{}/keys", t.id), &t.owner_token)
        .await;
    assert_eq!(
        keys.body["versions"].as_array().unwrap().len(),
        2,
        "{}",
        keys.body
    );

    // Another node runs the job.
    let mut worker = settings.clone();
    worker.jobs.enabled = true;
    worker.jobs.poll_interval = Duration::from_millis(20);
    let _worker = spawn_app_with(worker).await;
    let mut state = json!(null);
    for _ in 0..300 {
        state = app
            .get(&format!("/v1/jobs/{job}"), &t.owner_token)
            .await
            .body["state"]
            .clone();
        if state == "succeeded" {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");

    // The owner rotated a moment ago: too soon, with when to come back.
    let soon = app.post(&path, &t.owner_token, json!({})).await;
    assert_problem(&soon, 429, "rotation_too_frequent");
    let retry_after: u64 = soon
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3000..=3600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    // A platform admin is not bound by the owners' interval.
    let admin = app.post(&path, &app.platform_token(), json!({})).await;
    assert_eq!(admin.status, 202, "{}", admin.body);
    assert_eq!(admin.body["version"], 3);
}
