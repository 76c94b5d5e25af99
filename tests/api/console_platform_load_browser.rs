//! The platform view's load pages in a real headless Chromium, signed in
//! through the platform's provider as `console_platform_browser.rs` does: a
//! platform admin sees the top tenants of a region in the order `GET
//! /v1/regions/{id}/top-tenants` gives, with a tenant the test made busy
//! (real member requests, sampled by the real `sample_usage` into
//! `usage_samples`) first; an operator has the page too. And an accessibility
//! scan (axe-core, `axe.rs`) of the platform pages: region map, drain preview,
//! tenants, the "View as…" form, a tenant's quotas, top tenants, the "New
//! tenant" form (serious or critical violations fail).

use chrono::{TimeDelta, Utc};
use fantoccini::Locator;
use serde_json::json;

use crate::browser::Browser;
use crate::console_platform_browser::{
    only_the_node_and_no_csp_violation, screenshot, setup, sign_in,
};
use crate::helpers::TestApp;
use crate::regions::provision_in;

/// `n` member requests of the tenant whose owner holds `token`.
async fn busy(app: &TestApp, token: &str, n: usize) {
    for _ in 0..n {
        let reply = app.get("/v1/channels", token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

/// Runs the sampler's own statement for us-east1's current hour (the node's
/// sampler runs every 5 minutes; the test does not wait for it).
async fn sample_now(app: &TestApp) {
    let hour = meridian::limits::history::hour_of(Utc::now());
    let end = hour + TimeDelta::hours(1);
    let (lo, hi) = (
        meridian::limits::history::v7_floor(hour),
        meridian::limits::history::v7_floor(end),
    );
    app.superuser_client()
        .await
        .query_one(
            "SELECT sample_usage('us-east1', $1, $2, $3, $4, true)",
            &[&hour, &end, &lo, &hi],
        )
        .await
        .unwrap();
}

/// The slugs of the API's answer, in its order, with their requests.
async fn api_order(app: &TestApp) -> Vec<(String, u64)> {
    let top = app
        .get(
            "/v1/regions/us-east1/top-tenants?by=requests&hours=24&limit=20",
            &app.platform_token(),
        )
        .await;
    assert_eq!(top.status, 200, "{}", top.body);
    top.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["slug"].as_str().unwrap().to_owned(),
                t["requests"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The slugs of the page's table, top to bottom.
async fn page_order(browser: &Browser) -> Vec<String> {
    let mut slugs = Vec::new();
    for cell in browser
        .client
        .find_all(Locator::Css("#top-list tbody tr td:nth-child(2)"))
        .await
        .unwrap()
    {
        slugs.push(cell.text().await.unwrap());
    }
    slugs
}

#[actix_web::test]
async fn top_tenants_show_the_apis_order_with_the_busy_tenant_first() {
    let Some((mock, app, _nodes)) = setup().await else {
        return;
    };
    let (_, busy_owner) = provision_in(&app, "top-busy", "us-east1", None).await;
    let (_, some_owner) = provision_in(&app, "top-some", "us-east1", None).await;
    let (_, idle_owner) = provision_in(&app, "top-quiet", "us-east1", None).await;
    busy(&app, &busy_owner, 30).await;
    busy(&app, &some_owner, 8).await;
    busy(&app, &idle_owner, 2).await;
    // The access log reaches the database a flush (1 s) after the requests:
    // sample until the hour has all of them.
    let made = [("top-busy", 30), ("top-some", 8), ("top-quiet", 2)];
    let made: Vec<(String, u64)> = made.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let ranked = loop {
        sample_now(&app).await;
        let ranked = api_order(&app).await;
        if ranked == made || std::time::Instant::now() > deadline {
            break ranked;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(ranked, made);
    let order: Vec<String> = ranked.into_iter().map(|(slug, _)| slug).collect();

    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "root", "platform_admin").await;
    let nav = browser.wait_for("#nav").await.text().await.unwrap();
    assert!(nav.contains("Top tenants"), "{nav}");
    browser
        .client
        .goto(&format!("{}/console/#/platform/top", app.base))
        .await
        .unwrap();
    let caption = browser.wait_for_text("#top-list", "top-busy").await;
    assert!(caption.contains("by requests"), "{caption}");
    assert_eq!(page_order(&browser).await, order);
    let first = browser
        .wait_for("#top-list tbody tr")
        .await
        .text()
        .await
        .unwrap();
    let api = app
        .get("/v1/regions/us-east1/top-tenants", &app.platform_token())
        .await;
    let requests = api.body["items"][0]["requests"].to_string();
    assert!(
        first.contains("top-busy") && first.contains(&requests),
        "{first} vs {}",
        api.body
    );
    screenshot(&browser, "top-tenants").await;

    // Another region: nothing of these tenants.
    browser
        .client
        .find(Locator::Css("#top-region option[value='europe-west1']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("#top-submit").await.click().await.unwrap();
    browser
        .wait_for_text("#top-list", "No tenant of europe-west1")
        .await;

    only_the_node_and_no_csp_violation(&browser, &app).await;
    browser.close().await;

    // An operator has the page (the reduced view: slugs and counters).
    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "ops", "operator").await;
    let nav = browser.wait_for("#nav").await.text().await.unwrap();
    assert!(nav.contains("Top tenants"), "{nav}");
    browser
        .client
        .goto(&format!("{}/console/#/platform/top", app.base))
        .await
        .unwrap();
    browser.wait_for_text("#top-list", "top-busy").await;
    assert_eq!(page_order(&browser).await, order);
    browser.close().await;
}

/// axe's serious and critical violations of the platform page at `hash` once
/// `ready` is on it, each prefixed with the page.
async fn scan(browser: &Browser, app: &TestApp, axe: &str, hash: &str, ready: &str) -> Vec<String> {
    browser
        .client
        .goto(&format!("{}/console/{hash}", app.base))
        .await
        .unwrap();
    browser.wait_for(ready).await;
    crate::axe::serious_violations(browser, axe)
        .await
        .into_iter()
        .map(|v| format!("{hash}: {v}"))
        .collect()
}

#[actix_web::test]
async fn the_platform_pages_have_no_serious_accessibility_violation() {
    let Some((mock, app, _nodes)) = setup().await else {
        return;
    };
    let Some(axe) = crate::axe::source() else {
        return;
    };
    let eu = json!({ "jurisdiction": "eu" });
    provision_in(&app, "axe-paris", "europe-west1", Some(eu)).await;
    let (_, owner) = provision_in(&app, "axe-ohio", "us-east1", None).await;
    busy(&app, &owner, 3).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    sample_now(&app).await;

    // An operator: the region map, a drain's preview (not confirmed), top tenants.
    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "ops", "operator").await;
    let mut found = scan(&browser, &app, &axe, "#/platform/regions", "#region-map").await;
    browser
        .wait_for("button.drain[data-region='europe-west1']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#drain-panel", "would fail over")
        .await;
    found.extend(
        crate::axe::serious_violations(&browser, &axe)
            .await
            .into_iter()
            .map(|v| format!("drain preview: {v}")),
    );
    found.extend(scan(&browser, &app, &axe, "#/platform/top", "#top-list table").await);
    browser.close().await;

    // A platform admin: tenants, and the impersonation form of one.
    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "root", "platform_admin").await;
    found.extend(scan(&browser, &app, &axe, "#/platform/tenants", "button.view-as").await);
    browser
        .wait_for("button.view-as")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#impersonate-reason").await;
    found.extend(
        crate::axe::serious_violations(&browser, &axe)
            .await
            .into_iter()
            .map(|v| format!("view-as form: {v}")),
    );
    browser
        .wait_for("button.quotas")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#quota-form").await;
    found.extend(
        crate::axe::serious_violations(&browser, &axe)
            .await
            .into_iter()
            .map(|v| format!("quotas: {v}")),
    );
    // The "New tenant" form, and with the API's refusal beside a field.
    found.extend(scan(&browser, &app, &axe, "#/platform/new", "#provision-form").await);
    browser
        .wait_for("#new-slug")
        .await
        .send_keys("Not A Slug")
        .await
        .unwrap();
    browser
        .wait_for("#provision-submit")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#new-slug-error", "validation_failed")
        .await;
    found.extend(
        crate::axe::serious_violations(&browser, &axe)
            .await
            .into_iter()
            .map(|v| format!("new tenant, refused: {v}")),
    );
    browser.close().await;
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The drain was previewed only.
    let regions = app.get("/v1/regions", &app.platform_token()).await;
    assert!(
        regions.body["regions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] != "drained"),
        "{}",
        regions.body
    );
}
