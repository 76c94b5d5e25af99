//! Every hot statement (`meridian::store::hot_statements`, the code's own
//! constants) is planned on an index when run as the service role under RLS.
//!
//! The plans are the ones PostgreSQL actually executes: `auto_explain` logs each
//! statement's plan, and the plans of statements inside functions (search runs in
//! `search_messages`), as notices to this client. A plain `EXPLAIN` would show
//! only `Function Scan on search_messages` and hide the scan that matters. Each
//! statement runs twice, once with a custom plan and once with the generic plan
//! the service's prepared statements may switch to after five executions.
//!
//! The database has enough rows (2,000 tenants, four with thousands of users,
//! channels, messages and audit events; 60 days of usage samples) that a
//! sequential scan is what the planner picks when no index is usable; the check
//! fails on a sequential scan of any tenant-owned table, and on a search whose `@@` is not an index condition
//! (as under RLS, where `ts_match_vq` is not leakproof).

use futures_util::StreamExt;
use meridian::store::HotStatement;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use uuid::Uuid;

use crate::helpers::{cluster, fresh_database};

/// Tables whose rows belong to tenants (and the tenant directory): a sequential
/// scan of any of them grows with the whole database.
const TENANT_TABLES: [&str; 16] = [
    "tenants",
    "users",
    "channels",
    "messages",
    "audit_events",
    "tenant_usage",
    "tenant_usage_shards",
    "ai_usage",
    "ai_reservations",
    "jobs",
    "exports",
    "usage_samples",
    "subject_keys",
    "calendar_accounts",
    "calendar_grants",
    "calendar_links",
];

/// Tenant `n` (0..2000; 0..4 are the large ones) has id `…0000 00000000000n`.
fn big(n: u32) -> Uuid {
    Uuid::from_u128(u128::from(n))
}

