//! The residency report (`GET /v1/tenants/{id}/residency-report`): what it
//! finds in the database, what it flags, who may read it, and that its
//! signature verifies with the published key alone and fails once edited.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, spawn_app};
use meridian::auth::Role;
use meridian::crypto::signing::{PublicKey, Purpose, canonical_json, verify};

fn report_path(tenant: Uuid) -> String {
    format!("/v1/tenants/{tenant}/residency-report")
}

/// The report once the node has flushed at least `requests` served requests
/// (it flushes every 200 ms in tests), or the last one after 10 s.
async fn report_with_served(app: &TestApp, tenant: Uuid, token: &str, requests: i64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = app.get(&report_path(tenant), token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let served: i64 = reply.body["report"]["served"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["requests"].as_i64().unwrap())
            .sum();
        if served >= requests || std::time::Instant::now() > deadline {
            return reply.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Verifies `signed`'s signature as an auditor would: the public key from
/// `GET /signing-keys`, the canonical JSON of `report`.
async fn signature_holds(app: &TestApp, signed: &Value) -> bool {
    let keys = app.request("GET", "/signing-keys", None, None).await.body;
    let keys: Vec<PublicKey> = serde_json::from_value(keys["keys"].clone()).unwrap();
    let key_id = signed["signature"]["key_id"].as_str().unwrap();
    let key = keys.iter().find(|k| k.key_id == key_id).unwrap();
    verify(
        &key.decode().unwrap(),
        Purpose::ResidencyReport,
        &canonical_json(&signed["report"]),
        signed["signature"]["signature"].as_str().unwrap(),
    )
    .is_ok()
}

#[actix_web::test]
async fn the_report_shows_history_rows_and_serving_regions_and_is_signed() {
    let app = spawn_app().await;
    let t = app.provision("attested").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "hello").await;
    let (compliance_id, compliance) = app.add_user(&t, "compliance").await;
    let pin = json!({ "residency": { "regions": ["us-east1"] } });
    let set = app
        .patch(&format!("/v1/tenants/{}", t.id), &compliance, pin)
        .await;
    assert_eq!(set.status, 200, "{}", set.body);

    // Served here with the tenant's data so far: the channel, the post, the new
    // user, the pin.
    let signed = report_with_served(&app, t.id, &compliance, 4).await;
    let report = &signed["report"];
    assert_eq!(report["tenant_id"], json!(t.id));
    assert_eq!(report["home_region"], "us-east1");
    assert_eq!(report["allowed_regions"], json!(["us-east1"]));
    assert_eq!(report["compliant"], true, "{report}");
    assert_eq!(report["findings"], json!([]));
    assert_eq!(report["generated_by"], json!(compliance_id.to_string()));
    // Provisioning (no policy), then the compliance officer's pin.
    let history = report["policy_history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["action"], "tenant_provisioned");
    assert_eq!(history[0]["after"], Value::Null);
    assert_eq!(history[1]["actor"], json!(compliance_id.to_string()));
    assert_eq!(history[1]["before"], Value::Null);
    assert_eq!(history[1]["after"], json!({ "regions": ["us-east1"] }));
    // Every table's rows by region: the message, the users, the channel.
    let rows = report["rows"].as_array().unwrap();
    let count = |table: &str| {
        rows.iter().find(|r| r["table"] == table).map(|r| {
            (
                r["home_region"].clone(),
                r["rows"].clone(),
                r["allowed"].clone(),
            )
        })
    };
    assert_eq!(
        count("messages"),
        Some((json!("us-east1"), json!(1), json!(true)))
    );
    assert_eq!(
        count("users"),
        Some((json!("us-east1"), json!(2), json!(true)))
    );
    let served = report["served"].as_array().unwrap();
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0]["region"], "us-east1");
    assert!(served[0]["requests"].as_i64().unwrap() >= 4, "{served:?}");
    assert_eq!(report["database"]["dialect"], "postgres");
    assert_eq!(report["home_history"], json!([]));

    // The signature verifies offline, and not once anything is changed.
    assert!(signature_holds(&app, &signed).await);
    let mut edited = signed.clone();
    edited["report"]["rows"][0]["rows"] = json!(0);
    assert!(!signature_holds(&app, &edited).await);
    let mut edited = signed.clone();
    edited["report"]["compliant"] = json!(false);
    assert!(!signature_holds(&app, &edited).await);
}

#[actix_web::test]
async fn rows_or_requests_outside_the_policy_and_relocations_are_reported() {
    let app = spawn_app().await;
    let t = app.provision("flagged").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "one").await;
    app.post_message(&t, channel, "two").await;
    let pin = json!({ "residency": { "jurisdiction": "us" } });
    let set = app
        .patch(&format!("/v1/tenants/{}", t.id), &app.platform_token(), pin)
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    // What the report must catch: a message row placed in the EU behind the
    // service's back, requests served from Singapore, and a finished relocation.
    let db = app.superuser_client().await;
    db.execute(
        "UPDATE messages SET home_region = 'europe-west1'
          WHERE id = (SELECT id FROM messages WHERE tenant_id = $1 LIMIT 1)",
        &[&t.id],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO tenant_served_regions
                (tenant_id, region, day, home_region, requests, first_seen, last_seen)
         VALUES ($1, 'asia-southeast1', current_date, 'us-east1', 7, now(), now())",
        &[&t.id],
    )
    .await
    .unwrap();
    let relocation = Uuid::now_v7();
    db.execute(
        "INSERT INTO relocations (id, tenant_id, from_region, to_region, status, requested_by, finished_at)
         VALUES ($1, $2, 'europe-west1', 'us-east1', 'done', 'test-admin', now())",
        &[&relocation, &t.id],
    )
    .await
    .unwrap();

    let signed = app.get(&report_path(t.id), &t.owner_token).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let report = &signed.body["report"];
    assert_eq!(report["compliant"], false);
    let findings: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert!(
        findings.iter().any(|f| f.contains("`messages`")
            && f.contains("`europe-west1`")
            && f.starts_with("1 rows")),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("`asia-southeast1` served 7")),
        "{findings:?}"
    );
    let messages: Vec<&Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table"] == "messages")
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(
        report["home_history"][0]["relocation_id"],
        json!(relocation)
    );
    assert_eq!(report["home_history"][0]["to_region"], "us-east1");
    assert!(signature_holds(&app, &signed.body).await);

    // A platform admin reads it too; a member may not; an operator neither.
    let admin = app.get(&report_path(t.id), &app.platform_token()).await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    assert_eq!(admin.body["report"]["generated_by"], "test-admin");
    let (_, member) = app.add_user(&t, "member").await;
    assert_problem(
        &app.get(&report_path(t.id), &member).await,
        403,
        "forbidden",
    );
    let operator = app
        .verifier
        .issue("op".into(), None, Role::Operator, 600)
        .unwrap();
    assert_problem(
        &app.get(&report_path(t.id), &operator).await,
        403,
        "operator_forbidden",
    );
}
