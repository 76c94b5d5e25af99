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