/// Run as the superuser (the table owner): statistics included.
fn seed_sql() -> String {
    "INSERT INTO tenants (id, slug, name, home_region, plan, created_at, updated_at)
       SELECT ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid, 'plan-' || t, 'P' || t,
              'us-east1', 'pro', now() - t * interval '1 hour', now() - t * interval '1 hour'
       FROM generate_series(0, 1999) t;
     INSERT INTO tenant_usage (tenant_id, home_region, storage_bytes, granted_bytes)
       SELECT id, home_region, 100, 32 * 1048576 FROM tenants;
     INSERT INTO tenant_usage_shards (tenant_id, shard, home_region, used_bytes, granted_bytes, cap_bytes)
       SELECT id, s, home_region, 100, 1048576, 1073741824 FROM tenants, generate_series(0, 31) s;
     INSERT INTO ai_usage (tenant_id, month, home_region, used)
       SELECT id, m::date, home_region, 10 FROM tenants,
              generate_series(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '5 months',
                              date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') m;
     INSERT INTO users (tenant_id, id, home_region, email, display_name, role, created_at)
       SELECT ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid,
              ('00000000-0000-0002-' || lpad(t::text, 4, '0') || '-' || lpad(u::text, 12, '0'))::uuid,
              'us-east1', 'u' || u || '@x.example', 'U' || u, 'member', now() - u * interval '1 minute'
       FROM generate_series(0, 1999) t, generate_series(0, CASE WHEN t < 4 THEN 1999 ELSE 4 END) u;
     INSERT INTO channels (tenant_id, id, home_region, name, created_by, created_at)
       SELECT ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid,
              ('00000000-0000-0001-' || lpad(t::text, 4, '0') || '-' || lpad(c::text, 12, '0'))::uuid,
              'us-east1', 'c' || c, gen_random_uuid(), now() - c * interval '1 minute'
       FROM generate_series(0, 1999) t, generate_series(0, CASE WHEN t < 4 THEN 499 ELSE 4 END) c;
     INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
       SELECT ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid,
              ('00000000-0000-0003-' || lpad(t::text, 4, '0') || '-' || lpad(n::text, 12, '0'))::uuid,
              'us-east1',
              ('00000000-0000-0001-' || lpad(t::text, 4, '0') || '-'
                 || lpad((n % CASE WHEN t < 4 THEN 500 ELSE 5 END)::text, 12, '0'))::uuid,
              gen_random_uuid(),
              'w' || (n * 7919 % 5003) || ' w' || (n * 104729 % 4999) || ' w' || (n % 997)
                || CASE WHEN n % 1000 = 0 THEN ' needle' ELSE ' hay' END,
              now() - n * interval '1 second'
       FROM generate_series(0, 1999) t, generate_series(0, CASE WHEN t < 4 THEN 7499 ELSE 9 END) n;
     INSERT INTO audit_events (tenant_id, id, home_region, actor, action, created_at)
       SELECT ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid, gen_random_uuid(), 'us-east1',
              'user', 'message.posted', now() - n * interval '1 second'
       FROM generate_series(0, 1999) t, generate_series(0, CASE WHEN t < 4 THEN 4999 ELSE 9 END) n;
     INSERT INTO jobs (id, tenant_id, home_region, kind, state, attempts, finished_at)
       SELECT gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid, 'us-east1',
              'plan.test', 'succeeded', 1, now()
       FROM generate_series(0, 1999) t, generate_series(0, CASE WHEN t < 4 THEN 4999 ELSE 9 END) n;
     INSERT INTO exports (tenant_id, id, home_region, requested_by, scope, subject_user, created_at)
       SELECT ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid, gen_random_uuid(), 'us-east1',
              ('00000000-0000-0002-' || lpad(t::text, 4, '0') || '-' || lpad((n % 50)::text, 12, '0'))::uuid,
              'user', ('00000000-0000-0002-' || lpad(t::text, 4, '0') || '-' || lpad((n % 50)::text, 12, '0'))::uuid,
              now() - n * interval '1 minute'
       FROM generate_series(0, 1999) t, generate_series(0, CASE WHEN t < 4 THEN 4999 ELSE 4 END) n;
     INSERT INTO usage_samples (tenant_id, bucket_start, home_region, requests, jobs, storage_bytes,
                                ai_tokens, sampled_at)
       SELECT ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid,
              date_trunc('hour', now()) - d * interval '1 day' - (t % 24) * interval '1 hour',
              'us-east1', t % 97, t % 5, 100, 10, now()
       FROM generate_series(0, 1999) t, generate_series(0, 59) d;
     INSERT INTO subject_keys (tenant_id, subject_id, home_region, key_sealed)
       SELECT tenant_id, id, home_region, '\\x01'::bytea FROM users;
     INSERT INTO calendar_accounts (tenant_id, id, home_region, base_url, username, auth_kind,
                                    secret_sealed)
       SELECT id, id, home_region, 'http://cal.example/', 'u', 'password', '\\x01'::bytea FROM tenants;
     INSERT INTO calendar_grants (tenant_id, id, home_region, account_id, path, user_id)
       SELECT tenant_id, id, home_region, tenant_id, '/' || id || '/', id FROM users;
     INSERT INTO calendar_grants (tenant_id, id, home_region, account_id, path, user_id)
       SELECT id, gen_random_uuid(), home_region, id, '/team/', NULL FROM tenants;
     INSERT INTO calendar_links (tenant_id, id, home_region, account_id, user_id, path)
       SELECT tenant_id, id, home_region, tenant_id, id, '/' || id || '/' FROM users;"
        .to_owned()
}

/// Channel (`kind` 1), user (2) or message (3) `n` of tenant `t`, as the seed names them.
fn id(kind: u32, t: u32, n: u32) -> Uuid {
    format!("00000000-0000-{kind:04}-{t:04}-{n:012}")
        .parse()
        .unwrap()
}

/// Sample parameters for each hot statement, for big tenant 1 (mid-sized data).
/// A statement added to `hot_statements` without parameters here fails the test,
/// so the list cannot grow past the check.
fn params(name: &str) -> Vec<Box<dyn ToSql + Sync + Send>> {
    let tenant = big(1);
    let none_at: Option<chrono::DateTime<chrono::Utc>> = None;
    let none_id: Option<Uuid> = None;
    match name {
        "tx.user_status" => vec![
            Box::new(tenant),
            Box::new(id(2, 1, 7)),
            Box::new("member".to_owned()),
        ],
        "tx.impersonation_status" => vec![Box::new(tenant), Box::new(Uuid::from_u128(11))],
        "directory.by_id" => vec![Box::new(tenant)],
        "directory.changed_since" => {
            vec![Box::new(chrono::Utc::now() - chrono::Duration::seconds(30))]
        }
        "channels.list" | "users.list" => vec![
            Box::new(tenant),
            Box::new(none_at),
            Box::new(none_id),
            Box::new(51i64),
        ],
        // The first page, unfiltered (action, actor, from, to all absent).
        "audit.tenant_list" => vec![
            Box::new(tenant),
            Box::new(none_at),
            Box::new(none_id),
            Box::new(51i64),
            Box::new(None::<String>),
            Box::new(None::<String>),
            Box::new(None::<chrono::DateTime<chrono::Utc>>),
            Box::new(None::<chrono::DateTime<chrono::Utc>>),
        ],
        // A page naming three subjects (users of big tenant 1).
        "audit.subject_keys" => vec![
            Box::new(tenant),
            Box::new(vec![id(2, 1, 7), id(2, 1, 42), id(2, 1, 1999)]),
        ],
        "channels.get" | "channels.exists" => vec![Box::new(tenant), Box::new(id(1, 1, 42))],
        "users.get" => vec![Box::new(tenant), Box::new(id(2, 1, 42))],
        "messages.page" => vec![Box::new(tenant), Box::new(id(1, 1, 42))],
        "messages.page_after" => vec![
            Box::new(tenant),
            Box::new(id(1, 1, 42)),
            Box::new(chrono::Utc::now()),
            Box::new(Uuid::max()),
        ],
        "messages.get" => vec![
            Box::new(tenant),
            Box::new(id(1, 1, 42)),
            Box::new(id(3, 1, 542)),
        ],
        "messages.search" => vec![
            Box::new(tenant),
            Box::new("needle".to_owned()),
            Box::new(51i64),
            Box::new(0i64),
            // `limits.cost.search_candidates`' default.
            Box::new(1000i64),
        ],
        "usage.storage_bytes" | "usage.ai_month" | "usage.central_grants" => {
            vec![Box::new(tenant)]
        }
        "messages.post" => vec![
            Box::new(tenant),
            Box::new(Uuid::new_v4()),
            Box::new("us-east1".to_owned()),
            Box::new(id(1, 1, 42)),
            Box::new(id(2, 1, 7)),
            Box::new("a post".to_owned()),
            Box::new(6i64),
            Box::new(3i16),
            Box::new(1_073_741_824i64),
            // The sealed body (none: a plaintext post, the policy guard's
            // subquery runs) and its DEK version.
            Box::new(None::<Vec<u8>>),
            Box::new(None::<i32>),
            // `created_at`, and the token's role: the user guard's subquery runs
            // (the sample user is an active member).
            Box::new(chrono::Utc::now()),
            Box::new(Some("member".to_owned())),
        ],
        // Two posts of the sample member, in one of the big tenant's channels.
        "messages.post_batch" => vec![
            Box::new(tenant),
            Box::new(vec![Uuid::new_v4(), Uuid::new_v4()]),
            Box::new(vec![id(1, 1, 42), id(1, 1, 42)]),
            Box::new(vec![id(2, 1, 7), id(2, 1, 7)]),
            Box::new(vec!["member".to_owned(), "member".to_owned()]),
            Box::new(vec!["a post".to_owned(), "another".to_owned()]),
            Box::new(vec![6i64, 7i64]),
            Box::new(vec![chrono::Utc::now(), chrono::Utc::now()]),
            Box::new(vec![Uuid::now_v7(), Uuid::now_v7()]),
            Box::new(vec![serde_json::json!({}), serde_json::json!({})]),
            Box::new(vec![Uuid::new_v4(), Uuid::new_v4()]),
            Box::new("us-east1".to_owned()),
            Box::new(3i16),
            Box::new(1_073_741_824i64),
            Box::new("message.posted".to_owned()),
            Box::new("outbox.dispatch".to_owned()),
            Box::new(20i32),
        ],
        "outbox.dispatch_if_hooked" => vec![
            Box::new(Uuid::now_v7()),
            Box::new(tenant),
            Box::new("us-east1".to_owned()),
            Box::new("outbox.dispatch".to_owned()),
            Box::new(serde_json::json!({ "event_id": Uuid::now_v7() })),
            Box::new(20i32),
        ],
        "jobs.list" => vec![Box::new(tenant), Box::new(none_id), Box::new(51i64)],
        "exports.list" => vec![
            Box::new(tenant),
            Box::new(none_at),
            Box::new(none_id),
            Box::new(51i64),
        ],
        // A member's own exports (user 7 of big tenant 1 asked for 100 of them).
        "exports.list_mine" => vec![
            Box::new(tenant),
            Box::new(none_at),
            Box::new(none_id),
            Box::new(51i64),
            Box::new(id(2, 1, 7)),
        ],
        // The console's default: the last 24 hours of the region, top 10.
        "usage.top_tenants" => vec![
            Box::new("us-east1".to_owned()),
            Box::new(chrono::Utc::now() - chrono::TimeDelta::hours(24)),
            Box::new("requests".to_owned()),
            Box::new(10i32),
        ],
        // User 7 of big tenant 1 links a collection granted to them (the seed
        // grants each user `/<user id>/` of their tenant's one account).
        "calendar.link" => vec![
            Box::new(tenant),
            Box::new(Uuid::now_v7()),
            Box::new("us-east1".to_owned()),
            Box::new(tenant),
            Box::new(id(2, 1, 7)),
            Box::new(format!("/{}/", id(2, 1, 7))),
            Box::new("Work".to_owned()),
        ],
        other => panic!("no sample parameters for hot statement {other}: add them to params()"),
    }
}

/// A superuser connection whose notices (auto_explain's plans) arrive on a channel.
async fn connect_with_notices(url: &str) -> (Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    actix_web::rt::spawn(async move {
        // Polling for messages also drives the connection.
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = sender.send(notice.message().to_owned());
            }
        }
    });
    (client, receiver)
}

