//! Post lanes (`scope::post_lanes`, issue 11 item 3): a tenant's concurrent
//! posts on a node are written by one transaction (a post that finds its lane
//! idle goes first, on its own), and each request still gets
//! its own answer — a post one of whose guards refuses it (its channel, its
//! author) is left out of the batch and answered on its own path — while the
//! quota stays exact and every message has its one event.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app_with, test_settings,
};
use crate::metrics::{scrape, value};
use crate::write_pipeline::post;

/// Holds the post whose body is `held` at its INSERT until the test lets go of
/// advisory lock 4242: it found its lane idle, went first on its own path and
/// holds the lane's turn, so the posts that follow gather behind it.
const HOLD_AT_INSERT: &str = "CREATE FUNCTION hold_insert() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$;
     CREATE TRIGGER hold_insert BEFORE INSERT ON messages
       FOR EACH ROW WHEN (NEW.body = 'held') EXECUTE FUNCTION hold_insert();";

/// The tenant's messages, their `message.posted` events, and whether its stored
/// bytes equal what its usage shards charged.
async fn written(app: &TestApp, tenant: &Tenant) -> (i64, i64, bool) {
    let row = app
        .superuser_client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM messages WHERE tenant_id = $1),
                    (SELECT count(*) FROM outbox_events e JOIN messages m
                       ON m.tenant_id = e.tenant_id AND m.id::text = e.subject_id
                      WHERE e.tenant_id = $1 AND e.kind = 'message.posted'),
                    (SELECT COALESCE(sum(octet_length(body)), 0) FROM messages WHERE tenant_id = $1)
                      = (SELECT COALESCE(sum(used_bytes), 0) FROM tenant_usage_shards
                          WHERE tenant_id = $1)",
            &[&tenant.id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[actix_web::test]
async fn posts_waiting_behind_a_post_are_written_together_and_refusals_answered_alone() {
    let mut settings = test_settings(&fresh_database().await);
    // One writer (the default, set here because the test depends on it): what
    // arrives while the held post holds the lane must wait for the next batch;
    // and a wait bound long enough that none of it leaves the lane meanwhile.
    settings.database.post_writers_per_tenant = 1;
    settings.database.post_lane_wait = Duration::from_secs(10);
    let app = spawn_app_with(settings).await;
    let tenant = app.provision("lanes").await;
    let channel = app.create_channel(&tenant, "general").await;
    let (_, member) = app.add_user(&tenant, "member").await;
    let (gone, gone_token) = app.add_user(&tenant, "member").await;
    let disabled = app
        .patch(
            &format!("/v1/users/{gone}"),
            &tenant.owner_token,
            json!({ "status": "disabled" }),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    let db = app.superuser_client().await;
    db.batch_execute(HOLD_AT_INSERT).await.unwrap();
    db.execute("SELECT pg_advisory_lock(4242)", &[])
        .await
        .unwrap();

    let missing = Uuid::now_v7();
    let mut behind = Vec::new();
    for i in 0..3 {
        behind.push((tenant.owner_token.clone(), channel, format!("owner {i}")));
        behind.push((member.clone(), channel, format!("member {i}")));
    }
    behind.push((tenant.owner_token.clone(), missing, "to no channel".into()));
    behind.push((gone_token.clone(), channel, "by a disabled user".into()));
    let behind_the_held_one = async {
        until_held(&db).await;
        let posts = join_all(
            behind
                .iter()
                .map(|(token, channel, body)| post(&app, token, *channel, body)),
        );
        // All eight join the lane; none can be written before the lock is
        // released (the held post holds the lane's one writer slot).
        let release = async {
            let region = [("region", "us-east1")];
            let mut queued = 0.0;
            for _ in 0..400 {
                queued = value(&scrape(&app).await, "meridian_post_lane_waiting", &region);
                if queued == 8.0 {
                    break;
                }
                actix_web::rt::time::sleep(Duration::from_millis(25)).await;
            }
            assert_eq!(queued, 8.0, "posts waiting in the lane");
            assert_eq!(written(&app, &tenant).await.0, 0, "nothing written yet");
            db.execute("SELECT pg_advisory_unlock(4242)", &[])
                .await
                .unwrap();
        };
        futures_util::join!(posts, release).0
    };
    let (held, replies) = futures_util::join!(
        post(&app, &tenant.owner_token, channel, "held"),
        behind_the_held_one
    );

    assert_eq!(held.status, 201, "{}", held.body);
    for reply in &replies[..6] {
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    assert_problem(&replies[6], 404, "not_found");
    assert_eq!(replies[7].status, 401, "{}", replies[7].body);
    let samples = scrape(&app).await;
    let region = [("region", "us-east1")];
    assert_eq!(
        value(&samples, "meridian_post_batch_size_count", &region),
        1.0,
        "the held post went first on its own (its lane was idle), then one batch \
         of the eight behind it"
    );
    assert_eq!(
        value(&samples, "meridian_post_batch_size_sum", &region),
        8.0
    );
    assert_eq!(
        value(&samples, "meridian_post_lane_waiting", &region),
        0.0,
        "nothing left waiting"
    );
    assert_eq!(
        value(&samples, "meridian_post_batch_handed_back_total", &region),
        2.0,
        "the post to no channel and the disabled user's"
    );
    assert_eq!(
        value(&samples, "meridian_post_lane_left_total", &region),
        0.0
    );
    assert_eq!(written(&app, &tenant).await, (7, 7, true));
}

/// Waits until the post whose body is `held` is in its INSERT, waiting for
/// advisory lock 4242 (`HOLD_AT_INSERT`).
async fn until_held(db: &tokio_postgres::Client) {
    for _ in 0..400 {
        let row = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 1 {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the held post never reached its INSERT");
}

/// A post stuck in the database holds its lane, but the posts queued behind it
/// wait at most `database.post_lane_wait_ms`: then they leave the lane and are
/// written on their own path while the stuck one still waits.
#[actix_web::test]
async fn posts_behind_a_stuck_post_leave_the_lane_after_the_wait_bound() {
    let mut settings = test_settings(&fresh_database().await);
    settings.database.post_writers_per_tenant = 1;
    settings.database.post_lane_wait = Duration::from_millis(200);
    let app = spawn_app_with(settings).await;
    let tenant = app.provision("lane-wait").await;
    let channel = app.create_channel(&tenant, "general").await;
    let db = app.superuser_client().await;
    db.batch_execute(HOLD_AT_INSERT).await.unwrap();
    db.execute("SELECT pg_advisory_lock(4242)", &[])
        .await
        .unwrap();

    let behind_the_stuck_one = async {
        until_held(&db).await;
        let bodies: Vec<String> = (0..3).map(|i| format!("behind {i}")).collect();
        let replies = join_all(
            bodies
                .iter()
                .map(|body| post(&app, &tenant.owner_token, channel, body)),
        )
        .await;
        // Answered while the lock is still held: none of them waited for it.
        let written_meanwhile = written(&app, &tenant).await;
        db.execute("SELECT pg_advisory_unlock(4242)", &[])
            .await
            .unwrap();
        (replies, written_meanwhile)
    };
    let (stuck, (replies, written_meanwhile)) = futures_util::join!(
        post(&app, &tenant.owner_token, channel, "held"),
        behind_the_stuck_one
    );

    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    assert_eq!(
        written_meanwhile,
        (3, 3, true),
        "the three, before the stuck one"
    );
    assert_eq!(stuck.status, 201, "{}", stuck.body);
    let samples = scrape(&app).await;
    let region = [("region", "us-east1")];
    assert_eq!(
        value(&samples, "meridian_post_lane_left_total", &region),
        3.0
    );
    assert_eq!(
        value(&samples, "meridian_post_batch_size_count", &region),
        0.0,
        "no batch: the stuck post held the lane's one writer slot throughout"
    );
    assert_eq!(value(&samples, "meridian_post_lane_waiting", &region), 0.0);
    assert_eq!(written(&app, &tenant).await, (4, 4, true));
}

/// Two nodes on one database, two tenants, many writers at once: every post is
/// answered 201 and written once with its event, in its own tenant, each
/// tenant's quota accounted to the byte.
#[actix_web::test]
async fn concurrent_posts_across_nodes_and_tenants_are_each_written_once_in_their_tenant() {
    let db_name = fresh_database().await;
    let first = spawn_app_with(test_settings(&db_name)).await;
    let second = spawn_app_with(test_settings(&db_name)).await;
    let a = first.provision("lanes-a").await;
    let b = first.provision("lanes-b").await;
    let tenants = [(&a, "lanes-a"), (&b, "lanes-b")];
    let mut posts = Vec::new();
    for (tenant, slug) in tenants {
        let channels = [
            first.create_channel(tenant, "one").await,
            first.create_channel(tenant, "two").await,
        ];
        let (_, member) = first.add_user(tenant, "member").await;
        for i in 0..24 {
            let token = if i % 2 == 0 {
                &tenant.owner_token
            } else {
                &member
            };
            let node = if i % 3 == 0 { &first } else { &second };
            posts.push((node, token.clone(), channels[i % 2], format!("{slug} {i}")));
        }
    }

    let replies = join_all(
        posts
            .iter()
            .map(|(node, token, channel, body)| post(node, token, *channel, body)),
    )
    .await;

    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    for (tenant, slug) in tenants {
        assert_eq!(written(&first, tenant).await, (24, 24, true), "{slug}");
        let foreign: i64 = first
            .superuser_client()
            .await
            .query_one(
                "SELECT count(*) FROM messages WHERE tenant_id = $1 AND body NOT LIKE $2",
                &[&tenant.id, &format!("{slug} %")],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(foreign, 0, "another tenant's post in {slug}");
    }
}
