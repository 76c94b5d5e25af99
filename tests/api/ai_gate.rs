//! The external summary engine end to end, against the stub of `ai_engine`: the
//! tenant's opt-in (PATCH /v1/tenants/{id}), the exact ledger commit of the
//! engine's `usage.total_tokens`, an opted-out tenant never reaching the engine
//! (also when it opts out after asking), the residency gate and its opt-in, and
//! a dead worker's AI reservation released when its lease expires.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::ai_engine::{COMPLETION_TOKENS, PROMPT_TOKENS, Stub, engine_settings, stub};
use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app_with, test_settings,
};

const USED: i64 = (PROMPT_TOKENS + COMPLETION_TOKENS) as i64;

/// A node on `db` whose external engine (the stub at `base`) runs in `region`.
async fn node(db: &str, base: &str, region: &str, jobs: bool) -> TestApp {
    let mut settings = test_settings(db);
    settings.summaries.openai = engine_settings(base, region);
    settings.jobs.enabled = jobs;
    settings.jobs.poll_interval = Duration::from_millis(50);
    settings.jobs.lease = Duration::from_secs(1);
    spawn_app_with(settings).await
}

async fn tenant_with_thread(app: &TestApp, slug: &str) -> (Tenant, Uuid) {
    let t = app.provision(slug).await;
    let channel = app.create_channel(&t, "ops").await;
    for line in [
        "The billing migration is on Thursday night.",
        "Who writes the rollback plan? I will.",
    ] {
        app.post_message(&t, channel, line).await;
    }
    (t, channel)
}