/// Every plan auto_explain reported up to the marker statement.
async fn plans_until_marker(
    client: &Client,
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Vec<String> {
    client.simple_query("SELECT 'plans-marker'").await.unwrap();
    let mut plans = Vec::new();
    while let Some(notice) = notices.recv().await {
        if notice.contains("plans-marker") {
            return plans;
        }
        plans.push(notice);
    }
    panic!("the notice stream ended");
}

/// The tenant-owned tables a plan reads by a sequential scan.
fn seq_scanned(plan: &str) -> Vec<String> {
    plan.split("Seq Scan on ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|table| TENANT_TABLES.contains(table))
        .map(str::to_owned)
        .collect()
}

/// Runs `name`'s statement as `meridian_app` in a transaction scoped to big tenant
/// 1, with `plan_cache_mode`; returns the plans PostgreSQL executed for it. A
/// writing statement runs in a read-write transaction, rolled back like the rest.
async fn executed_plans(
    client: &Client,
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    hot: &HotStatement,
    plan_cache_mode: &str,
) -> String {
    let (sql, name) = (hot.sql, hot.name);
    let access = if hot.writes {
        "READ WRITE"
    } else {
        "READ ONLY"
    };
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL SERIALIZABLE, {access};
             SELECT set_config('app.tenant_id', '{}', true);
             SET LOCAL plan_cache_mode = {plan_cache_mode};",
            big(1)
        ))
        .await
        .unwrap();
    plans_until_marker(client, notices).await;
    let statement = client.prepare(sql).await.unwrap();
    let owned = params(name);
    let refs: Vec<&(dyn ToSql + Sync)> = owned
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client.query(&statement, &refs).await.unwrap();
    let plans = plans_until_marker(client, notices).await.join("\n");
    client.batch_execute("ROLLBACK").await.unwrap();
    plans
}

