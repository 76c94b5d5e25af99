//! The platform view's "New tenant" form in a real headless Chromium, signed
//! in through the platform's provider as `console_platform_browser.rs` does:
//! the API's validation refusal shown beside the field it names with its
//! request id; a platform admin provisions a tenant (plan, home region,
//! residency, owner) and `GET /v1/tenants` then has it as the form said; the
//! created tenant's "View as…" opens the impersonation form. An operator has
//! no "New tenant" in the navigation, the URL shows the API's refusal, and
//! `POST /v1/tenants` with an operator token is `403 operator_forbidden`.

use serde_json::json;

use crate::browser::Browser;
use crate::console_platform_browser::{
    only_the_node_and_no_csp_violation, screenshot, setup, sign_in,
};
use crate::helpers::assert_problem;
use crate::operator::operator_token;

async fn type_into(browser: &Browser, css: &str, text: &str) {
    let input = browser.wait_for(css).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn choose(browser: &Browser, select: &str, value: &str) {
    browser
        .wait_for(&format!("{select} option[value='{value}']"))
        .await
        .click()
        .await
        .unwrap();
}

#[actix_web::test]
async fn a_platform_admin_provisions_a_tenant_from_the_form() {
    let Some((mock, app, _nodes)) = setup().await else {
        return;
    };
    // The API refuses an operator (asked first: after the long browser part
    // the test client's pooled connection may have been closed by the node).
    assert_problem(
        &app.post(
            "/v1/tenants",
            &operator_token(&app),
            json!({"slug": "ops-made", "name": "x", "home_region": "us-east1",
                   "owner": {"email": "o@ops.example", "display_name": "O"}}),
        )
        .await,
        403,
        "operator_forbidden",
    );
    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "root", "platform_admin").await;
    let nav = browser.wait_for("#nav").await.text().await.unwrap();
    assert!(nav.contains("New tenant"), "{nav}");
    browser
        .client
        .goto(&format!("{}/console/#/platform/new", app.base))
        .await
        .unwrap();
    type_into(&browser, "#new-slug", "Bad Slug").await;
    type_into(&browser, "#new-name", "Paris Bakery").await;
    choose(&browser, "#new-plan", "pro").await;
    choose(&browser, "#new-region", "europe-west1").await;
    choose(&browser, "#new-residency", "jurisdiction").await;
    type_into(&browser, "#new-owner-email", "owner@paris.example").await;
    type_into(&browser, "#new-owner-name", "Amélie").await;
    browser
        .wait_for("#provision-submit")
        .await
        .click()
        .await
        .unwrap();
    // The API's refusal, beside the slug, with its code and request id.
    let refusal = browser
        .wait_for_text("#new-slug-error", "validation_failed")
        .await;
    assert!(
        refusal.contains("slug") && refusal.contains("request id"),
        "{refusal}"
    );
    let invalid = browser
        .wait_for("#new-slug")
        .await
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    screenshot(&browser, "provision-refused").await;
    let listed = app.get("/v1/tenants?q=paris", &app.platform_token()).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was created");

    type_into(&browser, "#new-slug", "paris-bakery").await;
    browser
        .wait_for("#provision-submit")
        .await
        .click()
        .await
        .unwrap();
    let done = browser
        .wait_for_text("#provision-done", "Created paris-bakery")
        .await;
    assert!(
        done.contains("europe-west1") && done.contains("plan pro"),
        "{done}"
    );
    let hidden = browser
        .wait_for("#new-slug-error")
        .await
        .attr("hidden")
        .await
        .unwrap();
    assert!(hidden.is_some(), "the old refusal is gone");
    screenshot(&browser, "provision-created").await;

    // The API has it as the form said.
    let listed = app
        .get("/v1/tenants?slug=paris-bakery", &app.platform_token())
        .await;
    let tenant = &listed.body["items"][0];
    assert_eq!(
        (
            &tenant["name"],
            &tenant["plan"],
            &tenant["home_region"],
            &tenant["residency"]
        ),
        (
            &json!("Paris Bakery"),
            &json!("pro"),
            &json!("europe-west1"),
            &json!({"jurisdiction": "eu"})
        ),
        "{}",
        listed.body
    );
    // "View as…" of the new tenant: the impersonation form.
    browser
        .wait_for(&format!(
            "button.view-as[data-tenant='{}']",
            tenant["id"].as_str().unwrap()
        ))
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("#impersonate-reason").await;
    only_the_node_and_no_csp_violation(&browser, &app).await;
    browser.close().await;

    // An operator: no "New tenant", the API's refusal by URL and by API.
    let browser = Browser::start().await;
    sign_in(&browser, &app, &mock, "ops", "operator").await;
    let nav = browser.wait_for("#nav").await.text().await.unwrap();
    assert!(!nav.contains("New tenant"), "{nav}");
    browser
        .client
        .goto(&format!("{}/console/#/platform/new", app.base))
        .await
        .unwrap();
    browser.wait_for_text("main", "operator_forbidden").await;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#provision-form"))
            .await
            .is_err(),
        "an operator got the form"
    );
    browser.close().await;
}
