//! Retention (issue 16 item 4): the policy route (plan defaults, the plan's
//! maximum, the audit floor only platform admins may pass), the
//! `retention.enforce` job (exactly the tenant's old messages and what copied
//! them; the audit trail truncated behind an anchor that still verifies), and
//! its refusal to delete a tampered prefix.

use std::time::Duration;

use meridian::audit::chain;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, assert_problem, spawn_app};

fn path(tenant: &Tenant) -> String {
    format!("/v1/tenants/{}/retention", tenant.id)
}

async fn put(app: &TestApp, tenant: &Tenant, token: &str, body: Value) -> crate::helpers::Reply {
    app.request("PUT", &path(tenant), Some(token), Some(body))
        .await
}

/// Moves the tenant's events through `through` back by `days` and re-chains
/// the trail (a test's stand-in for events written long ago: `created_at` is
/// part of each hash).
pub(crate) async fn backdate_audit(
    db: &tokio_postgres::Client,
    tenant: Uuid,
    through: i64,
    days: i32,
) {
    crate::helpers::audit_chained(db, tenant).await;
    db.execute(
        "UPDATE audit_events SET created_at = created_at - $3::int * interval '1 day' \
         WHERE tenant_id = $1 AND seq <= $2",
        &[&tenant, &through, &days],
    )
    .await
    .unwrap();
    let rows = db
        .query(
            &format!(
                "SELECT {} FROM audit_events WHERE tenant_id = $1 ORDER BY seq",
                meridian::audit::trail::TENANT.columns
            ),
            &[&tenant],
        )
        .await
        .unwrap();
    let mut prev = chain::GENESIS.to_vec();
    for row in &rows {
        let stored = meridian::audit::verify::stored(row);
        let hash = chain::link(&prev, &stored.canonical).to_vec();
        db.execute(
            "UPDATE audit_events SET hash = $3 WHERE tenant_id = $1 AND seq = $2",
            &[&tenant, &stored.seq, &hash],
        )
        .await
        .unwrap();
        prev = hash;
    }
    db.execute(
        "UPDATE audit_heads SET hash = $2 WHERE tenant_id = $1",
        &[&tenant, &prev],
    )
    .await
    .unwrap();
    // Checkpoints signed the hashes before the move.
    db.execute(
        "DELETE FROM audit_checkpoints WHERE tenant_id = $1",
        &[&tenant],
    )
    .await
    .unwrap();
}

