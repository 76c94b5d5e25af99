//! Row-level security, tested in SQL as the service role itself (`meridian_app`):
//! the second wall must hold even for a statement that forgets its tenant predicate.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// The tenant-owned tables every tenant has rows in after `seed`.
const TABLES: [&str; 4] = ["users", "channels", "messages", "audit_events"];

/// A provisioned tenant with an extra user, a channel and a message.
struct Seeded {
    id: Uuid,
    channel: Uuid,
    message: Uuid,
}

async fn seed(app: &TestApp, slug: &str) -> Seeded {
    let tenant = app.provision(slug).await;
    app.add_user(&tenant, "member").await;
    let channel = app.create_channel(&tenant, "general").await;
    let message = app
        .post_message(&tenant, channel, &format!("hello from {slug}"))
        .await;
    Seeded {
        id: tenant.id,
        channel,
        message,
    }
}

/// A transaction as the service role, scoped the way the app scopes its own.
async fn begin(db: &mut Client, tenant: Option<Uuid>) -> Transaction<'_> {
    let tx = db.transaction().await.unwrap();
    if let Some(tenant) = tenant {
        tx.query_one(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.to_string()],
        )
        .await
        .unwrap();
    }
    tx
}

async fn count(tx: &Transaction<'_>, table: &str, tenant: Option<Uuid>) -> i64 {
    let row = match tenant {
        Some(t) => {
            let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
            tx.query_one(&sql, &[&t]).await
        }
        None => {
            tx.query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
        }
    };
    row.unwrap().get(0)
}

/// The first column of every row of a catalog query, as text.
async fn texts(db: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<String> {
    let rows = db.query(sql, params).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Runs `sql` in its own transaction scoped to `tenant` and asserts it is refused with 42501.
async fn assert_refused(
    db: &mut Client,
    tenant: Option<Uuid>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) {
    let tx = begin(db, tenant).await;
    let err = tx
        .execute(sql, params)
        .await
        .expect_err(&format!("accepted: {sql}"));
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{sql}: {err:?}"
    );
    tx.rollback().await.unwrap();
}

#[actix_web::test]
async fn a_tenant_sees_its_own_rows_and_none_of_anothers() {
    let app = spawn_app().await;
    let (a, b) = (seed(&app, "rls-a").await, seed(&app, "rls-b").await);
    let mut db = app.app_role_client().await;
    for (me, other) in [(&a, &b), (&b, &a)] {
        let tx = begin(&mut db, Some(me.id)).await;
        for table in TABLES {
            let mine = count(&tx, table, Some(me.id)).await;
            assert!(mine > 0, "{table}: the tenant's own rows are not visible");
            assert_eq!(count(&tx, table, Some(other.id)).await, 0, "{table}");
            // Without any predicate: exactly the tenant's own rows.
            assert_eq!(count(&tx, table, None).await, mine, "{table}");
        }
        // Primary-key look-ups of the other tenant's rows find nothing either.
        for (table, id) in [("channels", other.channel), ("messages", other.message)] {
            let sql = format!("SELECT 1 FROM {table} WHERE id = $1");
            assert!(
                tx.query_opt(&sql, &[&id]).await.unwrap().is_none(),
                "{table}"
            );
        }
        tx.rollback().await.unwrap();
    }
}

#[actix_web::test]
async fn without_a_tenant_setting_nothing_is_visible() {
    let app = spawn_app().await;
    let a = seed(&app, "rls-a").await;
    seed(&app, "rls-b").await;
    let mut db = app.app_role_client().await;

    // Not set at all; then set to '' (what a local setting reverts to).
    for setting in [None, Some("")] {
        let tx = begin(&mut db, None).await;
        if let Some(value) = setting {
            tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&value])
                .await
                .unwrap();
        }
        for table in TABLES {
            assert_eq!(count(&tx, table, None).await, 0, "{table} with {setting:?}");
        }
        tx.rollback().await.unwrap();
    }

    // A transaction-local setting ends with its transaction: the next one on the
    // same (pooled) connection sees nothing again.
    let tx = begin(&mut db, Some(a.id)).await;
    for table in TABLES {
        assert!(count(&tx, table, None).await > 0, "{table}");
    }
    tx.commit().await.unwrap();
    let tx = begin(&mut db, None).await;
    for table in TABLES {
        assert_eq!(count(&tx, table, None).await, 0, "{table} after commit");
    }
    tx.rollback().await.unwrap();

    // A malformed setting fails the statement rather than matching anything.
    let tx = begin(&mut db, None).await;
    tx.execute(
        "SELECT set_config('app.tenant_id', 'not-a-uuid', true)",
        &[],
    )
    .await
    .unwrap();
    let err = tx
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_TEXT_REPRESENTATION),
        "{err:?}"
    );
    drop(tx);

    // And nothing can be written without a tenant.
    for sql in INSERTS {
        assert_refused(&mut db, None, sql, &[&a.id, &a.channel]).await;
    }
}

