//! A tenant's relocation in the platform view, in a real headless Chromium
//! signed in through the platform's provider (`console_platform_browser.rs`):
//! from its row on the tenants page a platform admin picks a target its
//! residency allows, starts the relocation and watches the page poll it to
//! `done` with every counted row moved; the API then has the tenant in the new
//! home. An EU-pinned tenant is offered the other EU regions only.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::browser::Browser;
use crate::console_platform_browser::{
    only_the_node_and_no_csp_violation, screenshot, setup, sign_in,
};
use crate::regions::provision_in;

async fn open(browser: &Browser, tenant: uuid::Uuid) {
    browser
        .wait_for(&format!("button.relocate[data-tenant='{tenant}']"))
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#relocation-panel h2").await;
}

async fn targets(browser: &Browser) -> Vec<String> {
    let mut found = Vec::new();
    for option in browser
        .client
        .find_all(Locator::Css("#relocation-target option"))
        .await
        .unwrap()
    {
        found.push(option.attr("value").await.unwrap().unwrap_or_default());
    }
    found
}

#[actix_web::test]
async fn a_platform_admin_relocates_a_tenant_and_sees_it_finish() {
    let Some((mock, app, _nodes)) = setup().await else {
        return;
    };
    let (id, owner) = provision_in(&app, "mover-co", "us-east1", None).await;
    let (eu_id, _) = provision_in(
        &app,
        "mover-eu",
        "europe-west1",
        Some(json!({"jurisdiction": "eu"})),
    )
    .await;
    let channel = app
        .post("/v1/channels", &owner, json!({"name": "general"}))
        .await;
    let path = format!(
        "/v1/channels/{}/messages",
        channel.body["id"].as_str().unwrap()
    );
    for i in 0..20 {
        let posted = app
            .post(&path, &owner, json!({"body": format!("m{i}")}))
            .await;
        assert_eq!(posted.status, 201, "{}", posted.body);
    }

    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "root", "platform_admin").await;
    browser
        .client
        .goto(&format!("{}/console/#/platform/tenants", app.base))
        .await
        .unwrap();
    // The EU tenant: EU regions other than its home only.
    open(&browser, eu_id).await;
    assert_eq!(targets(&browser).await, ["europe-north1", "europe-west3"]);

    open(&browser, id).await;
    let offered = targets(&browser).await;
    assert!(
        offered.contains(&"europe-west1".to_owned()) && !offered.contains(&"us-east1".to_owned()),
        "{offered:?}"
    );
    browser
        .wait_for("#relocation-target option[value='europe-west1']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for("#relocation-start")
        .await
        .click()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = browser
            .wait_for("#relocation-status")
            .await
            .text()
            .await
            .unwrap();
        if text.contains("now lives in europe-west1") {
            break;
        }
        assert!(
            !text.contains("failed") && std::time::Instant::now() < deadline,
            "{text}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    }
    let status = browser
        .wait_for("#relocation-status")
        .await
        .text()
        .await
        .unwrap();
    let relocation = app
        .get(
            &format!("/v1/tenants/{id}/relocation"),
            &app.platform_token(),
        )
        .await;
    assert_eq!(relocation.body["status"], "done", "{}", relocation.body);
    let total = |counts: &serde_json::Value| -> u64 {
        counts
            .as_object()
            .map(|c| c.values().map(|n| n.as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    let (before, moved) = (
        total(&relocation.body["counts_before"]),
        total(&relocation.body["moved"]),
    );
    assert!(before >= 20 && moved >= before, "{}", relocation.body);
    assert!(
        status.contains(&format!("{moved} of {before} rows moved")),
        "{status} vs {}",
        relocation.body
    );
    screenshot(&browser, "relocation-done").await;
    let tenant = app
        .get(&format!("/v1/tenants/{id}"), &app.platform_token())
        .await;
    assert_eq!(
        tenant.body["home_region"], "europe-west1",
        "{}",
        tenant.body
    );

    only_the_node_and_no_csp_violation(&browser, &app).await;
    browser.close().await;
}
