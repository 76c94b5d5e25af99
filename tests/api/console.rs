//! The console's session delivery (`sessions::cookie`): the refresh token only
//! in an `HttpOnly; Secure; SameSite=Strict; Path=/v1/auth` cookie, refresh and
//! logout by that cookie only with the session's CSRF token.

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, assert_problem};

/// `POST path` with `body`, and these headers (`Cookie`, `X-Meridian-CSRF`).
async fn post_with(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = app.client.post(format!("{}{path}", app.base));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let mut res = req.send_json(&body).await.unwrap();
    let bytes = res.body().await.unwrap();
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// The `__Secure-mrt` cookie a response sets: its value and its attributes.
fn set_cookie(reply: &Reply) -> (String, Vec<String>) {
    let headers: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(headers.len(), 1, "{headers:?}");
    let mut parts = headers[0].split(';').map(|p| p.trim().to_owned());
    let pair = parts.next().unwrap();
    let value = pair.strip_prefix("__Secure-mrt=").expect(&pair).to_owned();
    (value, parts.collect())
}

fn cookie(value: &str) -> String {
    format!("__Secure-mrt={value}")
}

#[actix_web::test]
async fn the_console_keeps_its_refresh_token_in_a_cookie_guarded_by_csrf() {
    let Some((app, _t, _directory)) = crate::signin::setup("console").await else {
        return;
    };
    let signed_in = post_with(
        &app,
        "/v1/auth/console/ldap?session=cookie",
        json!({ "username": "alice", "password": "alice-pw" }),
        &[],
    )
    .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert!(
        signed_in.body.get("refresh_token").is_none(),
        "never in the body: {}",
        signed_in.body
    );
    let csrf = signed_in.body["csrf_token"].as_str().unwrap().to_owned();
    let (first, attributes) = set_cookie(&signed_in);
    assert!(first.starts_with("mrt_"), "{first}");
    for wanted in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/v1/auth"] {
        assert!(attributes.iter().any(|a| a == wanted), "{attributes:?}");
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("Domain")),
        "host-only: {attributes:?}"
    );
    let access = signed_in.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/me", access).await.status, 200);

    // The cookie without the CSRF token, or with a wrong one: refused, and
    // the session is untouched.
    for headers in [
        vec![("Cookie", cookie(&first))],
        vec![
            ("Cookie", cookie(&first)),
            ("X-Meridian-CSRF", "x".repeat(43)),
        ],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = post_with(&app, "/v1/auth/refresh", json!({}), &headers).await;
        assert_problem(&refused, 403, "csrf_failed");
        let refused = post_with(&app, "/v1/auth/logout", json!({}), &headers).await;
        assert_problem(&refused, 403, "csrf_failed");
    }
    // Another session's CSRF token does not fit this cookie either.
    let other = post_with(
        &app,
        "/v1/auth/console/ldap?session=cookie",
        json!({ "username": "alice", "password": "alice-pw" }),
        &[],
    )
    .await;
    let other_csrf = other.body["csrf_token"].as_str().unwrap();
    let refused = post_with(
        &app,
        "/v1/auth/refresh",
        json!({}),
        &[("Cookie", &cookie(&first)), ("X-Meridian-CSRF", other_csrf)],
    )
    .await;
    assert_problem(&refused, 403, "csrf_failed");

    // With it: rotated, the new token again only in the cookie, a new CSRF token.
    let rotated = post_with(
        &app,
        "/v1/auth/refresh",
        json!({}),
        &[("Cookie", &cookie(&first)), ("X-Meridian-CSRF", &csrf)],
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert!(
        rotated.body.get("refresh_token").is_none(),
        "{}",
        rotated.body
    );
    let (second, attributes) = set_cookie(&rotated);
    assert_ne!(second, first);
    assert!(attributes.iter().any(|a| a == "HttpOnly"), "{attributes:?}");
    let next_csrf = rotated.body["csrf_token"].as_str().unwrap().to_owned();
    assert_ne!(next_csrf, csrf);
    // The old CSRF token does not fit the new cookie.
    let stale = post_with(
        &app,
        "/v1/auth/refresh",
        json!({}),
        &[("Cookie", &cookie(&second)), ("X-Meridian-CSRF", &csrf)],
    )
    .await;
    assert_problem(&stale, 403, "csrf_failed");

    // Logout by the cookie ends the session and removes the cookie.
    let out = post_with(
        &app,
        "/v1/auth/logout",
        json!({}),
        &[
            ("Cookie", &cookie(&second)),
            ("X-Meridian-CSRF", &next_csrf),
        ],
    )
    .await;
    assert_eq!(out.status, 204, "{}", out.body);
    let (cleared, attributes) = set_cookie(&out);
    assert_eq!(cleared, "");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0")
            && attributes.iter().any(|a| a == "Path=/v1/auth"),
        "{attributes:?}"
    );
    let after = post_with(
        &app,
        "/v1/auth/refresh",
        json!({}),
        &[
            ("Cookie", &cookie(&second)),
            ("X-Meridian-CSRF", &next_csrf),
        ],
    )
    .await;
    assert_problem(&after, 401, "unauthenticated");
    // A refused cookie is removed too.
    assert_eq!(set_cookie(&after).0, "");

    // Without the cookie and without a token in the body: nothing to refresh.
    let nothing = post_with(&app, "/v1/auth/refresh", json!({}), &[]).await;
    assert_problem(&nothing, 401, "unauthenticated");
    // API clients are unchanged: the token in the body, no cookie, no CSRF.
    let api = post_with(
        &app,
        "/v1/auth/console/ldap",
        json!({ "username": "alice", "password": "alice-pw" }),
        &[],
    )
    .await;
    assert_eq!(api.status, 200, "{}", api.body);
    assert!(api.headers.get("set-cookie").is_none());
    assert!(api.body.get("csrf_token").is_none(), "{}", api.body);
    let renewed = post_with(
        &app,
        "/v1/auth/refresh",
        json!({ "refresh_token": api.body["refresh_token"] }),
        &[],
    )
    .await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
}
