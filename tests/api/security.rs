//! Regressions of the adversarial review (issue 10) that concern the tenant
//! scope: users checked on every answer, concurrency slots not held by requests
//! waiting for their bodies, bodies bounded in time, cross-tenant probes audited
//! after the response.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with, test_settings,
};
use crate::isolation::{Access, Target, Victim, routes};

async fn ids_of(app: &TestApp, tenant: &Tenant) -> Victim {
    let (member, _) = app.add_user(tenant, "member").await;
    let channel = app.create_channel(tenant, "general").await;
    let message = app.post_message(tenant, channel, "hello").await;
    let webhook = app
        .create_webhook(tenant, json!({"url": "http://hooks.example/in"}))
        .await
        .0;
    let job = crate::jobs::enqueue_as_node(app, tenant.id, "security.test").await;
    let (calendar_account, calendar_event, calendar_grant) =
        crate::calendar::isolation_ids(app, tenant).await;
    Victim {
        tenant: tenant.id,
        user: member,
        channel,
        message,
        webhook,
        summary: crate::summaries::request(app, tenant, channel).await,
        job,
        provider: crate::identity::create_provider(
            app,
            tenant,
            crate::identity::oidc_body("https://idp.example"),
        )
        .await,
        impersonation: crate::impersonation::start(app, tenant).await.0,
        export: crate::exports::request(app, &tenant.owner_token, json!({"scope": "tenant"})).await,
        erasure: crate::erasure::spare_erasure(app, tenant).await,
        calendar_account,
        calendar_event,
        calendar_grant,
    }
}

