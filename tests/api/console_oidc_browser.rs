//! A tenant's OIDC sign-in through the console, in a real headless Chromium
//! against a real provider (`oidc-provider-mock`): the console's button, the
//! provider's own page, back at `/console/` with `code` and `state`, which the
//! console finishes in cookie mode and drops from the address bar.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::{self, Browser};
use crate::helpers::{Tenant, TestApp, fresh_database, test_settings};
use crate::oidc::{MockProvider, mock_bin};

/// A tenant `slug` with the mock as its OIDC provider (group `eng` → admin),
/// on a node with `settings`.
async fn tenant_with_provider(
    mock: &MockProvider,
    settings: meridian::config::Settings,
    slug: &str,
) -> (TestApp, Tenant) {
    let app = crate::helpers::spawn_app_with(settings).await;
    let t = app.provision(slug).await;
    crate::identity::create_provider(
        &app,
        &t,
        json!({
            "kind": "oidc", "name": "sso",
            "oidc": { "issuer": mock.issuer, "client_id": "meridian" },
            "secret": "mock-client-secret",
            "role_mappings": [{ "group": "eng", "role": "admin" }],
            "allowed_email_domains": ["example.com"],
            "redirect_uris": [format!("{}/console/", app.base)],
        }),
    )
    .await;
    (app, t)
}

/// The console's OIDC button for `slug`, the provider's page as `sub`, back
/// signed in as an admin.
async fn sign_in(browser: &Browser, app: &TestApp, slug: &str, sub: &str) {
    browser
        .client
        .goto(&format!("{}/console/", app.base))
        .await
        .unwrap();
    browser
        .wait_for("#slug")
        .await
        .send_keys(slug)
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("#signin-oidc"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let field = browser.wait_for("input[name=sub]").await;
    field.send_keys(sub).await.unwrap();
    field.send_keys("\u{E007}").await.unwrap();
    browser.wait_for_text("#role", "admin").await;
}

fn provider_users() -> Vec<Value> {
    vec![json!({"sub": "olga", "email": "olga@example.com", "groups": ["eng"]})]
}

#[actix_web::test]
async fn a_user_signs_in_through_the_tenants_identity_provider_and_out_again() {
    if !browser::available() {
        return;
    }
    let Some(bin) = mock_bin() else { return };
    let mock = MockProvider::start(&bin, &provider_users());
    let settings = test_settings(&fresh_database().await);
    let (app, t) = tenant_with_provider(&mock, settings, "oidc-console").await;

    let browser = Browser::start().await;
    sign_in(&browser, &app, "oidc-console", "olga").await;
    browser.wait_for_text("#nav", "Usage").await;

    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.query(), None, "the code and state left the address bar");
    let urls = browser
        .oidc_sign_in_requests(
            &app.base,
            &mock.issuer,
            &[
                "/v1/auth/oidc-console/origin",
                "/v1/auth/oidc-console/oidc/start?",
                "/v1/auth/oidc/callback?",
            ],
        )
        .await;
    assert!(
        urls.iter()
            .any(|u| u.contains("/v1/auth/oidc/callback?") && u.contains("session=cookie")),
        "the console asked for a cookie session: {urls:#?}"
    );
    let cookie: Value = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookie, json!(""), "the refresh cookie is HttpOnly");

    // The user the provider named, now a user of the tenant.
    let users = app.get("/v1/users", &t.owner_token).await;
    let olga = users.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "olga@example.com")
        .cloned();
    assert_eq!(
        olga.as_ref().map(|u| u["role"].clone()),
        Some(json!("admin")),
        "{}",
        users.body
    );

    // Sign out: back to the form, and a reload does not resume the session.
    browser.wait_for("#signout").await.click().await.unwrap();
    browser.wait_for("#signin").await;
    browser.client.refresh().await.unwrap();
    browser.wait_for("#signin").await;
    assert!(
        browser.client.find(Locator::Css("#role")).await.is_err(),
        "signed out"
    );
    assert!(browser.csp_violations().await.is_empty());
}

/// The access token is renewed a minute before it expires, with no reload and
/// no user action: with 65-second tokens the console refreshes after 5 s, and
/// again after the next 5 s only if the first refresh answered a session.
#[actix_web::test]
async fn the_console_refreshes_its_access_token_before_it_expires() {
    if !browser::available() {
        return;
    }
    let Some(bin) = mock_bin() else { return };
    let mock = MockProvider::start(&bin, &provider_users());
    let mut settings = test_settings(&fresh_database().await);
    settings.auth.access_ttl_seconds = 65;
    let (app, t) = tenant_with_provider(&mock, settings, "oidc-refresh").await;
    let browser = Browser::start().await;
    sign_in(&browser, &app, "oidc-refresh", "olga").await;
    browser.web_requests().await;

    let refresh = format!("{}/v1/auth/refresh", app.base);
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen < 2 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        seen += browser
            .web_requests()
            .await
            .iter()
            .filter(|url| **url == refresh)
            .count();
    }
    assert!(seen >= 2, "two silent refreshes, saw {seen}");
    // Still signed in, and the next page loads with the renewed token.
    browser
        .client
        .goto(&format!("{}/console/#/tenants/{}/members", app.base, t.id))
        .await
        .unwrap();
    browser.wait_for_text("main", "olga@example.com").await;
    browser.wait_for_text("#role", "admin").await;
}
