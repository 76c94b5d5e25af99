//! The tenant pages added after the exports and residency report, in a real
//! headless Chromium signed in through OpenLDAP (the harness of
//! `console_tenant_browser.rs`): a compliance officer erases a user from the
//! members page (the confirmation names the user and the tenant's policy; the
//! last owner is refused with `409 last_owner`, its message and request id) and
//! sees the signed receipt, whose counts, signer and key are the API's; the
//! page with the receipt passes the accessibility scan and fits a phone.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::console_tenant_browser::{Setup, click, screenshot, setup, sign_in};

/// `[(table, rows)]` of the table `css` (its `tbody` rows' two cells).
async fn rows(browser: &Browser, css: &str) -> Vec<(String, String)> {
    let cells: Vec<Vec<String>> = serde_json::from_value(
        browser
            .client
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'), \
                   (r) => Array.from(r.cells, (c) => c.textContent));",
                vec![json!(css)],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    cells
        .into_iter()
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

#[actix_web::test]
async fn a_compliance_officer_erases_a_user_and_sees_the_signed_receipt() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup("ctm-erase").await
    else {
        return;
    };
    // The user to erase, with a message (so the receipt counts something).
    let (member, member_token) = app.add_user(&a, "member").await;
    let channel = app.create_channel(&a, "general").await;
    let posted = app
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &member_token,
            json!({ "body": "erase me" }),
        )
        .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let member_email = app
        .get(&format!("/v1/users/{member}"), &a.owner_token)
        .await
        .body["email"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "ctm-erase", "cora", "cora-pw").await;
    browser.wait_for_text("#role", "compliance").await;
    let members = format!("{base}/console/#/tenants/{}/members", a.id);
    browser.client.goto(&members).await.unwrap();
    browser.wait_for_text("table", &member_email).await;
    // No role control for a compliance officer, only erasure.
    assert!(
        browser
            .client
            .find_all(Locator::Css(".admin-action"))
            .await
            .unwrap()
            .is_empty()
    );

    // The last owner: the confirmation names them and the policy, and the
    // API's refusal is shown with its code, message and request id.
    click(
        &browser,
        "button.erase-user[aria-label*=\"owner@ctm-erase.example\"]",
    )
    .await;
    browser.wait_for_text("#erasure-policy", "anonymize").await;
    let asked = browser.wait_for_text("#erasure-panel", "Owner").await;
    assert!(asked.contains("owner@ctm-erase.example"), "{asked}");
    click(&browser, "#erasure-confirm").await;
    let refused = browser
        .wait_for_text("#erasure-problem", "last_owner")
        .await;
    let rid = browser
        .wait_for("#erasure-problem .request-id")
        .await
        .text()
        .await
        .unwrap();
    assert!(!rid.is_empty(), "{refused}");
    let owner = app
        .get(&format!("/v1/users/{}", a.owner_id), &a.owner_token)
        .await;
    assert_eq!(owner.body["status"], "active", "{}", owner.body);

    // The member: erased, and the receipt shown once the job is done.
    click(
        &browser,
        &format!("button.erase-user[aria-label*=\"{member_email}\"]"),
    )
    .await;
    browser.wait_for_text("#erasure-panel", &member_email).await;
    click(&browser, "#erasure-confirm").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser
        .client
        .find(Locator::Css("#erasure-receipt"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "no receipt: {}",
            browser.page_text().await
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let id = browser.wait_for("#erasure-id").await.text().await.unwrap();
    let erasure = app.get(&format!("/v1/erasures/{id}"), &a.owner_token).await;
    assert_eq!(erasure.status, 200, "{}", erasure.body);
    assert_eq!(erasure.body["state"], "done");
    assert_eq!(erasure.body["user_id"], member.to_string());
    let receipt = &erasure.body["receipt"];
    // The page's counts are the signed receipt's, table by table.
    let mut shown = rows(&browser, "#erasure-counts").await;
    shown.sort();
    let signed: Vec<(String, String)> = {
        let mut v: Vec<_> = receipt["receipt"]["counts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(shown, signed);
    assert!(
        signed.iter().any(|(t, n)| t == "messages" && n == "1"),
        "{signed:?}"
    );
    let text = |css: &'static str| {
        let browser = &browser;
        async move { browser.wait_for(css).await.text().await.unwrap() }
    };
    assert_eq!(
        text("#receipt-key").await,
        receipt["signature"]["key_id"].as_str().unwrap()
    );
    assert_eq!(
        text("#receipt-signature").await,
        receipt["signature"]["signature"].as_str().unwrap()
    );
    // Asked for by the officer: the user the LDAP sign-in made.
    let users = app.get("/v1/users", &a.owner_token).await;
    let cora = users.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "cora@example.com")
        .map(|u| u["id"].clone())
        .unwrap_or(Value::Null);
    assert_eq!(receipt["receipt"]["requested_by"], cora);
    assert_eq!(text("#receipt-by").await, cora.as_str().unwrap());
    screenshot(&browser, "erasure-receipt").await;

    let found = crate::axe::serious_violations(&browser, &axe).await;
    assert!(found.is_empty(), "accessibility violations: {found:?}");
    // A phone: the receipt (a long signature) fits the screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    let overflow = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "wider than the phone by {overflow}px"
    );
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}