/// One insert per tenant-owned table, taking `$1` a tenant and `$2` its channel.
const INSERTS: [&str; 4] = [
    "INSERT INTO users (tenant_id, id, home_region, email, display_name, role)
     VALUES ($1, gen_random_uuid(), 'us-east1', gen_random_uuid() || '@x.example', 'Mallory ' || ($2::uuid)::text, 'owner')",
    "INSERT INTO channels (tenant_id, id, home_region, name, created_by)
     VALUES ($1, gen_random_uuid(), 'us-east1', 'planted', $2)",
    "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
     VALUES ($1, gen_random_uuid(), 'us-east1', $2, gen_random_uuid(), 'planted')",
    "INSERT INTO audit_events (tenant_id, id, home_region, actor, action, target_id)
     VALUES ($1, gen_random_uuid(), 'us-east1', 'mallory', 'planted', ($2::uuid)::text)",
];

/// Statements that must touch nothing of `$1` but another tenant's, and do touch
/// rows when `$1` is the tenant set.
const TOUCHES: [&str; 7] = [
    "UPDATE users SET display_name = 'pwned' WHERE tenant_id = $1",
    "UPDATE channels SET topic = 'pwned' WHERE tenant_id = $1",
    "UPDATE messages SET body = 'pwned' WHERE tenant_id = $1",
    "UPDATE audit_events SET home_region = 'eu-west1' WHERE tenant_id = $1",
    "DELETE FROM messages WHERE tenant_id = $1",
    "DELETE FROM channels WHERE tenant_id = $1",
    "DELETE FROM users WHERE tenant_id = $1",
];

#[actix_web::test]
async fn writes_across_the_wall_are_refused_or_touch_nothing() {
    let app = spawn_app().await;
    let (a, b) = (seed(&app, "rls-a").await, seed(&app, "rls-b").await);
    let mut db = app.app_role_client().await;
    let tx = begin(&mut db, Some(b.id)).await;
    let mut b_before = Vec::new();
    for table in TABLES {
        b_before.push(count(&tx, table, None).await);
    }
    tx.rollback().await.unwrap();

    for sql in INSERTS {
        // The statement is fine for the tenant set (the control)...
        let tx = begin(&mut db, Some(a.id)).await;
        assert_eq!(
            tx.execute(sql, &[&a.id, &a.channel]).await.unwrap(),
            1,
            "{sql}"
        );
        tx.rollback().await.unwrap();
        // ...and refused for another tenant's id.
        assert_refused(&mut db, Some(a.id), sql, &[&b.id, &b.channel]).await;
    }

    let tx = begin(&mut db, Some(a.id)).await;
    for sql in TOUCHES {
        assert_eq!(tx.execute(sql, &[&b.id]).await.unwrap(), 0, "{sql}");
    }
    for (table, id) in [("messages", b.message), ("channels", b.channel)] {
        let sql = format!("DELETE FROM {table} WHERE id = $1");
        assert_eq!(tx.execute(&sql, &[&id]).await.unwrap(), 0, "{sql}");
    }
    // The control: the same statements do reach the tenant's own rows.
    for sql in TOUCHES {
        assert!(tx.execute(sql, &[&a.id]).await.unwrap() > 0, "{sql}");
    }
    tx.rollback().await.unwrap();

    // Moving an own row into another tenant is refused, and audit rows cannot be deleted.
    let sql = "UPDATE messages SET tenant_id = $1 WHERE id = $2";
    assert_refused(&mut db, Some(a.id), sql, &[&b.id, &a.message]).await;
    let sql = "DELETE FROM audit_events WHERE tenant_id = $1";
    assert_refused(&mut db, Some(a.id), sql, &[&a.id]).await;

    // B's rows are all still there, unchanged.
    let tx = begin(&mut db, Some(b.id)).await;
    for (table, before) in TABLES.into_iter().zip(b_before) {
        assert_eq!(count(&tx, table, None).await, before, "{table}");
    }
    let row = tx
        .query_one("SELECT body FROM messages WHERE id = $1", &[&b.message])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "hello from rls-b");
    tx.rollback().await.unwrap();
}

