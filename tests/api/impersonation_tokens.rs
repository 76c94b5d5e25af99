//! Impersonation tokens beyond their tenant (issue 14 part 4): an `act` token
//! without its row, another tenant's ids, and the tenant's home region (residency)
//! for the start and the impersonation's requests.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{assert_problem, spawn_app};
use crate::impersonation::{ids, start};

/// The `act` claim is verified against its row: a validly signed token with
/// `act` and no impersonation behind it is refused, and so is half of one.
#[actix_web::test]
async fn an_act_token_without_its_impersonation_is_refused() {
    let app = spawn_app().await;
    let a = app.provision("forged").await;
    let b = app.provision("elsewhere").await;
    let (b_imp, _) = start(&app, &b).await;
    let now = meridian::auth::keys::unix_now();
    let token = |sub: String, act: Option<Value>, imp: Option<String>| {
        let mut claims = json!({
            "sub": sub, "tid": a.id, "role": "admin", "iss": "meridian-local",
            "aud": "meridian-api", "exp": now + 600, "iat": now, "nbf": now,
        });
        if let Some(act) = act {
            claims["act"] = act;
        }
        if let Some(imp) = imp {
            claims["imp"] = json!(imp);
        }
        app.sign_value(&claims)
    };
    let random = Uuid::new_v4().to_string();
    let act = || Some(json!({"sub": "mallory"}));
    for (what, forged) in [
        ("no row", token(random.clone(), act(), Some(random.clone()))),
        (
            "another tenant's impersonation",
            token(b_imp.to_string(), act(), Some(b_imp.to_string())),
        ),
        (
            "act without imp",
            token(a.owner_id.to_string(), act(), None),
        ),
        (
            "imp without act",
            token(random.clone(), None, Some(random.clone())),
        ),
        (
            "sub is a user, not the impersonation",
            token(a.owner_id.to_string(), act(), Some(random.clone())),
        ),
    ] {
        for path in ["/v1/channels".to_owned(), format!("/v1/tenants/{}", a.id)] {
            let reply = app.get(&path, &forged).await;
            assert_eq!(reply.status, 401, "{what} on {path}: {}", reply.body);
        }
    }
    // The owner's own token is untouched by all this.
    assert_eq!(app.get("/v1/channels", &a.owner_token).await.status, 200);
}

/// Tenant B's owner against tenant A's impersonations: 404, like a missing id.
#[actix_web::test]
async fn another_tenants_impersonations_answer_404() {
    let app = spawn_app().await;
    let a = app.provision("watched").await;
    let b = app.provision("watcher").await;
    let (a_imp, a_token) = start(&app, &a).await;
    for path in [
        format!("/v1/tenants/{}/impersonations/{a_imp}", a.id),
        format!("/v1/tenants/{}/impersonations/{a_imp}", b.id),
    ] {
        assert_problem(&app.delete(&path, &b.owner_token).await, 404, "not_found");
    }
    let list = app
        .get(
            &format!("/v1/tenants/{}/impersonations", b.id),
            &b.owner_token,
        )
        .await;
    assert_eq!(list.body["items"], json!([]), "{}", list.body);
    // A's impersonation token is A's only: B's ids are not found.
    let b_channel = app.create_channel(&b, "b-only").await;
    let reply = app
        .get(&format!("/v1/channels/{b_channel}"), &a_token)
        .await;
    assert_problem(&reply, 404, "not_found");
    // A's impersonation still works after B's attempts.
    assert_eq!(app.get("/v1/channels", &a_token).await.status, 200);
}

/// Residency: a platform admin's start (and the impersonation's requests) are
/// served in the tenant's home region, forwarded inside the residency and
/// redirected from outside it; the audit rows are written there.
#[actix_web::test]
async fn impersonation_requests_are_routed_to_the_tenants_home_region() {
    use crate::regions::{header, provision_in, spawn_regions};
    let nodes = spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let (us, west1, west3) = (
        &nodes["us-east1"],
        &nodes["europe-west1"],
        &nodes["europe-west3"],
    );
    let (tenant, owner) = provision_in(
        west1,
        "eu-viewed",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    let path = format!("/v1/tenants/{tenant}/impersonations");
    // From another EU region: forwarded to the home region and served there.
    let started = west3
        .post(
            &path,
            &west3.platform_token(),
            json!({"reason": "eu ticket"}),
        )
        .await;
    assert_eq!(started.status, 201, "{}", started.body);
    assert_eq!(header(&started, "x-meridian-region"), "europe-west1");
    let (_, token) = ids(&started.body);
    let read = west3.get("/v1/channels", &token).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(header(&read, "x-meridian-region"), "europe-west1");
    // From outside the residency: redirected, nothing processed there.
    let mut outside = crate::oidc::no_redirects()
        .post(format!("{}{path}", us.base))
        .insert_header(("Authorization", format!("Bearer {}", us.platform_token())))
        .send_json(&json!({"reason": "us ticket"}))
        .await
        .unwrap();
    assert_eq!(outside.status(), 307);
    let _ = outside.body().await;
    let mut as_imp = crate::oidc::no_redirects()
        .get(format!("{}/v1/channels", us.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(as_imp.status(), 307);
    let _ = as_imp.body().await;
    // One impersonation; its request audited once, in the home region's rows.
    let db = west1.superuser_client().await;
    let rows = db
        .query(
            "SELECT home_region FROM impersonations WHERE tenant_id = $1 \
             UNION ALL SELECT home_region FROM audit_events WHERE tenant_id = $1 \
             AND action = 'impersonated_request'",
            &[&tenant],
        )
        .await
        .unwrap();
    let regions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(regions, ["europe-west1", "europe-west1"]);
    let audit = west1.get("/v1/audit?limit=200", &owner).await;
    assert!(audit.body.to_string().contains("impersonated_request"));
}
