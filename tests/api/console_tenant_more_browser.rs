//! The tenant pages added after the exports and residency report, in a real
//! headless Chromium signed in through OpenLDAP (the harness of
//! `console_tenant_browser.rs`): a compliance officer erases a user from the
//! members page (the confirmation names the user and the tenant's policy; the
//! last owner is refused with `409 last_owner`, its message and request id) and
//! sees the signed receipt, whose counts, signer and key are the API's; the
//! page with the receipt passes the accessibility scan and fits a phone. The
//! officer also changes the residency policy on the residency page: a policy
//! the home region breaks is refused with its code and request id, one it
//! keeps is saved and shows in the reloaded report's policy history. An owner
//! sees a platform admin's active impersonation with its reason and revokes
//! it: the impersonation's token is then refused (401).

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
    browser.wait_for("#my-role").await;
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
    browser
        .client
        .execute(
            "document.getElementById('erasure-panel').scrollIntoView(); return true;",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&browser, "erasure-receipt").await;

    let found = crate::axe::serious_violations(&browser, &axe).await;
    assert!(found.is_empty(), "accessibility violations: {found:?}");
    // A phone: the receipt (a long signature) fits the screen.
    browser.phone_size().await;
    browser.assert_fits_window().await;
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}

#[actix_web::test]
async fn a_compliance_officer_changes_the_residency_policy_and_sees_it_in_the_history() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup("ctm-resid").await
    else {
        return;
    };
    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "ctm-resid", "cora", "cora-pw").await;
    browser.wait_for_text("#role", "compliance").await;
    // The overview the sign-in lands on, before going elsewhere.
    browser.wait_for("#my-role").await;
    let page = format!("{base}/console/#/tenants/{}/residency", a.id);
    browser.client.goto(&page).await.unwrap();
    browser.wait_for_text("#policy-form", "New policy").await;
    // No policy yet: "any region" is the one chosen.
    let any = browser
        .wait_for("input[name=kind][value=none]")
        .await
        .prop("checked")
        .await
        .unwrap();
    assert_eq!(any.as_deref(), Some("true"));

    // The EU for a tenant homed in us-east1: the API refuses, the page says
    // why with the code and request id, and the policy is unchanged.
    click(&browser, "input[name=kind][value=jurisdiction]").await;
    click(&browser, "#policy-jurisdiction option[value=eu]").await;
    click(&browser, "#policy-save").await;
    let refused = browser
        .wait_for_text("#problem", "residency_violation")
        .await;
    let rid = browser
        .wait_for("#problem .request-id")
        .await
        .text()
        .await
        .unwrap();
    assert!(!rid.is_empty(), "{refused}");
    let tenant = app
        .get(&format!("/v1/tenants/{}", a.id), &a.owner_token)
        .await;
    assert!(tenant.body["residency"].is_null(), "{}", tenant.body);

    // us-east1 only: saved, and the page reloads the report with the change
    // in its policy history.
    click(&browser, "input[name=kind][value=regions]").await;
    click(&browser, "input[name=region][value=\"us-east1\"]").await;
    click(&browser, "#policy-save").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let history = loop {
        let rows = browser
            .client
            .execute(
                "const t = Array.from(document.querySelectorAll('caption'))\
                   .find((c) => c.textContent === 'Policy changes');\
                 return t ? t.closest('table').tBodies[0].innerText : '';",
                vec![],
            )
            .await
            .unwrap();
        let text = rows.as_str().unwrap_or_default().to_owned();
        if text.contains("us-east1") || Instant::now() > deadline {
            break text;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(history.contains(r#"{"regions":["us-east1"]}"#), "{history}");
    let tenant = app
        .get(&format!("/v1/tenants/{}", a.id), &a.owner_token)
        .await;
    assert_eq!(
        tenant.body["residency"],
        json!({"regions": ["us-east1"]}),
        "{}",
        tenant.body
    );
    // The API's report says the same.
    let report = app
        .get(
            &format!("/v1/tenants/{}/residency-report", a.id),
            &a.owner_token,
        )
        .await;
    let changes = report.body["report"]["policy_history"].as_array().unwrap();
    assert_eq!(
        changes.last().unwrap()["after"],
        json!({"regions": ["us-east1"]}),
        "{changes:?}"
    );
    // The form now starts from the new policy.
    let checked = browser
        .wait_for("input[name=region][value=\"us-east1\"]")
        .await
        .prop("checked")
        .await
        .unwrap();
    assert_eq!(checked.as_deref(), Some("true"));
    screenshot(&browser, "residency-edit").await;
    let found = crate::axe::serious_violations(&browser, &axe).await;
    assert!(found.is_empty(), "accessibility violations: {found:?}");
    browser.phone_size().await;
    browser.assert_fits_window().await;
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}

#[actix_web::test]
async fn an_owner_revokes_an_impersonation_and_its_token_is_refused() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup("ctm-imp").await
    else {
        return;
    };
    let (imp, imp_token) = crate::impersonation::start(&app, &a).await;
    assert_eq!(app.get("/v1/me", &imp_token).await.status, 200);
    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "ctm-imp", "olive", "olive-pw").await;
    browser.wait_for_text("#role", "owner").await;
    browser.wait_for("#my-role").await;
    browser.wait_for_text("#nav", "Impersonations").await;
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/impersonations", a.id))
        .await
        .unwrap();
    // The platform admin's impersonation, with the reason it was started for.
    let listed = browser
        .wait_for_text("#impersonations", "ticket 4711")
        .await;
    let api = app
        .get(
            &format!("/v1/tenants/{}/impersonations", a.id),
            &a.owner_token,
        )
        .await;
    let actor = api.body["items"][0]["actor"].as_str().unwrap().to_owned();
    assert_eq!(api.body["items"][0]["id"], imp.to_string());
    assert!(listed.contains(&actor), "{listed}");
    screenshot(&browser, "impersonations").await;
    let found = crate::axe::serious_violations(&browser, &axe).await;
    assert!(found.is_empty(), "accessibility violations: {found:?}");
    // A phone: the table (ids, reason, expiry) fits the screen.
    browser.phone_size().await;
    browser.assert_fits_window().await;

    click(&browser, "button.imp-revoke").await;
    browser
        .wait_for_text("#impersonations", "None active.")
        .await;
    // The impersonation's token is refused from its next request.
    let me = app.get("/v1/me", &imp_token).await;
    assert_eq!(me.status, 401, "{}", me.body);
    let api = app
        .get(
            &format!("/v1/tenants/{}/impersonations", a.id),
            &a.owner_token,
        )
        .await;
    assert!(
        api.body["items"].as_array().unwrap().is_empty(),
        "{}",
        api.body
    );
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}
