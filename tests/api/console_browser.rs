//! The console in a real headless Chromium (`browser::Browser`), signed in
//! through a real OpenLDAP (`slapd`): sign-in, resume after a reload (the
//! cookie and CSRF refresh), sign-out; a tenant admin sees only their tenant;
//! a viewer sees no admin actions and the API refuses them anyway; every
//! request the browser made went to the node; no Content-Security-Policy
//! violation. Few tests on purpose: each starts a browser (seconds).
//! `MERIDIAN_CONSOLE_SCREENSHOTS=<dir>` saves the main pages as PNGs there.

use fantoccini::Locator;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::browser::{self, Browser};
use crate::helpers::{Tenant, TestApp, spawn_app};
use crate::slapd::{self, Slapd};

/// carol is an admin, vera a viewer.
fn directory() -> Slapd {
    let people = [
        slapd::person("carol", "carol-pw", "carol@example.com"),
        slapd::person("vera", "vera-pw", "vera@example.com"),
    ]
    .concat();
    let groups = [
        slapd::group("admins", &["carol"]),
        slapd::group("readers", &["vera"]),
    ]
    .concat();
    Slapd::start(&(people + &groups))
}

struct Setup {
    app: TestApp,
    a: Tenant,
    b: Tenant,
    _directory: Slapd,
}

/// Tenants `{prefix}-a` (signing in through the directory) and `{prefix}-b`.
async fn setup(prefix: &str) -> Option<Setup> {
    if !slapd::available() || !browser::available() {
        return None;
    }
    let directory = directory();
    let app = spawn_app().await;
    let a = app.provision(&format!("{prefix}-a")).await;
    let b = app.provision(&format!("{prefix}-b")).await;
    let mut body = crate::identity::ldap_body(&directory.url, slapd::SERVICE_PW);
    body["ldap"]["group_base_dn"] = json!(slapd::SUFFIX);
    body["role_mappings"] = json!([
        { "group": "admins", "role": "admin" },
        { "group": "readers", "role": "viewer" },
    ]);
    crate::identity::create_provider(&app, &a, body).await;
    let direct = crate::signin::sign_in(&app, &format!("{prefix}-a"), "carol", "carol-pw").await;
    let audit = app.get("/v1/audit?limit=5", &a.owner_token).await;
    assert_eq!(direct.status, 200, "{} {}", direct.body, audit.body);
    Some(Setup {
        app,
        a,
        b,
        _directory: directory,
    })
}

async fn sign_in(browser: &Browser, base: &str, slug: &str, user: &str, password: &str) {
    browser.fill_signin(base, slug, user, password).await;
    // By keyboard: Enter in the password field submits the form.
    let password_field = browser
        .client
        .find(Locator::Css("#password"))
        .await
        .unwrap();
    password_field.send_keys("\u{E007}").await.unwrap();
}

/// Runs `fetch` in the page and answers the status.
async fn fetch_status(browser: &Browser, path: &str, headers: Value) -> u64 {
    let status = browser
        .client
        .execute_async(
            "const [path, headers, done] = arguments; \
             fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json', ...headers}, body: '{}'}) \
               .then((r) => done(r.status), () => done(0));",
            vec![json!(path), headers],
        )
        .await
        .unwrap();
    status.as_u64().unwrap()
}

async fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("MERIDIAN_CONSOLE_SCREENSHOTS") {
        let png = browser.client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn js(browser: &Browser, script: &str) -> Value {
    browser.client.execute(script, vec![]).await.unwrap()
}

#[actix_web::test]
async fn an_admin_signs_in_sees_only_their_tenant_and_signs_out() {
    // `_directory` named: a field left to `..` would be dropped (slapd stopped) at once.
    let Some(Setup {
        app,
        a,
        b,
        _directory,
    }) = setup("cons").await
    else {
        return;
    };
    let browser = Browser::start().await;
    let base = &app.base;

    sign_in(&browser, base, "cons-a", "carol", "carol-pw").await;
    browser.wait_for_text("#role", "admin").await;
    browser.wait_for_text("h1", "cons-a Inc").await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), Some(format!("/tenants/{}", a.id).as_str()));
    screenshot(&browser, "overview").await;

    // Members, with the admin's controls.
    let members = format!("{base}/console/#/tenants/{}/members", a.id);
    browser.client.goto(&members).await.unwrap();
    browser.wait_for_text("table", "carol@example.com").await;
    let actions = browser
        .client
        .find_all(Locator::Css(".admin-action"))
        .await
        .unwrap();
    assert!(actions.len() >= 2, "an admin's controls: {}", actions.len());
    browser.wait_for("#add-member").await;
    screenshot(&browser, "members").await;

    // Usage against limits.
    let usage = format!("{base}/console/#/tenants/{}/usage", a.id);
    browser.client.goto(&usage).await.unwrap();
    browser.wait_for_text("table", "storage").await;
    screenshot(&browser, "usage").await;

    // The audit trail and its chain, verified by the API.
    let audit = format!("{base}/console/#/tenants/{}/audit", a.id);
    browser.client.goto(&audit).await.unwrap();
    browser.wait_for_text("table", "login_succeeded").await;
    browser
        .wait_for("#verify-chain")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for_text("#verdict", "Chain intact").await;
    screenshot(&browser, "audit").await;

    // Another tenant's id in the URL: the API's 404, shown with its request id.
    for page in ["", "/members", "/audit"] {
        let foreign = format!("{base}/console/#/tenants/{}{page}", b.id);
        browser.client.goto(&foreign).await.unwrap();
        browser.wait_for_text("h1", "Not found").await;
        let rid = browser.wait_for("#view-problem .request-id").await;
        assert!(!rid.text().await.unwrap().is_empty());
        let body = browser.wait_for("main").await.text().await.unwrap();
        assert!(!body.contains("cons-b"), "{body}");
    }
    screenshot(&browser, "not-found").await;

    // Nothing a script could read later holds a token: the access token is in
    // memory, the refresh token an HttpOnly cookie.
    assert_eq!(js(&browser, "return document.cookie").await, json!(""));
    assert_eq!(js(&browser, "return localStorage.length").await, json!(0));
    let stored = js(&browser, "return JSON.stringify(sessionStorage)").await;
    assert!(!stored.as_str().unwrap().contains("eyJ"), "{stored}");

    // A reload loses the access token; the console resumes the session by the
    // cookie and its CSRF token (a refresh).
    browser.client.refresh().await.unwrap();
    browser.wait_for_text("#role", "admin").await;
    browser.wait_for_text("h1", "Not found").await;

    // Sign out: the session ends at the API, and a reload does not resume it.
    let csrf = js(
        &browser,
        "return sessionStorage.getItem('meridian.console.csrf')",
    )
    .await;
    assert!(csrf.as_str().is_some_and(|c| c.len() > 20), "{csrf}");
    browser.wait_for("#signout").await.click().await.unwrap();
    browser.wait_for("#signin").await;
    assert_eq!(
        fetch_status(
            &browser,
            "/v1/auth/refresh",
            json!({ "X-Meridian-CSRF": csrf })
        )
        .await,
        401,
        "the signed-out session refreshes no more"
    );
    browser.client.refresh().await.unwrap();
    browser.wait_for("#signin").await;
    screenshot(&browser, "signin").await;

    // Phone width: nothing wider than the screen.
    browser.phone_size().await;
    sign_in(&browser, base, "cons-a", "carol", "carol-pw").await;
    browser.wait_for_text("#role", "admin").await;
    browser.client.goto(&members).await.unwrap();
    browser.wait_for_text("table", "carol@example.com").await;
    screenshot(&browser, "members-phone").await;
    browser.assert_fits_window().await;

    // Every request went to the node, and the ones that matter were made.
    let urls = browser.web_requests().await;
    for url in &urls {
        assert!(
            url.starts_with(&format!("{base}/")),
            "a request off the node: {url} (all: {urls:#?})"
        );
    }
    for wanted in [
        "/console/app.js".to_owned(),
        "/v1/auth/cons-a/ldap?session=cookie".to_owned(),
        "/v1/auth/refresh".to_owned(),
        "/v1/auth/logout".to_owned(),
        "/v1/users?limit=200".to_owned(),
        format!("/v1/tenants/{}", b.id),
    ] {
        assert!(
            urls.iter().any(|u| u == &format!("{base}{wanted}")),
            "{wanted} not requested: {urls:#?}"
        );
    }

    // No CSP violation so far; and the policy is in force (an injected inline
    // style and script are refused and reported), so the check can fail.
    let violations = browser.csp_violations().await;
    assert!(violations.is_empty(), "{violations:#?}");
    js(
        &browser,
        "const s = document.createElement('script'); s.textContent = 'window.injected = 1'; \
         document.head.append(s); \
         const c = document.createElement('style'); c.textContent = 'body { color: red }'; \
         document.head.append(c); return null",
    )
    .await;
    assert_eq!(
        js(&browser, "return window.injected ?? null").await,
        Value::Null
    );
    let violations = browser.csp_violations().await;
    assert!(violations.len() >= 2, "{violations:#?}");

    // And the network check can fail: a page of the console that sends the
    // browser elsewhere shows up in it.
    js(
        &browser,
        "location.assign('http://127.0.0.2:9/elsewhere'); return null",
    )
    .await;
    actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
    let after = browser.web_requests().await;
    assert!(
        after.iter().any(|u| u == "http://127.0.0.2:9/elsewhere"),
        "{after:#?}"
    );
    browser.close().await;
}

#[actix_web::test]
async fn a_viewer_sees_no_admin_actions_and_the_api_refuses_them_anyway() {
    let Some(Setup {
        app, a, _directory, ..
    }) = setup("consv").await
    else {
        return;
    };
    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "consv-a", "vera", "vera-pw").await;
    browser.wait_for_text("#role", "viewer").await;
    let nav = browser.wait_for("#nav").await.text().await.unwrap();
    assert!(nav.contains("Members"), "{nav}");
    assert!(!nav.contains("Usage") && !nav.contains("Audit"), "{nav}");

    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/members", a.id))
        .await
        .unwrap();
    browser.wait_for_text("table", "vera@example.com").await;
    let actions = browser
        .client
        .find_all(Locator::Css(".admin-action, #add-member, select"))
        .await
        .unwrap();
    assert!(
        actions.is_empty(),
        "a viewer got {} controls",
        actions.len()
    );
    screenshot(&browser, "members-viewer").await;

    // A page the role lacks, by URL: the API's refusal with its request id.
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/audit", a.id))
        .await
        .unwrap();
    browser.wait_for_text("#view-problem", "request id").await;

    // The API refuses the admin action anyway (the same directory sign-in).
    let session = crate::signin::sign_in(&app, "consv-a", "vera", "vera-pw").await;
    assert_eq!(session.status, 200, "{}", session.body);
    let token = session.body["access_token"].as_str().unwrap();
    let email = format!("{}@example.com", Uuid::new_v4().simple());
    let refused = app
        .post(
            "/v1/users",
            token,
            json!({ "email": email, "display_name": "X", "role": "member" }),
        )
        .await;
    crate::helpers::assert_problem(&refused, 403, "forbidden");
    browser.close().await;
}
