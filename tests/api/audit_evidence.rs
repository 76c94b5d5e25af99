//! Evidence built on the audit chain (issue 16): signed checkpoints, the NDJSON
//! export an auditor verifies offline with the public key alone, retention that
//! deletes old events behind a signed anchor, and personal details sealed in
//! events so crypto-shredding removes them while the chain still verifies.

use meridian::audit::file;
use meridian::crypto::signing::Signer;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with, test_settings,
};

async fn verify(app: &TestApp, token: &str) -> Value {
    let reply = app.get("/v1/audit/verify", token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn export(app: &TestApp, token: &str, query: &str) -> String {
    let mut response = app
        .client
        .get(format!("{}/v1/audit/export{query}", app.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.body().limit(64 << 20).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn public_key(app: &TestApp) -> Vec<u8> {
    let keys = app.get("/signing-keys", "").await.body;
    file::decode_public_key(keys["keys"][0]["public_key"].as_str().unwrap()).unwrap()
}

#[actix_web::test]
async fn an_export_verifies_offline_and_an_edited_line_does_not() {
    let mut settings = test_settings(&fresh_database().await);
    // The hourly checkpoint job's first run could sign the same head first, and
    // the export would then return that (periodic) checkpoint.
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings).await;
    let t = app.provision("exported").await;
    for name in ["a", "b", "c"] {
        app.create_channel(&t, name).await;
    }
    let ndjson = export(&app, &t.owner_token, "").await;
    let key = public_key(&app).await;
    let report = file::verify(ndjson.as_bytes(), &key).unwrap();
    assert!(report.trustworthy(), "{report:?}");
    assert_eq!(report.chain.events, 4);
    assert_eq!(
        report.unsigned_tail, 0,
        "the export's own checkpoint covers the head"
    );
    // The export signed a checkpoint, which verify now checks.
    let online = verify(&app, &t.owner_token).await;
    assert_eq!(online["checkpoint"]["seq"], 4, "{online}");
    assert_eq!(online["checkpoint"]["kind"], "export");
    assert_eq!(online["checkpoint"]["signature_valid"], true);
    assert_eq!(online["checkpoint"]["matches_chain"], true);

    // One edited event in the file: found at its seq.
    let edited = ndjson.replacen("\"name\":\"b\"", "\"name\":\"x\"", 1);
    assert_ne!(edited, ndjson);
    let broken = file::verify(edited.as_bytes(), &key).unwrap();
    assert!(!broken.trustworthy());
    assert_eq!(broken.chain.broken.as_ref().unwrap().seq, 3, "{broken:?}");
    // Another key does not verify the checkpoints.
    let other = Signer::load(&meridian::crypto::signing::SigningSettings {
        key_file: std::env::temp_dir().join(format!("other-{}.json", uuid::Uuid::new_v4())),
        trusted_keys: Vec::new(),
    })
    .unwrap();
    let wrong_key = file::verify(ndjson.as_bytes(), other.public_key()).unwrap();
    assert!(!wrong_key.trustworthy(), "{wrong_key:?}");
    assert_eq!(wrong_key.checkpoints_invalid, [4]);

    // A bounded range: from the second channel on, linked to the event before it.
    let trail = app.get("/v1/audit?limit=10", &t.owner_token).await.body;
    let from = trail["items"][1]["created_at"].as_str().unwrap();
    let from = urlencode(from);
    let part = export(&app, &t.owner_token, &format!("?from={from}")).await;
    let report = file::verify(part.as_bytes(), &key).unwrap();
    assert!(report.trustworthy(), "{report:?}");
    assert_eq!((report.chain.first_seq, report.chain.events), (3, 2));
    assert_problem(
        &app.get(
            "/v1/audit/export?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            &t.owner_token,
        )
        .await,
        400,
        "validation_failed",
    );
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[actix_web::test]
async fn a_forged_checkpoint_signature_is_detected() {
    let app = spawn_app().await;
    let t = app.provision("forged").await;
    app.create_channel(&t, "x").await;
    export(&app, &t.owner_token, "").await;
    assert_eq!(
        verify(&app, &t.owner_token).await["checkpoint"]["signature_valid"],
        true
    );
    let db = app.superuser_client().await;
    // A checkpoint claiming another head, with the old (now wrong) signature.
    db.execute(
        "UPDATE audit_checkpoints SET hash = sha256(hash) WHERE tenant_id = $1",
        &[&t.id],
    )
    .await
    .unwrap();
    let report = verify(&app, &t.owner_token).await;
    assert_eq!(report["checkpoint"]["signature_valid"], false, "{report}");
    assert_eq!(report["checkpoint"]["matches_chain"], false, "{report}");
}

/// Retention deletes the oldest events behind a signed anchor; the service role
/// cannot delete events itself, nor through the function without an anchor.
#[actix_web::test]
async fn retention_deletes_behind_an_anchor_and_the_chain_still_verifies() {
    let mut settings = test_settings(&fresh_database().await);
    // No scheduled job (a checkpoint, a retention run) may race the edits below.
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings.clone()).await;
    let t = app.provision("retained").await;
    for name in ["a", "b", "c"] {
        app.create_channel(&t, name).await;
    }
    let db = app.superuser_client().await;
    crate::retention::backdate_audit(&db, t.id, 2, 400).await;

    let app_role = app.app_role_client().await;
    app_role
        .batch_execute(&format!("SET app.tenant_id = '{}'", t.id))
        .await
        .unwrap();
    let refused = app_role
        .execute("DELETE FROM audit_events WHERE tenant_id = $1", &[&t.id])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let unanchored: i64 = app_role
        .query_one("SELECT audit_truncate_through(4)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unanchored, 0, "no checkpoint at seq 4: nothing deleted");

    let database = meridian::db::Database::connect(&settings.database).unwrap();
    let signer = Signer::load(&settings.signing).unwrap();
    let home = meridian::ids::RegionId::parse("us-east1").unwrap();
    let cutoff = chrono::Utc::now() - chrono::Duration::days(365);
    let tenant = meridian::ids::TenantId::from_uuid(t.id);
    let done = meridian::audit::retention::truncate_before(
        &database, tenant, &home, &signer, cutoff, 1000,
    )
    .await
    .unwrap();
    assert!(
        matches!(
            done,
            meridian::audit::retention::Truncation::Done {
                anchor_seq: Some(2),
                deleted: 2
            }
        ),
        "{done:?}"
    );
    let report = verify(&app, &t.owner_token).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(
        (report["first_seq"].as_i64(), report["events"].as_i64()),
        (Some(3), Some(2))
    );
    // The export of what is left starts from the anchor and verifies offline.
    let ndjson = export(&app, &t.owner_token, "").await;
    let offline = file::verify(ndjson.as_bytes(), &public_key(&app).await).unwrap();
    assert!(offline.trustworthy(), "{offline:?}");
    assert_eq!(
        offline.checkpoints_valid, 2,
        "the anchor and the export's checkpoint"
    );

    // Without the anchor the start is unexplained: broken at seq 1.
    db.execute(
        "DELETE FROM audit_checkpoints WHERE tenant_id = $1 AND seq = 2",
        &[&t.id],
    )
    .await
    .unwrap();
    let report = verify(&app, &t.owner_token).await;
    assert_eq!(report["broken"]["seq"], 1, "{report}");
}

/// A user's e-mail address travels in `user_created` sealed with the tenant's
/// key; destroying the keys leaves no readable address and a verifying chain.
#[actix_web::test]
async fn personal_details_are_sealed_and_shredding_keeps_the_chain_verifying() {
    let app = spawn_app().await;
    let t = app.provision("personal").await;
    let canary = "canary-7f3e@personal.example";
    let created = app
        .post(
            "/v1/users",
            &t.owner_token,
            json!({ "email": canary, "display_name": "C", "role": "member" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let db = app.superuser_client().await;
    let row = db
        .query_one(
            "SELECT details::text, sealed FROM audit_events WHERE tenant_id = $1 \
             AND action = 'user_created'",
            &[&t.id],
        )
        .await
        .unwrap();
    let (details, sealed): (String, Option<Vec<u8>>) = (row.get(0), row.get(1));
    let sealed = sealed.expect("the address is sealed");
    assert!(!details.contains(canary));
    assert!(!String::from_utf8_lossy(&sealed).contains(canary));
    // Deleting the user records the address sealed too, opened for the owner.
    let id = created.body["id"].as_str().unwrap();
    let deleted = app
        .request(
            "DELETE",
            &format!("/v1/users/{id}"),
            Some(&t.owner_token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let listed = app
        .get("/v1/audit?action=user_deleted", &t.owner_token)
        .await;
    let event = &listed.body["items"][0];
    assert_eq!(event["personal"]["email"], canary, "{}", listed.body);
    assert!(!event["details"].to_string().contains(canary), "{event}");

    let destroyed = app
        .request(
            "DELETE",
            &format!("/v1/tenants/{}/keys", t.id),
            Some(&app.platform_token()),
            Some(json!({ "confirm": t.id.to_string() })),
        )
        .await;
    assert_eq!(destroyed.status, 200, "{}", destroyed.body);
    let report = verify(&app, &t.owner_token).await;
    assert_eq!(report["intact"], true, "{report}");
    // The subject's key is wrapped by the destroyed keys: the listing says so.
    let listed = app
        .get("/v1/audit?action=user_created", &t.owner_token)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(
        listed.body["items"][0]["personal_erased"], true,
        "{}",
        listed.body
    );
    assert_eq!(listed.body["items"][0]["personal"], Value::Null);
    let dump: String = db
        .query_one(
            "SELECT string_agg(details::text || coalesce(encode(sealed, 'escape'), ''), ' ') \
             FROM audit_events WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(canary));
}

/// Two transactions creating the same subject's key at once (the statements of
/// `audit::personal`, as the service role, SERIALIZABLE as the service runs
/// them): the second's insert waits for the first, fails serialization
/// (40001), and its retry finds the first's key and reads it. One row, and both
/// end with the same key.
#[actix_web::test]
async fn two_transactions_creating_one_subject_key_both_end_with_one_key() {
    use meridian::audit::personal::{INSERT_KEY_SQL, KEY_SQL};
    let app = spawn_app().await;
    let t = app.provision("subject-race").await;
    let subject = uuid::Uuid::new_v4();
    let begin = format!(
        "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT set_config('app.tenant_id', '{}', true)",
        t.id
    );
    let (first, second) = (app.app_role_client().await, app.app_role_client().await);
    first.batch_execute(&begin).await.unwrap();
    second.batch_execute(&begin).await.unwrap();
    let mine = first
        .query_opt(
            INSERT_KEY_SQL,
            &[&t.id, &subject, &"us-east1", &b"key-one".to_vec()],
        )
        .await
        .unwrap();
    assert!(mine.is_some(), "the first creates the key");
    let racing = actix_web::rt::spawn(async move {
        let outcome = second
            .query_opt(
                INSERT_KEY_SQL,
                &[&t.id, &subject, &"us-east1", &b"key-two".to_vec()],
            )
            .await
            .map(|row| row.is_some());
        (second, outcome)
    });
    // The second waits on the first's uncommitted row until it commits.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!racing.is_finished(), "the second insert did not wait");
    first.batch_execute("COMMIT").await.unwrap();
    let (second, outcome) = racing.await.unwrap();
    let code = outcome.expect_err("the second insert must not succeed in its snapshot");
    assert_eq!(
        code.code(),
        Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE),
        "{code}"
    );
    second.batch_execute("ROLLBACK").await.unwrap();
    // The retry (what `Database` does on 40001): nothing inserted, the key read.
    second.batch_execute(&begin).await.unwrap();
    let retried = second
        .query_opt(
            INSERT_KEY_SQL,
            &[&t.id, &subject, &"us-east1", &b"key-three".to_vec()],
        )
        .await
        .unwrap();
    assert!(retried.is_none(), "the retry creates no second key");
    let key: Vec<u8> = second
        .query_one(KEY_SQL, &[&t.id, &subject])
        .await
        .unwrap()
        .get(0);
    second.batch_execute("COMMIT").await.unwrap();
    assert_eq!(key, b"key-one", "both end with the first's key");
    let rows: i64 = app
        .superuser_client()
        .await
        .query_one(
            "SELECT count(*) FROM subject_keys WHERE tenant_id = $1 AND subject_id = $2",
            &[&t.id, &subject],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}
