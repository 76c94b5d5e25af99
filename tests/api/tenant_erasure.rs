//! Tenant erasure (issue 16 item 3): the slug confirmation, the grace period
//! (refused on both nodes of the region, restorable), and after it a canary in
//! every personal field found nowhere (pg_dump, either node's directory, the
//! search, the export store), the keys destroyed, another tenant untouched, and
//! a signed receipt that verifies and fails once altered. Plus the guard that
//! every tenant-keyed table is erased or deliberately kept.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use meridian::compliance::receipt::{self, SignedReceipt};
use meridian::compliance::tenant_erasure::tables::{ERASED, KEPT};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Tenant, TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with, test_settings,
};
use crate::regions::eventually;

/// Every table with a `tenant_id` column is in `ERASED` or `KEPT`: a new tenant
/// table fails here until the erasure decides what to do with it.
#[actix_web::test]
async fn every_tenant_keyed_table_is_erased_or_kept() {
    let app = spawn_app().await;
    let db = app.superuser_client().await;
    let rows = db
        .query(
            "SELECT DISTINCT table_name::text FROM information_schema.columns
             WHERE table_schema = 'public' AND column_name = 'tenant_id'
               AND table_name IN (SELECT table_name FROM information_schema.tables
                                  WHERE table_schema = 'public' AND table_type = 'BASE TABLE')",
            &[],
        )
        .await
        .unwrap();
    let in_db: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let listed: BTreeSet<String> = ERASED
        .iter()
        .map(|(t, _)| t.to_string())
        .chain(KEPT.iter().map(|(t, _)| t.to_string()))
        .collect();
    assert_eq!(
        in_db, listed,
        "tenant-keyed tables vs tenant_erasure::tables"
    );
}

/// Rows of `tenant` per erased table (as the superuser: RLS does not hide them).
async fn counts(db: &tokio_postgres::Client, tenant: Uuid) -> Vec<(String, i64)> {
    let tables = ERASED
        .iter()
        .map(|(t, _)| *t)
        .chain(KEPT.iter().map(|(t, _)| *t));
    let mut out = Vec::new();
    for table in tables {
        let n: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
                &[&tenant],
            )
            .await
            .unwrap()
            .get(0);
        out.push((table.to_owned(), n));
    }
    out
}

/// The counts of the tables nothing writes to behind a test's back (access-log
/// and served-region flushes, scheduled jobs and checkpoints do).
fn stable(counts: Vec<(String, i64)>) -> Vec<(String, i64)> {
    const STABLE: &[&str] = &[
        "users",
        "channels",
        "messages",
        "webhook_endpoints",
        "calendar_accounts",
        "exports",
        "audit_events",
        "audit_heads",
        "outbox_events",
        "tenant_usage",
        "tenant_keys",
    ];
    counts
        .into_iter()
        .filter(|(t, _)| STABLE.contains(&t.as_str()))
        .collect()
}

