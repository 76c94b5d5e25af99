//! Per-tenant encryption of message bodies and summaries (issue 15): the policy
//! route, sealed storage read back through the API, the INSERT's guards against a
//! stale cached policy and a stale assumed DEK version, AAD binding, search refusal, and the canary proof
//! (`pg_dump` of the whole database and the node's logs hold no plaintext).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Tenant, TestApp, assert_problem, cluster, fresh_database, spawn_app, spawn_app_with,
    test_settings,
};
use crate::logs::capture_logs;

async fn set_policy(app: &TestApp, t: &Tenant, on: bool) {
    let reply = app
        .patch(
            &format!("/v1/tenants/{}/encryption", t.id),
            &t.owner_token,
            json!({ "messages": on }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({ "messages": on }));
}

/// (body, body_enc IS NOT NULL, body_tsv as text) of a message, as stored.
async fn stored(app: &TestApp, id: Uuid) -> (String, bool, String) {
    let row = app
        .superuser_client()
        .await
        .query_one(
            "SELECT body, body_enc IS NOT NULL, body_tsv::text FROM messages WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[actix_web::test]
async fn the_policy_is_for_owners_and_compliance_audited_and_off_by_default() {
    let app = spawn_app().await;
    let t = app.provision("enc-policy").await;
    let path = format!("/v1/tenants/{}/encryption", t.id);
    let reply = app.get(&path, &t.owner_token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({ "messages": false }));
    let (_, admin) = app.add_user(&t, "admin").await;
    assert_problem(&app.get(&path, &admin).await, 403, "forbidden");
    assert_problem(
        &app.patch(&path, &admin, json!({ "messages": true })).await,
        403,
        "forbidden",
    );
    assert_problem(
        &app.patch(&path, &t.owner_token, json!({ "messages": "yes" }))
            .await,
        400,
        "validation_failed",
    );
    let (_, compliance) = app.add_user(&t, "compliance").await;
    set_policy(&app, &t, true).await;
    let reply = app.get(&path, &compliance).await;
    assert_eq!(reply.body, json!({ "messages": true }), "{}", reply.body);
    // The directory's record (cached) says so too.
    let tenant = app
        .get(&format!("/v1/tenants/{}", t.id), &t.owner_token)
        .await;
    assert_eq!(
        tenant.body["encryption"],
        json!({ "messages": true }),
        "{}",
        tenant.body
    );
    let audit = app.get("/v1/audit", &t.owner_token).await;
    let items: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "tenant_encryption_changed")
        .collect();
    assert_eq!(items.len(), 1, "{}", audit.body);
    assert_eq!(items[0]["details"]["after"], json!({ "messages": true }));
}

#[actix_web::test]
async fn an_encrypting_tenant_stores_ciphertext_and_reads_plaintext() {
    let app = spawn_app().await;
    let plain = app.provision("enc-plain").await;
    let sealed = app.provision("enc-sealed").await;
    set_policy(&app, &sealed, true).await;
    let pc = app.create_channel(&plain, "general").await;
    let sc = app.create_channel(&sealed, "general").await;
    let p = app
        .post_message(&plain, pc, "quarterly numbers look good")
        .await;
    let reply = app
        .post(
            &format!("/v1/channels/{sc}/messages"),
            &sealed.owner_token,
            json!({ "body": "quarterly numbers look good" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["body"], "quarterly numbers look good");
    let s: Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();

    // Stored: plaintext for one, ciphertext (and no words) for the other.
    let (body, enc, tsv) = stored(&app, p).await;
    assert_eq!((body.as_str(), enc), ("quarterly numbers look good", false));
    assert!(tsv.contains("quarter"), "{tsv}");
    let (body, enc, tsv) = stored(&app, s).await;
    assert_eq!((body.as_str(), enc, tsv.as_str()), ("", true, ""));

    // Read back through the API: the page and the single message.
    let page = app
        .get(&format!("/v1/channels/{sc}/messages"), &sealed.owner_token)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["items"][0]["body"], "quarterly numbers look good");
    let one = app
        .get(
            &format!("/v1/channels/{sc}/messages/{s}"),
            &sealed.owner_token,
        )
        .await;
    assert_eq!(
        one.body["body"], "quarterly numbers look good",
        "{}",
        one.body
    );

    // The outbox event holds no body.
    let db = app.superuser_client().await;
    let data: Value = db
        .query_one(
            "SELECT data FROM outbox_events WHERE subject_id = $1",
            &[&s.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(data["message"]["body_encrypted"], true, "{data}");
    assert!(data["message"].get("body").is_none(), "{data}");

    // Search: refused for the encrypting tenant, unchanged for the other.
    assert_problem(
        &app.get("/v1/search?q=quarterly", &sealed.owner_token).await,
        409,
        "search_unavailable_encrypted",
    );
    let found = app.get("/v1/search?q=quarterly", &plain.owner_token).await;
    assert_eq!(
        found.body["items"][0]["id"],
        p.to_string(),
        "{}",
        found.body
    );

    // Off again: new posts are plaintext, the sealed one still reads.
    set_policy(&app, &sealed, false).await;
    let later = app.post_message(&sealed, sc, "after the switch").await;
    assert!(
        !stored(&app, later).await.1,
        "a post after the switch off was sealed"
    );
    let page = app
        .get(&format!("/v1/channels/{sc}/messages"), &sealed.owner_token)
        .await;
    let bodies: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["after the switch", "quarterly numbers look good"]);

    // Deleting the channel gives the plaintext's bytes back to the quota.
    let used = |db: tokio_postgres::Client, tenant: Uuid| async move {
        db.query_one(
            "SELECT COALESCE(sum(used_bytes), 0)::bigint FROM tenant_usage_shards WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    assert_eq!(
        used(app.superuser_client().await, sealed.id).await,
        ("quarterly numbers look good".len() + "after the switch".len()) as i64
    );
    let deleted = app
        .delete(&format!("/v1/channels/{sc}"), &sealed.owner_token)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(used(app.superuser_client().await, sealed.id).await, 0);
}

/// Another node turned encryption on and this node's directory has not heard
/// yet: the post's INSERT reads the committed policy and the body is sealed.
#[actix_web::test]
async fn a_stale_cached_policy_does_not_land_plaintext() {
    let mut settings = test_settings(&fresh_database().await);
    // No refresh during the test: the cache stays stale.
    settings.directory.refresh_interval = Duration::from_secs(3600);
    let app = spawn_app_with(settings).await;
    let t = app.provision("enc-stale").await;
    let channel = app.create_channel(&t, "general").await;
    // As another node's PATCH would (config_version bumped), without this
    // node's cache knowing.
    app.superuser_client()
        .await
        .execute(
            "UPDATE tenants SET encrypt_messages = true, config_version = config_version + 1 \
             WHERE id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    // Search decides from the cached policy: still answering shows the cache is stale.
    let search = app.get("/v1/search?q=anything", &t.owner_token).await;
    assert_eq!(
        search.status, 200,
        "the cache should be stale: {}",
        search.body
    );
    let id = app
        .post_message(&t, channel, "posted on a stale cache")
        .await;
    let (body, enc, _) = stored(&app, id).await;
    assert_eq!(
        (body.as_str(), enc),
        ("", true),
        "a stale policy landed plaintext"
    );
    let one = app
        .get(
            &format!("/v1/channels/{channel}/messages/{id}"),
            &t.owner_token,
        )
        .await;
    assert_eq!(one.body["body"], "posted on a stale cache", "{}", one.body);
}

/// A sealed post seals with the DEK version the node last saw active and its
/// INSERT checks that version is still active. After a rotation (on this very
/// node, which does not tell the keyring), the next post finds its assumption
/// stale and is redone with the new version: no post lands under a retired
/// version. The worker is off, so no re-encryption job can hide one.
#[actix_web::test]
async fn a_post_after_a_rotation_is_sealed_with_the_new_version() {
    let mut settings = test_settings(&fresh_database().await);
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings).await;
    let t = app.provision("enc-version").await;
    set_policy(&app, &t, true).await;
    let channel = app.create_channel(&t, "general").await;
    // The first post creates version 1 (not assumed: its own transaction made
    // it); the second reads it committed, and the node assumes it from then on.
    let mut posts = Vec::new();
    for body in ["creates version 1", "reads version 1"] {
        posts.push(app.post_message(&t, channel, body).await);
    }
    let rotated = app
        .post(
            &format!("/v1/tenants/{}/keys/rotate", t.id),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 202, "{}", rotated.body);
    assert_eq!(rotated.body["version"], 2);
    let after = app.post_message(&t, channel, "after the rotation").await;
    posts.push(after);
    let db = app.superuser_client().await;
    let mut headers = Vec::new();
    for id in &posts {
        let header: Vec<u8> = db
            .query_one(
                "SELECT substring(body_enc FROM 1 FOR 5) FROM messages WHERE id = $1",
                &[id],
            )
            .await
            .unwrap()
            .get(0);
        headers.push(header);
    }
    assert_eq!(
        headers,
        [
            vec![1, 0, 0, 0, 1],
            vec![1, 0, 0, 0, 1],
            vec![1, 0, 0, 0, 2]
        ],
        "the post after the rotation was not sealed with the new version"
    );
    let one = app
        .get(
            &format!("/v1/channels/{channel}/messages/{after}"),
            &t.owner_token,
        )
        .await;
    assert_eq!(one.body["body"], "after the rotation", "{}", one.body);
}

/// A sealed body copied (in SQL) onto another message of the tenant, or of
/// another tenant, does not open there: a 500 with the cause logged, never the
/// other row's plaintext.
#[actix_web::test]
async fn a_sealed_body_copied_to_another_row_or_tenant_does_not_open() {
    let logs = capture_logs();
    let app = spawn_app().await;
    let a = app.provision("enc-aad-a").await;
    let b = app.provision("enc-aad-b").await;
    set_policy(&app, &a, true).await;
    set_policy(&app, &b, true).await;
    let ca = app.create_channel(&a, "general").await;
    let cb = app.create_channel(&b, "general").await;
    let secret = app.post_message(&a, ca, "the secret plan").await;
    let other = app.post_message(&a, ca, "lunch at noon").await;
    let theirs = app.post_message(&b, cb, "their own words").await;
    let db = app.superuser_client().await;
    for target in [other, theirs] {
        db.execute(
            "UPDATE messages SET body_enc = (SELECT body_enc FROM messages WHERE id = $1) \
             WHERE id = $2",
            &[&secret, &target],
        )
        .await
        .unwrap();
    }
    for (t, channel, id) in [(&a, ca, other), (&b, cb, theirs)] {
        let reply = app
            .get(
                &format!("/v1/channels/{channel}/messages/{id}"),
                &t.owner_token,
            )
            .await;
        assert_problem(&reply, 500, "internal");
        assert!(
            !reply.body.to_string().contains("secret plan"),
            "{}",
            reply.body
        );
        let page = app
            .get(&format!("/v1/channels/{channel}/messages"), &t.owner_token)
            .await;
        assert_problem(&page, 500, "internal");
        let why = format!("stored ciphertext of messages.body row {id} does not open");
        assert!(logs.contains(&why), "no log line says: {why}");
    }
    // The original still opens where it was sealed.
    let one = app
        .get(
            &format!("/v1/channels/{ca}/messages/{secret}"),
            &a.owner_token,
        )
        .await;
    assert_eq!(one.body["body"], "the secret plan", "{}", one.body);
}

/// Turning the policy on seals what was stored before (the `messages.seal`
/// job); a rotation then re-encrypts those rows under the new version, and they
/// still read.
#[actix_web::test]
async fn turning_it_on_seals_earlier_rows_and_rotation_covers_them() {
    let logs = capture_logs();
    let app = spawn_app().await;
    let t = app.provision("enc-later").await;
    let channel = app.create_channel(&t, "general").await;
    let early = app
        .post_message(&t, channel, "written before the policy")
        .await;
    assert!(!stored(&app, early).await.1);
    set_policy(&app, &t, true).await;
    let db = app.superuser_client().await;
    let version = async |db: &tokio_postgres::Client| -> Option<Vec<u8>> {
        db.query_one(
            "SELECT substring(body_enc FROM 1 FOR 5) FROM messages WHERE id = $1",
            &[&early],
        )
        .await
        .unwrap()
        .get(0)
    };
    let mut sealed = None;
    for _ in 0..300 {
        sealed = version(&db).await;
        if sealed.is_some() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs: Vec<(String, String, Option<String>)> = db
        .query(
            "SELECT kind, state, error FROM jobs WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        sealed,
        Some(vec![1, 0, 0, 0, 1]),
        "not sealed by the job: {jobs:?}"
    );
    let (body, _, tsv) = stored(&app, early).await;
    assert_eq!((body.as_str(), tsv.as_str()), ("", ""));
    let rotated = app
        .post(
            &format!("/v1/tenants/{}/keys/rotate", t.id),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert!(rotated.status.is_success(), "{}", rotated.body);
    let mut now = None;
    for _ in 0..300 {
        now = version(&db).await;
        if now == Some(vec![1, 0, 0, 0, 2]) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs: Vec<(String, String, Option<String>)> = db
        .query(
            "SELECT kind, state, error FROM jobs WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        now,
        Some(vec![1, 0, 0, 0, 2]),
        "not re-encrypted by the rotation: {} {jobs:?} {}",
        rotated.body,
        logs.errors()
    );
    let one = app
        .get(
            &format!("/v1/channels/{channel}/messages/{early}"),
            &t.owner_token,
        )
        .await;
    assert_eq!(
        one.body["body"], "written before the policy",
        "{}",
        one.body
    );
}

/// The whole database as `pg_dump` writes it (data and schema, every table).
fn pg_dump(db: &str) -> Vec<u8> {
    let bindir = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config");
    let bindir = String::from_utf8(bindir.stdout).unwrap();
    let out = std::process::Command::new(format!("{}/pg_dump", bindir.trim()))
        .arg("--dbname")
        .arg(cluster().superuser_url(db))
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Issue 15's proof: a canary written into every encrypted field of a tenant —
/// message bodies, a summary made of them, an identity provider's secret — is
/// nowhere in a `pg_dump` of the whole database (as text, nor hex-encoded as a
/// `bytea` would hold it), nor in anything the node logged meanwhile (debug,
/// with the database driver's statement parameters). A plaintext tenant's
/// control word, written the same way, is found in both: the search can fail.
#[actix_web::test]
async fn a_canary_in_every_encrypted_field_is_in_no_dump_and_no_log() {
    let logs = capture_logs();
    let canary = format!("canary{}", Uuid::new_v4().simple());
    let control = format!("control{}", Uuid::new_v4().simple());
    let app = spawn_app().await;
    let t = app.provision("enc-canary").await;
    let plain = app.provision("enc-control").await;
    set_policy(&app, &t, true).await;
    // A webhook, so the post's event is dispatched and delivered (its payload
    // stored as a delivery row) like any hooked tenant's.
    app.create_webhook(
        &t,
        json!({ "url": "http://127.0.0.1:9/hook", "event_types": ["message.posted"] }),
    )
    .await;
    let mut provider = crate::identity::oidc_body("https://idp.example/realm/");
    provider["secret"] = json!(format!("secret-{canary}"));
    crate::identity::create_provider(&app, &t, provider).await;
    let channel = app.create_channel(&t, "general").await;
    for line in [
        format!("The {canary} migration starts at noon on Friday."),
        format!("Everyone should review the {canary} migration checklist first."),
        format!("The {canary} rollback plan is in the wiki."),
    ] {
        app.post_message(&t, channel, &line).await;
    }
    let pc = app.create_channel(&plain, "general").await;
    app.post_message(&plain, pc, &format!("The {control} migration starts."))
        .await;

    // A summary of the canary messages, made by the job (extractive engine).
    let summary = crate::summaries::summarised(&app, &t, channel, 2).await;
    assert_eq!(summary["state"], "succeeded", "{summary}");
    assert!(
        summary["summary"].as_str().unwrap().contains(&canary),
        "{summary}"
    );
    // Read back through the API (the read paths log too).
    let page = app
        .get(&format!("/v1/channels/{channel}/messages"), &t.owner_token)
        .await;
    assert_eq!(
        page.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        page.body
    );
    assert!(page.body.to_string().contains(&canary));
    // The sealed rows exist (the dump below is of a database holding them).
    let db = app.superuser_client().await;
    let sealed: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM messages WHERE tenant_id = $1 AND body_enc IS NOT NULL)
                  + (SELECT count(*) FROM channel_summaries WHERE tenant_id = $1 AND sealed IS NOT NULL)",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sealed, 4);

    let dump = pg_dump(&app.db_name);
    assert!(
        holds(&dump, &control),
        "the dump holds no control word: not a dump of the data?"
    );
    let text = String::from_utf8_lossy(&dump);
    let leaks: Vec<&str> = text.lines().filter(|l| l.contains(&canary)).collect();
    assert!(
        leaks.is_empty(),
        "the canary is in the pg_dump:\n{}",
        leaks.join("\n")
    );
    assert!(
        !holds(&dump, &hex(&canary)),
        "the canary is in the pg_dump, hex-encoded"
    );
    assert!(
        logs.len() > 0 && logs.contains(&t.id.to_string()),
        "no logs captured"
    );
    assert!(
        logs.contains(&control),
        "the control word is not in the logs: debug logging off?"
    );
    assert!(!logs.contains(&canary), "the canary is in the node's logs");
}
