//! The access log: members' requests recorded off the request path, folded per
//! user and path, readable by owners and compliance officers only, per tenant;
//! impersonated requests stay in the audit trail instead; retention prunes
//! (the node's platform-wide bound, and each tenant's retention job).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, spawn_app, test_settings};

/// Requests recorded for `path` in `items`.
fn requests_for(items: &[Value], path: &str) -> i64 {
    items
        .iter()
        .filter(|e| e["path"] == path)
        .map(|e| e["requests"].as_i64().unwrap())
        .sum()
}

/// The tenant's access log once it counts `requests` requests for `path`
/// (nodes flush every 200 ms in tests, and a flush may hold only some of
/// them), or after 10 s.
async fn log_with(
    app: &TestApp,
    token: &str,
    query: &str,
    path: &str,
    requests: i64,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = app.get(&format!("/v1/access-log{query}"), token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let items = reply.body["items"].as_array().unwrap().clone();
        if requests_for(&items, path) >= requests || std::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn members_reads_are_logged_folded_and_shown_to_compliance_only() {
    let app = spawn_app().await;
    let t = app.provision("accessed").await;
    let channel = app.create_channel(&t, "general").await;
    let (member_id, member) = app.add_user(&t, "member").await;
    let (_, compliance) = app.add_user(&t, "compliance").await;
    let page = format!("/v1/channels/{channel}/messages");
    for _ in 0..3 {
        let reply = app.get(&page, &member).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    // Three reads inside one flush interval fold into one entry; across two
    // flushes into two: either way three requests, all the member's.
    let query = format!("?user_id={member_id}");
    let items = log_with(&app, &compliance, &query, &page, 3).await;
    assert_eq!(requests_for(&items, &page), 3, "{items:?}");
    let reads: Vec<&Value> = items.iter().filter(|e| e["path"] == page).collect();
    for entry in &reads {
        assert_eq!(entry["user_id"], json!(member_id));
        assert_eq!(entry["method"], "GET");
        assert_eq!(entry["route"], "/v1/channels/{id}/messages");
        assert_eq!(entry["region"], "us-east1");
    }
    // The filter shows only the member's entries.
    assert!(
        items.iter().all(|e| e["user_id"] == json!(member_id)),
        "{items:?}"
    );

    // Owners read it too; admins and members may not.
    assert_eq!(app.get("/v1/access-log", &t.owner_token).await.status, 200);
    let (_, admin) = app.add_user(&t, "admin").await;
    assert_problem(&app.get("/v1/access-log", &admin).await, 403, "forbidden");
    assert_problem(&app.get("/v1/access-log", &member).await, 403, "forbidden");

    // Another tenant's log has none of this tenant's entries.
    let other = app.provision("elsewhere").await;
    let theirs = app.get("/v1/access-log", &other.owner_token).await;
    assert_eq!(theirs.status, 200);
    assert!(
        !theirs.body.to_string().contains(&channel.to_string()),
        "{}",
        theirs.body
    );
}

#[actix_web::test]
async fn impersonated_requests_are_audited_one_by_one_not_folded_here() {
    let app = spawn_app().await;
    let t = app.provision("impersonated-log").await;
    let channel = app.create_channel(&t, "general").await;
    let (_, compliance) = app.add_user(&t, "compliance").await;
    // A platform admin's impersonation of the owner.
    let started = crate::impersonation::start_with(
        &app,
        &t,
        json!({"reason": "support ticket 42", "minutes": 10}),
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.body);
    let (_, token) = crate::impersonation::ids(&started.body);
    let page = format!("/v1/channels/{channel}/messages");
    assert_eq!(app.get(&page, &token).await.status, 200);
    // A member's read after it, so a flush has surely passed once it shows.
    let marker = format!("/v1/channels/{channel}");
    assert_eq!(app.get(&marker, &t.owner_token).await.status, 200);
    let items = log_with(&app, &compliance, "", &marker, 1).await;
    assert!(items.iter().any(|e| e["path"] == marker), "{items:?}");
    assert!(!items.iter().any(|e| e["path"] == page), "{items:?}");
    let audit = app.get("/v1/audit", &compliance).await.body;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "impersonated_request" && e["details"]["path"] == page),
        "{audit}"
    );
}

/// An access-log row of `tenant` `days` old, homed in `home`.
const BACKDATED_ROW: &str = "INSERT INTO access_log (tenant_id, first_at, id, home_region, user_id,
        method, route, path, last_at, requests, region)
      VALUES ($1, now() - make_interval(days => $2), $3, $4, $5, 'GET', '/v1/users',
              '/v1/users', now() - make_interval(days => $2), 1, 'us-east1')";

#[actix_web::test]
async fn retention_prunes_only_old_rows_of_the_nodes_region() {
    let app = spawn_app().await;
    let t = app.provision("pruned").await;
    let db = app.superuser_client().await;
    let insert = BACKDATED_ROW;
    let (old, recent, elsewhere) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (id, days, home) in [
        (old, 100, "us-east1"),
        (recent, 10, "us-east1"),
        (elsewhere, 100, "europe-west1"),
    ] {
        db.execute(insert, &[&t.id, &days, &id, &home, &t.owner_id])
            .await
            .unwrap();
    }
    let settings = test_settings(&app.db_name);
    let node_db = meridian::db::Database::connect(&settings.database).unwrap();
    let region = meridian::ids::RegionId::parse("us-east1").unwrap();
    // The node prunes too (at its first flush, then hourly), so the old row is
    // deleted by whichever prune runs first: one row in all.
    let pruned = meridian::access_log::prune(&node_db, &region, &settings.access_log).await;
    assert!(pruned <= 1, "{pruned}");
    let left: Vec<Uuid> = db
        .query(
            "SELECT id FROM access_log WHERE tenant_id = $1 ORDER BY id",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .filter(|id| [old, recent, elsewhere].contains(id))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&old));
}

/// The tenant's retention covers its access log: its retention job deletes the
/// tenant's rows older than min(audit_days, access_log.retention_days) — not
/// newer ones, not another tenant's.
#[actix_web::test]
async fn the_tenants_retention_job_deletes_its_access_log_past_its_audit_retention() {
    let app = spawn_app().await;
    let (a, b) = (
        app.provision("al-keep-a").await,
        app.provision("al-keep-b").await,
    );
    // Below the plan's audit floor: only a platform admin may set it.
    let set = app
        .request(
            "PUT",
            &format!("/v1/tenants/{}/retention", a.id),
            Some(&app.platform_token()),
            Some(json!({ "messages_days": 30, "audit_days": 30 })),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    crate::retention::settle(&app, &[a.id, b.id]).await;
    let db = app.superuser_client().await;
    let (a_old, a_recent, b_old) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (tenant, id, days) in [(&a, a_old, 40), (&a, a_recent, 20), (&b, b_old, 40)] {
        db.execute(
            BACKDATED_ROW,
            &[&tenant.id, &days, &id, &"us-east1", &tenant.owner_id],
        )
        .await
        .unwrap();
    }
    let job = crate::retention::run_retention(&app, &a).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["access_log_days"], 30, "{job}");
    let left: Vec<Uuid> = db
        .query(
            "SELECT id FROM access_log WHERE id = ANY($1)",
            &[&vec![a_old, a_recent, b_old]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!left.contains(&a_old), "{left:?}");
    assert!(
        left.contains(&a_recent) && left.contains(&b_old),
        "{left:?}"
    );
}
