//! The tamper-evident trail (issue 16 item 1): every tenant's events and each
//! region's platform events form a hash chain that `GET /v1/audit/verify` walks.
//! Tampering in SQL (as the superuser, who bypasses every grant and policy) is
//! found at the exact first broken seq; concurrent appends leave a gapless chain.

use meridian::audit::chain;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with, test_settings,
};

/// The verification once the sealer has chained every event written so far
/// (it runs every 50 ms in the tests), or after 10 s.
async fn verify(app: &TestApp, token: &str, query: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = app.get(&format!("/v1/audit/verify{query}"), token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.body["pending"] == 0 || std::time::Instant::now() > deadline {
            return reply.body;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A tenant with four events: tenant_provisioned (seq 1), three channels (2–4).
async fn four_events(app: &TestApp, slug: &str) -> Tenant {
    let t = app.provision(slug).await;
    for name in ["one", "two", "three"] {
        app.create_channel(&t, name).await;
    }
    let report = verify(app, &t.owner_token, "").await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["events"], 4, "{report}");
    t
}

/// The stored hash of event `seq`, hex.
async fn stored_hash(db: &tokio_postgres::Client, tenant: Uuid, seq: i64) -> String {
    let row = db
        .query_one(
            "SELECT hash FROM audit_events WHERE tenant_id = $1 AND seq = $2",
            &[&tenant, &seq],
        )
        .await
        .unwrap();
    chain::hex(&row.get::<_, Vec<u8>>(0))
}

fn broken_at(report: &Value) -> i64 {
    assert_eq!(report["intact"], false, "{report}");
    report["broken"]["seq"].as_i64().unwrap()
}

#[actix_web::test]
async fn an_untouched_trail_verifies_and_names_its_head() {
    let app = spawn_app().await;
    let t = four_events(&app, "chained").await;
    let report = verify(&app, &t.owner_token, "").await;
    let trail = app.get("/v1/audit?limit=10", &t.owner_token).await.body;
    let newest = &trail["items"][0];
    assert_eq!(newest["seq"], 4);
    assert_eq!(report["head"], newest["hash"], "{report}");
    assert_eq!(
        report["summary"],
        format!(
            "intact, 4 events, head {}",
            newest["hash"].as_str().unwrap()
        )
    );
    assert_eq!(report["trail"], format!("tenant:{}", t.id));
    // A platform admin verifies any tenant's trail and a region's platform trail.
    let admin = app.platform_token();
    let by_admin = verify(&app, &admin, &format!("?tenant={}", t.id)).await;
    assert_eq!(by_admin["head"], report["head"]);
    let platform = verify(&app, &admin, "?region=us-east1").await;
    assert_eq!(platform["intact"], true, "{platform}");
    assert!(platform["events"].as_i64().unwrap() >= 1, "{platform}");
    assert_problem(
        &app.get("/v1/audit/verify", &admin).await,
        400,
        "validation_failed",
    );
    // A tenant names only its own trail.
    assert_problem(
        &app.get("/v1/audit/verify?region=us-east1", &t.owner_token)
            .await,
        403,
        "forbidden",
    );
}

#[actix_web::test]
async fn an_edited_event_is_found_at_its_seq() {
    let app = spawn_app().await;
    let t = four_events(&app, "edited").await;
    let db = app.superuser_client().await;
    db.execute(
        "UPDATE audit_events SET details = '{\"name\": \"forged\"}' WHERE tenant_id = $1 AND seq = 2",
        &[&t.id],
    )
    .await
    .unwrap();
    let report = verify(&app, &t.owner_token, "").await;
    assert_eq!(broken_at(&report), 2, "{report}");
    assert_eq!(report["broken"]["found"], stored_hash(&db, t.id, 2).await);
    assert_ne!(report["broken"]["expected"], report["broken"]["found"]);
}

#[actix_web::test]
async fn a_deleted_event_is_found_at_its_seq() {
    let app = spawn_app().await;
    let t = four_events(&app, "deleted").await;
    let db = app.superuser_client().await;
    db.execute(
        "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 3",
        &[&t.id],
    )
    .await
    .unwrap();
    let report = verify(&app, &t.owner_token, "").await;
    assert_eq!(broken_at(&report), 3, "{report}");
    assert_eq!(report["broken"]["expected"], "seq 3");
    assert_eq!(report["broken"]["found"], "seq 4");

    // The last event deleted (and nothing else): the head row still says seq 4.
    let app = spawn_app().await;
    let t = four_events(&app, "truncated").await;
    let db = app.superuser_client().await;
    db.execute(
        "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 4",
        &[&t.id],
    )
    .await
    .unwrap();
    assert_eq!(broken_at(&verify(&app, &t.owner_token, "").await), 4);
}

/// A careful forger: the inserted event carries a correct link from its
/// predecessor, and the later events are renumbered to make room. The chain
/// breaks at the event after it, whose hash was linked to the old predecessor.
#[actix_web::test]
async fn an_inserted_event_is_found_where_the_chain_no_longer_links() {
    let app = spawn_app().await;
    let t = four_events(&app, "inserted").await;
    let db = app.superuser_client().await;
    db.batch_execute(&format!(
        "UPDATE audit_events SET seq = -seq WHERE tenant_id = '{0}' AND seq >= 2;
         UPDATE audit_events SET seq = 1 - seq WHERE tenant_id = '{0}' AND seq < 0;",
        t.id
    ))
    .await
    .unwrap();
    let prev = db
        .query_one(
            "SELECT hash FROM audit_events WHERE tenant_id = $1 AND seq = 1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get::<_, Vec<u8>>(0);
    let (id, at, details) = (
        Uuid::new_v4(),
        chain::to_micros(chrono::Utc::now()),
        json!({}),
    );
    let canonical = chain::canonical(&chain::Content {
        id,
        created_at: at,
        actor: "nobody",
        action: "channel_deleted",
        tenant: Some(t.id),
        target_kind: None,
        target_id: None,
        details: &details,
        sealed: None,
    });
    let hash = chain::link(&prev, &canonical).to_vec();
    db.execute(
        "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, details, created_at, \
            seq, hash) VALUES ($1, $2, 'us-east1', 'nobody', 'channel_deleted', $3, $4, 2, $5)",
        &[&t.id, &id, &details, &at, &hash],
    )
    .await
    .unwrap();
    let report = verify(&app, &t.owner_token, "").await;
    assert_eq!(broken_at(&report), 3, "{report}");
    assert_eq!(
        report["events"], 2,
        "seq 1 and the forged seq 2 link: {report}"
    );
}

#[actix_web::test]
async fn reordered_events_are_found_at_the_first_moved_seq() {
    let app = spawn_app().await;
    let t = four_events(&app, "reordered").await;
    let db = app.superuser_client().await;
    db.batch_execute(&format!(
        "UPDATE audit_events SET seq = 0 WHERE tenant_id = '{0}' AND seq = 2;
         UPDATE audit_events SET seq = 2 WHERE tenant_id = '{0}' AND seq = 3;
         UPDATE audit_events SET seq = 3 WHERE tenant_id = '{0}' AND seq = 0;",
        t.id
    ))
    .await
    .unwrap();
    assert_eq!(broken_at(&verify(&app, &t.owner_token, "").await), 2);
}

/// 16 tasks × 20 audited writes at once on one tenant: every append waits on
/// the head row (or retries after a serialization failure) and the chain comes
/// out gapless and verifying.
#[actix_web::test]
async fn concurrent_appends_leave_a_gapless_verifying_chain() {
    let mut settings = test_settings(&fresh_database().await);
    // Each append to one trail serialises on its head: under PostgreSQL's
    // SERIALIZABLE the losers of a race abort (40001) and run again.
    settings.database.max_retries = 100;
    let app = spawn_app_with(settings).await;
    let t = app.provision("busy").await;
    let app = std::rc::Rc::new(app);
    let tasks = (0..16).map(|task| {
        let (app, token) = (app.clone(), t.owner_token.clone());
        async move {
            for n in 0..20 {
                let body = json!({ "name": format!("c-{task}-{n}") });
                let reply = app.post("/v1/channels", &token, body).await;
                assert_eq!(reply.status, 201, "{}", reply.body);
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    let report = verify(&app, &t.owner_token, "").await;
    assert_eq!(report["intact"], true, "{report}");
    // tenant_provisioned and 320 channels.
    assert_eq!(report["events"], 321, "{report}");
    let db = app.superuser_client().await;
    let row = db
        .query_one(
            "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM audit_events \
             WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    let (n, lo, hi, distinct): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((n, lo, hi, distinct), (321, 1, 321, 321));
}

/// A tenant's events are written unchained and linked by the sealer after their
/// commit: until then verification counts them as pending (not broken); two
/// sealers racing on one trail leave it gapless and verifying; and the sealing
/// function never re-links an event that has its seq (the service role has no
/// other way to set one).
#[actix_web::test]
async fn the_sealer_chains_events_after_commit_and_racing_sealers_keep_the_chain_gapless() {
    let mut settings = test_settings(&fresh_database().await);
    // No pass of the node's own sealer after its first (empty) one: this test
    // runs the passes itself.
    settings.audit.seal_interval = std::time::Duration::from_secs(60);
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings.clone()).await;
    let t = app.provision("sealed-later").await;
    for n in 0..120 {
        app.create_channel(&t, &format!("c{n}")).await;
    }
    let report = app.get("/v1/audit/verify", &t.owner_token).await.body;
    assert_eq!(report["intact"], true, "{report}");
    // The first events may have been chained by the node's first pass.
    let (walked, pending) = (
        report["events"].as_i64().unwrap(),
        report["pending"].as_i64().unwrap(),
    );
    assert!(pending >= 100 && walked + pending == 121, "{report}");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .ends_with(&format!(", {pending} pending")),
        "{report}"
    );

    // Two sealers at once, in batches of 7: one waits on the head and retries
    // or finds its batch taken; every event is linked exactly once, in order.
    let db = meridian::db::Database::connect(&settings.database).unwrap();
    let region = meridian::ids::RegionId::parse("us-east1").unwrap();
    let (one, two) = futures_util::future::join(
        meridian::audit::seal::seal_region(&db, &region, 7),
        meridian::audit::seal::seal_region(&db, &region, 7),
    )
    .await;
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!((one.events + two.events) as i64, pending, "{one:?} {two:?}");
    let report = verify(&app, &t.owner_token, "").await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(
        (report["events"].as_i64(), report["pending"].as_i64()),
        (Some(121), Some(0))
    );
    let su = app.superuser_client().await;
    let row = su
        .query_one(
            "SELECT count(DISTINCT seq), min(seq), max(seq) FROM audit_events WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (121, 1, 121)
    );

    // The service role cannot write a seq itself, and `audit_seal` leaves a
    // chained event alone (and moves no head that is not where it says).
    let app_role = app.app_role_client().await;
    app_role
        .batch_execute(&format!("SET app.tenant_id = '{}'", t.id))
        .await
        .unwrap();
    let refused = app_role
        .execute(
            "UPDATE audit_events SET seq = 1000 WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let first: Uuid = su
        .query_one(
            "SELECT id FROM audit_events WHERE tenant_id = $1 AND seq = 1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    let forged = vec![vec![7u8; 32]];
    let relinked: i64 = app_role
        .query_one(
            "SELECT audit_seal($1, $2, $3, $4)",
            &[&vec![first], &vec![122i64], &forged, &121i64],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(relinked, 0);
    let report = verify(&app, &t.owner_token, "").await;
    assert_eq!(report["intact"], true, "nothing moved: {report}");
    assert_eq!(report["events"], 121, "{report}");
}
