//! The console's platform view in a real headless Chromium (`browser::Browser`),
//! signed in through the platform's real OIDC provider (`oidc-provider-mock`):
//! the browser clicks "Platform sign-in", answers the provider's own page and
//! comes back to the console, which finishes the sign-in in cookie mode. An
//! operator drains a region from the map (impact preview, confirmation, the
//! failover drawn); a platform admin searches tenants and views one by
//! impersonation, with the banner's time left, until it is revoked and until
//! it expires. Every request after sign-in goes to the node; no CSP violation.
//! `MERIDIAN_CONSOLE_SCREENSHOTS=<dir>` saves the pages as PNGs there.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::{self, Browser};
use crate::helpers::TestApp;
use crate::oidc::{MockProvider, mock_bin};
use crate::platform_console::platform_nodes;
use crate::regions::provision_in;

/// The platform node (us-east1) and nodes for the EU regions a drain of
/// europe-west1 fails over to.
pub(crate) async fn setup() -> Option<(MockProvider, TestApp, Vec<TestApp>)> {
    if !browser::available() {
        return None;
    }
    let bin = mock_bin()?;
    let mock = MockProvider::start(
        &bin,
        &[
            json!({"sub": "root", "email": "root@example.com"}),
            json!({"sub": "ops", "email": "ops@example.com"}),
        ],
    );
    let (app, nodes) =
        platform_nodes(&mock, &[], Some("ops"), &["europe-west1", "europe-west3"]).await;
    Some((mock, app, nodes))
}

/// The whole platform sign-in in the browser: the console's button, the
/// provider's page (its `sub` field), back to the console. Answers the URLs
/// requested on the way, after checking that each was the node's or the
/// provider's (its page also asks a CDN for a stylesheet, which fails here).
pub(crate) async fn sign_in(
    browser: &Browser,
    app: &TestApp,
    mock: &MockProvider,
    sub: &str,
    role: &str,
) {
    browser
        .client
        .goto(&format!("{}/console/", app.base))
        .await
        .unwrap();
    browser
        .wait_for("#signin-platform")
        .await
        .click()
        .await
        .unwrap();
    let field = browser.wait_for("input[name=sub]").await;
    field.send_keys(sub).await.unwrap();
    field.send_keys("\u{E007}").await.unwrap();
    browser.wait_for_text("#role", role).await;
    let urls = browser
        .oidc_sign_in_requests(
            &app.base,
            &mock.issuer,
            &[
                "/v1/auth/platform/oidc/start?",
                "/v1/auth/platform/oidc/callback?",
            ],
        )
        .await;
    assert!(
        urls.iter().any(|u| u.contains("session=cookie")),
        "the console asked for a cookie session: {urls:#?}"
    );
}

pub(crate) async fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("MERIDIAN_CONSOLE_SCREENSHOTS") {
        js(browser, "window.scrollTo(0, 0); return null").await;
        let png = browser.client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

pub(crate) async fn js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
}

/// After sign-in: every request on the node, and no CSP violation.
pub(crate) async fn only_the_node_and_no_csp_violation(browser: &Browser, app: &TestApp) {
    let urls = browser.web_requests().await;
    for url in &urls {
        assert!(
            url.starts_with(&format!("{}/", app.base)),
            "a request off the node: {url} (all: {urls:#?})"
        );
    }
    let violations = browser.csp_violations().await;
    assert!(violations.is_empty(), "{violations:#?}");
}

