//! A post's last round trip carries its COMMIT (`TenantTx::execute_and_commit`,
//! issue 11 item 3): the outbox INSERT, the dispatch job and COMMIT go out
//! together. These tests make that round trip fail the way CockroachDB and
//! SERIALIZABLE PostgreSQL do (SQLSTATE 40001, injected by a trigger the test
//! installs as the superuser) and check that the whole transaction is retried
//! and written exactly once — message, charge and event — and that a refused
//! user's post commits nothing.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, assert_problem, spawn_app};

/// Fails the post's outbox INSERT (a statement of its last round trip).
const ON_THE_POSTS_EVENT: &str = "CREATE TRIGGER fail_event BEFORE INSERT ON outbox_events
    FOR EACH ROW WHEN (NEW.kind = 'message.posted') EXECUTE FUNCTION fail_first_times()";

/// Fails at COMMIT (a deferred constraint trigger runs there).
const AT_COMMIT: &str = "CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_first_times()";

/// Installs `trigger` over a function that raises 40001 the first `times` times
/// it runs (`SECURITY DEFINER`: the app role needs no grant on its counter).
async fn inject_40001(app: &TestApp, times: i64, trigger: &str) {
    app.superuser_client()
        .await
        .batch_execute(&format!(
            "CREATE SEQUENCE injected_failures;
             CREATE FUNCTION fail_first_times() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
             BEGIN
               IF nextval('injected_failures') <= {times} THEN
                 RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001';
               END IF;
               RETURN NEW;
             END $$;
             {trigger};"
        ))
        .await
        .unwrap();
}

