//! Regressions of the security review of 2026-11-30: protective work queued as a
//! job cannot be stopped by the tenant's job managers. `POST /v1/jobs/{id}/cancel`
//! is for owners and admins; an admin may not ask for a user's erasure or a
//! tenant export (compliance officers and owners do), nor rotate the data key
//! after a platform admin did, so cancelling the job that carries such a
//! decision must not undo it either.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, fresh_database, spawn_app_with, test_settings};

fn job_of(reply: &crate::helpers::Reply) -> Uuid {
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.body["job_id"].as_str().unwrap().parse().unwrap()
}

async fn state_of(app: &TestApp, job: Uuid, token: &str) -> String {
    let reply = app.get(&format!("/v1/jobs/{job}"), token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["state"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn job_managers_cannot_cancel_erasures_exports_or_re_encryptions() {
    // No worker: every job stays queued, so a cancel is decided on its kind only.
    let mut settings = test_settings(&fresh_database().await);
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings).await;
    let t = app.provision("protected-jobs").await;
    let (_, admin) = app.add_user(&t, "admin").await;
    let (_, compliance) = app.add_user(&t, "compliance").await;
    let (member, _) = app.add_user(&t, "member").await;

    let erasure = job_of(
        &app.post(
            &format!("/v1/users/{member}/erasure"),
            &compliance,
            json!(null),
        )
        .await,
    );
    let export = job_of(
        &app.post("/v1/exports", &compliance, json!({"scope": "tenant"}))
            .await,
    );
    let reencrypt = job_of(
        &app.post(
            &format!("/v1/tenants/{}/keys/rotate", t.id),
            &app.platform_token(),
            json!(null),
        )
        .await,
    );
    for job in [erasure, export, reencrypt] {
        for token in [&admin, &t.owner_token] {
            let reply = app
                .post(&format!("/v1/jobs/{job}/cancel"), token, json!(null))
                .await;
            assert_problem(&reply, 403, "forbidden");
            assert_eq!(state_of(&app, job, &admin).await, "queued", "{job}");
        }
    }
    // The tenant's own optional work stays cancellable: a summary a member asked for.
    let channel = app.create_channel(&t, "general").await;
    let job = job_of(
        &app.post(
            &format!("/v1/channels/{channel}/summaries"),
            &t.owner_token,
            json!({"max_sentences": 2}),
        )
        .await,
    );
    let reply = app
        .post(&format!("/v1/jobs/{job}/cancel"), &admin, json!(null))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["state"], "cancelled");
    // Another tenant's protected job is still a 404, not a 403.
    let other = app.provision("protected-jobs-b").await;
    let reply = app
        .post(
            &format!("/v1/jobs/{erasure}/cancel"),
            &other.owner_token,
            json!(null),
        )
        .await;
    assert_problem(&reply, 404, "not_found");
}