#[actix_web::test]
async fn an_operator_drains_a_region_from_the_map_and_sees_the_failover() {
    let Some((mock, app, _nodes)) = setup().await else {
        return;
    };
    let eu = json!({ "jurisdiction": "eu" });
    provision_in(&app, "map-paris", "europe-west1", Some(eu.clone())).await;
    provision_in(&app, "map-lyon", "europe-west1", Some(eu)).await;
    provision_in(&app, "map-ohio", "us-east1", None).await;
    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "ops", "operator").await;
    // The cookie is HttpOnly: nothing a script can read holds a token.
    assert_eq!(js(&browser, "return document.cookie").await, json!(""));

    // The map: every region, its state and counts; an operator's navigation
    // has no tenants page.
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some("/platform/regions"));
    browser.wait_for("#region-map").await;
    let nav = browser.wait_for("#nav").await.text().await.unwrap();
    assert!(nav.contains("Regions") && !nav.contains("Tenants"), "{nav}");
    let boxes = browser
        .client
        .find_all(Locator::Css("#region-map g.region"))
        .await
        .unwrap();
    assert_eq!(boxes.len(), 5, "every region of the topology");
    let west1 = browser
        .wait_for("g.region[data-region='europe-west1']")
        .await;
    assert!(
        west1.text().await.unwrap().contains("homed 2"),
        "{}",
        west1.text().await.unwrap()
    );
    screenshot(&browser, "regions").await;

    // Drain europe-west1: the API's dry run first, then the confirmation.
    browser
        .wait_for("button.drain[data-region='europe-west1']")
        .await
        .click()
        .await
        .unwrap();
    let preview = browser
        .wait_for_text("#drain-panel", "would fail over")
        .await;
    assert!(
        preview.contains("2 tenants would fail over; 0 would be stranded"),
        "{preview}"
    );
    assert!(
        preview.contains("map-paris") && preview.contains("europe-west3"),
        "{preview}"
    );
    screenshot(&browser, "drain-preview").await;
    let regions = app.get("/v1/regions", &app.platform_token()).await;
    let state = |body: &Value, id: &str| {
        body["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(
        state(&regions.body, "europe-west1"),
        "serving",
        "the preview drained nothing"
    );
    browser
        .wait_for("#drain-confirm")
        .await
        .click()
        .await
        .unwrap();

    // The map shows the failover, and the API agrees.
    browser
        .wait_for("line.failing-over[data-from='europe-west1'][data-to='europe-west3']")
        .await;
    browser
        .wait_for_text("g.region[data-region='europe-west1']", "drained")
        .await;
    browser
        .wait_for_text("g.region[data-region='europe-west3']", "served 2")
        .await;
    let row = browser.wait_for_text("table", "2 → europe-west3").await;
    assert!(row.contains("drained"), "{row}");
    browser
        .wait_for("button.undrain[data-region='europe-west1']")
        .await;
    screenshot(&browser, "regions-drained").await;
    let regions = app.get("/v1/regions", &app.platform_token()).await;
    assert_eq!(state(&regions.body, "europe-west1"), "drained");
    let counts = app.get("/v1/regions/tenants", &app.platform_token()).await;
    let west3 = counts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "europe-west3")
        .unwrap()
        .clone();
    assert_eq!(west3["served"], 2, "{}", counts.body);

    // The tenants page by URL: the API's refusal of an operator, with its request id.
    browser
        .client
        .goto(&format!("{}/console/#/platform/tenants", app.base))
        .await
        .unwrap();
    let refused = browser.wait_for_text("#view-problem", "request id").await;
    assert!(refused.contains("operator_forbidden"), "{refused}");

    // Undrain from the map.
    browser
        .client
        .goto(&format!("{}/console/#/platform/regions", app.base))
        .await
        .unwrap();
    browser
        .wait_for("button.undrain[data-region='europe-west1']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for("button.drain[data-region='europe-west1']")
        .await;
    let regions = app.get("/v1/regions", &app.platform_token()).await;
    assert_eq!(state(&regions.body, "europe-west1"), "serving");

    only_the_node_and_no_csp_violation(&browser, &app).await;
    browser.close().await;
}

/// Waits up to `within` for `css`'s text to contain `text`.
async fn wait_long(browser: &Browser, css: &str, text: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(el) = browser.client.find(Locator::Css(css)).await
            && let Ok(found) = el.text().await
            && found.contains(text)
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {css} saying {text:?}: {}",
            browser.page_text().await
        );
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    }
}

/// "mm:ss" in the banner, in seconds.
async fn time_left(browser: &Browser) -> u64 {
    let text = browser
        .wait_for("#impersonation-left")
        .await
        .text()
        .await
        .unwrap();
    let (m, s) = text.split_once(':').unwrap();
    m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap()
}