/// Waits until the node's first housekeeping has enqueued this period's
/// scheduled jobs (the region's platform checkpoint is one) and every job of
/// `tenants` has ended, so no scheduled job (a checkpoint, a retention run)
/// races a test's edits of the trail; the next period is an hour away.
pub(crate) async fn settle(app: &TestApp, tenants: &[Uuid]) {
    let db = app.superuser_client().await;
    crate::regions::eventually("scheduled jobs enqueued and ended", async || {
        db.query_one(
            "SELECT (SELECT count(*) FROM jobs WHERE kind = 'audit_platform_checkpoint') > 0 \
                AND NOT EXISTS (SELECT 1 FROM jobs WHERE tenant_id = ANY($1) \
                    AND state IN ('queued', 'running'))",
            &[&tenants],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    })
    .await;
}

/// Runs the tenant's retention job now and waits for its end.
pub(crate) async fn run_retention(app: &TestApp, tenant: &Tenant) -> Value {
    let job = crate::jobs::enqueue_as_node(app, tenant.id, "retention.enforce").await;
    for _ in 0..600 {
        let reply = app
            .get(&format!("/v1/jobs/{job}"), &tenant.owner_token)
            .await;
        if matches!(
            reply.body["state"].as_str(),
            Some("succeeded" | "failed" | "dead")
        ) {
            return reply.body;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("retention job {job} did not finish");
}

async fn verify(app: &TestApp, token: &str) -> Value {
    let reply = app.get("/v1/audit/verify", token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[actix_web::test]
async fn plan_defaults_the_plan_maximum_and_the_audit_floor() {
    let app = spawn_app().await;
    let t = app.provision("retain-policy").await;
    let shown = app.get(&path(&t), &t.owner_token).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["plan"], "free");
    assert_eq!(
        (
            &shown.body["messages_days"],
            &shown.body["audit_days"],
            &shown.body["customized"]
        ),
        (&json!(365), &json!(365), &json!(false)),
        "{}",
        shown.body
    );
    assert_eq!(shown.body["bounds"]["messages_days_max"], 365);
    assert_eq!(shown.body["bounds"]["audit_days_floor"], 365);

    // The owner shortens message retention; longer than the plan is 422.
    let shorter = put(
        &app,
        &t,
        &t.owner_token,
        json!({ "messages_days": 30, "audit_days": 365 }),
    )
    .await;
    assert_eq!(shorter.status, 200, "{}", shorter.body);
    assert_eq!(shorter.body["messages_days"], 30);
    assert_eq!(shorter.body["customized"], true);
    for too_long in [json!(366), Value::Null] {
        let refused = put(
            &app,
            &t,
            &t.owner_token,
            json!({ "messages_days": too_long, "audit_days": 365 }),
        )
        .await;
        assert_problem(&refused, 422, "retention_exceeds_plan");
    }
    let missing = put(&app, &t, &t.owner_token, json!({ "audit_days": 365 })).await;
    assert_eq!(
        missing.status, 400,
        "messages_days is required: {}",
        missing.body
    );

    // Below the audit floor: refused for the owner and a compliance officer,
    // allowed for a platform admin; a tenant admin may not touch retention.
    let (_, officer) = app.add_user(&t, "compliance").await;
    let (_, admin) = app.add_user(&t, "admin").await;
    let lower = json!({ "messages_days": 30, "audit_days": 90 });
    for token in [&t.owner_token, &officer] {
        assert_problem(
            &put(&app, &t, token, lower.clone()).await,
            403,
            "audit_retention_floor",
        );
    }
    assert_problem(
        &put(&app, &t, &admin, lower.clone()).await,
        403,
        "forbidden",
    );
    let by_platform = put(&app, &t, &app.platform_token(), lower.clone()).await;
    assert_eq!(by_platform.status, 200, "{}", by_platform.body);
    assert_eq!(by_platform.body["audit_days"], 90);
    // What a platform admin set below the floor, the owner may keep, not lower.
    let kept = put(
        &app,
        &t,
        &t.owner_token,
        json!({ "messages_days": 20, "audit_days": 90 }),
    )
    .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let further = json!({ "messages_days": 20, "audit_days": 60 });
    assert_problem(
        &put(&app, &t, &t.owner_token, further).await,
        403,
        "audit_retention_floor",
    );
    let stored = app.get(&path(&t), &app.platform_token()).await;
    assert_eq!(
        (
            stored.body["messages_days"].as_i64(),
            stored.body["audit_days"].as_i64()
        ),
        (Some(20), Some(90))
    );

    // Every change is in the tenant's trail: who, from what, to what.
    let db = app.superuser_client().await;
    let changes: Vec<(String, Value)> = db
        .query(
            "SELECT actor, details FROM audit_events WHERE tenant_id = $1 \
             AND action = 'tenant_retention_changed' ORDER BY seq",
            &[&t.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[0].0, t.owner_id.to_string());
    assert_eq!(
        changes[0].1["from"],
        json!({ "messages_days": 365, "audit_days": 365 })
    );
    assert_eq!(changes[0].1["from_plan_defaults"], true);
    assert_eq!(changes[1].1["by"], "platform_admin");
    assert_eq!(
        changes[1].1["from"],
        json!({ "messages_days": 30, "audit_days": 365 })
    );
    assert_eq!(changes[1].1["to"], lower);
}

#[actix_web::test]
async fn the_job_deletes_exactly_the_tenants_old_messages_and_truncates_its_trail() {
    let app = spawn_app().await;
    let (a, b) = (
        app.provision("retain-a").await,
        app.provision("retain-b").await,
    );
    let db = app.superuser_client().await;
    let mut old = Vec::new();
    for t in [&a, &b] {
        let channel = app.create_channel(t, "general").await;
        for i in 0..3 {
            old.push(
                app.post_message(t, channel, &format!("ancient zebra {i}"))
                    .await,
            );
        }
        app.post_message(t, channel, "recent zebra").await;
    }
    // The node's first housekeeping tick enqueues this period's retention jobs;
    // let them run before anything is backdated, so only the job below acts on
    // the old rows.
    settle(&app, &[a.id, b.id]).await;
    // Three messages of each tenant are 40 days old, as are their events.
    db.execute(
        "UPDATE messages SET created_at = created_at - interval '40 days' WHERE id = ANY($1)",
        &[&old],
    )
    .await
    .unwrap();
    let old_text: Vec<String> = old.iter().map(Uuid::to_string).collect();
    db.execute(
        "UPDATE outbox_events SET created_at = created_at - interval '40 days' \
         WHERE data -> 'message' ->> 'id' = ANY($1)",
        &[&old_text],
    )
    .await
    .unwrap();
    let usage = |t: &Tenant| {
        let token = t.owner_token.clone();
        let app = &app;
        async move {
            app.get("/v1/usage", &token).await.body["storage_bytes"]
                .as_i64()
                .unwrap()
        }
    };
    let before = usage(&a).await;
    let ok = put(
        &app,
        &a,
        &a.owner_token,
        json!({ "messages_days": 30, "audit_days": 365 }),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // A's first two audit events are 400 days old (past the 365-day default).
    backdate_audit(&db, a.id, 2, 400).await;
    let found = app.get("/v1/search?q=zebra", &a.owner_token).await;
    assert_eq!(
        found.body["items"].as_array().unwrap().len(),
        4,
        "{}",
        found.body
    );

    let job = run_retention(&app, &a).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let count = |t: Uuid| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT count(*) FILTER (WHERE body LIKE 'ancient%'), \
                 count(*) FILTER (WHERE body LIKE 'recent%') FROM messages WHERE tenant_id = $1",
                &[&t],
            )
            .await
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
            .unwrap()
        }
    };
    assert_eq!(
        count(a.id).await,
        (0, 1),
        "A's old messages gone, the recent kept"
    );
    assert_eq!(
        count(b.id).await,
        (3, 1),
        "B's messages untouched (its plan keeps 365 days)"
    );
    let found = app.get("/v1/search?q=zebra", &a.owner_token).await;
    let bodies: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["recent zebra"],
        "search no longer finds deleted messages"
    );
    let freed = "ancient zebra 0".len() as i64 * 3;
    assert_eq!(
        usage(&a).await,
        before - freed,
        "the freed bytes are refunded"
    );
    let outbox: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox_events WHERE tenant_id = $1 AND data::text LIKE '%ancient%'",
            &[&a.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbox, 0, "no event still carries a deleted message");

    // The trail lost its first two events behind an anchor and still verifies.
    let report = verify(&app, &a.owner_token).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["first_seq"], 3, "{report}");
    let anchor: String = db
        .query_one(
            "SELECT kind FROM audit_checkpoints WHERE tenant_id = $1 AND seq = 2",
            &[&a.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(anchor, "anchor");
    // Run again: nothing more is old enough; nothing changes.
    assert_eq!(run_retention(&app, &a).await["state"], "succeeded");
    assert_eq!(verify(&app, &a.owner_token).await["first_seq"], 3);
}

/// Deleting a tampered prefix would destroy the evidence: the truncation
/// re-verifies what it would delete and refuses.
#[actix_web::test]
async fn a_tampered_prefix_is_not_truncated_and_stays_detectable() {
    let app = spawn_app().await;
    let t = app.provision("retain-tampered").await;
    for name in ["a", "b", "c"] {
        app.create_channel(&t, name).await;
    }
    let db = app.superuser_client().await;
    settle(&app, &[t.id]).await;
    backdate_audit(&db, t.id, 3, 400).await;
    assert_eq!(verify(&app, &t.owner_token).await["intact"], true);
    db.execute(
        "UPDATE audit_events SET action = 'nothing_happened' WHERE tenant_id = $1 AND seq = 2",
        &[&t.id],
    )
    .await
    .unwrap();

    let job = run_retention(&app, &t).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("audit retention refused") && error.contains("seq 2"),
        "{job}"
    );
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND seq <= 3",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 3, "nothing of the tampered prefix was deleted");
    let report = verify(&app, &t.owner_token).await;
    assert_eq!(report["intact"], false);
    assert_eq!(report["broken"]["seq"], 2, "{report}");
    let refused: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1 \
             AND action = 'audit_retention_refused'",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(refused >= 1, "the refusal is in the tenant's trail");
}

/// A platform admin's `?tenant=` on the audit routes and the retention route
/// are routed like the tenant's own requests: served in its home region,
/// whichever node they land on.
#[actix_web::test]
async fn a_platform_admins_tenant_routes_are_served_in_the_tenants_home_region() {
    use crate::regions::{header, provision_in, spawn_regions};
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let (us, eu) = (&nodes["us-east1"], &nodes["europe-west1"]);
    let (tenant, owner) = provision_in(us, "retain-eu", "europe-west1", None).await;
    let admin = us.platform_token();
    for path in [
        format!("/v1/audit/verify?tenant={tenant}"),
        format!("/v1/audit/export?tenant={tenant}"),
        format!("/v1/tenants/{tenant}/retention"),
    ] {
        let reply = us.get(&path, &admin).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(
            header(&reply, "x-meridian-region"),
            "europe-west1",
            "{path}"
        );
        assert_eq!(header(&reply, "x-meridian-home-region"), "europe-west1");
    }
    let set = us
        .request(
            "PUT",
            &format!("/v1/tenants/{tenant}/retention"),
            Some(&admin),
            Some(json!({ "messages_days": 30, "audit_days": 100 })),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(header(&set, "x-meridian-region"), "europe-west1");
    // The home region's answer: the trail it verified holds the change just made
    // (once the home region's sealer has chained it).
    eu.audit_chained(tenant).await;
    let report = us
        .get(&format!("/v1/audit/verify?tenant={tenant}"), &admin)
        .await;
    assert_eq!(report.body["intact"], true, "{}", report.body);
    let own = eu.get("/v1/audit/verify", &owner).await;
    assert_eq!(report.body["head"], own.body["head"]);
    // A region's platform trail (`?region=`) names no tenant: served where it lands.
    let platform = us.get("/v1/audit/verify?region=us-east1", &admin).await;
    assert_eq!(platform.status, 200, "{}", platform.body);
    assert_eq!(header(&platform, "x-meridian-region"), "us-east1");
}
