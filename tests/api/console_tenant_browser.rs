//! The console's tenant pages in a real headless Chromium (`browser::Browser`),
//! signed in through a real OpenLDAP (`slapd`): a compliance officer verifies
//! the audit chain, asks for a tenant export, waits for it and downloads it
//! (the archive's bytes checked against the API's SHA-256 and size), sees the
//! exports listed from the API (the owner's too) across a reload, and reads
//! the residency report; an admin sees the usage charts drawn from
//! `/v1/usage/history`; and an accessibility scan (axe-core, `axe.rs`) of
//! every console page finds nothing serious or critical (and does find an
//! unlabelled input put into a page on purpose, so the scan can fail).
//! `MERIDIAN_CONSOLE_SCREENSHOTS=<dir>` saves the pages as PNGs there.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{self, Browser};
use crate::helpers::{Tenant, TestApp, fresh_database, spawn_app_with, test_settings};
use crate::slapd::{self, Slapd};

/// cora is a compliance officer, carol an admin, olive an owner.
fn directory() -> Slapd {
    let people = [
        slapd::person("cora", "cora-pw", "cora@example.com"),
        slapd::person("carol", "carol-pw", "carol@example.com"),
        slapd::person("olive", "olive-pw", "olive@example.com"),
    ]
    .concat();
    let groups = [
        slapd::group("auditors", &["cora"]),
        slapd::group("admins", &["carol"]),
        slapd::group("owners", &["olive"]),
    ]
    .concat();
    Slapd::start(&(people + &groups))
}

pub(crate) struct Setup {
    pub app: TestApp,
    pub a: Tenant,
    pub axe: String,
    pub _directory: Slapd,
}

pub(crate) async fn setup(slug: &str) -> Option<Setup> {
    setup_with(slug, |_| {}).await
}

/// `setup` with the node's settings changed by `tweak` first.
pub(crate) async fn setup_with(
    slug: &str,
    tweak: impl FnOnce(&mut meridian::config::Settings),
) -> Option<Setup> {
    if !slapd::available() || !browser::available() {
        return None;
    }
    let axe = crate::axe::source()?;
    let directory = directory();
    let mut settings = test_settings(&fresh_database().await);
    // Usage samples every 200 ms, so the charts have this test's requests.
    settings.usage_history.sample_interval = Duration::from_millis(200);
    tweak(&mut settings);
    let app = spawn_app_with(settings).await;
    let a = app.provision(slug).await;
    let mut body = crate::identity::ldap_body(&directory.url, slapd::SERVICE_PW);
    body["ldap"]["group_base_dn"] = json!(slapd::SUFFIX);
    body["role_mappings"] = json!([
        { "group": "auditors", "role": "compliance" },
        { "group": "admins", "role": "admin" },
        { "group": "owners", "role": "owner" },
    ]);
    crate::identity::create_provider(&app, &a, body).await;
    Some(Setup {
        app,
        a,
        axe,
        _directory: directory,
    })
}

pub(crate) async fn sign_in(browser: &Browser, base: &str, slug: &str, user: &str, password: &str) {
    browser.fill_signin(base, slug, user, password).await;
    let submit = browser
        .client
        .find(Locator::Css("#signin-submit"))
        .await
        .unwrap();
    submit.click().await.unwrap();
}

