//! `GET /v1/regions/{id}/top-tenants`: a region's tenants ranked by requests,
//! jobs, storage or AI tokens over the last hours, from real hourly samples in
//! `usage_samples` (V29) read through `top_tenants` (V32); its bounds; who may
//! call it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, fresh_database, spawn_app_with, test_settings};
use crate::operator::operator_token;

/// Writes one hourly sample of `tenant` `hours_ago` hours before this hour.
async fn sample(app: &TestApp, tenant: Uuid, hours_ago: i64, figures: [i64; 4]) {
    let hour: DateTime<Utc> = meridian::limits::history::hour_of(Utc::now());
    let at = hour - TimeDelta::hours(hours_ago);
    let [requests, jobs, storage, ai] = figures;
    app.superuser_client()
        .await
        .execute(
            "INSERT INTO usage_samples (tenant_id, bucket_start, home_region, requests, jobs,
                                        storage_bytes, ai_tokens, sampled_at)
             VALUES ($1, $2, 'us-east1', $3, $4, $5, $6, now())",
            &[&tenant, &at, &requests, &jobs, &storage, &ai],
        )
        .await
        .unwrap();
}

/// The slugs in the answer, in its order.
fn slugs(reply: &Value) -> Vec<&str> {
    reply["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {reply}"))
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect()
}

#[actix_web::test]
async fn top_tenants_ranks_a_regions_samples_in_the_window() {
    // The sampler's first pass runs at start, before the tenants exist; the
    // next one is 30 minutes away: the samples are the ones written here.
    let mut settings = test_settings(&fresh_database().await);
    settings.usage_history.sample_interval = Duration::from_secs(1800);
    let app = spawn_app_with(settings).await;
    let admin = app.platform_token();
    let a = app.provision("top-a").await;
    let b = app.provision("top-b").await;
    let c = app.provision("top-c").await;
    // [requests, jobs, storage bytes, AI tokens] per hour.
    sample(&app, a.id, 2, [100, 1, 10, 5]).await;
    sample(&app, a.id, 3, [50, 0, 20, 4]).await;
    sample(&app, b.id, 4, [300, 0, 5, 50]).await;
    sample(&app, c.id, 2, [10, 7, 1000, 0]).await;
    // Outside a 24-hour window, inside a 48-hour one.
    sample(&app, c.id, 30, [10_000, 0, 0, 0]).await;

    let top = app.get("/v1/regions/us-east1/top-tenants", &admin).await;
    assert_eq!(top.status, 200, "{}", top.body);
    assert_eq!(top.body["by"], "requests");
    assert_eq!(top.body["region"], "us-east1");
    let from: DateTime<Utc> = top.body["from"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        from,
        meridian::limits::history::hour_of(Utc::now()) - TimeDelta::hours(23)
    );
    assert_eq!(slugs(&top.body), ["top-b", "top-a", "top-c"]);
    let first_a = &top.body["items"][1];
    assert_eq!(first_a["id"], a.id.to_string());
    assert_eq!(first_a["home_region"], "us-east1");
    // Counters summed over the hours, gauges at their highest.
    assert_eq!(
        (
            &first_a["requests"],
            &first_a["jobs"],
            &first_a["storage_bytes"],
            &first_a["ai_tokens"]
        ),
        (&json!(150), &json!(1), &json!(20), &json!(5)),
        "{}",
        top.body
    );
    // The reduced view: no name or plan.
    assert!(first_a.get("name").is_none() && first_a.get("plan").is_none());

    for (by, order) in [
        ("jobs", ["top-c", "top-a", "top-b"]),
        ("storage", ["top-c", "top-a", "top-b"]),
        ("ai_tokens", ["top-b", "top-a", "top-c"]),
    ] {
        let top = app
            .get(&format!("/v1/regions/us-east1/top-tenants?by={by}"), &admin)
            .await;
        assert_eq!(top.status, 200, "{}", top.body);
        assert_eq!(slugs(&top.body), order, "by {by}: {}", top.body);
    }
    let wide = app
        .get("/v1/regions/us-east1/top-tenants?hours=48&limit=2", &admin)
        .await;
    assert_eq!(slugs(&wide.body), ["top-c", "top-b"], "{}", wide.body);
    assert_eq!(wide.body["items"][0]["requests"], 10_010);
    // Another region's tenants only: none of these.
    let eu = app
        .get("/v1/regions/europe-west1/top-tenants", &admin)
        .await;
    assert_eq!(eu.status, 200, "{}", eu.body);
    assert_eq!(eu.body["items"], json!([]));

    // Operators run the regions: the same view. Tenant users are refused.
    let operator = app
        .get("/v1/regions/us-east1/top-tenants", &operator_token(&app))
        .await;
    assert_eq!(operator.status, 200, "{}", operator.body);
    assert_eq!(operator.body["items"], top_by_requests(&app, &admin).await);
    assert_problem(
        &app.get("/v1/regions/us-east1/top-tenants", &a.owner_token)
            .await,
        403,
        "forbidden",
    );

    // Bounds.
    for query in ["hours=0", "hours=745", "limit=0", "limit=201", "by=bytes"] {
        assert_problem(
            &app.get(&format!("/v1/regions/us-east1/top-tenants?{query}"), &admin)
                .await,
            400,
            "invalid_query",
        );
    }
    assert_eq!(
        app.get(
            "/v1/regions/us-east1/top-tenants?hours=744&limit=200",
            &admin
        )
        .await
        .status,
        200
    );
    assert_problem(
        &app.get("/v1/regions/mars-north1/top-tenants", &admin).await,
        404,
        "not_found",
    );
}

async fn top_by_requests(app: &TestApp, token: &str) -> Value {
    app.get("/v1/regions/us-east1/top-tenants", token)
        .await
        .body["items"]
        .clone()
}
