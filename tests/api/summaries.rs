//! Channel summaries: 202 and a job, the extractive engine's result stored with
//! the tenant's rows, the AI ledger charged exactly what the engine read, and a
//! tenant over its monthly cap refused up front with nothing run.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, assert_problem, spawn_app};

/// Asks for a summary of `channel`; its id.
pub async fn request(app: &TestApp, tenant: &Tenant, channel: Uuid) -> Uuid {
    let reply = app
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &tenant.owner_token,
            json!({"max_sentences": 2}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.body["id"].as_str().unwrap().parse().unwrap()
}

/// Asks for a summary of `channel` with `max_sentences` and waits (up to 30 s)
/// until its job ended; the summary as `GET` shows it then.
pub async fn summarised(
    app: &TestApp,
    tenant: &Tenant,
    channel: Uuid,
    max_sentences: u32,
) -> Value {
    let reply = app
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &tenant.owner_token,
            json!({ "max_sentences": max_sentences }),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let location = reply
        .headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut summary = Value::Null;
    for _ in 0..300 {
        summary = app.get(&location, &tenant.owner_token).await.body;
        if summary["state"] == "succeeded" || summary["state"] == "failed" {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    summary
}

const THREAD: &[&str] = &[
    "Morning all!",
    "The database migration for the billing service is scheduled for Thursday night.",
    "ok",
    "Who owns the rollback plan for the billing migration? We need one before Thursday.",
    "I can write the rollback plan for the billing database migration today.",
    "lunch anyone?",
    "Please also check that the billing service alerts page the on-call during the migration.",
];

#[actix_web::test]
async fn a_summary_is_made_by_a_job_and_charged_exactly_to_the_ledger() {
    let app = spawn_app().await;
    let t = app.provision("summarised").await;
    let channel = app.create_channel(&t, "ops").await;
    for line in THREAD {
        app.post_message(&t, channel, line).await;
    }
    let summary = summarised(&app, &t, channel, 3).await;
    assert_eq!(summary["state"], "succeeded", "{summary}");
    let sentences = summary["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 3);
    for s in sentences {
        assert!(s["text"].as_str().unwrap().contains("migration"), "{s}");
    }
    assert!(!summary["summary"].as_str().unwrap().contains("lunch"));
    // Exact ledger: committed = tokens read, nothing left held.
    let tokens: i64 = THREAD
        .iter()
        .map(|l| meridian::summaries::extractive::tokens(l).len() as i64)
        .sum();
    assert_eq!(summary["tokens_used"], tokens);
    let db = app.superuser_client().await;
    let row = db
        .query_one(
            "SELECT used, reserved FROM ai_usage WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (tokens, 0));
    let settled: String = db
        .query_one(
            "SELECT status FROM ai_reservations WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(settled, "committed");
    // Stored with the tenant's rows, homed.
    let region: String = db
        .query_one(
            "SELECT home_region FROM channel_summaries WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(region, "us-east1");
}

#[actix_web::test]
async fn over_the_monthly_cap_the_request_is_refused_and_nothing_runs() {
    let app = spawn_app().await;
    let t = app.provision("spent").await;
    let channel = app.create_channel(&t, "ops").await;
    app.post_message(&t, channel, THREAD[1]).await;
    let cap = app
        .get(&format!("/v1/tenants/{}", t.id), &t.owner_token)
        .await
        .body["limits"]["ai_tokens_per_month"]
        .as_i64()
        .unwrap();
    let db = app.superuser_client().await;
    db.execute(
        "INSERT INTO ai_usage (tenant_id, month, home_region, used) VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 'us-east1', $2)",
        &[&t.id, &cap],
    )
    .await
    .unwrap();
    let reply = app
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_problem(&reply, 403, "ai_quota_exceeded");
    let (summaries, jobs): (i64, i64) = {
        let row = db
            .query_one(
                "SELECT (SELECT count(*) FROM channel_summaries WHERE tenant_id = $1), (SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = 'summary.create')",
                &[&t.id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((summaries, jobs), (0, 0));
    // Bad input is a 400, not a job.
    let bad = app
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &t.owner_token,
            json!({"max_sentences": 0}),
        )
        .await;
    assert_problem(&bad, 400, "validation_failed");
}