pub(crate) async fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("MERIDIAN_CONSOLE_SCREENSHOTS") {
        let png = browser.client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

pub(crate) async fn click(browser: &Browser, css: &str) {
    browser.wait_for(css).await.click().await.unwrap();
}

/// Opens `page` of the tenant, waits for `ready`, and scans it with axe:
/// the serious or critical violations, with the page named.
pub(crate) async fn scan(
    browser: &Browser,
    axe: &str,
    base: &str,
    tenant: &Tenant,
    page: &str,
    ready: &str,
) -> Vec<String> {
    let url = format!("{base}/console/#/tenants/{}{page}", tenant.id);
    browser.client.goto(&url).await.unwrap();
    browser.wait_for(ready).await;
    crate::axe::serious_violations(browser, axe)
        .await
        .into_iter()
        .map(|v| format!("{page}: {v}"))
        .collect()
}

#[actix_web::test]
async fn a_compliance_officer_verifies_the_chain_and_downloads_an_export() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup("ctb-comp").await
    else {
        return;
    };
    // A user added through the API: `user_created` carries their address sealed
    // with their own key, which the audit page shows opened.
    let added = app
        .post(
            "/v1/users",
            &a.owner_token,
            json!({"email": "dana@ctb-comp.example", "display_name": "Dana", "role": "member"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "ctb-comp", "cora", "cora-pw").await;
    browser.wait_for_text("#role", "compliance").await;
    let nav = browser.wait_for_text("#nav", "Exports").await;
    assert!(
        nav.contains("Audit trail") && nav.contains("Residency"),
        "{nav}"
    );
    assert!(!nav.contains("Usage"), "{nav}");

    // The chain, verified from the audit page.
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/audit", a.id))
        .await
        .unwrap();
    click(&browser, "#verify-chain").await;
    browser.wait_for_text("#verdict", "Chain intact").await;
    browser
        .wait_for_text("#audit-events", "email: dana@ctb-comp.example")
        .await;

    // An export the owner asked for through the API, before the officer opens
    // the page: the page lists it from `GET /v1/exports`, not from this tab.
    let owners = crate::exports::request(&app, &a.owner_token, json!({"scope": "user"})).await;

    // An export of the whole tenant: asked for, built by the job, downloaded.
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/exports", a.id))
        .await
        .unwrap();
    click(&browser, "#export-tenant").await;
    browser.wait_for(".export-state").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Read in the page: "Refresh" replaces the rows, so a found element
        // may be gone by the time its text is asked for.
        let state = browser
            .client
            .execute(
                "const e = document.querySelector('.export-state'); return e ? e.textContent : '';",
                vec![],
            )
            .await
            .unwrap();
        if state == "ready" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "export still {state}: {}",
            browser.page_text().await
        );
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        click(&browser, "#exports-refresh").await;
    }
    screenshot(&browser, "exports").await;
    click(&browser, "button.download").await;
    let said = browser.wait_for_text(".download-status", "matches").await;
    let status = browser.wait_for(".download-status").await;
    let sha = status.attr("data-sha256").await.unwrap().unwrap();
    let size = status.attr("data-size").await.unwrap().unwrap();
    // What the browser received is what the API says the export is.
    let id = browser
        .wait_for("#exports-list code")
        .await
        .text()
        .await
        .unwrap();
    let export = app.get(&format!("/v1/exports/{id}"), &a.owner_token).await;
    assert_eq!(export.status, 200, "{}", export.body);
    assert_eq!(export.body["sha256"], sha.as_str(), "{said}");
    assert_eq!(export.body["size"].to_string(), size);
    assert!(size.parse::<u64>().unwrap() > 0);
    // And the download is in the tenant's trail, by this officer.
    let trail = app.get("/v1/audit?limit=20", &a.owner_token).await;
    assert!(
        trail.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"]
                .as_str()
                .is_some_and(|a| a == "export.downloaded")),
        "{}",
        trail.body
    );

    // Across a reload (the session resumed by the cookie's refresh), the list
    // is the API's: both exports, newest first, the owner's included.
    browser.client.refresh().await.unwrap();
    browser.wait_for("#exports-list table").await;
    let listed: Vec<String> = serde_json::from_value(
        browser
            .client
            .execute(
                "return Array.from(document.querySelectorAll('#exports-list tbody tr td:first-child code'), \
                   (c) => c.textContent);",
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    let api = app.get("/v1/exports", &a.owner_token).await;
    let api_ids: Vec<String> = api.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, api_ids);
    assert_eq!(listed, [id.clone(), owners.to_string()]);

    // The audit page's filter narrows the trail to the download.
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/audit", a.id))
        .await
        .unwrap();
    browser.wait_for_text("#audit-events", "Events").await;
    browser
        .wait_for("#filter-action")
        .await
        .send_keys("export.downloaded")
        .await
        .unwrap();
    click(&browser, "#filter-apply").await;
    browser
        .wait_for_text("#audit-events caption", "Events")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let texts: Vec<String> = serde_json::from_value(
            browser
                .client
                .execute(
                    "return Array.from(document.querySelectorAll(\
                       '#audit-events tbody tr td:nth-child(2)'), (c) => c.textContent);",
                    vec![],
                )
                .await
                .unwrap(),
        )
        .unwrap();
        if (!texts.is_empty() && texts.iter().all(|t| t == "export.downloaded"))
            || Instant::now() > deadline
        {
            break texts;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !shown.is_empty() && shown.iter().all(|t| t == "export.downloaded"),
        "{shown:?}"
    );
    screenshot(&browser, "audit-filtered").await;

    // The residency report.
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/residency", a.id))
        .await
        .unwrap();
    browser
        .wait_for_text("#residency-verdict", "Compliant")
        .await;
    screenshot(&browser, "residency").await;

    // Every page the officer has, scanned.
    let mut found = Vec::new();
    for (page, ready) in [
        ("", "#my-role"),
        ("/members", "table"),
        ("/audit", "#audit-filters"),
        ("/exports", "#exports-list table"),
        ("/residency", "#residency-verdict"),
    ] {
        found.extend(scan(&browser, &axe, base, &a, page, ready).await);
    }
    assert!(
        found.is_empty(),
        "accessibility violations:\n{}",
        found.join("\n")
    );
    browser.close().await;
}

