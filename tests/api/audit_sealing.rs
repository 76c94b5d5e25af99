//! Regression of the security review of 2026-11-30: the sealing functions
//! (`audit_seal_batch`, `audit_seal`, V30) recorded whatever seqs and hashes
//! their caller gave. Since V35 the database recomputes every link from the
//! stored row and refuses one that does not chain, whoever calls; these tests
//! call the functions as the service role (`meridian_app`), as a node would.

use meridian::audit::{chain, verify::canonical_of};
use serde_json::{Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::helpers::{TestApp, fresh_database, spawn_app_with, test_settings};

const UNSEALED: &str = "SELECT id, created_at, actor, action, tenant_id, target_kind, target_id, \
    details, sealed FROM audit_events WHERE tenant_id = $1 AND seq IS NULL ORDER BY created_at, id";

/// A trail's head and its unchained events, with the honest links after it.
struct Trail {
    head: (i64, Vec<u8>),
    ids: Vec<Uuid>,
    canonical: Vec<Vec<u8>>,
}

impl Trail {
    async fn read(su: &Client, tenant: Uuid) -> Self {
        let head = su
            .query_opt(
                "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .unwrap()
            .map_or((0, chain::GENESIS.to_vec()), |r| (r.get(0), r.get(1)));
        let rows = su.query(UNSEALED, &[&tenant]).await.unwrap();
        Trail {
            head,
            ids: rows.iter().map(|r| r.get("id")).collect(),
            canonical: rows.iter().map(canonical_of).collect(),
        }
    }

    /// The honest hashes of the unchained events, in order.
    fn hashes(&self) -> Vec<Vec<u8>> {
        let mut prev = self.head.1.clone();
        self.canonical
            .iter()
            .map(|c| {
                prev = chain::link(&prev, c).to_vec();
                prev.clone()
            })
            .collect()
    }
}

/// One call's arguments: events (tenant, id, seq, hash) and head moves
/// (tenant, prev, top, top hash).
struct Batch {
    events: Vec<(Uuid, Uuid, i64, Vec<u8>)>,
    heads: Vec<(Uuid, i64, i64, Vec<u8>)>,
}

/// Calls `audit_seal_batch` as the service role in a transaction, then commits
/// (`keep`) or rolls back; "applied chained/moved" or "refused: …".
async fn seal(client: &Client, batch: &Batch, keep: bool) -> String {
    let tenants: Vec<Uuid> = batch.events.iter().map(|e| e.0).collect();
    let ids: Vec<Uuid> = batch.events.iter().map(|e| e.1).collect();
    let seqs: Vec<i64> = batch.events.iter().map(|e| e.2).collect();
    let hashes: Vec<Vec<u8>> = batch.events.iter().map(|e| e.3.clone()).collect();
    let heads: Vec<Uuid> = batch.heads.iter().map(|h| h.0).collect();
    let regions: Vec<String> = batch.heads.iter().map(|_| "us-east1".to_owned()).collect();
    let prevs: Vec<i64> = batch.heads.iter().map(|h| h.1).collect();
    let tops: Vec<i64> = batch.heads.iter().map(|h| h.2).collect();
    let top_hashes: Vec<Vec<u8>> = batch.heads.iter().map(|h| h.3.clone()).collect();
    client.batch_execute("BEGIN").await.unwrap();
    let result = client
        .query_one(
            "SELECT chained, moved FROM audit_seal_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &tenants,
                &ids,
                &seqs,
                &hashes,
                &heads,
                &regions,
                &prevs,
                &tops,
                &top_hashes,
            ],
        )
        .await;
    let end = if keep && result.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    client.batch_execute(end).await.unwrap();
    match result {
        Ok(row) => format!("applied {}/{}", row.get::<_, i64>(0), row.get::<_, i64>(1)),
        Err(err) => format!("refused: {}", err.as_db_error().map_or("", |e| e.message())),
    }
}

async fn report(app: &TestApp, token: &str) -> Value {
    let reply = app.get("/v1/audit/verify", token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[actix_web::test]
async fn the_sealing_functions_refuse_links_that_do_not_chain() {
    let mut settings = test_settings(&fresh_database().await);
    // The node seals only when this test says so.
    settings.audit.seal_interval = std::time::Duration::from_secs(60);
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings.clone()).await;
    let (a, b) = (app.provision("seal-a").await, app.provision("seal-b").await);
    let db = meridian::db::Database::connect(&settings.database).unwrap();
    let region = meridian::ids::RegionId::parse("us-east1").unwrap();
    // Everything so far chained, the node's own first pass (at its start)
    // included: a pass that finds nothing left.
    for _ in 0..20 {
        match meridian::audit::seal::seal_region(&db, &region, 1000).await {
            Ok(pass) if pass.events == 0 => break,
            _ => actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    app.create_channel(&a, "one").await;
    app.create_channel(&a, "two").await;
    app.create_channel(&b, "three").await;
    let su = app.superuser_client().await;
    let service = app.app_role_client().await;
    let (ta, tb) = (Trail::read(&su, a.id).await, Trail::read(&su, b.id).await);
    assert_eq!((ta.ids.len(), tb.ids.len()), (2, 1));
    let (ha, hb) = (ta.hashes(), tb.hashes());
    let (sa, sb) = (ta.head.0, tb.head.0);
    let forged = vec![7u8; 32];
    let honest = Batch {
        events: vec![
            (a.id, ta.ids[0], sa + 1, ha[0].clone()),
            (a.id, ta.ids[1], sa + 2, ha[1].clone()),
        ],
        heads: vec![(a.id, sa, sa + 2, ha[1].clone())],
    };
    // B's event chained into A's run, B's head left where it is.
    let b_after_a = chain::link(&ha[1], &tb.canonical[0]).to_vec();
    let cases = [
        (
            "a forged hash",
            Batch {
                events: vec![
                    (a.id, ta.ids[0], sa + 1, ha[0].clone()),
                    (a.id, ta.ids[1], sa + 2, forged.clone()),
                ],
                heads: vec![(a.id, sa, sa + 2, forged.clone())],
            },
        ),
        (
            "a skipped seq",
            Batch {
                events: vec![
                    (a.id, ta.ids[0], sa + 1, ha[0].clone()),
                    (a.id, ta.ids[1], sa + 3, ha[1].clone()),
                ],
                heads: vec![(a.id, sa, sa + 3, ha[1].clone())],
            },
        ),
        (
            "another tenant's event in a trail's run",
            Batch {
                events: vec![
                    (a.id, ta.ids[0], sa + 1, ha[0].clone()),
                    (a.id, ta.ids[1], sa + 2, ha[1].clone()),
                    (b.id, tb.ids[0], sa + 3, b_after_a.clone()),
                ],
                heads: vec![(a.id, sa, sa + 3, b_after_a.clone())],
            },
        ),
        (
            "another tenant's event under this tenant's name",
            Batch {
                events: vec![
                    (a.id, ta.ids[0], sa + 1, ha[0].clone()),
                    (a.id, ta.ids[1], sa + 2, ha[1].clone()),
                    (a.id, tb.ids[0], sa + 3, b_after_a.clone()),
                ],
                heads: vec![(a.id, sa, sa + 3, b_after_a.clone())],
            },
        ),
    ];
    let mut outcomes = Vec::new();
    for (what, batch) in &cases {
        let outcome = seal(&service, batch, false).await;
        outcomes.push(format!(
            "{what}: {}",
            outcome.split(':').next().unwrap_or("")
        ));
        eprintln!("{what}: {outcome}");
    }
    // The service role cannot link an event by inserting it linked either.
    service
        .batch_execute(&format!("SET app.tenant_id = '{}'", a.id))
        .await
        .unwrap();
    let inserted = service
        .execute(
            "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, details, seq, \
             hash) VALUES ($1, $2, 'us-east1', 'x', 'forged', '{}', $3, $4)",
            &[&a.id, &Uuid::now_v7(), &(sa + 1), &forged],
        )
        .await;
    outcomes.push(format!(
        "an insert with seq and hash: {}",
        if inserted.is_ok() {
            "applied"
        } else {
            "refused"
        }
    ));
    assert_eq!(
        outcomes,
        [
            "a forged hash: refused",
            "a skipped seq: refused",
            "another tenant's event in a trail's run: refused",
            "another tenant's event under this tenant's name: refused",
            "an insert with seq and hash: refused",
        ]
    );

    // The honest batches are recorded, and both trails verify.
    assert_eq!(seal(&service, &honest, true).await, "applied 2/1");
    let b_only = Batch {
        events: vec![(b.id, tb.ids[0], sb + 1, hb[0].clone())],
        heads: vec![(b.id, sb, sb + 1, hb[0].clone())],
    };
    assert_eq!(seal(&service, &b_only, true).await, "applied 1/1");
    for t in [&a, &b] {
        let r = report(&app, &t.owner_token).await;
        assert_eq!(
            (r["intact"].as_bool(), r["pending"].as_i64()),
            (Some(true), Some(0)),
            "{r}"
        );
    }
}

/// The database's encoding of the details is the node's, for every kind of
/// JSON value the node can meet: the node's sealer chains such events and the
/// verifier finds every link. A number SQL cannot round as serde_json does
/// (1e20 here) keeps the caller's hash: a forged one is accepted by the
/// function and found by `GET /v1/audit/verify`.
#[actix_web::test]
async fn the_databases_encoding_of_details_is_the_nodes() {
    let mut settings = test_settings(&fresh_database().await);
    settings.audit.seal_interval = std::time::Duration::from_secs(60);
    settings.jobs.enabled = false;
    let app = spawn_app_with(settings.clone()).await;
    let t = app.provision("seal-json").await;
    let su = app.superuser_client().await;
    let details = [
        json!({"z": 1.5, "é": "a\"b\\\u{1}\n\t\u{1f}\u{7f} /", "Z": [0.000001, 1e-7, 2.5e-5, 100.0],
               "aa": [-3, 18446744073709551615u64, -9223372036854775808i64, 123456.789, 0.1]}),
        json!({"n": null, "t": true, "f": false, "e": {}, "a": [], "nested": {"b": [{"y": 1, "x": "日本"}]}}),
        json!({"tiny": 5e-324, "small": 1.0e-5, "big": 1.2345e15, "int": 1234567890123456u64, "neg": -0.25}),
    ];
    for d in &details {
        su.execute(
            "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, target_kind, \
             details) VALUES ($1, $2, 'us-east1', 'tester', 'json_probe', 'probe', $3)",
            &[&t.id, &Uuid::now_v7(), d],
        )
        .await
        .unwrap();
    }
    let db = meridian::db::Database::connect(&settings.database).unwrap();
    let region = meridian::ids::RegionId::parse("us-east1").unwrap();
    let pass = meridian::audit::seal::seal_region(&db, &region, 1000)
        .await
        .unwrap();
    assert!(pass.events >= 3, "{pass:?}");
    let r = report(&app, &t.owner_token).await;
    assert_eq!(
        (r["intact"].as_bool(), r["pending"].as_i64()),
        (Some(true), Some(0)),
        "{r}"
    );

    // 1e20: beyond what SQL reproduces, so the caller's hash stands; the
    // verifier recomputes it and finds the forgery.
    su.execute(
        "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, details) \
         VALUES ($1, $2, 'us-east1', 'tester', 'json_probe', '{\"big\": 1e20}')",
        &[&t.id, &Uuid::now_v7()],
    )
    .await
    .unwrap();
    let trail = Trail::read(&su, t.id).await;
    let seq = trail.head.0 + 1;
    let forged = vec![9u8; 32];
    let batch = Batch {
        events: vec![(t.id, trail.ids[0], seq, forged.clone())],
        heads: vec![(t.id, trail.head.0, seq, forged)],
    };
    assert_eq!(
        seal(&app.app_role_client().await, &batch, true).await,
        "applied 1/1"
    );
    let r = report(&app, &t.owner_token).await;
    assert_eq!(r["intact"], false, "{r}");
    assert_eq!(r["broken"]["seq"].as_i64(), Some(seq), "{r}");
}