#[actix_web::test]
async fn the_service_role_owns_nothing_and_cannot_bypass_rls() {
    let app = spawn_app().await;
    let db = app.app_role_client().await;
    let role = db
        .query_one(
            "SELECT current_user::text, rolsuper, rolbypassrls,
                    has_schema_privilege('public', 'CREATE'),
                    (SELECT count(*) FROM pg_tables
                     WHERE schemaname = 'public' AND tableowner = current_user)
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(role.get::<_, String>(0), "meridian_app");
    let powers: [bool; 3] = [role.get(1), role.get(2), role.get(3)];
    assert_eq!(powers, [false; 3], "superuser, bypassrls, create in public");
    assert_eq!(role.get::<_, i64>(4), 0, "tables owned by the service role");

    let forced = texts(
        &db,
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
         AND relname = ANY($1) AND relrowsecurity AND relforcerowsecurity ORDER BY 1",
        &[&TABLES.to_vec()],
    )
    .await;
    let mut expected = TABLES.map(String::from).to_vec();
    expected.sort();
    assert_eq!(forced, expected, "RLS enabled and forced");

    // Every table with a tenant_id is under forced RLS but the two platform tables.
    let unguarded = texts(
        &db,
        "SELECT c.relname::text FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND a.attname = 'tenant_id' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
         ORDER BY 1",
        &[],
    )
    .await;
    // audit_chain_pending (V21) is the migrator's list of tenants whose pre-V21
    // events await chaining: the service role has no privilege on it at all.
    assert_eq!(
        unguarded,
        [
            "audit_chain_pending",
            "platform_audit_events",
            "relocations",
            "tenant_erasures"
        ]
    );
    let pending = db
        .query_one(
            "SELECT has_table_privilege('audit_chain_pending', 'SELECT, INSERT, UPDATE, DELETE')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        !pending.get::<_, bool>(0),
        "the service role reaches audit_chain_pending"
    );

    // The deliberate holes in RLS, each with its own wall: audit_truncate_through
    // deletes the current tenant's audit events only behind a signed anchor
    // (tests in audit_evidence.rs); audit_seal and audit_seal_batch set seq and
    // hash only on unchained events (the current tenant's, or those listed) and
    // move a head only from where the batch read it (and since V35 the service
    // role inserts events unchained: audit_sealing.rs), and audit_unsealed_batch
    // returns unchained events only, for the sealer (tests in audit_chain.rs);
    // resource_owner returns
    // only an owning tenant id; search_messages filters on the RLS setting itself
    // (tests in search.rs); the job functions return ids, tenant ids, kinds and
    // counts, never a payload, and only lease or un-lease jobs (docs/jobs.md;
    // tests in jobs.rs); record_served_regions and record_access insert a
    // node's counts and access entries for the tenants it names (rows homed
    // where each tenant is, read in the statement), and prune_access_log
    // deletes only rows past retention of one region and prune_tenant_access_log
    // only the current tenant's rows before a cutoff (tests in residency.rs
    // and access_log.rs); calendar_health and calendar_tenants return accounts'
    // sync state and tenant ids, never paths, user names, secrets or events
    // (tests in calendar.rs); erase_tenant_rows deletes the current tenant's
    // rows only while a platform admin's erasure of it is running (tests in
    // tenant_erasure.rs); sample_usage writes each tenant's own counters of a
    // region into its hourly usage row and prune_usage_samples deletes a region's
    // samples past retention, never one younger than a day (V35; tests in
    // usage_history.rs); top_tenants returns a
    // region's per-tenant usage counters and slugs, never names or content
    // (tests in top_tenants.rs).
    let definers = texts(
        &db,
        "SELECT oid::regprocedure::text FROM pg_proc
         WHERE prosecdef AND has_function_privilege(oid, 'EXECUTE') ORDER BY 1",
        &[],
    )
    .await;
    assert_eq!(
        definers,
        [
            "audit_seal(uuid[],bigint[],bytea[],bigint)",
            "audit_seal_batch(uuid[],uuid[],bigint[],bytea[],uuid[],text[],bigint[],bigint[],bytea[])",
            "audit_truncate_through(bigint)",
            "audit_unsealed_batch(text,integer)",
            "calendar_health()",
            "calendar_tenants(text)",
            "claim_job(text,uuid,text,double precision,bigint)",
            "claim_job_locked(text,uuid,text,double precision,bigint)",
            "claim_platform_job(text,text,double precision,bigint)",
            "erase_tenant_rows(text,integer)",
            "expire_job_leases(text)",
            "job_queue_heads(text,uuid,integer)",
            "job_region_stats(text)",
            "prune_access_log(text,timestamp with time zone,integer)",
            "prune_tenant_access_log(timestamp with time zone,integer)",
            "prune_usage_samples(text,timestamp with time zone,integer)",
            "record_access(text,uuid[],uuid[],uuid[],text[],text[],text[],timestamp with time zone[],timestamp with time zone[],integer[])",
            "record_served_regions(text,uuid[],bigint[],timestamp with time zone)",
            "resource_owner(text,uuid)",
            "sample_usage(text,timestamp with time zone,timestamp with time zone,uuid,uuid,boolean)",
            "search_messages(uuid,text,bigint,bigint)",
            "search_messages(uuid,text,bigint,bigint,bigint)",
            "top_tenants(text,timestamp with time zone,text,integer)"
        ]
    );
}

/// Read-only transactions send COMMIT with their first statement; reads of more
/// statements are re-run the ordinary way. Either way, no connection is left
/// inside a transaction, and the answers are those of a normal transaction.
#[actix_web::test]
async fn eagerly_committed_reads_leave_no_transaction_open() {
    let app = crate::helpers::spawn_app().await;
    let t = app.provision("eager").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "one").await;
    let empty = app.create_channel(&t, "empty").await;
    for _ in 0..10 {
        let page = app
            .get(&format!("/v1/channels/{channel}/messages"), &t.owner_token)
            .await;
        assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
        // An empty page needs a second statement (does the channel exist?).
        let page = app
            .get(&format!("/v1/channels/{empty}/messages"), &t.owner_token)
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["items"], serde_json::json!([]));
        let missing = app
            .get(
                &format!("/v1/channels/{}/messages", uuid::Uuid::new_v4()),
                &t.owner_token,
            )
            .await;
        assert_eq!(missing.status, 404, "{}", missing.body);
    }
    // A read that leaked its transaction would leave its connection idle in
    // transaction for good. The node's own short transactions (the probe
    // auditor writing the 404s above, the job workers) may be caught in that
    // state for a moment, so the count must reach 0 within a few seconds rather
    // than at one instant.
    let db = app.superuser_client().await;
    let mut open: i64 = -1;
    for _ in 0..30 {
        open = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND usename = 'meridian_app' AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "a connection stayed idle in transaction");
}