/// PATCH /v1/tenants/{id}/ai-engine.
async fn choose(app: &TestApp, t: &Tenant, token: &str, body: Value) -> Value {
    let path = format!("/v1/tenants/{}/ai-engine", t.id);
    let reply = app.patch(&path, token, body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The platform admin sets the tenant's residency.
async fn pin(app: &TestApp, t: &Tenant, regions: &[&str]) {
    let body = json!({"residency": {"regions": regions}});
    let path = format!("/v1/tenants/{}", t.id);
    let reply = app.patch(&path, &app.platform_token(), body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Asks for a summary; its id, once it has finished.
async fn summarise(app: &TestApp, t: &Tenant, channel: Uuid) -> Value {
    let reply = app
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &t.owner_token,
            json!({"max_sentences": 2}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    finished(app, t, channel, reply.body["id"].as_str().unwrap()).await
}

async fn finished(app: &TestApp, t: &Tenant, channel: Uuid, id: &str) -> Value {
    let path = format!("/v1/channels/{channel}/summaries/{id}");
    for _ in 0..300 {
        let s = app.get(&path, &t.owner_token).await.body;
        if s["state"] == "succeeded" || s["state"] == "failed" {
            return s;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("summary {id} never finished");
}

async fn ledger(app: &TestApp, t: &Tenant) -> (i64, i64) {
    let row = app
        .superuser_client()
        .await
        .query_one(
            "SELECT used, reserved FROM ai_usage WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn requests(stub: &Stub) -> usize {
    stub.lock().unwrap().got.len()
}

#[actix_web::test]
async fn an_external_tenant_is_charged_exactly_the_engines_usage() {
    let (base, stub) = stub();
    let app = node(&fresh_database().await, &base, "us-east1", true).await;
    let (t, channel) = tenant_with_thread(&app, "external").await;
    let before = app
        .get(&format!("/v1/tenants/{}/ai-engine", t.id), &t.owner_token)
        .await
        .body;
    assert_eq!(before["ai_engine"], "extractive", "{before}");
    assert_eq!(
        (
            before["external_configured"].as_bool(),
            before["external_region"].as_str()
        ),
        (Some(true), Some("us-east1"))
    );
    let tenant = choose(&app, &t, &t.owner_token, json!({"ai_engine": "external"})).await;
    assert_eq!(tenant["ai_engine"], "external");
    assert_eq!(tenant["ai_external_outside_residency"], false);
    // Audited in the tenant's trail.
    let audit = app
        .get("/v1/audit?action=tenant_ai_engine_changed", &t.owner_token)
        .await;
    assert!(
        audit.body.to_string().contains("tenant_ai_engine_changed"),
        "{}",
        audit.body
    );
    let s = summarise(&app, &t, channel).await;
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(s["engine"], "external");
    assert_eq!(s["tokens_used"], USED);
    assert!(s["summary"].as_str().unwrap().contains("billing migration"));
    assert_eq!(requests(&stub), 1);
    assert_eq!(ledger(&app, &t).await, (USED, 0));
    let db = app.superuser_client().await;
    let row = db
        .query_one(
            "SELECT status, used_tokens, tokens, job_id IS NOT NULL FROM ai_reservations WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "committed");
    assert_eq!(row.get::<_, Option<i64>>(1), Some(USED));
    assert!(
        row.get::<_, i64>(2) > USED,
        "reserved the estimate, above the usage"
    );
    assert!(row.get::<_, bool>(3));
}

#[actix_web::test]
async fn an_opted_out_tenant_never_reaches_the_engine() {
    let (base, stub) = stub();
    let db = fresh_database().await;
    // This node only enqueues (no workers), so the tenant can opt out in between.
    let front = node(&db, &base, "us-east1", false).await;
    let (t, channel) = tenant_with_thread(&front, "optout").await;
    // The default is the extractive engine: nothing leaves the node.
    let member = front.add_user(&t, "member").await.1;
    let refused = front
        .patch(
            &format!("/v1/tenants/{}/ai-engine", t.id),
            &member,
            json!({"ai_engine": "external"}),
        )
        .await;
    assert_problem(&refused, 403, "forbidden");
    choose(&front, &t, &t.owner_token, json!({"ai_engine": "external"})).await;
    let asked = front
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(asked.status, 202, "{}", asked.body);
    choose(
        &front,
        &t,
        &t.owner_token,
        json!({"ai_engine": "extractive"}),
    )
    .await;
    let worker = node(&db, &base, "us-east1", true).await;
    let s = finished(&worker, &t, channel, asked.body["id"].as_str().unwrap()).await;
    assert_eq!(s["state"], "failed", "{s}");
    assert!(s["error"].as_str().unwrap().contains("no longer"), "{s}");
    // Asked again, the extractive engine makes it.
    let again = summarise(&worker, &t, channel).await;
    assert_eq!(
        (again["state"].as_str(), again["engine"].as_str()),
        (Some("succeeded"), Some("extractive"))
    );
    assert_eq!(requests(&stub), 0, "the engine was reached");
    let (used, reserved) = ledger(&worker, &t).await;
    assert_eq!(
        (used, reserved),
        (again["tokens_used"].as_i64().unwrap(), 0)
    );
}

#[actix_web::test]
async fn outside_the_residency_the_request_is_refused_unless_the_tenant_opted_in() {
    let (base, stub) = stub();
    let app = node(&fresh_database().await, &base, "europe-west1", true).await;
    let (t, channel) = tenant_with_thread(&app, "pinned").await;
    pin(&app, &t, &["us-east1"]).await;
    choose(&app, &t, &t.owner_token, json!({"ai_engine": "external"})).await;
    let path = format!("/v1/channels/{channel}/summaries");
    let refused = app.post(&path, &t.owner_token, json!({})).await;
    assert_problem(&refused, 409, "ai_engine_outside_residency");
    let db = app.superuser_client().await;
    let count = |sql: &'static str| {
        let db = &db;
        let id = t.id;
        async move { db.query_one(sql, &[&id]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM channel_summaries WHERE tenant_id = $1").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = 'summary.create'").await,
        0
    );
    // The compliance officer opts in: now it runs, on the engine.
    let compliance = app.add_user(&t, "compliance").await.1;
    let tenant = choose(
        &app,
        &t,
        &compliance,
        json!({"ai_external_outside_residency": true}),
    )
    .await;
    assert_eq!(tenant["ai_external_outside_residency"], true);
    let s = summarise(&app, &t, channel).await;
    assert_eq!(
        (s["state"].as_str(), s["engine"].as_str()),
        (Some("succeeded"), Some("external")),
        "{s}"
    );
    assert_eq!(requests(&stub), 1);
    // A residency that allows the engine's region needs no opt-in.
    choose(
        &app,
        &t,
        &compliance,
        json!({"ai_external_outside_residency": false}),
    )
    .await;
    assert_problem(
        &app.post(&path, &t.owner_token, json!({})).await,
        409,
        "ai_engine_outside_residency",
    );
    pin(&app, &t, &["us-east1", "europe-west1"]).await;
    assert_eq!(summarise(&app, &t, channel).await["state"], "succeeded");
    assert_eq!(requests(&stub), 2);
}

/// `summaries.openai.jurisdiction` instead of `region`: an engine that runs
/// somewhere in a jurisdiction is allowed by a residency of that jurisdiction,
/// refused by one of another jurisdiction and by one that lists regions (it
/// cannot be shown to run in one of them), and the tenant's settings show it.
#[actix_web::test]
async fn an_engine_located_by_jurisdiction_passes_only_that_jurisdictions_residency() {
    let (base, stub) = stub();
    let db_name = fresh_database().await;
    let in_jurisdiction = |j: meridian::topology::Jurisdiction| {
        let mut settings = test_settings(&db_name);
        settings.summaries.openai = engine_settings(&base, "");
        settings.summaries.openai.jurisdiction = Some(j);
        settings.jobs.poll_interval = Duration::from_millis(50);
        settings
    };
    let us = spawn_app_with(in_jurisdiction(meridian::topology::Jurisdiction::Us)).await;
    let (t, channel) = tenant_with_thread(&us, "us-only").await;
    let reply = us
        .patch(
            &format!("/v1/tenants/{}", t.id),
            &us.platform_token(),
            json!({"residency": {"jurisdiction": "us"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let shown = choose(&us, &t, &t.owner_token, json!({"ai_engine": "external"})).await;
    assert_eq!(shown["external_jurisdiction"], "us", "{shown}");
    assert_eq!(shown["external_region"], Value::Null, "{shown}");
    let s = summarise(&us, &t, channel).await;
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(requests(&stub), 1);

    // A residency listing regions: the engine's region is unknown, so refused.
    pin(&us, &t, &["us-east1"]).await;
    let path = format!("/v1/channels/{channel}/summaries");
    assert_problem(
        &us.post(&path, &t.owner_token, json!({})).await,
        409,
        "ai_engine_outside_residency",
    );
    // An engine in another jurisdiction, for a tenant of the US jurisdiction.
    let reply = us
        .patch(
            &format!("/v1/tenants/{}", t.id),
            &us.platform_token(),
            json!({"residency": {"jurisdiction": "us"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let eu = spawn_app_with(in_jurisdiction(meridian::topology::Jurisdiction::Eu)).await;
    let refused = eu.post(&path, &t.owner_token, json!({})).await;
    assert_problem(&refused, 409, "ai_engine_outside_residency");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("jurisdiction eu"),
        "{}",
        refused.body
    );
    assert_eq!(requests(&stub), 1, "no refused request reached the engine");
}

/// A worker that died mid-job: its job row still `running` under an expired
/// lease, its AI reservation still held. `held_attempts` = attempts used so far.
async fn die_mid_job(db: &tokio_postgres::Client, t: &Tenant, job: Uuid, attempts: i32) {
    db.batch_execute("SET app.tenant_id = ''").await.unwrap();
    db.execute(
        "UPDATE jobs SET state = 'running', attempts = $2, lease_owner = 'dead-node', lease_until = now() - interval '1 second' WHERE id = $1",
        &[&job, &attempts],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO ai_usage (tenant_id, month, home_region, reserved) VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 'us-east1', 1000)",
        &[&t.id],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO ai_reservations (tenant_id, id, home_region, month, tokens, job_id)
         VALUES ($1, $2, 'us-east1', date_trunc('month', now() AT TIME ZONE 'UTC')::date, 1000, $3)",
        &[&t.id, &Uuid::now_v7(), &job],
    )
    .await
    .unwrap();
}

#[actix_web::test]
async fn a_dead_workers_reservation_is_released_when_its_lease_expires() {
    let (base, stub) = stub();
    let db_name = fresh_database().await;
    let front = node(&db_name, &base, "us-east1", false).await;
    let (retried, channel) = tenant_with_thread(&front, "retried").await;
    let (dead, dead_channel) = tenant_with_thread(&front, "dead").await;
    let mut asked = Vec::new();
    for (t, channel) in [(&retried, channel), (&dead, dead_channel)] {
        choose(&front, t, &t.owner_token, json!({"ai_engine": "external"})).await;
        let reply = front
            .post(
                &format!("/v1/channels/{channel}/summaries"),
                &t.owner_token,
                json!({}),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        asked.push((
            reply.body["id"].as_str().unwrap().to_owned(),
            reply.body["job_id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        ));
    }
    let db = front.superuser_client().await;
    // The first died on its first attempt (two left); the second on its last.
    die_mid_job(&db, &retried, asked[0].1, 1).await;
    die_mid_job(&db, &dead, asked[1].1, 3).await;
    let worker = node(&db_name, &base, "us-east1", true).await;
    let s = finished(&worker, &retried, channel, &asked[0].0).await;
    assert_eq!(s["state"], "succeeded", "{s}");
    // Held 1000 by the dead attempt: released, not leaked; the rerun charged exactly.
    assert_eq!(ledger(&worker, &retried).await, (USED, 0));
    let statuses: Vec<String> = db
        .query(
            "SELECT status FROM ai_reservations WHERE tenant_id = $1 ORDER BY created_at",
            &[&retried.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["released", "committed"]);
    // The one that died on its last attempt goes dead, and its tokens come back.
    for _ in 0..100 {
        let state: String = db
            .query_one("SELECT state FROM jobs WHERE id = $1", &[&asked[1].1])
            .await
            .unwrap()
            .get(0);
        if state == "dead" {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ledger(&worker, &dead).await, (0, 0));
    assert_eq!(
        requests(&stub),
        1,
        "only the retried job reached the engine"
    );
}

#[actix_web::test]
async fn a_stopping_node_hands_its_running_jobs_back_at_once() {
    let (base, stub) = stub();
    let db_name = fresh_database().await;
    let mut settings = test_settings(&db_name);
    settings.summaries.openai = engine_settings(&base, "us-east1");
    settings.summaries.openai.timeout = Duration::from_secs(60);
    settings.jobs.poll_interval = Duration::from_millis(50);
    // A lease far longer than the test: only the shutdown can hand the job back.
    settings.jobs.lease = Duration::from_secs(600);
    settings.jobs.shutdown_grace = Duration::from_millis(300);
    settings.http.shutdown_grace = Duration::from_millis(100);
    let first = spawn_app_with(settings).await;
    let (t, channel) = tenant_with_thread(&first, "stopping").await;
    choose(&first, &t, &t.owner_token, json!({"ai_engine": "external"})).await;
    // The engine hangs: the job is mid-run (tokens reserved) when the node stops.
    stub.lock().unwrap().delay = Some(Duration::from_secs(30));
    let asked = first
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(asked.status, 202, "{}", asked.body);
    let job: Uuid = asked.body["job_id"].as_str().unwrap().parse().unwrap();
    for _ in 0..200 {
        if requests(&stub) == 1 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(requests(&stub), 1, "the job never reached the engine");
    assert!(
        ledger(&first, &t).await.1 > 0,
        "tokens are held while it runs"
    );
    first.shutdown.run().await;
    // The node's tasks stop after its listener: the job is handed back within the
    // job grace (300 ms) plus the abandon, long before its 600 s lease.
    let db = first.superuser_client().await;
    let mut row = None;
    for _ in 0..100 {
        let r = db
            .query_one(
                "SELECT state, attempts, lease_owner FROM jobs WHERE id = $1",
                &[&job],
            )
            .await
            .unwrap();
        if r.get::<_, String>(0) != "running" {
            row = Some(r);
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let row = row.expect("the job stayed running after the node stopped");
    assert_eq!(
        row.get::<_, String>(0),
        "queued",
        "handed back, not left running"
    );
    assert_eq!(
        row.get::<_, i32>(1),
        0,
        "the abandoned attempt is not counted"
    );
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert_eq!(
        ledger(&first, &t).await,
        (0, 0),
        "its reservation was released"
    );
    // Another node takes it at once and finishes it.
    stub.lock().unwrap().delay = None;
    let second = node(&db_name, &base, "us-east1", true).await;
    let s = finished(&second, &t, channel, asked.body["id"].as_str().unwrap()).await;
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(ledger(&second, &t).await, (USED, 0));
    let attempts: i32 = db
        .query_one("SELECT attempts FROM jobs WHERE id = $1", &[&job])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1);
}

/// A stale summary worker (its lease taken over while the engine was answering)
/// must not change the summary: the engine refuses for good (400), and the run
/// that lost its lease would have marked the summary `failed` although the job's
/// current owner may still store it. The state change is guarded by the lease in
/// the same transaction (`JobContext::holds_lease`); the summary stays pending.
#[actix_web::test]
async fn a_stale_summary_worker_cannot_mark_the_summary_failed() {
    let (base, stub) = stub();
    let db_name = fresh_database().await;
    let mut settings = test_settings(&db_name);
    settings.summaries.openai = engine_settings(&base, "us-east1");
    settings.jobs.poll_interval = Duration::from_millis(50);
    // Long lease: no renewal notices the theft before the engine answers.
    settings.jobs.lease = Duration::from_secs(120);
    let app = spawn_app_with(settings).await;
    let (t, channel) = tenant_with_thread(&app, "stale").await;
    choose(&app, &t, &t.owner_token, json!({"ai_engine": "external"})).await;
    {
        let mut stub = stub.lock().unwrap();
        stub.delay = Some(Duration::from_millis(1500));
        stub.answers.push_back(400);
    }
    let reply = app
        .post(
            &format!("/v1/channels/{channel}/summaries"),
            &t.owner_token,
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let job: Uuid = reply.body["job_id"].as_str().unwrap().parse().unwrap();
    for _ in 0..200 {
        if requests(&stub) == 1 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(requests(&stub), 1, "the engine was never asked");
    // While the engine thinks, the lease passes to another node.
    let db = app.superuser_client().await;
    let stolen = db
        .execute(
            "UPDATE jobs SET lease_owner = 'us-east1/other-node' WHERE id = $1 AND state = 'running'",
            &[&job],
        )
        .await
        .unwrap();
    assert_eq!(stolen, 1);
    // The stale run ends (its outcome recorded as lost)…
    let lost = [("kind", "summary.create"), ("outcome", "lost")];
    for _ in 0..200 {
        let samples = crate::metrics::scrape(&app).await;
        if crate::metrics::value(&samples, "meridian_job_runs_total", &lost) >= 1.0 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = crate::metrics::scrape(&app).await;
    assert_eq!(
        crate::metrics::value(&samples, "meridian_job_runs_total", &lost),
        1.0
    );
    // …and changed neither the summary nor the job, which the other node owns.
    let path = format!("/v1/channels/{channel}/summaries/{id}");
    let summary = app.get(&path, &t.owner_token).await.body;
    assert!(
        summary["state"] == "queued" || summary["state"] == "running",
        "{summary}"
    );
    let row = db
        .query_one("SELECT state, lease_owner FROM jobs WHERE id = $1", &[&job])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "running");
    assert_eq!(row.get::<_, String>(1), "us-east1/other-node");
}
