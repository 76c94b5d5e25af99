//! `GET /v1/auth/{tenant_slug}/origin`: where a browser should sign in to a
//! tenant, answered by whichever node is asked, for the console to navigate
//! there before sign-in.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, fresh_database, spawn_app_with, test_settings};
use crate::regions::{eventually, provision_in, spawn_regions};

async fn origin(node: &TestApp, slug: &str) -> Value {
    let reply = node
        .request("GET", &format!("/v1/auth/{slug}/origin"), None, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[actix_web::test]
async fn the_answer_is_a_region_that_may_serve_the_tenant_and_unknown_slugs_look_served_here() {
    let nodes = spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let (us, eu1, eu3) = (
        &nodes["us-east1"],
        &nodes["europe-west1"],
        &nodes["europe-west3"],
    );
    provision_in(
        us,
        "eu-origin",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    provision_in(us, "us-origin", "us-east1", None).await;

    // At home: sign in here.
    assert_eq!(
        origin(eu1, "eu-origin").await,
        json!({ "region": "europe-west1", "served_here": true })
    );
    // Outside the residency (the sign-in itself would be a 307) and inside it
    // (it would be forwarded, one hop per request): go to the home region.
    for node in [us, eu3] {
        assert_eq!(
            origin(node, "eu-origin").await,
            json!({ "region": "europe-west1", "served_here": false, "origin": eu1.base })
        );
    }
    assert_eq!(
        origin(eu3, "us-origin").await,
        json!({ "region": "us-east1", "served_here": false, "origin": us.base })
    );
    // No tenant, or no slug at all: the same answer as a tenant served here,
    // so the route names no tenant the sign-in would not.
    for slug in ["no-such-tenant", "Not-A-Slug", "platform"] {
        assert_eq!(
            origin(us, slug).await,
            json!({ "region": "us-east1", "served_here": true }),
            "{slug}"
        );
    }

    // Its home drained, the tenant is served where it fails over to in its
    // residency, and the answer follows.
    let drained = us
        .post(
            "/v1/regions/europe-west1/drain",
            &us.platform_token(),
            json!({}),
        )
        .await;
    assert_eq!(drained.status, 200, "{}", drained.body);
    eventually("us-east1 sends eu-origin to europe-west3", async || {
        origin(us, "eu-origin").await["region"] == "europe-west3"
    })
    .await;
    assert_eq!(
        origin(us, "eu-origin").await,
        json!({ "region": "europe-west3", "served_here": false, "origin": eu3.base })
    );
    eventually("europe-west3 serves eu-origin itself", async || {
        origin(eu3, "eu-origin").await["served_here"] == true
    })
    .await;
}

#[actix_web::test]
async fn a_tenant_no_region_may_serve_gets_the_residency_refusal() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let us = &nodes["us-east1"];
    provision_in(
        us,
        "pinned-origin",
        "europe-west1",
        Some(json!({ "regions": ["europe-west1"] })),
    )
    .await;
    let drained = us
        .post(
            "/v1/regions/europe-west1/drain",
            &us.platform_token(),
            json!({ "force": true }),
        )
        .await;
    assert_eq!(drained.status, 200, "{}", drained.body);
    eventually("us-east1 sees europe-west1 drained", async || {
        us.request("GET", "/v1/auth/pinned-origin/origin", None, None)
            .await
            .status
            == 503
    })
    .await;
    let refused = us
        .request("GET", "/v1/auth/pinned-origin/origin", None, None)
        .await;
    assert_problem(&refused, 503, "residency_unavailable");
}

/// Regression of the security review of 2026-11-30: the route needs no token and
/// looks the slug up in the database, so it counts against the client address's
/// limit for requests without a valid token, like a sign-in: a flood of slugs
/// gets 429s instead of a transaction each.
#[actix_web::test]
async fn a_flood_of_lookups_from_one_address_is_rate_limited() {
    let mut settings = test_settings(&fresh_database().await);
    settings.limits.unauthenticated_per_second = 1;
    settings.limits.unauthenticated_burst = 3;
    let app = spawn_app_with(settings).await;
    let mut statuses = Vec::new();
    for n in 0..10 {
        let reply = app
            .request("GET", &format!("/v1/auth/probe-{n}/origin"), None, None)
            .await;
        if reply.status == 429 {
            assert_problem(&reply, 429, "rate_limited");
        }
        statuses.push(reply.status.as_u16());
    }
    // The burst first; then refusals (a slow run may see a token refilled, 1/s).
    assert_eq!(statuses[..3], [200, 200, 200], "{statuses:?}");
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 4, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
}

/// Regression of the security review of 2026-11-30: a sign-in by slug takes its
/// client's anonymous limit before the slug is looked up in the database, and
/// takes it once (the extractor does not take it again): the burst passes, and
/// a refused attempt never reaches the database. With the app role unable to
/// read `tenants`, a lookup fails (500); refused attempts answer 429.
#[actix_web::test]
async fn a_refused_sign_in_flood_costs_no_database_lookup() {
    let mut settings = test_settings(&fresh_database().await);
    settings.limits.unauthenticated_per_second = 1;
    settings.limits.unauthenticated_burst = 3;
    let app = spawn_app_with(settings).await;
    app.provision("flood").await;
    let attempt = || async {
        app.request(
            "POST",
            "/v1/auth/flood/ldap",
            None,
            Some(json!({ "username": "nobody", "password": "wrong" })),
        )
        .await
    };
    // The burst, counted once per attempt: three attempts get past the limit.
    for n in 0..3 {
        let reply = attempt().await;
        assert_ne!(reply.status, 429, "attempt {n}: {}", reply.body);
    }
    let db = app.superuser_client().await;
    db.batch_execute("REVOKE SELECT ON tenants FROM meridian_app")
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = attempt().await;
        if reply.status == 429 {
            assert_problem(&reply, 429, "rate_limited");
        }
        statuses.push(reply.status.as_u16());
    }
    // A token refilled in between (1/s) may let one through to the failing lookup.
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        refused >= 2,
        "the refused attempts reached the database: {statuses:?}"
    );
}
