//! Platform accounts (`meridian::platform`): the first admin from the CLI's
//! bootstrap, platform sign-in through the platform's OIDC provider (the real
//! mock, `oidc::MockProvider`), platform sessions, operators, deprovisioning.

use meridian::platform::PlatformIdentity;
use meridian::platform::bootstrap::{Added, add_admin};
use meridian::secret::Secret;
use serde_json::{Value, json};

use crate::helpers::{
    Reply, TestApp, assert_problem, fresh_database, spawn_app_with, test_settings,
};
use crate::oidc::{MockProvider, mock_bin, no_redirects, query_param};

const CONSOLE: &str = "http://console.example/platform/cb";

/// The provider's answer for `sub`: the code and state the console gets back.
async fn authorize(app: &TestApp, sub: &str) -> (String, String) {
    let start = no_redirects()
        .get(format!(
            "{}/v1/auth/platform/oidc/start?redirect_uri={}",
            app.base,
            CONSOLE.replace(':', "%3A").replace('/', "%2F")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let authorize = start
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let answer = no_redirects()
        .post(&authorize)
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
    assert!(back.starts_with(CONSOLE), "{back}");
    (
        query_param(&back, "code").unwrap(),
        query_param(&back, "state").unwrap(),
    )
}

async fn sign_in(app: &TestApp, sub: &str) -> Reply {
    let (code, state) = authorize(app, sub).await;
    app.request(
        "GET",
        &format!("/v1/auth/platform/oidc/callback?code={code}&state={state}"),
        None,
        None,
    )
    .await
}

async fn refresh(app: &TestApp, token: &Value) -> Reply {
    app.request(
        "POST",
        "/v1/auth/platform/refresh",
        None,
        Some(json!({ "refresh_token": token })),
    )
    .await
}

#[actix_web::test]
async fn platform_staff_sign_in_through_the_platform_provider() {
    let Some(bin) = mock_bin() else { return };
    let mock = MockProvider::start(&bin, &[json!({"sub": "root", "email": "root@example.com"})]);
    let mut settings = test_settings(&fresh_database().await);
    settings.platform_identity = Some(PlatformIdentity {
        issuer: mock.issuer.clone(),
        client_id: "meridian-platform".into(),
        client_secret: Some(Secret::new("mock-client-secret")),
        redirect_uris: vec![CONSOLE.into()],
    });
    // The CLI's bootstrap, twice: one admin.
    let database = settings.database.clone();
    let first = add_admin(
        &database,
        "us-east1",
        &mock.issuer,
        "root",
        "root@example.com",
    )
    .await
    .unwrap();
    let Added::Created(root_id) = first else {
        panic!("{first:?}")
    };
    let again = add_admin(
        &database,
        "us-east1",
        &mock.issuer,
        "root",
        "root@example.com",
    )
    .await
    .unwrap();
    assert_eq!(again, Added::Unchanged(root_id));
    let app = spawn_app_with(settings).await;

    // An unregistered redirect URI is refused before anything is sent.
    let bad = app
        .request(
            "GET",
            "/v1/auth/platform/oidc/start?redirect_uri=http%3A%2F%2Fevil.example%2Fcb",
            None,
            None,
        )
        .await;
    assert_problem(&bad, 400, "validation_failed");

    // The whole code flow: a platform admin session, no tenant.
    let root = sign_in(&app, "root").await;
    assert_eq!(root.status, 200, "{}", root.body);
    assert_eq!(root.body["role"], "platform_admin");
    assert_eq!(root.body["user_id"], root_id.to_string());
    assert!(root.body.get("tenant_id").is_none(), "{}", root.body);
    let admin = root.body["access_token"].as_str().unwrap().to_owned();
    let users = app.get("/v1/platform/users", &admin).await;
    assert_eq!(users.status, 200, "{}", users.body);
    assert_eq!(users.body["items"][0]["subject"], "root");

    // A subject nobody created: the same answer as any refusal (no enumeration,
    // no just-in-time platform users).
    let stranger = sign_in(&app, "mallory").await;
    assert_problem(&stranger, 401, "unauthenticated");
    assert_eq!(stranger.body["detail"], "invalid credentials");
    let users = app.get("/v1/platform/users", &admin).await;
    assert_eq!(users.body["items"].as_array().unwrap().len(), 1);

    // The admin adds an operator, who signs in as one.
    let created = app
        .post(
            "/v1/platform/users",
            &admin,
            json!({"issuer": mock.issuer, "subject": "ops", "email": "ops@example.com",
                   "role": "operator"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ops_id = created.body["id"].as_str().unwrap().to_owned();
    let twice = app
        .post(
            "/v1/platform/users",
            &admin,
            json!({"issuer": mock.issuer, "subject": "ops", "email": "ops@example.com",
                   "role": "operator"}),
        )
        .await;
    assert_problem(&twice, 409, "conflict");
    let ops = sign_in(&app, "ops").await;
    assert_eq!(ops.status, 200, "{}", ops.body);
    assert_eq!(ops.body["role"], "operator");
    let operator = ops.body["access_token"].as_str().unwrap().to_owned();

    // An operator drains and undrains, never reads tenant content or manages
    // platform users.
    let tenant = app.provision("platform-seen").await;
    let drained = app
        .post("/v1/regions/asia-southeast1/drain", &operator, json!({}))
        .await;
    assert_eq!(drained.status, 200, "{}", drained.body);
    let undrained = app
        .post("/v1/regions/asia-southeast1/undrain", &operator, json!({}))
        .await;
    assert_eq!(undrained.status, 200, "{}", undrained.body);
    for path in [
        "/v1/channels".to_owned(),
        "/v1/users".to_owned(),
        "/v1/audit".to_owned(),
        format!("/v1/tenants/{}", tenant.id),
        "/v1/platform/users".to_owned(),
    ] {
        assert_problem(&app.get(&path, &operator).await, 403, "operator_forbidden");
    }
    let promote = app
        .patch(
            &format!("/v1/platform/users/{root_id}"),
            &operator,
            json!({"role": "operator"}),
        )
        .await;
    assert_problem(&promote, 403, "operator_forbidden");

    // Refresh rotates; a reused token ends the family.
    let next = refresh(&app, &root.body["refresh_token"]).await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(next.body["role"], "platform_admin");
    assert_problem(
        &refresh(&app, &root.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &refresh(&app, &next.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );

    // Disabled: the operator's access token stops at once, its refresh fails,
    // and it cannot sign in again.
    let disabled = app
        .patch(
            &format!("/v1/platform/users/{ops_id}"),
            &admin,
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(disabled.body["status"], "disabled");
    assert_problem(
        &app.get("/v1/regions", &operator).await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &refresh(&app, &ops.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );
    assert_problem(&sign_in(&app, "ops").await, 401, "unauthenticated");

    // The only active admin cannot be demoted; with a second admin it can.
    let refused = app
        .patch(
            &format!("/v1/platform/users/{root_id}"),
            &admin,
            json!({"role": "operator"}),
        )
        .await;
    assert_problem(&refused, 409, "last_platform_admin");
    let backup = app
        .post(
            "/v1/platform/users",
            &admin,
            json!({"issuer": mock.issuer, "subject": "backup", "email": "backup@example.com",
                   "role": "platform_admin"}),
        )
        .await;
    assert_eq!(backup.status, 201, "{}", backup.body);

    // A role change follows at once too: the admin's token as an operator is
    // no longer the user's, so it is refused.
    let root_again = sign_in(&app, "root").await;
    let second_admin = root_again.body["access_token"].as_str().unwrap().to_owned();
    let demoted = app
        .patch(
            &format!("/v1/platform/users/{root_id}"),
            &second_admin,
            json!({"role": "operator"}),
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    assert_problem(
        &app.get("/v1/platform/users", &second_admin).await,
        401,
        "unauthenticated",
    );
    let as_operator = refresh(&app, &root_again.body["refresh_token"]).await;
    assert_eq!(as_operator.status, 200, "{}", as_operator.body);
    assert_eq!(as_operator.body["role"], "operator");

    // Logout ends the family.
    let out = app
        .request(
            "POST",
            "/v1/auth/platform/logout",
            None,
            Some(json!({ "refresh_token": as_operator.body["refresh_token"] })),
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    assert_problem(
        &refresh(&app, &as_operator.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );

    // The platform trail has the bootstrap, the sign-ins and the changes.
    let trail = app.platform_events("platform_user_created", 3).await;
    assert_eq!(trail.len(), 3, "{trail:?}");
    let failed = app.platform_events("platform_login_failed", 1).await;
    assert!(
        failed
            .iter()
            .any(|e| e["details"]["reason"] == "unknown_platform_user"),
        "{failed:?}"
    );
}

/// Without `platform_identity` there is no platform sign-in, and a tenant
/// token is no way in.
#[actix_web::test]
async fn without_a_platform_provider_there_is_no_platform_sign_in() {
    let app = spawn_app_with(test_settings(&fresh_database().await)).await;
    let start = app
        .request(
            "GET",
            "/v1/auth/platform/oidc/start?redirect_uri=http%3A%2F%2Fconsole.example%2Fcb",
            None,
            None,
        )
        .await;
    assert_problem(&start, 401, "unauthenticated");
    let t = app.provision("no-platform-idp").await;
    let with_token = app
        .request(
            "GET",
            "/v1/auth/platform/oidc/start?redirect_uri=x",
            Some(&t.owner_token),
            None,
        )
        .await;
    assert_problem(&with_token, 401, "unauthenticated");
    assert_problem(
        &app.get("/v1/platform/users", &t.owner_token).await,
        403,
        "forbidden",
    );
}
