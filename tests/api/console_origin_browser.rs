//! The console in several regions, in a real headless Chromium with a real
//! OpenLDAP: a user of an EU-pinned tenant opens the console at a US node, is
//! sent to the EU node that serves the tenant before any password is sent
//! (`GET /v1/auth/{slug}/origin`, `origin.js`), signs in there, and every
//! request after the move goes to that node.

use fantoccini::Locator;
use serde_json::json;
use uuid::Uuid;

use crate::browser::{self, Browser};
use crate::helpers::Tenant;
use crate::regions::{provision_in, spawn_regions};
use crate::slapd::{self, Slapd};

#[actix_web::test]
async fn the_console_moves_to_the_tenants_serving_region_before_sign_in() {
    if !slapd::available() || !browser::available() {
        return;
    }
    let directory = Slapd::start(
        &(slapd::person("erik", "erik-pw", "erik@example.com")
            + &slapd::group("admins", &["erik"])),
    );
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let (us, eu) = (&nodes["us-east1"], &nodes["europe-west1"]);
    let (id, owner_token) = provision_in(
        us,
        "eu-console",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    let tenant = Tenant {
        id,
        owner_id: Uuid::nil(),
        owner_token,
    };
    let mut provider = crate::identity::ldap_body(&directory.url, slapd::SERVICE_PW);
    provider["ldap"]["group_base_dn"] = json!(slapd::SUFFIX);
    provider["role_mappings"] = json!([{ "group": "admins", "role": "admin" }]);
    crate::identity::create_provider(eu, &tenant, provider).await;

    let browser = Browser::start().await;
    browser
        .fill_signin(&us.base, "eu-console", "erik", "erik-pw")
        .await;
    browser
        .client
        .find(Locator::Css("#signin-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // At the EU node's console: the slug and username came along, the password did not.
    browser.wait_for("#signin-moved").await;
    let here = browser.client.current_url().await.unwrap();
    assert_eq!(
        here.as_str(),
        format!("{}/console/#/signin", eu.base),
        "the address keeps only the page"
    );
    for (field, want) in [
        ("#slug", "eu-console"),
        ("#username", "erik"),
        ("#password", ""),
    ] {
        let value = browser
            .client
            .find(Locator::Css(field))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some(want), "{field}");
    }
    let before_move = browser.web_requests().await;
    let at_us: Vec<&String> = before_move
        .iter()
        .filter(|url| url.starts_with(&us.base))
        .collect();
    assert!(
        at_us
            .iter()
            .any(|url| url.ends_with("/v1/auth/eu-console/origin")),
        "{before_move:?}"
    );
    assert!(
        !at_us.iter().any(|url| url.contains("/ldap")),
        "nothing of the sign-in went to the US node: {before_move:?}"
    );

    let password = browser
        .client
        .find(Locator::Css("#password"))
        .await
        .unwrap();
    password.send_keys("erik-pw").await.unwrap();
    password.send_keys("\u{E007}").await.unwrap();
    browser.wait_for_text("#role", "admin").await;
    browser.wait_for_text("#nav", "Members").await;

    let after_move = browser.web_requests().await;
    assert!(
        after_move
            .iter()
            .any(|url| url.starts_with(&format!("{}/v1/auth/eu-console/ldap", eu.base))),
        "{after_move:?}"
    );
    assert!(
        after_move.iter().all(|url| url.starts_with(&eu.base)),
        "after the move every request went to the EU node: {after_move:?}"
    );
    assert!(
        browser.csp_violations().await.is_empty(),
        "no CSP violation"
    );
}