#[actix_web::test]
async fn a_deleted_or_demoted_users_token_answers_401_on_every_route() {
    let app = spawn_app().await;
    let a = app.provision("gone").await;
    let b = app.provision("other").await;
    let own = ids_of(&app, &a).await;
    let foreign = ids_of(&app, &b).await;

    let (deleted, deleted_token) = app.add_user(&a, "owner").await;
    let reply = app
        .delete(&format!("/v1/users/{deleted}"), &a.owner_token)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let (demoted, demoted_token) = app.add_user(&a, "owner").await;
    let reply = app
        .patch(
            &format!("/v1/users/{demoted}"),
            &a.owner_token,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let mut checked = 0;
    for route in routes().iter().filter(|r| r.access != Access::Public) {
        for ids in [&own, &foreign] {
            if matches!(
                route.target,
                Target::None | Target::Region | Target::Slug | Target::PlatformUser
            ) && std::ptr::eq(ids, &foreign)
            {
                continue;
            }
            let path = ids.path(route);
            for token in [&deleted_token, &demoted_token] {
                let reply = app
                    .request(route.method, &path, Some(token), (route.body)())
                    .await;
                assert_eq!(reply.status, 401, "{} {path}: {}", route.method, reply.body);
                assert_eq!(reply.body["code"], "unauthenticated", "{}", reply.body);
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} requests checked");
    // Nothing was recorded in their names.
    let audit = app.get("/v1/audit?limit=200", &app.platform_token()).await;
    let text = audit.body.to_string();
    assert!(!text.contains(&deleted.to_string()), "{text}");
    assert!(!text.contains(&demoted.to_string()), "{text}");
    // The owner's own token still works everywhere it did.
    assert_eq!(app.get("/v1/regions", &a.owner_token).await.status, 200);
}

/// Sends a request head and the first byte of a body that never arrives.
async fn start_slow_post(app: &TestApp, path: &str, token: &str, extra: &str) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_status(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(within, stream.read(&mut buf)).await;
    match read {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[actix_web::test]
async fn slow_bodies_hold_no_concurrency_slot_and_time_out_with_408() {
    let mut settings = test_settings(&fresh_database().await);
    settings.http.body_timeout = Duration::from_millis(1_500);
    let app = spawn_app_with(settings).await;
    let a = app.provision("slowloris").await;
    let reply = app
        .patch(
            &format!("/v1/tenants/{}", a.id),
            &app.platform_token(),
            json!({"limits": {"concurrent_requests": 10}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // An admin may create channels, so its request waits for the body (a role
    // the route refuses is answered 403 by the extractor before any body is read).
    let (_, admin) = app.add_user(&a, "admin").await;

    let mut slow = Vec::new();
    for _ in 0..10 {
        slow.push(start_slow_post(&app, "/v1/channels", &admin, "").await);
    }
    // A (forged) hop marker makes the node read the body before routing: bounded too.
    let mut marked = start_slow_post(&app, "/v1/channels", &admin, "X-Meridian-Hop: x\r\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The ten requests waiting for their bodies hold none of the ten slots.
    for _ in 0..5 {
        let reply = app.get("/v1/channels", &a.owner_token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // And each is answered 408 once its body is overdue, not left hanging.
    for stream in &mut slow {
        let answer = read_status(stream, Duration::from_secs(10))
            .await
            .expect("a slow body got no answer");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    let answer = read_status(&mut marked, Duration::from_secs(10))
        .await
        .expect("a slow body with a hop marker got no answer");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // Nothing was created by them.
    let list = app.get("/v1/channels", &a.owner_token).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.body);
}

#[actix_web::test]
async fn a_foreign_ids_404_does_not_wait_for_its_audit_record() {
    let app = spawn_app().await;
    let a = app.provision("victim").await;
    let channel = app.create_channel(&a, "secret").await;
    let b = app.provision("prober").await;

    // While the platform trail is locked, no audit insert can finish.
    let mut db = app.superuser_client().await;
    let lock = db.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE platform_audit_events IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let probe = app
        .client
        .get(format!("{}/v1/channels/{channel}", app.base))
        .insert_header(("Authorization", format!("Bearer {}", b.owner_token)))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    let status = probe
        .map(|res| res.status().as_u16())
        .map_err(|err| err.to_string());
    assert_eq!(
        status,
        Ok(404),
        "the 404 waited for the audit insert (same path as a random id?)"
    );
    let missing = app
        .get(&format!("/v1/channels/{}", Uuid::new_v4()), &b.owner_token)
        .await;
    assert_problem(&missing, 404, "not_found");
    lock.commit().await.unwrap();

    // The record is written once the trail is free again, for the foreign id only.
    let events = app.platform_events("cross_tenant_denied", 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["target_id"], channel.to_string());
    assert_eq!(events[0]["details"]["actor_tenant_id"], b.id.to_string());
}

#[actix_web::test]
async fn a_graceful_stop_writes_the_probes_still_queued() {
    let mut settings = test_settings(&fresh_database().await);
    settings.http.shutdown_grace = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;
    let a = app.provision("victim").await;
    let channel = app.create_channel(&a, "secret").await;
    let b = app.provision("prober").await;

    let mut db = app.superuser_client().await;
    let lock = db.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE platform_audit_events IN EXCLUSIVE MODE")
        .await
        .unwrap();
    for _ in 0..3 {
        let reply = app
            .get(&format!("/v1/channels/{channel}"), &b.owner_token)
            .await;
        assert_problem(&reply, 404, "not_found");
    }
    let shutdown = app.shutdown.clone();
    let stopping = actix_web::rt::spawn(async move { shutdown.run().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.commit().await.unwrap();
    stopping.await.unwrap();

    // The node is gone; its queue was written before the pool closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let written = loop {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM platform_audit_events WHERE action = 'cross_tenant_denied'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n >= 3 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(written, 3);
}

/// serde reads a struct from a JSON array too (`["x"]` as `{"name": "x"}`): every
/// body route refuses a top-level array, and nothing is written.
#[actix_web::test]
async fn array_bodies_are_refused_on_every_route() {
    let app = spawn_app().await;
    let a = app.provision("arrays").await;
    let ids = ids_of(&app, &a).await;
    let mut checked = 0;
    for route in routes() {
        let Some(serde_json::Value::Object(fields)) = (route.body)() else {
            continue;
        };
        let token = match route.access {
            Access::Platform => app.platform_token(),
            _ => a.owner_token.clone(),
        };
        let array = serde_json::Value::Array(fields.values().cloned().collect());
        let reply = app
            .request(route.method, &ids.path(&route), Some(&token), Some(array))
            .await;
        if route.access == Access::SignIn {
            // The tenant of a sign-in is in its body: an array names none.
            assert_problem(&reply, 401, "unauthenticated");
        } else {
            assert_problem(&reply, 400, "validation_failed");
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} body routes checked");
    // The positional forms that serde would have accepted, spelled out.
    let planted = app
        .post("/v1/channels", &a.owner_token, json!(["planted"]))
        .await;
    assert_problem(&planted, 400, "validation_failed");
    let list = app.get("/v1/channels", &a.owner_token).await;
    assert!(!list.body.to_string().contains("planted"), "{}", list.body);
    let drain = app
        .post(
            "/v1/regions/europe-west3/drain",
            &app.platform_token(),
            json!([false, true]),
        )
        .await;
    assert_problem(&drain, 400, "validation_failed");
    let regions = app.get("/v1/regions", &app.platform_token()).await;
    assert!(
        regions.body["regions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["drained"] == false),
        "{}",
        regions.body
    );
}

/// A token signed with a key this node does not know (another state directory's
/// key set) says so in its 401, with the stable `unauthenticated` code; other
/// refusals stay "invalid or expired" (issue 12).
#[actix_web::test]
async fn an_unknown_kid_is_named_in_the_401() {
    use base64::Engine;
    let app = spawn_app().await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let valid = app.platform_token();
    let (header, rest) = valid.split_once('.').unwrap();
    let mut header: serde_json::Value =
        serde_json::from_slice(&b64.decode(header).unwrap()).unwrap();
    header["kid"] = json!("k-of-another-key-set");
    let foreign = format!("{}.{rest}", b64.encode(header.to_string()));

    let refused = app.get("/v1/tenants", &foreign).await;
    assert_problem(&refused, 401, "unauthenticated");
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("kid") && detail.contains("unknown"),
        "{detail}"
    );

    let tampered = format!("{valid}x");
    let refused = app.get("/v1/tenants", &tampered).await;
    assert_problem(&refused, 401, "unauthenticated");
    assert_eq!(refused.body["detail"], "invalid or expired token");
}
