//! User erasure (issue 16 part 3): the tenant's policy, what is left afterwards
//! (a canary in every personal field is found nowhere in the database, the
//! search or a later export) and the signed receipt, which an auditor verifies
//! with the public key alone and which fails once altered. The audit trail's
//! copy of the user's address (`user_created`, sealed with the user's own key)
//! is readable before and erased after, while the chain still verifies.

use std::time::{Duration, Instant};

use base64::Engine;
use meridian::compliance::receipt::{self, SignedReceipt};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, assert_problem, cluster, spawn_app};

/// The trail's `user_created` event of `user`, as `token` lists it.
async fn user_created(app: &TestApp, token: &str, user: Uuid) -> Value {
    let trail = app
        .get("/v1/audit?action=user_created&limit=200", token)
        .await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    trail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target_id"] == user.to_string())
        .unwrap_or_else(|| panic!("no user_created of {user}: {}", trail.body))
        .clone()
}

/// Every version of the tenant's data key, unwrapped with the test KEK file.
async fn tenant_deks(
    db: &tokio_postgres::Client,
    tenant: Uuid,
) -> Vec<meridian::crypto::envelope::Dek> {
    use meridian::crypto::provider::{KeyProvider, LocalFileProvider, WrappedDek};
    let provider = LocalFileProvider::ensure(&cluster().kek_file, &["apac", "eu", "us"]).unwrap();
    let rows = db
        .query(
            "SELECT version, jurisdiction, kek_id, wrapped FROM tenant_keys
             WHERE tenant_id = $1 AND wrapped IS NOT NULL",
            &[&tenant],
        )
        .await
        .unwrap();
    let mut deks = Vec::new();
    for row in rows {
        let wrapped = WrappedDek {
            jurisdiction: row.get(1),
            kek_id: row.get(2),
            blob: row.get(3),
        };
        let version = row.get::<_, i32>(0).unsigned_abs();
        let id = meridian::ids::TenantId::from_uuid(tenant);
        deks.push(provider.unwrap(id, &wrapped, version).await.unwrap());
    }
    deks
}

