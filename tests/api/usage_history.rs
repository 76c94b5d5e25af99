//! `GET /v1/usage/history`: hourly samples written off the request path from
//! the access log, the storage shards, the AI ledger and the jobs table; per
//! tenant; bounded ranges; folded into days; pruned past retention.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with, test_settings,
};

/// The current hour's bucket once `ready` holds for it, or after 15 s.
async fn current_bucket(app: &TestApp, token: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = app.get("/v1/usage/history", token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let last = reply.body["buckets"]
            .as_array()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or(Value::Null);
        if ready(&last) || std::time::Instant::now() > deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn the_sampler_records_each_tenants_requests_storage_and_jobs_per_hour() {
    let mut settings = test_settings(&fresh_database().await);
    settings.usage_history.sample_interval = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;
    let a = app.provision("hist-a").await;
    let b = app.provision("hist-b").await;
    let channel = app.create_channel(&a, "general").await;
    app.post_message(&a, channel, "twelve bytes").await;
    let (_, member) = app.add_user(&a, "member").await;
    for _ in 0..5 {
        let reply = app
            .get(&format!("/v1/channels/{channel}/messages"), &member)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // A tenant export is a background job of the tenant.
    let export = app
        .post("/v1/exports", &a.owner_token, json!({"scope": "tenant"}))
        .await;
    assert_eq!(export.status, 202, "{}", export.body);

    let usage = app.get("/v1/usage", &a.owner_token).await;
    let storage = usage.body["storage_bytes"].as_u64().unwrap();
    assert!(storage >= 12, "{}", usage.body);
    let bucket = current_bucket(&app, &a.owner_token, |b| {
        b["requests"].as_u64().unwrap_or(0) >= 5
            && b["jobs"].as_u64().unwrap_or(0) >= 1
            && b["storage_bytes"].as_u64() == Some(storage)
    })
    .await;
    assert!(bucket["requests"].as_u64().unwrap() >= 5, "{bucket}");
    assert!(bucket["jobs"].as_u64().unwrap() >= 1, "{bucket}");
    assert_eq!(bucket["storage_bytes"].as_u64(), Some(storage), "{bucket}");
    assert_eq!(bucket["ai_tokens"], 0, "{bucket}");
    let start: chrono::DateTime<chrono::Utc> = bucket["start"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        start,
        meridian::limits::history::hour_of(chrono::Utc::now()).min(start)
    );

    // Tenant B reads its own samples only (it stored nothing; its own
    // provisioning jobs and requests are its own).
    let b_bucket = current_bucket(&app, &b.owner_token, |b| !b.is_null()).await;
    assert_eq!(b_bucket["storage_bytes"], 0, "{b_bucket}");

    // Members have no usage permission (owners and admins do).
    assert_problem(
        &app.get("/v1/usage/history", &member).await,
        403,
        "forbidden",
    );
    let (_, admin) = app.add_user(&a, "admin").await;
    assert_eq!(app.get("/v1/usage/history", &admin).await.status, 200);
}

const SAMPLE: &str = "INSERT INTO usage_samples (tenant_id, bucket_start, home_region, requests,
        jobs, storage_bytes, ai_tokens, sampled_at)
      VALUES ($1, $2, 'us-east1', $3, $4, $5, 0, now())";

#[actix_web::test]
async fn ranges_are_bounded_days_fold_hours_and_old_samples_are_pruned() {
    let app = spawn_app().await;
    let t = app.provision("hist-range").await;
    let token = &t.owner_token;
    for query in [
        "?bucket=week",
        "?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
        "?from=2026-10-01T00:00:00Z&to=2026-11-01T01:00:00Z",
        "?bucket=day&from=2025-01-01T00:00:00Z&to=2026-11-01T00:00:00Z",
        "?from=yesterday",
    ] {
        let reply = app.get(&format!("/v1/usage/history{query}"), token).await;
        assert_problem(&reply, 400, "invalid_query");
    }

    let db = app.superuser_client().await;
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    for (hour, requests, jobs, storage) in [
        ("2026-11-01T10:00:00Z", 3i64, 1i64, 100i64),
        ("2026-11-01T23:00:00Z", 4, 0, 50),
        ("2026-11-02T00:00:00Z", 1, 2, 70),
        ("2020-01-01T00:00:00Z", 9, 9, 9),
    ] {
        db.execute(SAMPLE, &[&t.id, &at(hour), &requests, &jobs, &storage])
            .await
            .unwrap();
    }
    let hours = app
        .get(
            "/v1/usage/history?from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z",
            token,
        )
        .await;
    assert_eq!(hours.status, 200, "{}", hours.body);
    assert_eq!(hours.body["bucket"], "hour");
    assert_eq!(
        hours.body["buckets"].as_array().unwrap().len(),
        3,
        "{}",
        hours.body
    );
    let days = app
        .get(
            "/v1/usage/history?bucket=day&from=2026-11-01T05:00:00Z&to=2026-11-02T01:00:00Z",
            token,
        )
        .await;
    assert_eq!(days.status, 200, "{}", days.body);
    assert_eq!(days.body["from"], "2026-11-01T00:00:00Z");
    assert_eq!(days.body["to"], "2026-11-03T00:00:00Z");
    assert_eq!(
        days.body["buckets"],
        json!([
            {"start": "2026-11-01T00:00:00Z", "requests": 7, "jobs": 1, "storage_bytes": 50, "ai_tokens": 0},
            {"start": "2026-11-02T00:00:00Z", "requests": 1, "jobs": 2, "storage_bytes": 70, "ai_tokens": 0},
        ])
    );

    // Retention: the 2020 sample goes, the recent ones stay.
    let settings = test_settings(&app.db_name);
    let node_db = meridian::db::Database::connect(&settings.database).unwrap();
    let region = meridian::ids::RegionId::parse("us-east1").unwrap();
    let pruned = meridian::limits::history::prune(&node_db, &region, &settings.usage_history).await;
    let left: Vec<chrono::DateTime<chrono::Utc>> = db
        .query(
            "SELECT bucket_start FROM usage_samples WHERE tenant_id = $1 ORDER BY 1",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(pruned, 1);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter().all(|at| at.to_rfc3339().starts_with("2026")),
        "{left:?}"
    );
}

/// Regression of the security review of 2026-11-30: `prune_usage_samples` is a
/// definer function the service role may call with any cutoff. Given `now()`
/// it still keeps every sample of the last day (the shortest retention a node
/// accepts) and deletes only the older ones.
#[actix_web::test]
async fn the_prune_function_keeps_the_last_day_whatever_cutoff_it_is_given() {
    let app = spawn_app().await;
    let t = app.provision("hist-floor").await;
    let db = app.superuser_client().await;
    let now = chrono::Utc::now();
    let hour = |h: i64| meridian::limits::history::hour_of(now - chrono::TimeDelta::hours(h));
    // Not the current or the previous hour: the node's sampler may write those.
    for h in [3, 23, 26, 24 * 500] {
        db.execute(
            "INSERT INTO usage_samples (tenant_id, bucket_start, home_region, requests, jobs,
                    storage_bytes, ai_tokens, sampled_at)
             VALUES ($1, $2, 'us-east1', 1, 0, 0, 0, now())",
            &[&t.id, &hour(h)],
        )
        .await
        .unwrap();
    }
    let service = app.app_role_client().await;
    let deleted: i64 = service
        .query_one("SELECT prune_usage_samples('us-east1', now(), 1000)", &[])
        .await
        .unwrap()
        .get(0);
    let left: Vec<chrono::DateTime<chrono::Utc>> = db
        .query(
            "SELECT bucket_start FROM usage_samples WHERE tenant_id = $1 ORDER BY 1",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(deleted, 2, "left: {left:?}");
    assert!(
        left.contains(&hour(3)) && left.contains(&hour(23)),
        "{left:?}"
    );
    assert!(
        left.iter().all(|at| *at > now - chrono::TimeDelta::days(1)),
        "{left:?}"
    );
}