#[actix_web::test]
async fn an_admin_sees_usage_charts_and_the_pages_pass_an_accessibility_scan() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup("ctb-admin").await
    else {
        return;
    };
    let browser = Browser::start().await;
    let base = &app.base;

    // The sign-in page itself, before anyone signs in.
    browser
        .client
        .goto(&format!("{base}/console/"))
        .await
        .unwrap();
    browser.wait_for("#signin").await;
    let mut found: Vec<String> = crate::axe::serious_violations(&browser, &axe)
        .await
        .into_iter()
        .map(|v| format!("signin: {v}"))
        .collect();

    sign_in(&browser, base, "ctb-admin", "carol", "carol-pw").await;
    browser.wait_for_text("#role", "admin").await;
    // Requests of this session land in the current hour's sample; the chart
    // shows them once sampled (every 200 ms here).
    let usage = format!("{base}/console/#/tenants/{}/usage", a.id);
    let deadline = Instant::now() + Duration::from_secs(20);
    let bars = loop {
        browser
            .client
            .goto(&format!("{base}/console/#/tenants/{}", a.id))
            .await
            .unwrap();
        browser.wait_for("#my-role").await;
        browser.client.goto(&usage).await.unwrap();
        browser.wait_for("#chart-requests").await;
        let bars = browser
            .client
            .find_all(Locator::Css("#chart-requests rect.bar"))
            .await
            .unwrap();
        if !bars.is_empty() || Instant::now() > deadline {
            break bars;
        }
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!bars.is_empty(), "{}", browser.page_text().await);
    // The chart's values are the history route's, in its table.
    let history = app.get("/v1/usage/history", &a.owner_token).await;
    let last = history.body["buckets"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last["requests"].as_u64().unwrap() > 0, "{last}");
    let name = browser
        .wait_for("#chart-requests title")
        .await
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(name.starts_with("Requests per hour"), "{name}");
    let cells = browser
        .client
        .find_all(Locator::Css("#chart-requests + details td"))
        .await
        .unwrap();
    assert!(cells.len() >= 2, "{}", browser.page_text().await);
    browser
        .client
        .execute(
            "document.querySelector('#usage-history').scrollIntoView(); return true;",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&browser, "usage-chart").await;

    for (page, ready) in [
        ("", "#my-role"),
        ("/members", "#add-member"),
        ("/usage", "#chart-storage"),
        ("/audit", "#verify-chain"),
        ("/exports", "#exports-list"),
    ] {
        found.extend(scan(&browser, &axe, base, &a, page, ready).await);
    }
    assert!(
        found.is_empty(),
        "accessibility violations:\n{}",
        found.join("\n")
    );

    // The scan can fail: an unlabelled input put into the page is reported.
    browser
        .client
        .execute(
            "document.getElementById('main').append(document.createElement('input')); return true;",
            vec![],
        )
        .await
        .unwrap();
    let caught = crate::axe::serious_violations(&browser, &axe).await;
    assert!(
        caught.iter().any(|v| v.starts_with("label (critical)")),
        "{caught:?}"
    );
    browser.close().await;
}
