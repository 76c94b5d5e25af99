//! The transactional outbox: each mutating route writes exactly its event, in
//! its transaction — a change that rolls back leaves no event, and an event that
//! cannot be written rolls the change back.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

async fn kinds(app: &TestApp, tenant: Uuid) -> Vec<String> {
    let db = app.superuser_client().await;
    db.query(
        "SELECT kind FROM outbox_events WHERE tenant_id = $1 ORDER BY created_at, id",
        &[&tenant],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[actix_web::test]
async fn each_mutating_route_writes_exactly_its_event() {
    let app = spawn_app().await;
    let t = app.provision("outboxed").await;
    let mut seen = kinds(&app, t.id).await;
    assert_eq!(seen, ["tenant.created", "user.added"], "provisioning");

    let mut expect = async |what: &str, kind: &str| {
        let now = kinds(&app, t.id).await;
        assert_eq!(now.len(), seen.len() + 1, "{what}: {now:?}");
        assert_eq!(now.last().unwrap(), kind, "{what}");
        seen = now;
    };
    let channel = app.create_channel(&t, "general").await;
    expect("create channel", "channel.created").await;
    app.post_message(&t, channel, "hello").await;
    expect("post message", "message.posted").await;
    let (user, _) = app.add_user(&t, "member").await;
    expect("add user", "user.added").await;
    let reply = app
        .patch(
            &format!("/v1/users/{user}"),
            &t.owner_token,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    expect("change role", "user.updated").await;
    let reply = app
        .delete(&format!("/v1/users/{user}"), &t.owner_token)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    expect("remove user", "user.removed").await;
    let reply = app
        .patch(
            &format!("/v1/tenants/{}", t.id),
            &t.owner_token,
            json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    expect("change tenant", "tenant.updated").await;
    let reply = app
        .delete(&format!("/v1/channels/{channel}"), &t.owner_token)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    expect("delete channel", "channel.deleted").await;

    // Refused or failed requests write nothing.
    let before = kinds(&app, t.id).await.len();
    let taken = app.create_channel(&t, "dup").await;
    let again = app
        .post("/v1/channels", &t.owner_token, json!({"name": "dup"}))
        .await;
    assert_eq!(again.status, 409);
    let missing = app
        .post(
            &format!("/v1/channels/{}/messages", Uuid::new_v4()),
            &t.owner_token,
            json!({"body": "x"}),
        )
        .await;
    assert_eq!(missing.status, 404);
    let _ = taken;
    assert_eq!(
        kinds(&app, t.id).await.len(),
        before + 1,
        "only the first `dup` channel"
    );
    // Events carry the tenant's home region, like every tenant row.
    let db = app.superuser_client().await;
    let regions: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox_events WHERE tenant_id = $1 AND home_region <> 'us-east1'",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(regions, 0);
}

/// A failure after the event was written (here: the audit insert that follows
/// it) rolls back change and event together; a failing event insert rolls back
/// the change. Both are forced with a trigger, as a superuser.
#[actix_web::test]
async fn a_failed_transaction_leaves_no_event_and_no_change_without_event() {
    let app = spawn_app().await;
    let t = app.provision("atomic").await;
    let db = app.superuser_client().await;
    db.batch_execute(
        "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'forced failure'; END $$;
         CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events FOR EACH ROW
             WHEN (NEW.action = 'channel_created') EXECUTE FUNCTION fail_insert();",
    )
    .await
    .unwrap();
    let before = kinds(&app, t.id).await;
    let reply = app
        .post("/v1/channels", &t.owner_token, json!({"name": "doomed"}))
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(kinds(&app, t.id).await, before, "the event rolled back");
    let channels: i64 = db
        .query_one(
            "SELECT count(*) FROM channels WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(channels, 0);

    // Now the event itself cannot be written: the change must not happen.
    db.batch_execute(
        "DROP TRIGGER fail_audit ON audit_events;
         CREATE TRIGGER fail_event BEFORE INSERT ON outbox_events FOR EACH ROW
             WHEN (NEW.kind = 'channel.created') EXECUTE FUNCTION fail_insert();",
    )
    .await
    .unwrap();
    let reply = app
        .post("/v1/channels", &t.owner_token, json!({"name": "doomed"}))
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let channels: i64 = db
        .query_one(
            "SELECT count(*) FROM channels WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(channels, 0, "no change without its event");
    db.batch_execute("DROP TRIGGER fail_event ON outbox_events")
        .await
        .unwrap();
    app.create_channel(&t, "doomed").await;
    assert_eq!(kinds(&app, t.id).await.last().unwrap(), "channel.created");
}
