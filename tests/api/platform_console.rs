//! Platform sessions in the console's cookie mode (`sessions::cookie::PLATFORM`):
//! `?session=cookie` on the platform callback puts the refresh token only in
//! the `__Secure-mpr` cookie (`Path=/v1/auth/platform`), refresh and logout by
//! it need the CSRF token, and neither a platform nor a tenant cookie is
//! accepted by the other kind of session's refresh.

use meridian::platform::PlatformIdentity;
use meridian::platform::bootstrap::{Added, add_admin};
use meridian::secret::Secret;
use serde_json::{Value, json};

use crate::helpers::{
    Reply, TestApp, assert_problem, fresh_database, spawn_app_with, test_settings,
};
use crate::oidc::{MockProvider, REDIRECT, mock_bin, no_redirects, query_param};

/// An app whose platform provider is `mock` (redirect URIs `redirect_uris`
/// and the app's own `/console/`), with platform users: `root` (admin) and,
/// when given, `operator_sub`.
pub(crate) async fn platform_app(
    mock: &MockProvider,
    redirect_uris: &[String],
    operator_sub: Option<&str>,
) -> TestApp {
    platform_nodes(mock, redirect_uris, operator_sub, &[])
        .await
        .0
}

/// `platform_app` in us-east1, plus a plain node for each of `others` (same
/// database, every node the others' peer, so each probes the others'
/// health): the failover a drain causes needs regions that serve.
pub(crate) async fn platform_nodes(
    mock: &MockProvider,
    redirect_uris: &[String],
    operator_sub: Option<&str>,
    others: &[&str],
) -> (TestApp, Vec<TestApp>) {
    let db = fresh_database().await;
    let port = crate::helpers::free_port();
    let mut peers: std::collections::BTreeMap<String, String> = others
        .iter()
        .map(|r| {
            (
                r.to_string(),
                format!("http://127.0.0.1:{}", crate::helpers::free_port()),
            )
        })
        .collect();
    peers.insert("us-east1".into(), format!("http://127.0.0.1:{port}"));
    let database = test_settings(&db).database;
    let added = add_admin(
        &database,
        "us-east1",
        &mock.issuer,
        "root",
        "root@example.com",
    )
    .await
    .unwrap();
    assert!(matches!(added, Added::Created(_)), "{added:?}");
    let mut nodes = Vec::new();
    for region in others {
        let mut settings = test_settings(&db);
        settings.region = region.to_string();
        settings.http.bind = Some(
            peers[*region]
                .trim_start_matches("http://")
                .parse()
                .unwrap(),
        );
        settings.routing.peers = peers.clone();
        nodes.push(spawn_app_with(settings).await);
    }
    let mut settings = test_settings(&db);
    // A known port, so that the console's address can be registered.
    settings.http.bind = Some(format!("127.0.0.1:{port}").parse().unwrap());
    if !others.is_empty() {
        settings.routing.peers = peers;
    }
    let mut uris = redirect_uris.to_vec();
    uris.push(format!("http://127.0.0.1:{port}/console/"));
    settings.platform_identity = Some(PlatformIdentity {
        issuer: mock.issuer.clone(),
        client_id: "meridian-platform".into(),
        client_secret: Some(Secret::new("mock-client-secret")),
        redirect_uris: uris,
    });
    let app = spawn_app_with(settings).await;
    if let Some(sub) = operator_sub {
        let created = app
            .post(
                "/v1/platform/users",
                &app.platform_token(),
                json!({"issuer": mock.issuer, "subject": sub,
                       "email": format!("{sub}@example.com"), "role": "operator"}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    for region in others {
        crate::regions::eventually(&format!("{region} serving"), async || {
            let regions = app.get("/v1/regions", &app.platform_token()).await;
            regions.body["regions"].as_array().is_some_and(|all| {
                all.iter()
                    .any(|r| r["id"] == *region && r["healthy"] == true)
            })
        })
        .await;
    }
    (app, nodes)
}

/// The provider's answer to `authorize` (a start's `Location`) for `sub`: code and state.
pub(crate) async fn provider_answer(authorize: &str, sub: &str, back_to: &str) -> (String, String) {
    let answer = no_redirects()
        .post(authorize)
        .send_form(&[("sub", sub)])
        .await
        .unwrap();
    let back = answer
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(back.starts_with(back_to), "{back}");
    (
        query_param(&back, "code").unwrap(),
        query_param(&back, "state").unwrap(),
    )
}

async fn start_location(app: &TestApp, path: &str) -> String {
    let start = no_redirects()
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    start
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn encoded(uri: &str) -> String {
    uri.replace(':', "%3A").replace('/', "%2F")
}

/// `method path` with `body` and these headers (`Cookie`, `X-Meridian-CSRF`).
async fn send(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = app.client.post(format!("{}{path}", app.base));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let mut res = req.send_json(&json!({})).await.unwrap();
    let bytes = res.body().await.unwrap();
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn get(app: &TestApp, path: &str) -> Reply {
    app.request("GET", path, None, None).await
}

/// The one cookie `reply` sets named `name`: its value and attributes.
fn set_cookie(reply: &Reply, name: &str) -> (String, Vec<String>) {
    let headers: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(headers.len(), 1, "{headers:?}");
    let mut parts = headers[0].split(';').map(|p| p.trim().to_owned());
    let pair = parts.next().unwrap();
    let value = pair
        .strip_prefix(&format!("{name}="))
        .unwrap_or_else(|| panic!("{pair} is not {name}"))
        .to_owned();
    (value, parts.collect())
}

#[actix_web::test]
async fn platform_console_sessions_use_their_own_cookie_with_csrf() {
    let Some(bin) = mock_bin() else { return };
    let mock = MockProvider::start(
        &bin,
        &[
            json!({"sub": "root", "email": "root@example.com"}),
            json!({"sub": "alice", "email": "alice@example.com", "groups": ["eng"]}),
        ],
    );
    let console = "http://console.example/console/".to_owned();
    let app = platform_app(&mock, std::slice::from_ref(&console), None).await;

    // The platform sign-in, cookie mode: no refresh token in the body.
    let authorize = start_location(
        &app,
        &format!(
            "/v1/auth/platform/oidc/start?redirect_uri={}",
            encoded(&console)
        ),
    )
    .await;
    let (code, state) = provider_answer(&authorize, "root", &console).await;
    let signed_in = get(
        &app,
        &format!(
            "/v1/auth/platform/oidc/callback?code={}&state={state}&session=cookie",
            code.replace('+', "%2B")
        ),
    )
    .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert!(
        signed_in.body.get("refresh_token").is_none(),
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.body["role"], "platform_admin");
    let csrf = signed_in.body["csrf_token"].as_str().unwrap().to_owned();
    let (first, attributes) = set_cookie(&signed_in, "__Secure-mpr");
    assert!(first.starts_with("mpr_"), "{first}");
    for wanted in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/v1/auth/platform",
    ] {
        assert!(attributes.iter().any(|a| a == wanted), "{attributes:?}");
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("Domain")),
        "{attributes:?}"
    );
    let admin = signed_in.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/platform/users", admin).await.status, 200);

    // The cookie without its CSRF token, or with a wrong one: refused.
    let mpr = |v: &str| format!("__Secure-mpr={v}");
    for headers in [
        vec![("Cookie", mpr(&first))],
        vec![("Cookie", mpr(&first)), ("X-Meridian-CSRF", "x".repeat(43))],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = send(&app, "/v1/auth/platform/refresh", &headers).await;
        assert_problem(&refused, 403, "csrf_failed");
    }

    // A tenant's console session (the tenant's OIDC, same mock), for the cross checks.
    let tenant = app.provision("pcs-tenant").await;
    crate::oidc::oidc_provider(&app, &tenant, &mock.issuer).await;
    let authorize = start_location(
        &app,
        &format!(
            "/v1/auth/pcs-tenant/oidc/start?redirect_uri={}",
            encoded(REDIRECT)
        ),
    )
    .await;
    let (code, state) = provider_answer(&authorize, "alice", REDIRECT).await;
    let tenant_session = get(
        &app,
        &format!(
            "/v1/auth/oidc/callback?code={}&state={state}&session=cookie",
            code.replace('+', "%2B")
        ),
    )
    .await;
    assert_eq!(tenant_session.status, 200, "{}", tenant_session.body);
    let (tenant_token, _) = set_cookie(&tenant_session, "__Secure-mrt");
    let tenant_csrf = tenant_session.body["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A platform refresh token is no tenant session: not by the tenant's
    // route with the platform cookie (never read there), nor in the tenant
    // cookie's name with its own valid CSRF token.
    let platform_csrf = meridian::sessions::cookie::csrf_token(&first);
    assert_eq!(platform_csrf, csrf);
    for cookie in [mpr(&first), format!("__Secure-mrt={first}")] {
        let refused = send(
            &app,
            "/v1/auth/refresh",
            &[("Cookie", &cookie), ("X-Meridian-CSRF", &csrf)],
        )
        .await;
        assert_problem(&refused, 401, "unauthenticated");
    }
    // … and a tenant refresh token is no platform session, in either cookie.
    for cookie in [format!("__Secure-mrt={tenant_token}"), mpr(&tenant_token)] {
        let refused = send(
            &app,
            "/v1/auth/platform/refresh",
            &[("Cookie", &cookie), ("X-Meridian-CSRF", &tenant_csrf)],
        )
        .await;
        assert_eq!(refused.status, 401, "{cookie}: {}", refused.body);
    }
    // Both sessions survived those attempts.
    let tenant_next = send(
        &app,
        "/v1/auth/refresh",
        &[
            ("Cookie", &format!("__Secure-mrt={tenant_token}")),
            ("X-Meridian-CSRF", &tenant_csrf),
        ],
    )
    .await;
    assert_eq!(tenant_next.status, 200, "{}", tenant_next.body);

    // The platform cookie with its CSRF token: rotated, a new cookie and token.
    let next = send(
        &app,
        "/v1/auth/platform/refresh",
        &[("Cookie", &mpr(&first)), ("X-Meridian-CSRF", &csrf)],
    )
    .await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert!(next.body.get("refresh_token").is_none(), "{}", next.body);
    assert_eq!(next.body["role"], "platform_admin");
    let (second, _) = set_cookie(&next, "__Secure-mpr");
    assert_ne!(second, first);
    let next_csrf = next.body["csrf_token"].as_str().unwrap().to_owned();
    assert_ne!(next_csrf, csrf);
    // The old CSRF token does not go with the new cookie.
    let stale = send(
        &app,
        "/v1/auth/platform/refresh",
        &[("Cookie", &mpr(&second)), ("X-Meridian-CSRF", &csrf)],
    )
    .await;
    assert_problem(&stale, 403, "csrf_failed");

    // Logout by the cookie: 204, the cookie removed, the session over.
    let out = send(
        &app,
        "/v1/auth/platform/logout",
        &[("Cookie", &mpr(&second)), ("X-Meridian-CSRF", &next_csrf)],
    )
    .await;
    assert_eq!(out.status, 204, "{}", out.body);
    let (cleared, attributes) = set_cookie(&out, "__Secure-mpr");
    assert!(cleared.is_empty(), "{cleared}");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );
    let after = send(
        &app,
        "/v1/auth/platform/refresh",
        &[("Cookie", &mpr(&second)), ("X-Meridian-CSRF", &next_csrf)],
    )
    .await;
    assert_problem(&after, 401, "unauthenticated");
    // A refused cookie refresh removes the dead cookie.
    let (gone, _) = set_cookie(&after, "__Secure-mpr");
    assert!(gone.is_empty(), "{gone}");

    // API clients are unchanged: both tokens in the body.
    let authorize = start_location(
        &app,
        &format!(
            "/v1/auth/platform/oidc/start?redirect_uri={}",
            encoded(&console)
        ),
    )
    .await;
    let (code, state) = provider_answer(&authorize, "root", &console).await;
    let body_mode = get(
        &app,
        &format!(
            "/v1/auth/platform/oidc/callback?code={}&state={state}",
            code.replace('+', "%2B")
        ),
    )
    .await;
    assert_eq!(body_mode.status, 200, "{}", body_mode.body);
    assert!(
        body_mode.body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("mpr_")
    );
    assert!(body_mode.body.get("csrf_token").is_none());
    assert!(body_mode.headers.get("set-cookie").is_none());
}
