//! The operator role: a platform token without a tenant that runs regions
//! (drain, undrain, evacuate, region state, relocation progress, the directory's
//! reduced view) and is refused everything else with `operator_forbidden`.

use meridian::api::contract::{OPERATIONS, OPERATOR_OPERATIONS, Who};
use meridian::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app};
use crate::isolation::{Victim, routes};

pub(crate) fn operator_token(app: &TestApp) -> String {
    app.verifier
        .issue("sre-ana".into(), None, Role::Operator, 600)
        .unwrap()
}

fn bare(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Every authenticated operation of the contract, as an operator: the ones in
/// `OPERATOR_OPERATIONS` succeed, every other one answers 403
/// `operator_forbidden` and changes nothing.
#[actix_web::test]
async fn operator_role_matrix_over_every_operation() {
    let app = spawn_app().await;
    let a = app.provision("operated").await;
    let (member, _) = app.add_user(&a, "member").await;
    let channel = app.create_channel(&a, "general").await;
    let message = app
        .post_message(&a, channel, "content no operator reads")
        .await;
    let webhook = app
        .create_webhook(&a, json!({"url": "http://hooks.example/a"}))
        .await
        .0;
    let job = crate::jobs::enqueue_as_node(&app, a.id, "operator.test").await;
    let (calendar_account, calendar_event, calendar_grant) =
        crate::calendar::isolation_ids(&app, &a).await;
    let ids = Victim {
        tenant: a.id,
        user: member,
        channel,
        message,
        webhook,
        summary: crate::summaries::request(&app, &a, channel).await,
        job,
        provider: crate::identity::create_provider(
            &app,
            &a,
            crate::identity::oidc_body("https://idp.example"),
        )
        .await,
        impersonation: crate::impersonation::start(&app, &a).await.0,
        export: crate::exports::request(&app, &a.owner_token, json!({"scope": "tenant"})).await,
        erasure: crate::erasure::spare_erasure(&app, &a).await,
        calendar_account,
        calendar_event,
        calendar_grant,
    };
    // A relocation whose progress the operator may read.
    let started = app
        .post(
            &format!("/v1/tenants/{}/relocation", a.id),
            &app.platform_token(),
            json!({"to_region": "europe-west1"}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);

    let operator = operator_token(&app);
    let before = counts(&app).await;
    let table = routes();
    let mut allowed = Vec::new();
    let mut refused = 0;
    for op in OPERATIONS
        .iter()
        .filter(|op| !matches!(op.who, Who::Public | Who::SignIn))
    {
        let route = table
            .iter()
            .find(|r| r.method == op.method && bare(r.path) == op.path)
            .unwrap_or_else(|| panic!("{} {} is not in the isolation table", op.method, op.path));
        let path = ids.path(route);
        let reply = app
            .request(route.method, &path, Some(&operator), (route.body)())
            .await;
        if OPERATOR_OPERATIONS.contains(&op.id) {
            assert!(
                reply.status.is_success(),
                "{} {path} as an operator: {} {}",
                op.method,
                reply.status,
                reply.body
            );
            allowed.push(op.id);
        } else {
            assert_problem(&reply, 403, "operator_forbidden");
            refused += 1;
        }
    }
    allowed.sort_unstable();
    let mut expected = OPERATOR_OPERATIONS.to_vec();
    expected.sort_unstable();
    assert_eq!(
        allowed, expected,
        "an operator operation is missing from the contract"
    );
    assert!(
        refused >= 25,
        "only {refused} operations refused the operator"
    );

    // Nothing the refused calls would have written was written (counted as the
    // superuser: the relocation started above may have moved the tenant away
    // from this single-node test's region by now).
    assert_eq!(
        counts(&app).await,
        before,
        "tables changed under refused operator calls"
    );
}

/// Rows per table the operator's refused calls could have written.
async fn counts(app: &TestApp) -> Vec<i64> {
    let db = app.superuser_client().await;
    let mut counts = Vec::new();
    for table in [
        "tenants",
        "users",
        "channels",
        "messages",
        "webhook_endpoints",
    ] {
        let row = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap();
        counts.push(row.get::<_, i64>(0));
    }
    let row = db
        .query_one("SELECT count(*) FROM jobs WHERE state = 'cancelled'", &[])
        .await
        .unwrap();
    counts.push(row.get::<_, i64>(0));
    counts
}

/// The reduced view carries where a tenant lives and whether it is served, and
/// nothing the tenant set (name, plan, limits).
#[actix_web::test]
async fn the_directory_view_shows_placement_not_settings() {
    let app = spawn_app().await;
    let a = app.provision("placed").await;
    let reply = app
        .get("/v1/directory?slug=placed", &operator_token(&app))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", reply.body);
    let entry = items[0].as_object().unwrap();
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["home_region", "id", "residency", "slug", "status"]);
    assert_eq!(entry["id"], a.id.to_string());
    assert_eq!(entry["home_region"], "us-east1");
    assert_eq!(entry["status"], "active");

    // The full view stays the platform admin's.
    let full = app
        .get("/v1/tenants?slug=placed", &operator_token(&app))
        .await;
    assert_problem(&full, 403, "operator_forbidden");
    let admin = app
        .get("/v1/tenants?slug=placed", &app.platform_token())
        .await;
    assert!(
        admin.body["items"][0]["limits"].is_object(),
        "{}",
        admin.body
    );
    // A tenant's own token never lists the directory.
    let owner = app.get("/v1/directory", &a.owner_token).await;
    assert_problem(&owner, 403, "forbidden");
}

/// An operator's drain is audited in the platform trail under its name, like an
/// admin's, and undrain puts the region back.
#[actix_web::test]
async fn an_operator_drains_and_undrains_a_region_and_is_audited() {
    let app = spawn_app().await;
    app.provision("drained-one").await;
    let operator = operator_token(&app);
    let drained = app
        .post("/v1/regions/asia-southeast1/drain", &operator, json!({}))
        .await;
    assert_eq!(drained.status, 200, "{}", drained.body);
    assert_eq!(drained.body["drained"], true);
    let regions = app.get("/v1/regions", &operator).await;
    assert_eq!(regions.status, 200, "{}", regions.body);
    let events = app.platform_events("region_drained", 1).await;
    assert_eq!(events[0]["actor"], "sre-ana", "{:?}", events);
    let undrained = app
        .request(
            "POST",
            "/v1/regions/asia-southeast1/undrain",
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(undrained.status, 200, "{}", undrained.body);
}
