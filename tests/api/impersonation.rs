//! Impersonation (issue 14 part 4): a platform admin's time-boxed, reason-required
//! token for one tenant, with an RFC 8693 `act` claim; read-only unless the
//! tenant's policy allows writes; every request recorded in the tenant's own
//! trail; revocation and expiry take effect on the next request.

use base64::Engine;
use meridian::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, assert_problem, spawn_app};

/// Starts a read-only impersonation of `tenant` as the test's platform admin:
/// its id and access token.
pub async fn start(app: &TestApp, tenant: &Tenant) -> (Uuid, String) {
    let reply = start_with(app, tenant, json!({"reason": "ticket 4711"})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    ids(&reply.body)
}

pub(crate) async fn start_with(
    app: &TestApp,
    tenant: &Tenant,
    body: Value,
) -> crate::helpers::Reply {
    app.post(
        &format!("/v1/tenants/{}/impersonations", tenant.id),
        &app.platform_token(),
        body,
    )
    .await
}

pub(crate) fn ids(body: &Value) -> (Uuid, String) {
    (
        body["id"].as_str().unwrap().parse().unwrap(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

/// The JWT's payload, unverified (the server verified it).
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The tenant's trail as its owner reads it, oldest first, with `action`.
async fn trail(app: &TestApp, tenant: &Tenant, action: &str) -> Vec<Value> {
    let reply = app.get("/v1/audit?limit=200", &tenant.owner_token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut events: Vec<Value> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect();
    events.reverse();
    events
}

#[actix_web::test]
async fn an_impersonation_reads_is_refused_writes_and_is_audited_in_the_tenants_trail() {
    let app = spawn_app().await;
    let a = app.provision("viewed").await;
    let channel = app.create_channel(&a, "general").await;
    let reply = start_with(&app, &a, json!({"reason": "ticket 4711", "minutes": 10})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["mode"], "read");
    assert_eq!(reply.body["actor"], "test-admin");
    assert_eq!(reply.body["reason"], "ticket 4711");
    let (imp, token) = ids(&reply.body);

    // Today's token format for the tenant, with `act` and the impersonation.
    let claims = payload(&token);
    assert_eq!(claims["act"], json!({"sub": "test-admin"}));
    assert_eq!(claims["imp"], imp.to_string());
    assert_eq!(claims["sub"], imp.to_string());
    assert_eq!(claims["tid"], a.id.to_string());
    assert_eq!(claims["role"], "admin");
    let expires = chrono::DateTime::parse_from_rfc3339(reply.body["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(claims["exp"].as_i64().unwrap(), expires);
    let now = chrono::Utc::now().timestamp();
    assert!((now + 540..=now + 610).contains(&expires), "10 minutes");

    // Reads work.
    let list = app.get("/v1/channels", &token).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["items"][0]["id"], channel.to_string());
    // Writes are refused, and nothing is written.
    let write = app
        .post("/v1/channels", &token, json!({"name": "planted"}))
        .await;
    assert_problem(&write, 403, "impersonation_read_only");
    let delete = app.delete(&format!("/v1/channels/{channel}"), &token).await;
    assert_problem(&delete, 403, "impersonation_read_only");
    let list = app.get("/v1/channels", &a.owner_token).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );

    // The tenant's trail: the start and every request, with its status.
    let started = trail(&app, &a, "impersonation_started").await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["actor"], "test-admin");
    assert_eq!(started[0]["details"]["reason"], "ticket 4711");
    let requests = trail(&app, &a, "impersonated_request").await;
    let seen: Vec<(String, String, u64)> = requests
        .iter()
        .map(|e| {
            assert_eq!(e["actor"], "test-admin");
            assert_eq!(e["details"]["impersonation_id"], imp.to_string());
            (
                e["details"]["method"].as_str().unwrap().to_owned(),
                e["details"]["route"].as_str().unwrap().to_owned(),
                e["details"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET".into(), "/v1/channels".into(), 200),
            ("POST".into(), "/v1/channels".into(), 403),
            ("DELETE".into(), "/v1/channels/{id}".into(), 403),
        ]
    );
    assert!(trail(&app, &a, "impersonated_write").await.is_empty());
    // The platform trail has the start too.
    let platform = app.platform_events("impersonation_started", 1).await;
    assert_eq!(platform[0]["tenant_id"], a.id.to_string());
    // There the reason (free text) is sealed with the tenant's keyring.
    assert_eq!(
        platform[0]["details"]["reason"],
        Value::Null,
        "{}",
        platform[0]
    );
    assert_eq!(platform[0]["personal"]["reason"], "ticket 4711");

    // Compliance officers read the trail and the active impersonations too.
    let (_, compliance) = app.add_user(&a, "compliance").await;
    let active = app
        .get(&format!("/v1/tenants/{}/impersonations", a.id), &compliance)
        .await;
    assert_eq!(active.status, 200, "{}", active.body);
    assert_eq!(active.body["items"][0]["id"], imp.to_string());
    let audit = app.get("/v1/audit?limit=200", &compliance).await;
    assert!(audit.body.to_string().contains("impersonated_request"));
    // The impersonation itself cannot see or end impersonations, nor open writes.
    let own = app
        .get(&format!("/v1/tenants/{}/impersonations", a.id), &token)
        .await;
    assert_problem(&own, 403, "forbidden");
    let policy = app
        .patch(
            &format!("/v1/tenants/{}/impersonation-policy", a.id),
            &token,
            json!({"writes_allowed": true}),
        )
        .await;
    assert_problem(&policy, 403, "forbidden");
}

#[actix_web::test]
async fn writes_need_the_tenants_policy_checked_on_every_write() {
    let app = spawn_app().await;
    let a = app.provision("writable").await;
    let policy_path = format!("/v1/tenants/{}/impersonation-policy", a.id);
    let policy = app.get(&policy_path, &a.owner_token).await;
    assert_eq!(policy.body, json!({"writes_allowed": false}));

    let refused = start_with(&app, &a, json!({"reason": "fix data", "write": true})).await;
    assert_problem(&refused, 403, "impersonation_writes_not_allowed");
    // Only owners set the policy; platform admins cannot.
    let (_, admin) = app.add_user(&a, "admin").await;
    let by_admin = app
        .patch(&policy_path, &admin, json!({"writes_allowed": true}))
        .await;
    assert_problem(&by_admin, 403, "forbidden");
    let by_platform = app
        .patch(
            &policy_path,
            &app.platform_token(),
            json!({"writes_allowed": true}),
        )
        .await;
    assert_problem(&by_platform, 403, "forbidden");
    let allowed = app
        .patch(
            &policy_path,
            &a.owner_token,
            json!({"writes_allowed": true}),
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        trail(&app, &a, "impersonation_policy_changed").await.len(),
        1
    );

    let reply = start_with(&app, &a, json!({"reason": "fix data", "write": true})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["mode"], "write");
    let (imp, token) = ids(&reply.body);
    let created = app
        .post("/v1/channels", &token, json!({"name": "fixed"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let writes = trail(&app, &a, "impersonated_write").await;
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0]["details"]["impersonation_id"], imp.to_string());
    assert_eq!(writes[0]["details"]["route"], "/v1/channels");

    // A read-only impersonation stays read-only under the same policy.
    let (_, read_only) = start(&app, &a).await;
    let write = app
        .post("/v1/channels", &read_only, json!({"name": "nope"}))
        .await;
    assert_problem(&write, 403, "impersonation_read_only");

    // The owner forbids writes again: the running write impersonation's next
    // write is refused (the policy is read in the writing transaction).
    let forbidden = app
        .patch(
            &policy_path,
            &a.owner_token,
            json!({"writes_allowed": false}),
        )
        .await;
    assert_eq!(forbidden.status, 200, "{}", forbidden.body);
    let write = app
        .post("/v1/channels", &token, json!({"name": "again"}))
        .await;
    assert_problem(&write, 403, "impersonation_read_only");
    assert_eq!(app.get("/v1/channels", &token).await.status, 200);
    let list = app.get("/v1/channels", &a.owner_token).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
}

/// Who revoked `imp`, read as the superuser (the row stays, revoked).
async fn revoked_by(app: &TestApp, imp: Uuid) -> Option<String> {
    let db = app.superuser_client().await;
    db.query_one(
        "SELECT revoked_by FROM impersonations WHERE id = $1 AND revoked_at IS NOT NULL",
        &[&imp],
    )
    .await
    .ok()
    .and_then(|row| row.get(0))
}

#[actix_web::test]
async fn revocation_and_expiry_take_effect_on_the_next_request() {
    let app = spawn_app().await;
    let a = app.provision("revoked").await;
    let list_path = format!("/v1/tenants/{}/impersonations", a.id);

    // Revoked by an owner.
    let (imp, token) = start(&app, &a).await;
    assert_eq!(app.get("/v1/channels", &token).await.status, 200);
    let revoked = app
        .delete(&format!("{list_path}/{imp}"), &a.owner_token)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let by = revoked_by(&app, imp).await;
    assert_eq!(by.as_deref(), Some(a.owner_id.to_string().as_str()));
    assert_problem(
        &app.get("/v1/channels", &token).await,
        401,
        "unauthenticated",
    );
    let again = app
        .delete(&format!("{list_path}/{imp}"), &a.owner_token)
        .await;
    assert_eq!(again.status, 204, "revoking twice changes nothing");
    assert_eq!(trail(&app, &a, "impersonation_revoked").await.len(), 1);
    let active = app.get(&list_path, &a.owner_token).await;
    assert_eq!(active.body["items"], json!([]), "{}", active.body);

    // Revoked by a platform admin.
    let (imp, token) = start(&app, &a).await;
    let revoked = app
        .delete(&format!("{list_path}/{imp}"), &app.platform_token())
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_eq!(revoked_by(&app, imp).await.as_deref(), Some("test-admin"));
    assert_problem(
        &app.get("/v1/channels", &token).await,
        401,
        "unauthenticated",
    );
    assert_eq!(
        app.platform_events("impersonation_revoked", 1).await.len(),
        1
    );

    // Expired (its end moved into the past; the JWT's own `exp` is still ahead).
    let (imp, token) = start(&app, &a).await;
    assert_eq!(app.get("/v1/channels", &token).await.status, 200);
    let db = app.superuser_client().await;
    let moved = db
        .execute(
            "UPDATE impersonations SET expires_at = now() - interval '1 second' WHERE id = $1",
            &[&imp],
        )
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert_problem(
        &app.get("/v1/channels", &token).await,
        401,
        "unauthenticated",
    );
    // A route that runs no transaction of its own is refused too (`confirm_user`).
    assert_problem(
        &app.get(&format!("/v1/tenants/{}", a.id), &token).await,
        401,
        "unauthenticated",
    );
    let active = app.get(&list_path, &a.owner_token).await;
    assert_eq!(active.body["items"], json!([]), "{}", active.body);
    // The refused attempts are in the trail as well.
    let requests = trail(&app, &a, "impersonated_request").await;
    assert!(
        requests
            .iter()
            .any(|e| e["details"]["impersonation_id"] == imp.to_string()
                && e["details"]["status"] == 401),
        "{requests:?}"
    );
}

#[actix_web::test]
async fn only_platform_admins_start_one_with_a_reason_for_at_most_an_hour() {
    let app = spawn_app().await;
    let a = app.provision("guarded").await;
    let path = format!("/v1/tenants/{}/impersonations", a.id);
    let admin = app.platform_token();
    for (body, why) in [
        (json!({}), "no reason"),
        (json!({"reason": ""}), "empty reason"),
        (json!({"reason": "   "}), "blank reason"),
        (json!({"reason": "x".repeat(501)}), "reason too long"),
        (json!({"reason": "r", "minutes": 61}), "over an hour"),
        (json!({"reason": "r", "minutes": 0}), "zero minutes"),
        (json!({"reason": "r", "minutes": -5}), "negative"),
        (
            json!({"reason": "r", "tenant_id": Uuid::new_v4()}),
            "unknown field",
        ),
    ] {
        let reply = app.post(&path, &admin, body).await;
        assert_problem(&reply, 400, "validation_failed");
        assert!(!reply.body.to_string().is_empty(), "{why}");
    }
    let hour = app
        .post(&path, &admin, json!({"reason": "r", "minutes": 60}))
        .await;
    assert_eq!(hour.status, 201, "{}", hour.body);

    let operator = app
        .verifier
        .issue("sre-ana".into(), None, Role::Operator, 600)
        .unwrap();
    let reply = app.post(&path, &operator, json!({"reason": "r"})).await;
    assert_problem(&reply, 403, "operator_forbidden");
    for role in ["admin", "compliance"] {
        let (_, token) = app.add_user(&a, role).await;
        let reply = app.post(&path, &token, json!({"reason": "r"})).await;
        assert_problem(&reply, 403, "forbidden");
    }
    let reply = app
        .post(&path, &a.owner_token, json!({"reason": "r"}))
        .await;
    assert_problem(&reply, 403, "forbidden");
    // An impersonation cannot start another.
    let (_, token) = start(&app, &a).await;
    let reply = app.post(&path, &token, json!({"reason": "r"})).await;
    assert_problem(&reply, 403, "forbidden");
    // No such tenant.
    let missing = app
        .post(
            &format!("/v1/tenants/{}/impersonations", Uuid::new_v4()),
            &admin,
            json!({"reason": "r"}),
        )
        .await;
    assert_problem(&missing, 404, "not_found");
    // Exactly the two accepted starts were written.
    let db = app.superuser_client().await;
    let rows: i64 = db
        .query_one("SELECT count(*) FROM impersonations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);
}

/// `GET /v1/me` under an impersonation: the tenant, the role it acts with and
/// the impersonation, no user (it is nobody in the tenant's user list); a
/// user's own `/v1/me` names the user and no impersonation.
#[actix_web::test]
async fn me_under_an_impersonation_names_the_impersonation_not_a_user() {
    let app = spawn_app().await;
    let a = app.provision("me-viewed").await;
    let reply = start_with(&app, &a, json!({"reason": "ticket 99", "minutes": 5})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let (imp, token) = ids(&reply.body);

    let me = app.get("/v1/me", &token).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["tenant"]["id"], a.id.to_string());
    assert_eq!(me.body["tenant"]["slug"], "me-viewed");
    assert_eq!(me.body["role"], "admin");
    assert!(me.body.get("user").is_none(), "{}", me.body);
    assert_eq!(
        me.body["impersonation"],
        json!({"id": imp.to_string(), "actor": "test-admin", "mode": "read",
               "expires_at": reply.body["expires_at"]}),
    );

    let own = app.get("/v1/me", &a.owner_token).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["user"]["id"], a.owner_id.to_string());
    assert_eq!(own.body["role"], "owner");
    assert!(own.body.get("impersonation").is_none(), "{}", own.body);

    // Revoked: the token is refused, `/v1/me` included.
    let revoked = app
        .request(
            "DELETE",
            &format!("/v1/tenants/{}/impersonations/{imp}", a.id),
            Some(&a.owner_token),
            None,
        )
        .await;
    assert!(revoked.status.is_success(), "{}", revoked.body);
    assert_problem(&app.get("/v1/me", &token).await, 401, "unauthenticated");
}
