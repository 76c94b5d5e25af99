//! A tenant's OIDC sign-in through the console, in a real headless Chromium
//! against a real provider (`oidc-provider-mock`): the console's button, the
//! provider's own page, back at `/console/` with `code` and `state`, which the
//! console finishes in cookie mode and drops from the address bar.

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::{self, Browser};
use crate::oidc::{MockProvider, mock_bin};

#[actix_web::test]
async fn a_user_signs_in_through_the_tenants_identity_provider_and_out_again() {
    if !browser::available() {
        return;
    }
    let Some(bin) = mock_bin() else { return };
    let mock = MockProvider::start(
        &bin,
        &[json!({"sub": "olga", "email": "olga@example.com", "groups": ["eng"]})],
    );
    let app = crate::helpers::spawn_app().await;
    let t = app.provision("oidc-console").await;
    let console = format!("{}/console/", app.base);
    crate::identity::create_provider(
        &app,
        &t,
        json!({
            "kind": "oidc", "name": "sso",
            "oidc": { "issuer": mock.issuer, "client_id": "meridian" },
            "secret": "mock-client-secret",
            "role_mappings": [{ "group": "eng", "role": "admin" }],
            "allowed_email_domains": ["example.com"],
            "redirect_uris": [console],
        }),
    )
    .await;

    let browser = Browser::start().await;
    browser.client.goto(&console).await.unwrap();
    browser
        .wait_for("#slug")
        .await
        .send_keys("oidc-console")
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
    // The provider's page, then back.
    let field = browser.wait_for("input[name=sub]").await;
    field.send_keys("olga").await.unwrap();
    field.send_keys("\u{E007}").await.unwrap();
    browser.wait_for_text("#role", "admin").await;
    browser.wait_for_text("#nav", "Usage").await;

    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.query(), None, "the code and state left the address bar");
    let urls = browser.web_requests().await;
    for url in &urls {
        assert!(
            url.starts_with(&format!("{}/", app.base))
                || url.starts_with(&format!("{}/", mock.issuer))
                || url.starts_with("https://cdn.jsdelivr.net/npm/@picocss/"),
            "{url} (all: {urls:#?})"
        );
    }
    for wanted in [
        "/v1/auth/oidc-console/origin",
        "/v1/auth/oidc-console/oidc/start?",
        "/v1/auth/oidc/callback?",
    ] {
        assert!(
            urls.iter()
                .any(|u| u.starts_with(&format!("{}{wanted}", app.base))),
            "{wanted}: {urls:#?}"
        );
    }
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
