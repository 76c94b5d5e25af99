//! A tenant's quotas in the platform view, in a real headless Chromium signed
//! in through the platform's provider (`console_platform_browser.rs`): from its
//! row on the tenants page a platform admin sees the limits in force with the
//! tenant's usage beside them (`GET /v1/tenants/{id}/usage`), gets the API's
//! refusal of a bad override with its request id, then changes the plan and a
//! limit; the API then has both, and the page shows the new figures.

use serde_json::json;

use crate::browser::Browser;
use crate::console_platform_browser::{
    only_the_node_and_no_csp_violation, screenshot, setup, sign_in,
};
use crate::regions::provision_in;

async fn cell(browser: &Browser, limit: &str, class: &str) -> String {
    browser
        .wait_for(&format!("#quota-panel tr[data-limit='{limit}'] td.{class}"))
        .await
        .text()
        .await
        .unwrap()
}

async fn set(browser: &Browser, limit: &str, value: &str) {
    let input = browser.wait_for(&format!("#quota-{limit}")).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

#[actix_web::test]
async fn a_platform_admin_changes_plan_and_a_limit_beside_the_usage() {
    let Some((mock, app, _nodes)) = setup().await else {
        return;
    };
    let (id, owner) = provision_in(&app, "quota-co", "us-east1", None).await;
    let channel = app
        .post("/v1/channels", &owner, json!({"name": "general"}))
        .await;
    assert_eq!(channel.status, 201, "{}", channel.body);
    let posted = app
        .post(
            &format!(
                "/v1/channels/{}/messages",
                channel.body["id"].as_str().unwrap()
            ),
            &owner,
            json!({"body": "twelve bytes"}),
        )
        .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let usage = app
        .get(&format!("/v1/tenants/{id}/usage"), &app.platform_token())
        .await;
    assert_eq!(usage.body["storage_bytes"], 12, "{}", usage.body);

    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "root", "platform_admin").await;
    browser
        .client
        .goto(&format!("{}/console/#/platform/tenants", app.base))
        .await
        .unwrap();
    browser
        .wait_for(&format!("button.quotas[data-tenant='{id}']"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#quota-panel", "Quotas of quota-co")
        .await;
    assert_eq!(cell(&browser, "storage_bytes", "used").await, "12 B");
    assert_eq!(cell(&browser, "users", "used").await, "1 users");
    let plan_users = cell(&browser, "users", "in-force").await;

    // A refused override: the API's code and request id, nothing changed.
    set(&browser, "users", "0").await;
    browser.wait_for("#quota-save").await.click().await.unwrap();
    let refusal = browser
        .wait_for_text("#quota-problem", "validation_failed")
        .await;
    assert!(refusal.contains("request id"), "{refusal}");
    let tenant = app
        .get(&format!("/v1/tenants/{id}"), &app.platform_token())
        .await;
    assert_eq!(tenant.body["limits"]["users"].to_string(), plan_users);

    // Plan and one limit.
    browser
        .wait_for("#quota-plan option[value='enterprise']")
        .await
        .click()
        .await
        .unwrap();
    set(&browser, "users", "7").await;
    browser.wait_for("#quota-save").await.click().await.unwrap();
    browser
        .wait_for_text("#quota-saved", "Saved the limits of quota-co")
        .await;
    assert_eq!(cell(&browser, "users", "in-force").await, "7");
    assert_eq!(cell(&browser, "storage_bytes", "used").await, "12 B");
    screenshot(&browser, "quotas").await;
    let tenant = app
        .get(&format!("/v1/tenants/{id}"), &app.platform_token())
        .await;
    assert_eq!(tenant.body["plan"], "enterprise", "{}", tenant.body);
    assert_eq!(
        tenant.body["limit_overrides"]["users"], 7,
        "{}",
        tenant.body
    );
    assert_eq!(tenant.body["limits"]["users"], 7, "{}", tenant.body);

    only_the_node_and_no_csp_violation(&browser, &app).await;
    browser.close().await;
}
