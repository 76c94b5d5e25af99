//! Serving the console (`meridian::console`): the page and its modules from the
//! binary, with the Content-Security-Policy, `nosniff`, and ETag revalidation on
//! every answer; outside `/v1`, so tenant routing never touches it.

use awc::http::StatusCode;

use crate::helpers::{TestApp, spawn_app};

struct Page {
    status: StatusCode,
    headers: awc::http::header::HeaderMap,
    body: String,
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Page {
    // Redirects are answers to check here, not to follow.
    let client = awc::Client::builder().disable_redirects().finish();
    let mut req = client.get(format!("{}{path}", app.base));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let mut res = req.send().await.unwrap();
    let body = res.body().await.unwrap();
    Page {
        status: res.status(),
        headers: res.headers().clone(),
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn header<'a>(page: &'a Page, name: &str) -> &'a str {
    page.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", page.headers))
        .to_str()
        .unwrap()
}

fn assert_protected(page: &Page) {
    let csp = header(page, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    for loose in ["unsafe-inline", "unsafe-eval", "*", "data:", "http"] {
        assert!(!csp.contains(loose), "{loose} in {csp}");
    }
    assert_eq!(header(page, "x-content-type-options"), "nosniff");
}

#[actix_web::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    let page = get(&app, "/console/", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_protected(&page);
    assert!(page.body.contains(r#"<script type="module" src="app.js">"#));
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let etag = header(&page, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 40, "{etag}");

    // Revalidation: the same bytes answer 304, still under the policy.
    let again = get(&app, "/console/", &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_protected(&again);
    let other = get(&app, "/console/", &[("If-None-Match", "\"other\"")]).await;
    assert_eq!(other.status, 200);

    // Every file the page loads, with its own type and tag.
    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("session.js", "text/javascript; charset=utf-8"),
        ("views.js", "text/javascript; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("charts.js", "text/javascript; charset=utf-8"),
        ("usage_history.js", "text/javascript; charset=utf-8"),
        ("compliance.js", "text/javascript; charset=utf-8"),
        ("erasure.js", "text/javascript; charset=utf-8"),
        ("residency_edit.js", "text/javascript; charset=utf-8"),
        ("webhooks.js", "text/javascript; charset=utf-8"),
        ("impersonations.js", "text/javascript; charset=utf-8"),
        ("audit_filters.js", "text/javascript; charset=utf-8"),
        ("acting.js", "text/javascript; charset=utf-8"),
        ("platform.js", "text/javascript; charset=utf-8"),
        ("regionmap.js", "text/javascript; charset=utf-8"),
        ("origin.js", "text/javascript; charset=utf-8"),
        ("calendar.js", "text/javascript; charset=utf-8"),
        ("top.js", "text/javascript; charset=utf-8"),
        ("provision.js", "text/javascript; charset=utf-8"),
        ("quotas.js", "text/javascript; charset=utf-8"),
        ("relocation.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
    ] {
        let asset = get(&app, &format!("/console/{file}"), &[]).await;
        assert_eq!(asset.status, 200, "{file}");
        assert_eq!(header(&asset, "content-type"), kind, "{file}");
        assert_ne!(header(&asset, "etag"), etag, "{file}");
        assert_protected(&asset);
    }

    // No other file; the bare path is sent to the page's directory.
    for missing in [
        "/console/nope.js",
        "/console/..%2Fopenapi.json",
        "/console/a/b",
    ] {
        let page = get(&app, missing, &[]).await;
        assert_eq!(page.status, 404, "{missing}");
    }
    let bare = get(&app, "/console", &[]).await;
    assert_eq!(bare.status, 308);
    assert_eq!(header(&bare, "location"), "/console/");
    assert_protected(&bare);
}

#[actix_web::test]
async fn the_console_is_not_routed_as_a_tenant_request() {
    let app = spawn_app().await;
    let t = app.provision("console-routing").await;
    let bearer = format!("Bearer {}", t.owner_token);
    let page = get(&app, "/console/", &[("Authorization", &bearer)]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers.get("x-meridian-home-region").is_none(),
        "routed as a tenant request: {:?}",
        page.headers
    );
    assert!(page.headers.get("x-meridian-region").is_some());
}
