//! The storage quota's write path (issue 11): escrow over usage shards. Exact
//! under concurrency across two nodes on one database, no false refusals at the
//! edge, deletes give back exactly, and a busy tenant's writers get no 5xx.

use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, fresh_database, spawn_app_with, test_settings};

async fn set_cap(app: &TestApp, tenant: &Tenant, cap: u64) {
    let reply = app
        .patch(
            &format!("/v1/tenants/{}", tenant.id),
            &app.platform_token(),
            json!({ "limits": { "storage_bytes": cap } }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Waits (bounded by attempts, not time) until `app` knows the tenant with `cap`:
/// other nodes learn a change on their next directory refresh.
async fn until_cap_seen(app: &TestApp, tenant: &Tenant, cap: u64) {
    for _ in 0..500 {
        let usage = app.get("/v1/usage", &tenant.owner_token).await;
        if usage.status == 200 && usage.body["limits"]["storage_bytes"] == cap {
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the node never saw the storage cap {cap}");
}

/// What the database holds for the tenant: stored message bytes, sum of the shards'
/// used and granted bytes, the central row's granted bytes, and shards with
/// used > granted.
async fn ledger(app: &TestApp, tenant: Uuid) -> (i64, i64, i64, i64, i64) {
    let db = app.superuser_client().await;
    let row = db
        .query_one(
            "SELECT (SELECT COALESCE(sum(octet_length(body)), 0)::bigint FROM messages WHERE tenant_id = $1),
                    (SELECT COALESCE(sum(used_bytes), 0)::bigint FROM tenant_usage_shards WHERE tenant_id = $1),
                    (SELECT COALESCE(sum(granted_bytes), 0)::bigint FROM tenant_usage_shards WHERE tenant_id = $1),
                    (SELECT granted_bytes FROM tenant_usage WHERE tenant_id = $1),
                    (SELECT count(*) FROM tenant_usage_shards WHERE tenant_id = $1 AND used_bytes > granted_bytes)",
            &[&tenant],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// One writer: posts bodies of `size` bytes until refused (403), retrying a 503
/// as a client would. Returns how many were accepted.
async fn fill(app: &TestApp, token: &str, channel: Uuid, size: usize) -> u64 {
    let path = format!("/v1/channels/{channel}/messages");
    let body = "x".repeat(size);
    let mut accepted = 0;
    for _ in 0..100_000 {
        let reply = app.post(&path, token, json!({ "body": body })).await;
        match reply.status.as_u16() {
            201 => accepted += 1,
            403 => {
                assert_eq!(reply.body["code"], "quota_exceeded", "{}", reply.body);
                return accepted;
            }
            503 => assert_eq!(reply.body["code"], "retry_exhausted", "{}", reply.body),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    panic!("writer of {size}-byte posts was never refused");
}

#[actix_web::test]
async fn storage_quota_is_exact_across_two_nodes_and_refuses_only_when_full() {
    // Two nodes (two apps, their own pools and shard choices) on one database.
    let db = fresh_database().await;
    let a = spawn_app_with(test_settings(&db)).await;
    let b = spawn_app_with(test_settings(&db)).await;
    let t = a.provision("escrow").await;
    const CAP: u64 = 20_000;
    set_cap(&a, &t, CAP).await;
    until_cap_seen(&a, &t, CAP).await;
    until_cap_seen(&b, &t, CAP).await;
    let mut channels = Vec::new();
    for i in 0..4 {
        channels.push(a.create_channel(&t, &format!("c{i}")).await);
    }

    // 16 writers, 8 per node, each with its own body size, all until refused. The
    // 1-byte writer is refused only when the tenant stores exactly CAP bytes.
    let sizes: [usize; 16] = [
        1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 97,
    ];
    let writers = sizes.iter().enumerate().map(|(i, &size)| {
        let node = if i % 2 == 0 { &a } else { &b };
        let (token, channel) = (t.owner_token.clone(), channels[i % channels.len()]);
        async move { (size, fill(node, &token, channel, size).await) }
    });
    let results = join_all(writers).await;
    let accepted: u64 = results.iter().map(|&(s, n)| s as u64 * n).sum();

    let (stored, used, granted, central, overdrawn) = ledger(&a, t.id).await;
    assert_eq!(
        stored as u64, accepted,
        "stored bytes = accepted posts' bytes"
    );
    assert_eq!(used, stored, "the shards account every stored byte");
    assert!(stored as u64 <= CAP, "cap passed: {stored} > {CAP}");
    // Every writer was refused; a refusal of s bytes is right only when stored + s
    // passed the cap at that moment, and stored only grew: so CAP - final < s for
    // every writer — for the 1-byte one, the tenant is exactly full.
    for &(size, _) in &results {
        assert!(
            CAP - (stored as u64) < size as u64,
            "a {size}-byte post was refused with {} bytes free",
            CAP - stored as u64
        );
    }
    assert_eq!(stored as u64, CAP);
    assert_eq!(central, granted, "central row = sum of grants");
    assert!(central as u64 <= CAP);
    assert_eq!(overdrawn, 0);
    for node in [&a, &b] {
        let usage = node.get("/v1/usage", &t.owner_token).await;
        assert_eq!(usage.body["storage_bytes"], CAP, "{}", usage.body);
    }

    // A delete on the other node gives back exactly that channel's bytes, and the
    // space can be used again from either node, exactly.
    let freed: i64 = a
        .superuser_client()
        .await
        .query_one(
            "SELECT sum(octet_length(body))::bigint FROM messages WHERE channel_id = $1",
            &[&channels[1]],
        )
        .await
        .unwrap()
        .get(0);
    let reply = b
        .delete(&format!("/v1/channels/{}", channels[1]), &t.owner_token)
        .await;
    assert_eq!(reply.status, 204);
    let (stored, used, granted, central, overdrawn) = ledger(&a, t.id).await;
    assert_eq!(stored as u64, CAP - freed as u64);
    assert_eq!((used, central, overdrawn), (stored, granted, 0));
    let refill = join_all([
        fill(&a, &t.owner_token, channels[0], 7),
        fill(&b, &t.owner_token, channels[2], 1),
    ])
    .await;
    let (stored, used, granted, central, _) = ledger(&a, t.id).await;
    assert_eq!(stored as u64, CAP);
    assert_eq!(
        stored as u64,
        CAP - freed as u64 + 7 * refill[0] + refill[1]
    );
    assert_eq!((used, central), (stored, granted));
}

#[actix_web::test]
async fn a_lower_cap_bites_at_once_even_with_grants_outstanding() {
    let mut settings = test_settings(&fresh_database().await);
    settings.database.pool_size = 16;
    let app = spawn_app_with(settings).await;
    let t = app.provision("lower").await;
    let channel = app.create_channel(&t, "c").await;
    // Far from the cap: grants of up to 1 MiB are outstanding after a few posts.
    for _ in 0..5 {
        app.post_message(&t, channel, &"y".repeat(100)).await;
    }
    let (_, _, granted, _, _) = ledger(&app, t.id).await;
    assert!(granted > 500, "a grant larger than what is used: {granted}");
    set_cap(&app, &t, 520).await;
    let path = format!("/v1/channels/{channel}/messages");
    let over = app
        .post(&path, &t.owner_token, json!({ "body": "z".repeat(21) }))
        .await;
    assert_eq!(over.status, 403, "{}", over.body);
    let fits = app
        .post(&path, &t.owner_token, json!({ "body": "z".repeat(20) }))
        .await;
    assert_eq!(fits.status, 201, "{}", fits.body);
    let (stored, used, granted, central, _) = ledger(&app, t.id).await;
    assert_eq!((stored, used), (520, 520));
    assert_eq!(central, granted);
    assert!(central <= 520);
}

/// The load, as a correctness test: 16 concurrent writers of one tenant,
/// each in its own channel, 100 posts each. Every post must be accepted: the
/// quota row must not turn concurrency into serialization failures that outlive
/// the retries (503 `retry_exhausted`).
#[actix_web::test]
async fn sixteen_concurrent_writers_of_one_tenant_get_no_server_errors() {
    let mut settings = test_settings(&fresh_database().await);
    settings.database.pool_size = 16;
    let app = spawn_app_with(settings).await;
    let t = app.provision("busy").await;
    let mut channels = Vec::new();
    for i in 0..16 {
        channels.push(app.create_channel(&t, &format!("w{i}")).await);
    }
    let writers = channels.iter().map(|&channel| {
        let (app, token) = (&app, t.owner_token.clone());
        async move {
            let path = format!("/v1/channels/{channel}/messages");
            let mut statuses = Vec::new();
            for i in 0..100 {
                let reply = app
                    .post(
                        &path,
                        &token,
                        json!({ "body": format!("post {i} of a busy writer") }),
                    )
                    .await;
                statuses.push((reply.status.as_u16(), i, reply.body["code"].clone()));
            }
            statuses
        }
    });
    let statuses: Vec<_> = join_all(writers).await.into_iter().flatten().collect();
    let failed: Vec<_> = statuses.iter().filter(|(s, _, _)| *s != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of {} posts failed, e.g. (status, post number, code) {:?}",
        failed.len(),
        statuses.len(),
        &failed[..failed.len().min(5)]
    );
    let stored: i64 = app
        .superuser_client()
        .await
        .query_one(
            "SELECT sum(octet_length(body))::bigint FROM messages WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .unwrap()
        .get(0);
    let usage = app.get("/v1/usage", &t.owner_token).await;
    assert_eq!(usage.body["storage_bytes"], stored);
}

/// V6 moves each tenant's existing `storage_bytes` into shard 0 (used = granted),
/// counts it in the central row's grants, and is idempotent: its SQL run again
/// moves nothing twice. The node then reports and enforces the same total.
#[actix_web::test]
async fn v6_moves_existing_usage_into_shards_once() {
    let cluster = crate::helpers::cluster();
    if cluster.dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let (url, client) = crate::helpers::database_migrated_to(5).await;
    let tenant = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO tenants (id, slug, name, home_region, plan) VALUES ($1, 'old', 'Old', 'us-east1', 'free')",
            &[&tenant],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO tenant_usage (tenant_id, home_region, storage_bytes) VALUES ($1, 'us-east1', 1234)",
            &[&tenant],
        )
        .await
        .unwrap();
    let postgres = Some(meridian::db::Dialect::Postgres);
    let upgrade = meridian::db::migrate::run(&url, None, postgres)
        .await
        .unwrap();
    assert_eq!(
        upgrade.applied,
        [
            "V6__usage_shards",
            "V7__search",
            "V8__jobs",
            "V9__search_bound",
            "V10__outbox_webhooks",
            "V11__search_pending_list",
            "V12__ai_engine",
            "V13__identity",
            "V14__job_claim_lock",
            "V15__platform_accounts",
            "V16__job_queue_plans",
            "V17__impersonation",
            "V18__tenant_keys",
            "V19__encrypted_messages",
            "V21__audit_chain",
            "V22__gdpr",
            "V23__calendar",
            "V24__residency_attestation",
            "V25__access_log",
            "V26__tenant_erasure",
            "V27__retention",
            "V28__access_log_tenant_retention",
            "V29__usage_history",
            "V30__audit_sealer",
            "V31__exports_page",
            "V32__top_tenants",
            "V33__subject_keys",
            "V34__calendar_grants",
            "V35__definer_floors"
        ]
    );
    client
        .batch_execute(include_str!("../../sql/postgres/V6__usage_shards.sql"))
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT (SELECT storage_bytes FROM tenant_usage WHERE tenant_id = $1),
                    (SELECT granted_bytes FROM tenant_usage WHERE tenant_id = $1),
                    (SELECT sum(used_bytes)::bigint FROM tenant_usage_shards WHERE tenant_id = $1),
                    (SELECT sum(granted_bytes)::bigint FROM tenant_usage_shards WHERE tenant_id = $1),
                    (SELECT count(*) FROM tenant_usage_shards WHERE tenant_id = $1)",
            &[&tenant],
        )
        .await
        .unwrap();
    let got: (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(got, (0, 1234, 1234, 1234, 1));
}
