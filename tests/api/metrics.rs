//! `/metrics` on the admin listener: request counts and latency by route, status
//! class and region, pool and directory figures, limit denials, and per-tenant
//! series bounded to the top N tenants.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with, test_settings,
};

/// One sample line of the OpenMetrics text: name, labels, value.
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").expect("label is key=\"value\"");
                    (key.to_owned(), value.trim_end_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("numeric sample value"),
            }
        })
        .collect()
}

/// Samples named `name` whose labels include all of `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The one sample matching, or 0 when there is none.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches {} series",
        found.len()
    );
    found.first().map_or(0.0, |s| s.value)
}

pub async fn scrape(app: &TestApp) -> Vec<Sample> {
    let mut response = app.client.get(&app.metrics_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let body = response.body().await.unwrap();
    parse(std::str::from_utf8(&body).unwrap())
}

async fn list_channels(app: &TestApp, tenant: &Tenant, times: usize) {
    for _ in 0..times {
        assert_eq!(
            app.get("/v1/channels", &tenant.owner_token).await.status,
            200
        );
    }
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status_on_the_admin_listener_only() {
    let app = spawn_app().await;
    let tenant = app.provision("metrics-acme").await;
    list_channels(&app, &tenant, 3).await;
    let missing = app
        .get(
            &format!("/v1/channels/{}", Uuid::new_v4()),
            &tenant.owner_token,
        )
        .await;
    assert_problem(&missing, 404, "not_found");

    // Not on the public listener.
    let public = app.get("/metrics", &app.platform_token()).await;
    assert_problem(&public, 404, "route_not_found");

    let samples = scrape(&app).await;
    let ok = [
        ("route", "/v1/channels"),
        ("method", "GET"),
        ("status_class", "2xx"),
    ];
    assert_eq!(value(&samples, "meridian_http_requests_total", &ok), 3.0);
    let with_region = [
        ("route", "/v1/channels"),
        ("status_class", "2xx"),
        ("region", "us-east1"),
    ];
    assert_eq!(
        value(&samples, "meridian_http_requests_total", &with_region),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "meridian_http_request_duration_seconds_count",
            &ok
        ),
        3.0
    );
    let not_found = [("route", "/v1/channels/{id}"), ("status_class", "4xx")];
    assert_eq!(
        value(&samples, "meridian_http_requests_total", &not_found),
        1.0
    );
    // The public /metrics attempt matched no route: one bounded label, not the path.
    let unmatched = [("route", "unmatched"), ("status_class", "4xx")];
    assert_eq!(
        value(&samples, "meridian_http_requests_total", &unmatched),
        1.0
    );

    // The four tenant requests were looked up in the cache (provisioning put it there).
    assert!(value(&samples, "meridian_directory_cache_hits_total", &[]) >= 4.0);
    assert_eq!(value(&samples, "meridian_db_pool_max", &[]), 8.0);
    assert!(value(&samples, "meridian_db_pool_wait_seconds_count", &[]) >= 4.0);
    let tenant_label = tenant.id.to_string();
    assert_eq!(
        value(
            &samples,
            "meridian_tenant_requests_total",
            &[("tenant", &tenant_label)]
        ),
        4.0
    );

    // The cache size is settled by the directory refresher (every 200 ms here).
    let mut entries = 0.0;
    for _ in 0..50 {
        entries = value(&scrape(&app).await, "meridian_directory_cache_entries", &[]);
        if entries >= 1.0 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(entries, 1.0, "the one tenant is in the directory cache");

    // Anything else on the admin listener is a JSON 404.
    let mut other = app
        .client
        .get(app.metrics_url.replace("/metrics", "/v1/channels"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let body: serde_json::Value = other.json().await.unwrap();
    assert_eq!(body["code"], "route_not_found");
}

#[actix_web::test]
async fn only_the_top_n_tenants_get_their_own_label() {
    let mut settings = test_settings(&fresh_database().await);
    settings.admin.top_tenants = 2;
    let app = spawn_app_with(settings).await;
    let mut tenants = Vec::new();
    for (slug, requests) in [("top-a", 6), ("top-b", 5), ("top-c", 2), ("top-d", 1)] {
        let tenant = app.provision(slug).await;
        list_channels(&app, &tenant, requests).await;
        tenants.push(tenant);
    }

    let samples = scrape(&app).await;
    let labelled: Vec<(String, f64)> = find(&samples, "meridian_tenant_requests_total", &[])
        .iter()
        .map(|s| (s.labels["tenant"].clone(), s.value))
        .collect();
    assert_eq!(
        labelled,
        vec![
            (tenants[0].id.to_string(), 6.0),
            (tenants[1].id.to_string(), 5.0)
        ]
    );
    assert_eq!(value(&samples, "meridian_tenant_requests_other", &[]), 3.0);
    assert_eq!(value(&samples, "meridian_tenants_seen", &[]), 4.0);
}

#[actix_web::test]
async fn limit_denials_are_counted_by_kind_and_tenant() {
    let app = spawn_app().await;
    let tenant = app.provision("metrics-limited").await;
    let reply = app
        .patch(
            &format!("/v1/tenants/{}", tenant.id),
            &app.platform_token(),
            json!({ "limits": { "requests_per_second": 1, "burst": 2 } }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut refused = 0;
    for _ in 0..6 {
        if app.get("/v1/channels", &tenant.owner_token).await.status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 3, "only {refused} of 6 requests were refused");

    let samples = scrape(&app).await;
    let tenant_label = tenant.id.to_string();
    assert_eq!(
        value(
            &samples,
            "meridian_limit_denials_total",
            &[("kind", "rate_limited")]
        ),
        f64::from(refused)
    );
    assert_eq!(
        value(
            &samples,
            "meridian_tenant_limit_denials_total",
            &[("tenant", &tenant_label), ("kind", "rate_limited")]
        ),
        f64::from(refused)
    );
    assert_eq!(
        value(
            &samples,
            "meridian_http_requests_total",
            &[("route", "/v1/channels"), ("status_class", "4xx")]
        ),
        f64::from(refused)
    );
}