/// How often the injected trigger ran.
async fn trigger_runs(app: &TestApp) -> i64 {
    app.superuser_client()
        .await
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM injected_failures",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Messages with `body`, their outbox events, and whether the tenant's stored
/// bytes equal what its usage shards charged.
async fn written(app: &TestApp, tenant: &Tenant, body: &str) -> (i64, i64, bool) {
    let db = app.superuser_client().await;
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM messages WHERE tenant_id = $1 AND body = $2),
                    (SELECT count(*) FROM outbox_events e JOIN messages m
                       ON m.tenant_id = e.tenant_id AND m.id::text = e.subject_id
                      WHERE e.tenant_id = $1 AND e.kind = 'message.posted' AND m.body = $2),
                    (SELECT COALESCE(sum(octet_length(body)), 0) FROM messages WHERE tenant_id = $1)
                      = (SELECT COALESCE(sum(used_bytes), 0) FROM tenant_usage_shards
                          WHERE tenant_id = $1)",
            &[&tenant.id, &body],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

pub async fn post(app: &TestApp, token: &str, channel: Uuid, body: &str) -> crate::helpers::Reply {
    app.post(
        &format!("/v1/channels/{channel}/messages"),
        token,
        json!({ "body": body }),
    )
    .await
}

/// 40001 on the outbox INSERT, a statement of the last round trip: the COMMIT
/// behind it ends the transaction as a ROLLBACK, and the retry writes the
/// message, its charge and its event once.
#[actix_web::test]
async fn a_40001_in_the_posts_last_round_trip_retries_the_whole_post() {
    let app = spawn_app().await;
    let tenant = app.provision("pipefail").await;
    let channel = app.create_channel(&tenant, "general").await;
    inject_40001(&app, 1, ON_THE_POSTS_EVENT).await;

    let reply = post(&app, &tenant.owner_token, channel, "retried as a whole").await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(trigger_runs(&app).await, 2, "one failed attempt, one retry");
    assert_eq!(
        written(&app, &tenant, "retried as a whole").await,
        (1, 1, true),
        "one message, one event, charged once"
    );
}

/// 40001 at COMMIT itself (a deferred constraint trigger runs there), the COMMIT
/// that travelled with the outbox INSERT: the post is retried whole, and written
/// once.
#[actix_web::test]
async fn a_40001_at_the_pipelined_commit_retries_the_whole_post() {
    let app = spawn_app().await;
    let tenant = app.provision("commitfail").await;
    let channel = app.create_channel(&tenant, "general").await;
    inject_40001(&app, 1, AT_COMMIT).await;

    let reply = post(&app, &tenant.owner_token, channel, "committed on retry").await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(trigger_runs(&app).await, 2, "one failed COMMIT, one retry");
    assert_eq!(
        written(&app, &tenant, "committed on retry").await,
        (1, 1, true)
    );
}

/// 40001 on every attempt: the post is answered 503 `retry_exhausted` and
/// nothing of it is left — no message, no event, no charge.
#[actix_web::test]
async fn a_post_failing_every_attempt_leaves_nothing() {
    let app = spawn_app().await;
    let tenant = app.provision("allfail").await;
    let channel = app.create_channel(&tenant, "general").await;
    inject_40001(&app, 1_000, ON_THE_POSTS_EVENT).await;

    let reply = post(&app, &tenant.owner_token, channel, "never written").await;

    assert_problem(&reply, 503, "retry_exhausted");
    assert!(trigger_runs(&app).await >= 2, "it was retried");
    assert_eq!(written(&app, &tenant, "never written").await, (0, 0, true));
}

/// A user disabled before their post: the COMMIT must not travel with the
/// post's last statements before the user check has answered, so nothing is
/// written and the answer is 401.
#[actix_web::test]
async fn a_disabled_users_post_writes_nothing() {
    let app = spawn_app().await;
    let tenant = app.provision("disabled").await;
    let channel = app.create_channel(&tenant, "general").await;
    let (user, token) = app.add_user(&tenant, "member").await;
    assert_eq!(
        post(&app, &token, channel, "while active").await.status,
        201
    );
    let reply = app
        .patch(
            &format!("/v1/users/{user}"),
            &tenant.owner_token,
            json!({ "status": "disabled" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let reply = post(&app, &token, channel, "after being disabled").await;

    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(
        written(&app, &tenant, "after being disabled").await,
        (0, 0, true)
    );
    assert_eq!(written(&app, &tenant, "while active").await, (1, 1, true));
}

/// A post under a write impersonation records `impersonated_write` after the
/// post's statements, in the same transaction: its COMMIT must not travel with
/// the outbox INSERT (the prologue checks an impersonation, not a user, so the
/// post falls back to COMMIT after the body). The post and its audit event are
/// both written.
#[actix_web::test]
async fn an_impersonated_post_commits_after_its_audit_event() {
    let app = spawn_app().await;
    let tenant = app.provision("imppost").await;
    let channel = app.create_channel(&tenant, "general").await;
    let allowed = app
        .patch(
            &format!("/v1/tenants/{}/impersonation-policy", tenant.id),
            &tenant.owner_token,
            json!({ "writes_allowed": true }),
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let started = crate::impersonation::start_with(
        &app,
        &tenant,
        json!({ "reason": "fix data", "write": true }),
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.body);
    let (_, token) = crate::impersonation::ids(&started.body);

    let reply = post(&app, &token, channel, "posted while impersonating").await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        written(&app, &tenant, "posted while impersonating").await,
        (1, 1, true)
    );
    let trail = app.get("/v1/audit?limit=200", &tenant.owner_token).await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let writes = trail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "impersonated_write")
        .count();
    assert_eq!(writes, 1, "{}", trail.body);
}

/// Fails the post's own statement (the charge + INSERT), the first of the body's
/// statements in the post's one round trip.
const ON_THE_MESSAGE: &str = "CREATE TRIGGER fail_message BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION fail_first_times()";

/// 40001 on the post's INSERT, with the outbox INSERT, the dispatch job and COMMIT
/// already sent behind it in the same round trip: those only find the transaction
/// aborted, COMMIT ends it as a ROLLBACK, and the retry writes the message, its
/// charge and its event once.
#[actix_web::test]
async fn a_40001_on_the_posts_insert_retries_the_whole_pipeline() {
    let app = spawn_app().await;
    let tenant = app.provision("insertfail").await;
    let channel = app.create_channel(&tenant, "general").await;
    // The shard's grant exists (the tenant's first post takes it on the slow
    // path): the next post is the one-round-trip fast path.
    assert_eq!(
        post(&app, &tenant.owner_token, channel, "first")
            .await
            .status,
        201
    );
    inject_40001(&app, 1, ON_THE_MESSAGE).await;

    let reply = post(&app, &tenant.owner_token, channel, "inserted on retry").await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(trigger_runs(&app).await, 2, "one failed INSERT, one retry");
    assert_eq!(
        written(&app, &tenant, "inserted on retry").await,
        (1, 1, true)
    );
}

/// A user demoted after their token was issued: the token's role no longer
/// matches, the post is answered 401 and nothing of it is written (the post's
/// statement refuses the role itself, with its COMMIT already on the wire).
#[actix_web::test]
async fn a_demoted_users_post_writes_nothing() {
    let app = spawn_app().await;
    let tenant = app.provision("demoted").await;
    let channel = app.create_channel(&tenant, "general").await;
    let (user, token) = app.add_user(&tenant, "admin").await;
    assert_eq!(post(&app, &token, channel, "as admin").await.status, 201);
    let reply = app
        .patch(
            &format!("/v1/users/{user}"),
            &tenant.owner_token,
            json!({ "role": "member" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let reply = post(&app, &token, channel, "after the demotion").await;

    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(
        written(&app, &tenant, "after the demotion").await,
        (0, 0, true)
    );
}

/// The post's statement is its own user check: run as the service role with a
/// disabled user's id, or with a role the user no longer has, it fails with
/// SQLSTATE 23502 on `author_id` (aborting the transaction, so the COMMIT sent
/// behind it writes nothing) instead of inserting; with the user's current role it
/// inserts. The same statement with too small a grant fails on `id` (the node
/// redoes the post on the slow path) instead of returning nothing.
#[actix_web::test]
async fn the_posts_statement_refuses_an_invalid_user_and_a_short_grant_itself() {
    let app = spawn_app().await;
    let tenant = app.provision("guarded").await;
    let channel = app.create_channel(&tenant, "general").await;
    let (user, token) = app.add_user(&tenant, "member").await;
    // Takes the shard grants (slow path) for the statement below.
    assert_eq!(post(&app, &token, channel, "grants").await.status, 201);
    let shard: i16 = app
        .superuser_client()
        .await
        .query_one(
            "SELECT shard FROM tenant_usage_shards WHERE tenant_id = $1 AND granted_bytes > used_bytes
             ORDER BY shard LIMIT 1",
            &[&tenant.id],
        )
        .await
        .unwrap()
        .get(0);
    let cap: i64 = app
        .superuser_client()
        .await
        .query_one(
            "SELECT cap_bytes FROM tenant_usage_shards WHERE tenant_id = $1 AND shard = $2",
            &[&tenant.id, &shard],
        )
        .await
        .unwrap()
        .get(0);
    let run = async |role: &str, bytes: i64| {
        let mut db = app.app_role_client().await;
        let tx = db.transaction().await.unwrap();
        tx.execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.id.to_string()],
        )
        .await
        .unwrap();
        let result = tx
            .execute(
                meridian::store::messages::POST_SQL,
                &[
                    &tenant.id,
                    &Uuid::new_v4(),
                    &"us-east1",
                    &channel,
                    &user,
                    &"probe",
                    &bytes,
                    &shard,
                    &cap,
                    &None::<Vec<u8>>,
                    &None::<i32>,
                    &chrono::Utc::now(),
                    &Some(role),
                ],
            )
            .await;
        tx.rollback().await.unwrap();
        result.map_err(|e| {
            let db = e.as_db_error().expect("a database error").clone();
            (db.code().code().to_owned(), db.column().map(str::to_owned))
        })
    };
    let refused = |column: &str| Err(("23502".to_owned(), Some(column.to_owned())));

    assert_eq!(run("member", 5).await, Ok(1), "the user's own role inserts");
    assert_eq!(run("admin", 5).await, refused("author_id"), "another role");
    assert_eq!(
        run("member", i64::MAX / 2).await,
        refused("id"),
        "grant short"
    );
    let reply = app
        .patch(
            &format!("/v1/users/{user}"),
            &tenant.owner_token,
            json!({ "status": "disabled" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(run("member", 5).await, refused("author_id"), "disabled");
    assert_eq!(written(&app, &tenant, "probe").await, (0, 0, true));
}