/// The findings for one plan: sequential scans of tenant tables, and for search a
/// full-text condition that is not an index condition.
fn findings(name: &str, plan: &str) -> Vec<String> {
    let mut found: Vec<String> = seq_scanned(plan)
        .into_iter()
        .map(|table| format!("sequential scan of {table}"))
        .collect();
    // The exports pages must be read in index order from their own index:
    // with only the primary key, the planner reads every export of the tenant
    // and sorts them (no sequential scan, so the check above would not see it).
    let page_index = match name {
        "exports.list" => Some("exports_page_idx"),
        "exports.list_mine" => Some("exports_requester_page_idx"),
        _ => None,
    };
    if let Some(index) = page_index {
        if !plan.contains(&format!("Index Scan using {index} on exports")) {
            found.push(format!("not read through {index}"));
        }
        if plan.contains("Sort Key") {
            found.push("sorted after the scan".into());
        }
    }
    // The link's grant check must find the grant by (tenant, account, path):
    // by the page index alone it would read every grant of the account (an
    // index scan, which the sequential-scan check does not see).
    if name == "calendar.link"
        && !plan.contains("using calendar_grants_user_key on calendar_grants")
    {
        found.push("the grant is not looked up through calendar_grants_user_key".into());
    }
    if name == "messages.search"
        && !plan
            .lines()
            .any(|line| line.contains("Index Cond:") && line.contains("@@"))
    {
        found.push(
            "`@@` is not an index condition (the tenant's rows are read and filtered)".into(),
        );
    }
    found
}