/// Creates a user whose email and display name carry `canary`.
async fn canary_user(app: &TestApp, t: &Tenant, canary: &str) -> (Uuid, String) {
    let reply = app
        .post(
            "/v1/users",
            &t.owner_token,
            json!({ "email": format!("{canary}@example.com"), "display_name": format!("Ann {canary}"),
                    "role": "member" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id: Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
    (id, app.token(t.id, id, meridian::auth::Role::Member))
}

/// Asks for the erasure and waits for it to be done.
pub(crate) async fn erase(app: &TestApp, token: &str, user: Uuid) -> Value {
    let reply = app
        .post(&format!("/v1/users/{user}/erasure"), token, json!(null))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = app.get(&format!("/v1/erasures/{id}"), token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.body["state"] == "done" || Instant::now() > deadline {
            return reply.body;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The published public key `key_id` (`GET /signing-keys`).
pub(crate) async fn public_key(app: &TestApp, key_id: &str) -> Vec<u8> {
    let keys = app.request("GET", "/signing-keys", None, None).await;
    let key = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .unwrap_or_else(|| panic!("{key_id} in {}", keys.body))
        .clone();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["public_key"].as_str().unwrap())
        .unwrap()
}

#[actix_web::test]
async fn anonymize_leaves_the_canary_nowhere_and_the_signed_receipt_verifies() {
    let app = spawn_app().await;
    let t = app.provision("erasing").await;
    let (_, compliance) = app.add_user(&t, "compliance").await;
    let canary = format!("canary{}", &Uuid::new_v4().simple().to_string()[..12]);
    let (user, token) = canary_user(&app, &t, &canary).await;
    let channel = app.create_channel(&t, "general").await;
    let posted = app
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &token,
            json!({ "body": "a message that stays, anonymised" }),
        )
        .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    // A stored export of the tenant holds the canary until the erasure.
    let before = crate::exports::request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    assert_eq!(
        crate::exports::finished(&app, &t.owner_token, before).await["state"],
        "ready"
    );
    assert!(
        crate::encryption::dump(&app).contains(&canary),
        "the canary is stored before"
    );
    // The trail opens the address for those who may read it; a member may not.
    let email = format!("{canary}@example.com");
    let event = user_created(&app, &compliance, user).await;
    assert_eq!(event["personal"]["email"], email, "{event}");
    assert_eq!(event["personal_erased"], false, "{event}");
    assert!(!event["details"].to_string().contains(&canary), "{event}");
    assert_problem(&app.get("/v1/audit", &token).await, 403, "forbidden");
    let su = app.superuser_client().await;
    let keys = "SELECT count(*) FROM subject_keys WHERE tenant_id = $1 AND subject_id = $2";
    let n: i64 = su.query_one(keys, &[&t.id, &user]).await.unwrap().get(0);
    assert_eq!(n, 1, "the user's subject key");
    let event_id: Uuid = event["id"].as_str().unwrap().parse().unwrap();
    let sealed: Vec<u8> = su
        .query_one(
            "SELECT sealed FROM audit_events WHERE tenant_id = $1 AND id = $2",
            &[&t.id, &event_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        meridian::audit::personal::subject_of(&sealed),
        Some(user),
        "sealed with the user's own key"
    );

    let done = erase(&app, &compliance, user).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["policy"], "anonymize");
    assert_eq!(done["counts"]["messages"], 1);
    assert_eq!(done["counts"]["users"], 1);
    assert_eq!(done["counts"]["exports"], 1);
    assert_eq!(done["counts"]["subject_keys"], 1);

    // The trail: the address erased, the chain intact, the key gone, and the
    // tenant's keys (all still live) do not open the stored ciphertext.
    let event = user_created(&app, &compliance, user).await;
    assert_eq!(event["personal"], Value::Null, "{event}");
    assert_eq!(event["personal_erased"], true, "{event}");
    let report = app.get("/v1/audit/verify", &compliance).await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(report.body["intact"], true, "{}", report.body);
    let n: i64 = su.query_one(keys, &[&t.id, &user]).await.unwrap().get(0);
    assert_eq!(n, 0, "the subject key is deleted");
    let binding = meridian::crypto::envelope::Binding {
        tenant: meridian::ids::TenantId::from_uuid(t.id),
        table: "audit_events",
        column: "sealed",
        row: &event_id.to_string(),
    };
    let deks = tenant_deks(&su, t.id).await;
    assert!(!deks.is_empty(), "the tenant's keys are live");
    for dek in &deks {
        assert!(dek.open(&binding, &sealed).is_err(), "as a keyring field");
        assert!(
            meridian::audit::personal::open_for_subject(dek.secret_bytes(), &binding, &sealed)
                .is_err(),
            "with the tenant's key in place of the subject's"
        );
    }

    // Nowhere in the database, the API or a new export.
    let dump = crate::encryption::dump(&app);
    let found: Vec<&str> = dump.lines().filter(|l| l.contains(&canary)).collect();
    assert!(found.is_empty(), "the canary is in pg_dump: {found:?}");
    let users = app.get("/v1/users?limit=200", &t.owner_token).await;
    assert!(!users.body.to_string().contains(&canary));
    let search = app
        .get(&format!("/v1/search?q={canary}"), &t.owner_token)
        .await;
    assert_eq!(search.status, 200, "{}", search.body);
    assert_eq!(search.body["items"].as_array().unwrap().len(), 0);
    let page = app
        .get(&format!("/v1/channels/{channel}/messages"), &t.owner_token)
        .await;
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["author_id"], Uuid::nil().to_string());
    assert_eq!(items[0]["body"], "a message that stays, anonymised");
    let old = crate::exports::download(&app, &t.owner_token, before, None).await;
    assert_eq!(old.status, 410, "the earlier export was expired");
    let after = crate::exports::request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    assert_eq!(
        crate::exports::finished(&app, &t.owner_token, after).await["state"],
        "ready"
    );
    let archive = crate::exports::download(&app, &t.owner_token, after, None).await;
    let files = crate::exports::unzip(&archive.bytes);
    assert!(
        files.values().all(|f| !f.contains(&canary)),
        "the canary is in a later export"
    );
    // The erased user's token no longer works.
    assert_eq!(app.get("/v1/channels", &token).await.status, 401);

    // The receipt verifies with the published key, and not once altered.
    let signed: SignedReceipt = serde_json::from_value(done["receipt"].clone()).unwrap();
    assert_eq!(signed.receipt["user_id"], user.to_string());
    assert_eq!(signed.receipt["counts"], done["counts"]);
    let key = public_key(&app, &signed.signature.key_id).await;
    receipt::verify(&key, &signed).unwrap();
    let mut tampered = signed.clone();
    tampered.receipt["counts"]["messages"] = json!(0);
    assert!(
        receipt::verify(&key, &tampered).is_err(),
        "a tampered receipt must not verify"
    );
    // Kept in the platform trail.
    let kept = app.platform_events("user.erasure_receipt", 1).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["details"]["signature"], json!(signed.signature));
}

#[actix_web::test]
async fn the_delete_policy_removes_the_users_messages_and_the_last_owner_is_refused() {
    let app = spawn_app().await;
    let t = app.provision("deleting").await;
    app.superuser_client()
        .await
        .execute(
            "UPDATE tenants SET erasure_policy = 'delete' WHERE id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    let (user, token) = canary_user(&app, &t, "deleteme").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "the owner's message stays")
        .await;
    for i in 0..3 {
        let reply = app
            .post(
                &format!("/v1/channels/{channel}/messages"),
                &token,
                json!({ "body": format!("to be deleted {i}") }),
            )
            .await;
        assert_eq!(reply.status, 201);
    }
    let done = erase(&app, &t.owner_token, user).await;
    assert_eq!(done["policy"], "delete");
    assert_eq!(done["counts"]["messages"], 3);
    let page = app
        .get(&format!("/v1/channels/{channel}/messages"), &t.owner_token)
        .await;
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["body"], "the owner's message stays");
    let search = app.get("/v1/search?q=deleted", &t.owner_token).await;
    assert_eq!(
        search.body["items"].as_array().unwrap().len(),
        0,
        "{}",
        search.body
    );

    // The last active owner cannot be erased; an admin may not ask at all.
    let reply = app
        .post(
            &format!("/v1/users/{}/erasure", t.owner_id),
            &t.owner_token,
            json!(null),
        )
        .await;
    assert_problem(&reply, 409, "last_owner");
    let (_, admin) = app.add_user(&t, "admin").await;
    let reply = app
        .post(&format!("/v1/users/{user}/erasure"), &admin, json!(null))
        .await;
    assert_problem(&reply, 403, "forbidden");
}

/// An erasure of a spare user of `t` (the isolation suite's target id).
pub(crate) async fn spare_erasure(app: &TestApp, t: &Tenant) -> Uuid {
    let (spare, _) = app.add_user(t, "viewer").await;
    let reply = app
        .post(
            &format!("/v1/users/{spare}/erasure"),
            &t.owner_token,
            json!(null),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.body["id"].as_str().unwrap().parse().unwrap()
}
