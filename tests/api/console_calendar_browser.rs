//! The console's calendar page in a real headless Chromium (the harness of
//! `console_tenant_browser.rs`): an admin sees the tenant's CalDAV accounts
//! with the sync health the API stores — one whose server refuses
//! connections shows `failing` with its error and failure count, as `GET
//! /v1/calendar-accounts` has them — asks for a sync now and sees the job
//! the API queued; grants a collection to everyone with the form and revokes
//! it; the pages pass the accessibility scan.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::browser::Browser;
use crate::console_tenant_browser::{Setup, click, scan, screenshot, setup_with, sign_in};

#[actix_web::test]
async fn an_admin_sees_each_calendar_accounts_sync_health_and_syncs_one_now() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup_with("ctc-cal", |s| {
        s.outbound.allow_loopback = true;
        s.jobs.poll_interval = Duration::from_millis(50);
    })
    .await
    else {
        return;
    };
    // Nothing listens there: the account's first sync fails.
    let closed = crate::helpers::free_port();
    let created = app
        .post(
            "/v1/calendar-accounts",
            &a.owner_token,
            json!({ "base_url": format!("http://127.0.0.1:{closed}/dav/"),
                    "username": "cal-user", "password": "cal-secret-pw" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let reply = app
            .get(&format!("/v1/calendar-accounts/{account}"), &a.owner_token)
            .await;
        if reply.body["status"] == "failing" || Instant::now() > deadline {
            break reply.body;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored["status"], "failing", "{stored}");

    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "ctc-cal", "carol", "carol-pw").await;
    browser.wait_for_text("#role", "admin").await;
    browser.wait_for_text("#nav", "Calendar").await;
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/calendar", a.id))
        .await
        .unwrap();
    let summary = browser
        .wait_for_text("#calendar-summary", "1 account")
        .await;
    assert!(summary.contains("1 failing"), "{summary}");
    let page = browser.wait_for_text("main", "cal-user").await;
    assert!(page.contains("failing"), "{page}");
    let error = stored["last_error"].as_str().unwrap();
    assert!(
        !error.is_empty() && page.contains(error),
        "{error} in {page}"
    );
    assert!(
        !page.contains("cal-secret-pw"),
        "the password is never on the page"
    );
    screenshot(&browser, "calendar").await;

    click(&browser, ".calendar-sync").await;
    let said = browser
        .wait_for_text("#calendar-notice", "queued as job")
        .await;
    let jobs = app.get("/v1/jobs?limit=50", &a.owner_token).await;
    let newest = jobs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "calendar.sync")
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(
        newest.iter().any(|id| said.contains(id.as_str())),
        "{said} names one of {newest:?}"
    );

    let violations = scan(&browser, &axe, base, &a, "/calendar", ".calendar-sync").await;
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(browser.csp_violations().await.is_empty());
}

/// The grants under each account: an admin grants a collection to everyone
/// with the form (the API answers and the page shows the canonical path),
/// sees it as the API lists it, revokes it, and the page passes the scan.
#[actix_web::test]
async fn an_admin_grants_and_revokes_a_collection_on_the_calendar_page() {
    let Some(Setup {
        app,
        a,
        axe,
        _directory,
    }) = setup_with("ctc-grant", |_| {}).await
    else {
        return;
    };
    let created = app
        .post(
            "/v1/calendar-accounts",
            &a.owner_token,
            json!({ "base_url": "http://calendar.example/dav/",
                    "username": "cal-user", "password": "cal-secret-pw" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let grants = format!("/v1/calendar-accounts/{account}/grants");

    let browser = Browser::start().await;
    let base = &app.base;
    sign_in(&browser, base, "ctc-grant", "carol", "carol-pw").await;
    browser.wait_for_text("#nav", "Calendar").await;
    browser
        .client
        .goto(&format!("{base}/console/#/tenants/{}/calendar", a.id))
        .await
        .unwrap();
    browser.wait_for_text(".calendar-grants", "No grants").await;
    browser
        .wait_for(&format!("#grant-path-{account}"))
        .await
        .send_keys("/team/%70lan")
        .await
        .unwrap();
    click(&browser, ".grant-submit").await;
    let section = browser
        .wait_for_text(".calendar-grants", "/team/plan/")
        .await;
    assert!(section.contains("everyone in the tenant"), "{section}");
    let listed = app.get(&grants, &a.owner_token).await;
    assert_eq!(
        listed.body["items"][0]["path"], "/team/plan/",
        "{}",
        listed.body
    );
    assert_eq!(listed.body["items"][0]["user_id"], serde_json::Value::Null);
    screenshot(&browser, "calendar-grants").await;

    let violations = scan(&browser, &axe, base, &a, "/calendar", ".grant-revoke").await;
    assert!(violations.is_empty(), "{violations:#?}");
    click(&browser, ".grant-revoke").await;
    browser.wait_for_text(".calendar-grants", "No grants").await;
    let listed = app.get(&grants, &a.owner_token).await;
    assert_eq!(listed.body["items"], json!([]), "{}", listed.body);
    assert!(browser.csp_violations().await.is_empty());
}