async fn view_as(browser: &Browser, tenant: uuid::Uuid, reason: &str) {
    browser
        .wait_for(&format!("button.view-as[data-tenant='{tenant}']"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for("#impersonate-reason")
        .await
        .send_keys(reason)
        .await
        .unwrap();
    let minutes = browser.wait_for("#impersonate-minutes").await;
    minutes.clear().await.unwrap();
    minutes.send_keys("1").await.unwrap();
    browser
        .wait_for("#impersonate-start")
        .await
        .click()
        .await
        .unwrap();
}

#[actix_web::test]
async fn impersonation_shows_the_banner_with_time_left_and_ends() {
    let Some((mock, app, _nodes)) = setup().await else {
        return;
    };
    let (acme, acme_owner) = provision_in(&app, "imp-acme", "us-east1", None).await;
    provision_in(&app, "imp-globex", "europe-west1", None).await;
    provision_in(&app, "other-initech", "us-east1", None).await;
    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "root", "platform_admin").await;

    // Tenants, searched and filtered by the API.
    browser
        .client
        .goto(&format!("{}/console/#/platform/tenants", app.base))
        .await
        .unwrap();
    browser.wait_for_text("#tenant-list", "other-initech").await;
    browser
        .wait_for("#filter-q")
        .await
        .send_keys("imp-")
        .await
        .unwrap();
    browser
        .wait_for("#tenant-search-submit")
        .await
        .click()
        .await
        .unwrap();
    let list = browser.wait_for_text("#tenant-list", "2 tenants").await;
    assert!(
        list.contains("imp-acme") && !list.contains("other-initech"),
        "{list}"
    );
    screenshot(&browser, "tenants").await;

    // View as acme: the reason, then the tenant's pages under the banner.
    view_as(&browser, acme, "support ticket 42").await;
    browser.wait_for_text("h1", "imp-acme").await;
    let banner = browser
        .wait_for_text("#impersonation-banner", "Impersonating imp-acme")
        .await;
    assert!(
        banner.contains("read only") && banner.contains("time left"),
        "{banner}"
    );
    let first = time_left(&browser).await;
    assert!((50..=60).contains(&first), "{first}");
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    let later = time_left(&browser).await;
    assert!(
        later < first,
        "the time left counts down: {first} then {later}"
    );
    screenshot(&browser, "impersonation").await;
    // The members page under the impersonation: still bannered.
    browser
        .client
        .goto(&format!("{}/console/#/tenants/{acme}/members", app.base))
        .await
        .unwrap();
    browser.wait_for_text("h1", "Members").await;
    browser
        .wait_for_text("#impersonation-banner", "imp-acme")
        .await;

    // The owner revokes it: the console's next request is refused and it
    // leaves the tenant view, saying so.
    let active = app
        .get(&format!("/v1/tenants/{acme}/impersonations"), &acme_owner)
        .await;
    assert_eq!(active.status, 200, "{}", active.body);
    let id = active.body["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(active.body["items"][0]["reason"], "support ticket 42");
    let revoked = app
        .delete(
            &format!("/v1/tenants/{acme}/impersonations/{id}"),
            &acme_owner,
        )
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    browser
        .client
        .goto(&format!("{}/console/#/tenants/{acme}/usage", app.base))
        .await
        .unwrap();
    let ended = browser.wait_for_text("#impersonation-ended", "ended").await;
    assert!(ended.contains("revoked or expired"), "{ended}");
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some("/platform/tenants"));
    let banner = browser.wait_for("#impersonation-banner").await;
    assert!(!banner.is_displayed().await.unwrap(), "the banner is gone");

    // Again for a minute, and wait it out: at expiry the view ends by itself.
    browser.wait_for_text("#tenant-list", "imp-acme").await;
    view_as(&browser, acme, "support ticket 43").await;
    browser
        .wait_for_text("#impersonation-banner", "Impersonating imp-acme")
        .await;
    let ended = wait_long(
        &browser,
        "#impersonation-ended",
        "expired",
        Duration::from_secs(75),
    )
    .await;
    assert!(ended.contains("imp-acme"), "{ended}");
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some("/platform/tenants"));

    // The tenant's trail has both, with the platform admin as the actor.
    let trail = app.get("/v1/audit?limit=50", &acme_owner).await;
    let started = trail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "impersonation_started")
        .count();
    assert_eq!(started, 2, "{}", trail.body);

    only_the_node_and_no_csp_violation(&browser, &app).await;
    browser.close().await;
}