/// A tenant whose name, users, channel, message, webhook and calendar account
/// carry `canary`, and a ready export of it.
async fn canary_tenant(app: &TestApp, slug: &str, canary: &str) -> Tenant {
    let reply = app
        .post(
            "/v1/tenants",
            &app.platform_token(),
            json!({ "slug": slug, "name": format!("Org {canary}"), "home_region": "us-east1",
                    "owner": { "email": format!("{canary}@owner.example"),
                               "display_name": format!("Owner {canary}") },
                    "limits": crate::helpers::UNLIMITED_RATE.clone() }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id: Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
    let owner_id: Uuid = reply.body["owner"]["id"].as_str().unwrap().parse().unwrap();
    let t = Tenant {
        id,
        owner_id,
        owner_token: app.token(id, owner_id, meridian::auth::Role::Owner),
    };
    let user = app
        .post(
            "/v1/users",
            &t.owner_token,
            json!({ "email": format!("{canary}@member.example"),
                    "display_name": format!("Ann {canary}"), "role": "member" }),
        )
        .await;
    assert_eq!(user.status, 201, "{}", user.body);
    let channel = app.create_channel(&t, &format!("chan-{canary}")).await;
    app.post_message(&t, channel, &format!("the plan is {canary}"))
        .await;
    app.create_webhook(
        &t,
        json!({ "url": format!("http://hooks.example/{canary}") }),
    )
    .await;
    crate::calendar::connect(
        app,
        &t,
        &format!("http://calendar.example/{canary}/"),
        canary,
    )
    .await;
    let export = crate::exports::request(app, &t.owner_token, json!({ "scope": "tenant" })).await;
    assert_eq!(
        crate::exports::finished(app, &t.owner_token, export).await["state"],
        "ready"
    );
    t
}

fn export_dir(app: &TestApp, tenant: Uuid) -> std::path::PathBuf {
    test_settings(&app.db_name)
        .exports
        .dir
        .join("us-east1")
        .join(tenant.to_string())
}

#[actix_web::test]
async fn tenant_erasure_grace_restore_and_erase_leave_the_canary_nowhere() {
    let db_name = fresh_database().await;
    let mut settings = test_settings(&db_name);
    // Long enough to restore under CI load, short enough to wait out.
    settings.erasure.tenant_grace = Duration::from_secs(8);
    let one = spawn_app_with(settings.clone()).await;
    let two = spawn_app_with(settings).await;
    let admin = one.platform_token();
    let canary = format!("canary{}", &Uuid::new_v4().simple().to_string()[..12]);

    // Tenant A: erased by mistake and restored within the grace.
    let other = format!("kept{}", &Uuid::new_v4().simple().to_string()[..12]);
    let a = canary_tenant(&one, "keeper", &other).await;
    let a_channels = one.get("/v1/channels", &a.owner_token).await;
    assert_eq!(a_channels.status, 200);
    let wrong = one
        .request(
            "DELETE",
            &format!("/v1/tenants/{}", a.id),
            Some(&admin),
            Some(json!({"confirm": "keepr"})),
        )
        .await;
    assert_problem(&wrong, 422, "confirmation_mismatch");
    assert_eq!(
        one.get("/v1/channels", &a.owner_token).await.status,
        200,
        "nothing changed"
    );
    let tenant = one.get(&format!("/v1/tenants/{}", a.id), &admin).await;
    assert_eq!(tenant.body["status"], "active");
    // Tenant users, even the owner, may not erase their tenant.
    let own = one
        .request(
            "DELETE",
            &format!("/v1/tenants/{}", a.id),
            Some(&a.owner_token),
            Some(json!({"confirm": "keeper"})),
        )
        .await;
    assert_problem(&own, 403, "forbidden");

    let pending = one
        .request(
            "DELETE",
            &format!("/v1/tenants/{}", a.id),
            Some(&admin),
            Some(json!({"confirm": "keeper"})),
        )
        .await;
    assert_eq!(pending.status, 202, "{}", pending.body);
    assert_eq!(pending.body["state"], "pending");
    // Idempotent: the same erasure, the same grace.
    let again = one
        .request(
            "DELETE",
            &format!("/v1/tenants/{}", a.id),
            Some(&admin),
            Some(json!({"confirm": "keeper"})),
        )
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["id"], pending.body["id"]);
    assert_eq!(again.body["erase_after"], pending.body["erase_after"]);
    // Refused on both nodes (the other one through its directory refresh).
    assert_problem(
        &one.get("/v1/channels", &a.owner_token).await,
        403,
        "tenant_pending_erasure",
    );
    eventually("node two refuses the pending tenant", async || {
        two.get("/v1/channels", &a.owner_token).await.body["code"] == "tenant_pending_erasure"
    })
    .await;
    // Nor can PATCH lift the suspension behind the erasure's back.
    let lift = one
        .patch(
            &format!("/v1/tenants/{}", a.id),
            &admin,
            json!({"status": "active"}),
        )
        .await;
    assert_problem(&lift, 409, "erasure_pending");
    let moved = one
        .post(
            &format!("/v1/tenants/{}/relocation", a.id),
            &admin,
            json!({"to_region": "europe-west1"}),
        )
        .await;
    assert_problem(&moved, 409, "erasure_pending");
    let restored = one
        .post(
            &format!("/v1/tenants/{}/restore", a.id),
            &admin,
            json!(null),
        )
        .await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert_eq!(restored.body["state"], "cancelled");
    eventually("node two serves the restored tenant", async || {
        two.get("/v1/channels", &a.owner_token).await.status == 200
    })
    .await;
    assert_eq!(
        one.get("/v1/channels", &a.owner_token).await.body,
        a_channels.body,
        "data intact"
    );
    let no_more = one
        .post(
            &format!("/v1/tenants/{}/restore", a.id),
            &admin,
            json!(null),
        )
        .await;
    assert_problem(&no_more, 409, "no_pending_erasure");

    // Tenant B: erased after the grace.
    let b = canary_tenant(&one, "goner", &canary).await;
    // Renamed by a platform admin: the platform trail's `tenant_updated` names
    // it (before and after), sealed with B's keyring, opened for the admin.
    let renamed = format!("Renamed {canary}");
    let patched = one
        .patch(
            &format!("/v1/tenants/{}", b.id),
            &admin,
            json!({ "name": renamed }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let b_updated = async |node: &TestApp| -> Value {
        node.platform_events("tenant_updated", 1)
            .await
            .into_iter()
            .find(|e| e["tenant_id"] == b.id.to_string())
            .unwrap_or_else(|| panic!("no tenant_updated of {}", b.id))
    };
    let update = b_updated(&one).await;
    assert_eq!(
        update["personal"]["after"]["name"],
        json!(renamed),
        "{update}"
    );
    assert!(!update["details"].to_string().contains(&canary), "{update}");
    let su = one.superuser_client().await;
    let a_before = counts(&su, a.id).await;
    assert!(
        crate::encryption::dump(&one).contains(&canary),
        "the canary is stored before"
    );
    assert!(
        export_dir(&one, b.id).exists(),
        "the export is stored before"
    );
    let b_node_two = two
        .get(&format!("/v1/tenants/{}", b.id), &b.owner_token)
        .await;
    assert_eq!(
        b_node_two.status, 200,
        "node two caches the tenant: {}",
        b_node_two.body
    );
    let asked = Instant::now();
    let erasing = one
        .request(
            "DELETE",
            &format!("/v1/tenants/{}", b.id),
            Some(&admin),
            Some(json!({"confirm": "goner"})),
        )
        .await;
    assert_eq!(erasing.status, 202, "{}", erasing.body);
    let done = loop {
        let reply = two
            .get(&format!("/v1/tenants/{}/erasure", b.id), &admin)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.body["state"] == "done" || asked.elapsed() > Duration::from_secs(90) {
            break reply.body;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["counts"]["messages"].as_i64() >= Some(1), "{done}");
    assert!(done["counts"]["users"].as_i64() >= Some(2), "{done}");
    assert!(done["counts"]["tenant_keys"].as_i64() >= Some(1), "{done}");
    let late = one
        .post(
            &format!("/v1/tenants/{}/restore", b.id),
            &admin,
            json!(null),
        )
        .await;
    assert_problem(&late, 409, "erasure_grace_over");

    // Nowhere: no row of B in any erased table, no canary in the database.
    for (table, n) in counts(&su, b.id).await {
        if ERASED.iter().any(|(t, _)| *t == table) {
            assert_eq!(n, 0, "{table} still holds rows of the erased tenant");
        }
    }
    let dump = crate::encryption::dump(&one);
    let found: Vec<&str> = dump.lines().filter(|l| l.contains(&canary)).collect();
    assert!(found.is_empty(), "the canary is in pg_dump: {found:?}");
    // The platform trail keeps the rename, its name no longer readable.
    let update = b_updated(&one).await;
    assert_eq!(update["personal_erased"], true, "{update}");
    assert!(!update.to_string().contains(&canary), "{update}");
    let live: i64 = su
        .query_one(
            "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1
             AND (state <> 'destroyed' OR wrapped IS NOT NULL)",
            &[&b.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0, "every key version destroyed");
    assert!(
        !export_dir(&one, b.id).exists(),
        "the export store still holds the tenant"
    );
    // Neither node serves or shows it: both directories hold the tombstone.
    for node in [&one, &two] {
        eventually("the node refuses the erased tenant", async || {
            node.get("/v1/channels", &b.owner_token).await.body["code"] == "tenant_erased"
        })
        .await;
        let search = node
            .get(&format!("/v1/search?q={canary}"), &b.owner_token)
            .await;
        assert_problem(&search, 410, "tenant_erased");
        let tomb = node.get(&format!("/v1/tenants/{}", b.id), &admin).await;
        assert_eq!(tomb.body["status"], "erased", "{}", tomb.body);
        assert_eq!(tomb.body["slug"], "goner");
        assert!(!tomb.body.to_string().contains(&canary), "{}", tomb.body);
        let dir = node.get("/v1/tenants?slug=goner", &admin).await;
        assert!(!dir.body.to_string().contains(&canary), "{}", dir.body);
    }
    // The other tenant is untouched.
    assert_eq!(
        stable(counts(&su, a.id).await),
        stable(a_before),
        "tenant A's rows changed"
    );
    assert_eq!(
        one.get("/v1/channels", &a.owner_token).await.body,
        a_channels.body
    );

    // The receipt verifies with the published key, and not once altered; the
    // platform trail keeps it.
    let signed: SignedReceipt = serde_json::from_value(done["receipt"].clone()).unwrap();
    assert_eq!(signed.receipt["tenant_id"], b.id.to_string());
    assert_eq!(signed.receipt["requested_by"], "test-admin");
    assert_eq!(signed.receipt["counts"], done["counts"]);
    let key = crate::erasure::public_key(&one, &signed.signature.key_id).await;
    receipt::verify(&key, &signed).expect("the receipt verifies");
    let mut tampered = signed.clone();
    tampered.receipt["counts"]["messages"] = json!(0);
    assert!(
        receipt::verify(&key, &tampered).is_err(),
        "a tampered receipt verified"
    );
    let kept = one.platform_events("tenant.erasure_receipt", 1).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["details"]["receipt"], signed.receipt);
    let events: Vec<Value> = one.platform_events("tenant.erasure_requested", 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
}

/// `erase_tenant_rows` is the service role's only way to delete a tenant's
/// audit trail, outbox, ledgers and jobs: it deletes nothing unless a platform
/// admin's erasure of that tenant is running (so a tenant transaction cannot
/// wipe its own trail), pending included.
#[actix_web::test]
async fn erase_tenant_rows_deletes_nothing_unless_the_erasure_runs() {
    let app = spawn_app().await;
    let t = app.provision("trailkeeper").await;
    app.create_channel(&t, "general").await;
    let su = app.superuser_client().await;
    let before = counts(&su, t.id).await;
    let events = before.iter().find(|(n, _)| n == "audit_events").unwrap().1;
    assert!(events > 0, "the tenant has a trail: {before:?}");
    let try_erase = async || {
        let mut role = app.app_role_client().await;
        let tx = role.transaction().await.unwrap();
        tx.execute(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&t.id.to_string()],
        )
        .await
        .unwrap();
        let mut deleted = 0;
        for (table, via) in ERASED {
            if *via == meridian::compliance::tenant_erasure::tables::Via::Definer {
                let n: i64 = tx
                    .query_one("SELECT erase_tenant_rows($1, 1000)", &[table])
                    .await
                    .unwrap()
                    .get(0);
                deleted += n;
            }
        }
        tx.commit().await.unwrap();
        deleted
    };
    assert_eq!(try_erase().await, 0, "no erasure");
    let pending = app
        .request(
            "DELETE",
            &format!("/v1/tenants/{}", t.id),
            Some(&app.platform_token()),
            Some(json!({"confirm": "trailkeeper"})),
        )
        .await;
    assert_eq!(pending.status, 202, "{}", pending.body);
    assert_eq!(try_erase().await, 0, "a pending erasure");
    // The trail, outbox and ledger are all still there (tables background
    // flushes and schedules do not write to in the meantime).
    assert_eq!(stable(counts(&su, t.id).await), stable(before));
    // Running: the same call deletes (what the job does after its start).
    su.execute(
        "UPDATE tenant_erasures SET state = 'running' WHERE tenant_id = $1",
        &[&t.id],
    )
    .await
    .unwrap();
    assert!(try_erase().await >= events, "a running erasure deletes");
}