/// A fresh database with the seed, and a session as the service role that reports
/// every executed plan.
async fn seeded_session() -> (Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let db = fresh_database().await;
    let (client, notices) = connect_with_notices(&cluster().superuser_url(&db)).await;
    client.batch_execute(&seed_sql()).await.unwrap();
    client.batch_execute("VACUUM ANALYZE").await.unwrap();
    // auto_explain's settings are the superuser's to set; then the session becomes
    // the service role, so RLS applies exactly as to the service's own sessions.
    client
        .batch_execute(
            "LOAD 'auto_explain';
             SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_level = notice;
             SET ROLE meridian_app;",
        )
        .await
        .unwrap();
    (client, notices)
}

#[actix_web::test]
async fn every_hot_statement_uses_an_index_as_the_service_role() {
    if cluster().dialect != meridian::db::Dialect::Postgres {
        // auto_explain is PostgreSQL's; on CockroachDB see docs/cockroachdb.md.
        return;
    }
    let (client, mut notices) = seeded_session().await;
    let mut failures = Vec::new();
    for hot in meridian::store::hot_statements(meridian::db::Dialect::Postgres) {
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let plan = executed_plans(&client, &mut notices, &hot, mode).await;
            assert!(
                plan.contains("Query Text"),
                "{}: no plan reported",
                hot.name
            );
            for finding in findings(hot.name, &plan) {
                failures.push(format!("{} ({mode}): {finding}\n{plan}", hot.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The check itself: it fails on the search statement this service ran before
/// `search_messages` (inline, under RLS).
#[actix_web::test]
async fn the_plan_check_fails_on_the_inline_search_under_rls() {
    if cluster().dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let (client, mut notices) = seeded_session().await;
    // The statement before V6, verbatim but for `$5` (the candidate bound the
    // hot statement now takes, unused here).
    let inline = "SELECT m.id, m.channel_id, m.author_id, m.body, m.created_at,
                    ts_rank(m.body_tsv, websearch_to_tsquery('english', $2)) AS rank
             FROM messages m
             WHERE m.tenant_id = $1 AND m.body_tsv @@ websearch_to_tsquery('english', $2)
               AND $5::bigint IS NOT NULL
             ORDER BY rank DESC, m.created_at DESC, m.id DESC
             LIMIT $3 OFFSET $4";
    let hot = HotStatement {
        name: "messages.search",
        sql: inline,
        writes: false,
    };
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let plan = executed_plans(&client, &mut notices, &hot, mode).await;
        assert!(
            !findings("messages.search", &plan).is_empty(),
            "{mode}: the inline search passed the check:\n{plan}"
        );
    }
}

/// The exports check itself: without V31's indexes the pages are still read
/// through an index (the primary key), so only the named-index and sort
/// findings catch it.
#[actix_web::test]
async fn the_plan_check_fails_on_the_exports_pages_without_their_indexes() {
    if cluster().dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let (client, mut notices) = seeded_session().await;
    client
        .batch_execute(
            "RESET ROLE;
             DROP INDEX exports_page_idx, exports_requester_page_idx;
             ANALYZE exports;
             SET ROLE meridian_app;",
        )
        .await
        .unwrap();
    let hot = meridian::store::hot_statements(meridian::db::Dialect::Postgres);
    for name in ["exports.list", "exports.list_mine"] {
        let statement = hot.iter().find(|h| h.name == name).unwrap();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let plan = executed_plans(&client, &mut notices, statement, mode).await;
            assert!(
                !findings(name, &plan).is_empty(),
                "{name} ({mode}) passed without its index:\n{plan}"
            );
        }
    }
}

/// The calendar check itself: without V34's lookup index the link's grant check
/// still reads an index (the account's page), so only the named-index finding
/// catches it.
#[actix_web::test]
async fn the_plan_check_fails_on_the_calendar_link_without_its_grant_index() {
    if cluster().dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let (client, mut notices) = seeded_session().await;
    client
        .batch_execute(
            "RESET ROLE;
             DROP INDEX calendar_grants_user_key;
             ANALYZE calendar_grants;
             SET ROLE meridian_app;",
        )
        .await
        .unwrap();
    let hot = meridian::store::hot_statements(meridian::db::Dialect::Postgres);
    let statement = hot.iter().find(|h| h.name == "calendar.link").unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let plan = executed_plans(&client, &mut notices, statement, mode).await;
        assert!(
            !findings("calendar.link", &plan).is_empty(),
            "calendar.link ({mode}) passed without its index:\n{plan}"
        );
    }
}

/// The search index keeps no GIN pending list (V11): with `fastupdate` on, every
/// tenant's writes queue entries that every search scans whole until a vacuum
/// (README, Benchmarks: `loadtest/gin-pending.sh`).
#[actix_web::test]
async fn the_search_index_has_no_pending_list() {
    if cluster().dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let db = fresh_database().await;
    let (client, connection) = tokio_postgres::connect(&cluster().superuser_url(&db), NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(connection);
    let options: Option<Vec<String>> = client
        .query_one(
            "SELECT reloptions FROM pg_class WHERE relname = 'messages_search_idx'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(options.unwrap_or_default(), ["fastupdate=off"]);
}

/// How many of `executions` runs of `sql` (prepared once, as the service does)
/// used a generic plan, i.e. were not planned again at their Bind.
async fn generic_plans(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    executions: usize,
) -> i64 {
    let statement = client.prepare(sql).await.unwrap();
    for _ in 0..executions {
        client.query(&statement, params).await.unwrap();
    }
    client
        .query_one(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement = $1",
            &[&sql],
        )
        .await
        .unwrap()
        .get(0)
}

/// The generic plan of `sql` (PREPAREd with `types`, run with `args`) as text.
async fn generic_plan(client: &Client, name: &str, types: &str, sql: &str, args: &str) -> String {
    client
        .batch_execute(&format!(
            "SET LOCAL plan_cache_mode = force_generic_plan; PREPARE {name}({types}) AS {sql}"
        ))
        .await
        .unwrap();
    let rows = client
        .simple_query(&format!("EXPLAIN EXECUTE {name}({args})"))
        .await
        .unwrap();
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The messages page is not planned at every execution: after PostgreSQL's five
/// custom plans, its prepared statements (first page and after a cursor) switch
/// to their generic plan, and the generic plan after a cursor starts the index
/// scan at the cursor. The statement before the split (`LIMIT $5`, an optional
/// cursor) was planned again at every Bind of the benchmark (README, Benchmarks:
/// "Where the time goes, counted per request"; whether PostgreSQL switches
/// depends on the data), and its generic plan only filtered on the cursor: the
/// plan check below fails on it.
#[actix_web::test]
async fn the_messages_page_reuses_its_generic_plan() {
    if cluster().dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let (client, _notices) = seeded_session().await;
    // auto_explain keeps reporting plans as notices; nothing reads them here.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .query_one(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&big(1).to_string()],
        )
        .await
        .unwrap();
    let (tenant, channel) = (big(1), id(1, 1, 42));
    let first = meridian::store::messages::page_sql(false, 51).unwrap();
    let after = meridian::store::messages::page_sql(true, 51).unwrap();
    let at = chrono::Utc::now() - chrono::Duration::seconds(3000);
    let cursor = Uuid::max();
    assert!(generic_plans(&client, first, &[&tenant, &channel], 8).await > 0);
    assert!(generic_plans(&client, after, &[&tenant, &channel, &at, &cursor], 8).await > 0);
    let args = format!("'{tenant}', '{channel}', now(), '{cursor}'");
    let cursor_in_index = |plan: &str| {
        plan.lines()
            .any(|l| l.contains("Index Cond") && l.contains("ROW(created_at, id) <"))
    };
    let plan = generic_plan(
        &client,
        "page_after",
        "uuid, uuid, timestamptz, uuid",
        after,
        &args,
    )
    .await;
    assert!(cursor_in_index(&plan), "{plan}");
    // The check fails on the statement the service sent before.
    let before = "SELECT id, channel_id, author_id, body, created_at FROM messages
     WHERE tenant_id = $1 AND channel_id = $2 AND ($3::timestamptz IS NULL OR (created_at, id) < \
         ($3, $4))
     ORDER BY created_at DESC, id DESC LIMIT 51";
    let plan = generic_plan(
        &client,
        "page_before",
        "uuid, uuid, timestamptz, uuid",
        before,
        &args,
    )
    .await;
    assert!(!cursor_in_index(&plan), "{plan}");
    client.batch_execute("ROLLBACK").await.unwrap();
}
