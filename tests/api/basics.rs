//! Health, the OpenAPI document, and errors from actix's own extractors.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app};

#[actix_web::test]
async fn health_readiness_and_openapi_answer() {
    let app = spawn_app().await;
    let health = app.request("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["region"], "us-east1");
    assert!(health.headers.get("x-request-id").is_some());
    let ready = app.request("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let doc = app.request("GET", "/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.body["paths"]["/v1/channels/{id}/messages"]["get"].is_object(),
        "{}",
        doc.body
    );
}

#[actix_web::test]
async fn the_signing_keys_verify_what_the_node_signs() {
    use meridian::crypto::signing::{PublicKey, Purpose, Signer, verify};
    let app = spawn_app().await;
    let reply = app.request("GET", "/signing-keys", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let keys: Vec<PublicKey> = serde_json::from_value(reply.body["keys"].clone()).unwrap();
    // The node's key (the one in its key file) is published first.
    let signer = Signer::load(&crate::helpers::test_settings(&app.db_name).signing).unwrap();
    assert_eq!(keys[0].key_id, signer.key_id());
    let signature = signer.sign(Purpose::ErasureReceipt, b"{\"erased\":1}");
    let public = keys[0].decode().unwrap();
    verify(
        &public,
        Purpose::ErasureReceipt,
        b"{\"erased\":1}",
        &signature.signature,
    )
    .unwrap();
    assert!(
        verify(
            &public,
            Purpose::ErasureReceipt,
            b"{\"erased\":2}",
            &signature.signature
        )
        .is_err()
    );
}

#[actix_web::test]
async fn malformed_requests_get_problem_json_never_500() {
    let app = spawn_app().await;
    let t = app.provision("errors").await;
    let token = &t.owner_token;
    let channel = app.create_channel(&t, "general").await;
    let url = |path: &str| format!("{}{path}", app.base);
    let auth = ("Authorization", format!("Bearer {token}"));

    // Not JSON at all.
    let mut res = app
        .client
        .post(url("/v1/channels"))
        .insert_header(auth.clone())
        .insert_header(("Content-Type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (res.status().as_u16(), body["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );

    // Wrong content type.
    let mut res = app
        .client
        .post(url("/v1/channels"))
        .insert_header(auth.clone())
        .insert_header(("Content-Type", "text/plain"))
        .send_body(r#"{"name":"x"}"#)
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (res.status().as_u16(), body["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{body}"
    );

    // Oversized body.
    let huge = "x".repeat(300 * 1024);
    let reply = app
        .post(
            &format!("/v1/channels/{channel}/messages"),
            token,
            json!({ "body": huge }),
        )
        .await;
    assert_problem(&reply, 413, "payload_too_large");

    // Over the plan's message size (free: 4 KiB), under the body limit.
    let big = "y".repeat(5000);
    let reply = app
        .post(
            &format!("/v1/channels/{channel}/messages"),
            token,
            json!({ "body": big }),
        )
        .await;
    assert_problem(&reply, 413, "message_too_large");

    // Wrong types, missing fields, NUL bytes.
    assert_problem(
        &app.post("/v1/channels", token, json!({ "name": 42 })).await,
        400,
        "validation_failed",
    );
    assert_problem(
        &app.post("/v1/channels", token, json!({})).await,
        400,
        "validation_failed",
    );
    assert_problem(
        &app.post("/v1/channels", token, json!({ "name": "a\u{0}b" }))
            .await,
        400,
        "validation_failed",
    );
    assert_problem(
        &app.post(
            &format!("/v1/channels/{channel}/messages"),
            token,
            json!({ "body": "nul\u{0}" }),
        )
        .await,
        400,
        "validation_failed",
    );

    // Ids, cursors and query parameters.
    assert_problem(
        &app.get("/v1/channels/not-a-uuid", token).await,
        400,
        "invalid_id",
    );
    assert_problem(&app.get("/v1/users/123", token).await, 400, "invalid_id");
    let messages = format!("/v1/channels/{channel}/messages");
    assert_problem(
        &app.get(&format!("{messages}?cursor=garbage"), token).await,
        400,
        "invalid_cursor",
    );
    assert_problem(
        &app.get(&format!("{messages}?limit=201"), token).await,
        400,
        "invalid_query",
    );
    assert_problem(
        &app.get(&format!("{messages}?limit=0"), token).await,
        400,
        "invalid_query",
    );
    assert_problem(
        &app.get(&format!("{messages}?limit=abc"), token).await,
        400,
        "invalid_query",
    );
    assert_problem(
        &app.get(&format!("{messages}?limit=-1"), token).await,
        400,
        "invalid_query",
    );
    assert_problem(&app.get("/v1/search", token).await, 400, "invalid_query");
    assert_problem(
        &app.get("/v1/search?q=%20", token).await,
        400,
        "validation_failed",
    );
    assert_problem(
        &app.get("/v1/search?q=x&cursor=zzz", token).await,
        400,
        "invalid_cursor",
    );

    // Unknown routes and methods.
    assert_problem(
        &app.get("/v1/nothing-here", token).await,
        404,
        "route_not_found",
    );
    // A 405 names the path's methods in `Allow` (RFC 9110 §15.5.6).
    let allow = |reply: &crate::helpers::Reply| {
        let value = reply.headers.get("allow").map(|v| v.to_str().unwrap());
        value.unwrap_or_default().to_owned()
    };
    let wrong = app
        .request("PUT", "/v1/channels", Some(token), Some(json!({})))
        .await;
    assert_problem(&wrong, 405, "method_not_allowed");
    assert_eq!(allow(&wrong), "GET, POST");
    let wrong = app
        .request(
            "POST",
            &format!("/v1/users/{}", Uuid::new_v4()),
            Some(token),
            Some(json!({})),
        )
        .await;
    assert_problem(&wrong, 405, "method_not_allowed");
    assert_eq!(allow(&wrong), "GET, DELETE, PATCH");
    let wrong = app.request("DELETE", "/healthz", None, None).await;
    assert_problem(&wrong, 405, "method_not_allowed");
    assert_eq!(allow(&wrong), "GET");
}

/// The node refuses to start as a role that escapes row-level security (on
/// CockroachDB an admin, whom RLS exempts even when forced), and when the
/// configured dialect is not the server's (the statement set would be wrong).
#[actix_web::test]
async fn refuses_to_start_as_a_privileged_role_or_with_the_wrong_dialect() {
    let cluster = crate::helpers::cluster();
    let db = crate::helpers::fresh_database().await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.database.url = cluster.superuser_url(&db).into();
    let refused = match meridian::Application::build(settings).await {
        Ok(_) => panic!("started as a superuser"),
        Err(err) => format!("{err:#}"),
    };
    assert!(refused.contains("bypasses row-level security"), "{refused}");

    let mut settings = crate::helpers::test_settings(&db);
    settings.database.dialect = match cluster.dialect {
        meridian::db::Dialect::Postgres => meridian::db::Dialect::Cockroach,
        meridian::db::Dialect::Cockroach => meridian::db::Dialect::Postgres,
    };
    let refused = match meridian::Application::build(settings).await {
        Ok(_) => panic!("started with the wrong dialect"),
        Err(err) => format!("{err:#}"),
    };
    assert!(refused.contains("database.dialect is"), "{refused}");
}

/// A PostgreSQL database migrated before the dialect split (V1–V4 from `sql/`,
/// whose files now live unchanged in `sql/postgres/`) keeps validating: refinery
/// finds the same checksums, applies only V5 and later, and a second run applies nothing.
#[actix_web::test]
async fn a_database_migrated_before_the_split_upgrades_in_place() {
    let cluster = crate::helpers::cluster();
    if cluster.dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let (url, _client) = crate::helpers::database_migrated_to(4).await;
    let postgres = Some(meridian::db::Dialect::Postgres);
    let upgrade = meridian::db::migrate::run(&url, None, postgres)
        .await
        .unwrap();
    assert_eq!(
        upgrade.applied,
        [
            "V5__placement",
            "V6__usage_shards",
            "V7__search",
            "V8__jobs",
            "V9__search_bound",
            "V10__outbox_webhooks",
            "V11__search_pending_list",
            "V12__ai_engine",
            "V13__identity",
            "V14__job_claim_lock",
            "V15__platform_accounts",
            "V16__job_queue_plans",
            "V17__impersonation",
            "V18__tenant_keys",
            "V19__encrypted_messages",
            "V21__audit_chain",
            "V22__gdpr",
            "V23__calendar",
            "V24__residency_attestation",
            "V25__access_log",
            "V26__tenant_erasure",
            "V27__retention",
            "V28__access_log_tenant_retention",
            "V29__usage_history",
            "V30__audit_sealer",
            "V31__exports_page",
            "V32__top_tenants",
            "V33__subject_keys",
            "V34__calendar_grants",
            "V35__definer_floors"
        ]
    );
    let again = meridian::db::migrate::run(&url, None, postgres)
        .await
        .unwrap();
    assert!(again.applied.is_empty(), "{:?}", again.applied);
    // Asking for the other dialect is refused before anything runs.
    let wrong = meridian::db::migrate::run(&url, None, Some(meridian::db::Dialect::Cockroach))
        .await
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("but the server"), "{wrong}");
}
