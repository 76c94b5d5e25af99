//! The console's webhooks page in a real headless Chromium (the harness of
//! `console_tenant_browser.rs`, the node allowed to deliver to loopback): an
//! admin adds an endpoint (the receiver `webhooks::receiver` starts), sees its
//! secret once, makes an event, and sees its delivery in the endpoint's log as
//! the API lists it; disables it, and deletes it after the confirming click.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::browser::Browser;
use crate::console_tenant_browser::{Setup, click, screenshot, setup_with, sign_in};

#[actix_web::test]
async fn an_admin_adds_a_webhook_and_sees_its_delivery() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup_with("ctw-hooks", |s| {
        s.outbound.allow_loopback = true;
        s.jobs.poll_interval = Duration::from_millis(50);
    })
    .await
    else {
        return;
    };
    let (receiver, _inbox) = crate::webhooks::receiver();
    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "ctw-hooks", "carol", "carol-pw").await;
    browser.wait_for_text("#role", "admin").await;
    browser.wait_for("#my-role").await;
    browser.wait_for_text("#nav", "Webhooks").await;
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/webhooks", a.id))
        .await
        .unwrap();
    let url = format!("{receiver}/in");
    browser
        .wait_for("#add-webhook input[name=url]")
        .await
        .send_keys(&url)
        .await
        .unwrap();
    browser
        .wait_for("#add-webhook input[name=events]")
        .await
        .send_keys("channel.created")
        .await
        .unwrap();
    click(&browser, "#add-webhook button[type=submit]").await;
    let said = browser.wait_for_text("#webhook-secret", "whsec_").await;
    assert!(said.contains(&url), "{said}");
    let listed = app.get("/v1/webhooks", &a.owner_token).await;
    let hook = listed.body["items"][0].clone();
    assert_eq!(hook["url"], url.as_str(), "{}", listed.body);
    assert_eq!(hook["event_types"], json!(["channel.created"]));

    // An event the endpoint takes, delivered by the job; the page's log shows
    // it as the API does.
    app.create_channel(&a, "hooked").await;
    let id = hook["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = app
            .get(&format!("/v1/webhooks/{id}/deliveries"), &a.owner_token)
            .await;
        if log.body["items"][0]["state"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered: {}", log.body);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    click(&browser, "button.webhook-deliveries").await;
    browser
        .wait_for_text("#deliveries", "channel.created")
        .await;
    let state = browser
        .wait_for(".delivery-state")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(state, "succeeded");
    // The receiver's answer, in the "last status" column.
    let status = browser
        .wait_for("#deliveries tbody tr td:nth-child(5)")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(status, "200");
    screenshot(&browser, "webhooks").await;
    let found = crate::axe::serious_violations(&browser, &axe).await;
    assert!(found.is_empty(), "accessibility violations: {found:?}");

    // Disabled from the page, then deleted on the second click.
    click(&browser, "button.webhook-toggle").await;
    browser.wait_for_text(".webhook-state", "disabled").await;
    let after = app.get(&format!("/v1/webhooks/{id}"), &a.owner_token).await;
    assert_eq!(after.body["enabled"], false, "{}", after.body);
    click(&browser, "button.webhook-delete").await;
    browser
        .wait_for_text("button.webhook-delete", "Really delete?")
        .await;
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}"), &a.owner_token)
            .await
            .status,
        200
    );
    click(&browser, "button.webhook-delete").await;
    browser.wait_for_text("#main", "No webhooks yet.").await;
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}"), &a.owner_token)
            .await
            .status,
        404
    );
    browser.phone_size().await;
    browser.assert_fits_window().await;
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}
