//! `/v1/audit`: the tenant trail (who may read it, what it records, newest
//! first, one tenant only) and the platform trail.

use chrono::{DateTime, Utc};
use meridian::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// The whole trail `token` can read (one page of up to 200), checked newest first.
async fn trail(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.get("/v1/audit?limit=200", token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["next_cursor"].is_null(), "{}", reply.body);
    let events = reply.body["items"].as_array().unwrap().clone();
    let times: Vec<DateTime<Utc>> = events
        .iter()
        .map(|e| e["created_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {times:?}"
    );
    events
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[actix_web::test]
async fn owners_see_their_tenants_events_newest_first() {
    let app = spawn_app().await;
    let t = app.provision("audited").await;
    let (user, _) = app.add_user(&t, "member").await;
    let channel = app.create_channel(&t, "general").await;

    let events = trail(&app, &t.owner_token).await;
    assert_eq!(
        actions(&events),
        ["channel_created", "user_created", "tenant_provisioned"]
    );
    let owner = t.owner_id.to_string();
    assert_eq!(events[0]["actor"], owner);
    assert_eq!(events[0]["target_kind"], "channel");
    assert_eq!(events[0]["target_id"], channel.to_string());
    assert_eq!(events[0]["details"]["name"], "general");
    assert_eq!(events[1]["actor"], owner);
    assert_eq!(events[1]["target_id"], user.to_string());
    assert_eq!(events[1]["details"]["role"], "member");
    assert_eq!(events[2]["actor"], "test-admin");
    assert_eq!(events[2]["target_id"], t.id.to_string());
    assert_eq!(events[2]["details"]["owner_id"], owner);
    assert!(events.iter().all(|e| e["tenant_id"] == t.id.to_string()));
}

#[actix_web::test]
async fn reading_the_trail_needs_an_audit_role() {
    let app = spawn_app().await;
    let t = app.provision("readers").await;
    for role in ["member", "viewer"] {
        let (_, token) = app.add_user(&t, role).await;
        assert_problem(&app.get("/v1/audit", &token).await, 403, "forbidden");
    }
    let (compliance_id, _) = app.add_user(&t, "compliance").await;
    let compliance = app.token(t.id, compliance_id, Role::Compliance);
    let (_, admin) = app.add_user(&t, "admin").await;
    let seen_by_compliance = trail(&app, &compliance).await;
    assert_eq!(seen_by_compliance.len(), 5, "provisioning + four users");
    assert_eq!(
        actions(&trail(&app, &admin).await),
        actions(&seen_by_compliance)
    );
}

#[actix_web::test]
async fn platform_and_tenant_trails_stay_apart() {
    let app = spawn_app().await;
    let a = app.provision("tenant-a").await;
    let b = app.provision("tenant-b").await;
    let (a_user, _) = app.add_user(&a, "member").await;
    let a_channel = app.create_channel(&a, "secret-plans").await;

    let platform = trail(&app, &app.platform_token()).await;
    let provisioned: Vec<&Value> = platform
        .iter()
        .filter(|e| e["action"] == "tenant_provisioned")
        .collect();
    assert_eq!(provisioned.len(), 2);
    assert_eq!(provisioned[0]["tenant_id"], b.id.to_string());
    assert_eq!(provisioned[1]["tenant_id"], a.id.to_string());
    assert_eq!(provisioned[1]["details"]["slug"], "tenant-a");
    assert_eq!(provisioned[1]["actor"], "test-admin");
    // Tenant-internal events stay out of the platform trail.
    assert!(
        !actions(&platform).contains(&"user_created"),
        "{platform:?}"
    );

    let seen_by_b = trail(&app, &b.owner_token).await;
    assert_eq!(actions(&seen_by_b), ["tenant_provisioned"]);
    assert_eq!(seen_by_b[0]["tenant_id"], b.id.to_string());
    let text = serde_json::to_string(&seen_by_b).unwrap();
    for id in [a.id.to_string(), a_user.to_string(), a_channel.to_string()] {
        assert!(!text.contains(&id), "B's trail mentions {id}: {text}");
    }
    assert_eq!(trail(&app, &a.owner_token).await.len(), 3);
}

#[actix_web::test]
async fn tenant_changes_are_audited_with_before_and_after() {
    let app = spawn_app().await;
    let t = app.provision("changed").await;
    let admin = app.platform_token();
    let path = format!("/v1/tenants/{}", t.id);
    let by_platform = json!({ "name": "New Name", "limits": { "users": 7 } });
    assert_eq!(app.patch(&path, &admin, by_platform).await.status, 200);
    let by_owner = app
        .patch(&path, &t.owner_token, json!({ "name": "Owner Name" }))
        .await;
    assert_eq!(by_owner.status, 200, "{}", by_owner.body);

    let events = trail(&app, &t.owner_token).await;
    assert_eq!(
        actions(&events),
        ["tenant_updated", "tenant_updated", "tenant_provisioned"]
    );
    let (own, platform) = (&events[0], &events[1]);
    assert_eq!(own["actor"], t.owner_id.to_string());
    assert_eq!(own["details"]["before"]["name"], "New Name");
    assert_eq!(own["details"]["after"]["name"], "Owner Name");
    assert_eq!(platform["actor"], "test-admin");
    assert_eq!(platform["target_id"], t.id.to_string());
    let (before, after) = (
        &platform["details"]["before"],
        &platform["details"]["after"],
    );
    assert_eq!(before["name"], "changed Inc");
    assert_eq!(after["name"], "New Name");
    assert_eq!(before["limit_overrides"]["users"], Value::Null);
    assert_eq!(after["limit_overrides"]["users"], 7);
    assert_eq!(
        after["config_version"],
        before["config_version"].as_i64().unwrap() + 1
    );

    let platform_trail = trail(&app, &admin).await;
    let updated: Vec<&Value> = platform_trail
        .iter()
        .filter(|e| e["action"] == "tenant_updated")
        .collect();
    assert_eq!(
        updated.len(),
        1,
        "only the platform admin's change: {platform_trail:?}"
    );
    assert_eq!(updated[0]["tenant_id"], t.id.to_string());
    // The platform trail keeps the name only sealed with the tenant's keyring
    // (tenant erasure destroys it), opened for the platform admin.
    assert_eq!(updated[0]["details"]["after"]["name"], Value::Null);
    assert_eq!(updated[0]["details"]["after"]["plan"], after["plan"]);
    assert_eq!(updated[0]["personal"]["before"]["name"], "changed Inc");
    assert_eq!(updated[0]["personal"]["after"]["name"], "New Name");
    assert_eq!(updated[0]["personal_erased"], false);
}
