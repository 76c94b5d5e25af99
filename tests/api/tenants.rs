//! `/v1/tenants`: provisioning validation, the paged directory, who may read and
//! change a tenant, and changes that take effect on the very next request.

use std::collections::HashSet;
use std::fmt::Display;

use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, assert_problem, spawn_app};

fn new_tenant(slug: &str) -> Value {
    json!({ "slug": slug, "name": "Acme", "home_region": "us-east1",
            "owner": { "email": format!("owner@{slug}.example"), "display_name": "Owner" } })
}

async fn patch_tenant(app: &TestApp, id: impl Display, token: &str, body: Value) -> Reply {
    app.patch(&format!("/v1/tenants/{id}"), token, body).await
}

/// Asserts that a PATCH of tenant `id` is refused with `status` and `code`.
async fn refused(
    app: &TestApp,
    id: impl Display,
    token: &str,
    body: Value,
    status: u16,
    code: &str,
) {
    assert_problem(&patch_tenant(app, id, token, body).await, status, code);
}

#[actix_web::test]
async fn provisioning_validates_its_input() {
    let app = spawn_app().await;
    let admin = app.platform_token();
    let with = |change: Value| {
        let mut body = new_tenant("valid");
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        body
    };
    let refused = [
        (json!({ "home_region": "mars-north1" }), "validation_failed"),
        (json!({ "home_region": "US_EAST" }), "validation_failed"),
        (json!({ "slug": "Bad_Slug" }), "validation_failed"),
        (json!({ "slug": "-dash" }), "validation_failed"),
        (
            json!({ "residency": { "jurisdiction": "eu" } }),
            "residency_violation",
        ),
        (
            json!({ "residency": { "regions": ["mars-north1"] } }),
            "validation_failed",
        ),
        (json!({ "colour": "blue" }), "validation_failed"),
        (
            json!({ "owner": { "email": "nope", "display_name": "x" } }),
            "validation_failed",
        ),
    ];
    for (change, code) in refused {
        let reply = app.post("/v1/tenants", &admin, with(change)).await;
        assert_problem(&reply, 400, code);
    }
    // None of the refused requests left a tenant behind.
    let list = app.get("/v1/tenants", &admin).await;
    assert_eq!(list.body["items"], json!([]), "{}", list.body);

    let created = app.post("/v1/tenants", &admin, new_tenant("valid")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert!(created.body["owner"]["id"].is_string(), "{}", created.body);
    assert_eq!(created.body["owner"]["role"], "owner");
    assert_eq!(created.body["plan"], "free");
    let location = created.headers.get("location").unwrap().to_str().unwrap();
    assert_eq!(location, format!("/v1/tenants/{id}"));
    assert_eq!(app.get(location, &admin).await.body["slug"], "valid");

    let again = app.post("/v1/tenants", &admin, new_tenant("valid")).await;
    assert_problem(&again, 409, "slug_taken");
}

#[actix_web::test]
async fn the_directory_pages_through_every_tenant_once() {
    let app = spawn_app().await;
    let mut provisioned = Vec::new();
    for n in 0..5 {
        provisioned.push(app.provision(&format!("page-{n}")).await.id.to_string());
    }
    let admin = app.platform_token();
    let (mut seen, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants?limit=2&cursor={c}"),
            None => "/v1/tenants?limit=2".to_owned(),
        };
        let page = app.get(&path, &admin).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(items.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    provisioned.reverse(); // newest first
    assert_eq!(seen, provisioned);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
}

#[actix_web::test]
async fn members_read_their_own_tenant_only() {
    let app = spawn_app().await;
    let t = app.provision("mine").await;
    let other = app.provision("theirs").await;
    let (_, member) = app.add_user(&t, "member").await;
    let own = app.get(&format!("/v1/tenants/{}", t.id), &member).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["slug"], "mine");
    assert_problem(&app.get("/v1/tenants", &member).await, 403, "forbidden");
    assert_problem(
        &app.get(&format!("/v1/tenants/{}", other.id), &member).await,
        404,
        "not_found",
    );
    let rename = patch_tenant(&app, other.id, &other.owner_token, json!({ "name": "x" })).await;
    assert_eq!(rename.status, 200, "{}", rename.body);
    let cross = patch_tenant(&app, other.id, &t.owner_token, json!({ "name": "y" })).await;
    assert_problem(&cross, 404, "not_found");
}

#[actix_web::test]
async fn platform_changes_apply_on_the_next_request() {
    let app = spawn_app().await;
    let t = app.provision("changes").await;
    let admin = app.platform_token();
    let renamed = patch_tenant(&app, t.id, &admin, json!({ "name": "Renamed Ltd" })).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    let own = app
        .get(&format!("/v1/tenants/{}", t.id), &t.owner_token)
        .await;
    assert_eq!(own.body["name"], "Renamed Ltd");

    let channel = app.create_channel(&t, "general").await;
    let messages = format!("/v1/channels/{channel}/messages");
    let limits = json!({ "limits": { "message_bytes": 10 } });
    let small = patch_tenant(&app, t.id, &admin, limits).await;
    assert_eq!(small.status, 200, "{}", small.body);
    assert_eq!(small.body["limits"]["message_bytes"], 10);
    let eleven = json!({ "body": "01234567890" });
    let eleven = app.post(&messages, &t.owner_token, eleven).await;
    assert_problem(&eleven, 413, "message_too_large");
    let ten = json!({ "body": "0123456789" });
    let ten = app.post(&messages, &t.owner_token, ten).await;
    assert_eq!(ten.status, 201, "{}", ten.body);

    let (_, member) = app.add_user(&t, "member").await;
    let off = patch_tenant(&app, t.id, &admin, json!({ "status": "suspended" })).await;
    assert_eq!(off.status, 200, "{}", off.body);
    for token in [&t.owner_token, &member] {
        assert_problem(
            &app.get("/v1/channels", token).await,
            403,
            "tenant_suspended",
        );
    }
    assert_eq!(
        app.get(&format!("/v1/tenants/{}", t.id), &admin).await.body["status"],
        "suspended"
    );
    let on = patch_tenant(&app, t.id, &admin, json!({ "status": "active" })).await;
    assert_eq!(on.status, 200, "{}", on.body);
    for token in [&t.owner_token, &member] {
        assert_eq!(app.get("/v1/channels", token).await.status, 200);
    }
}

#[actix_web::test]
async fn tenant_roles_change_only_their_part() {
    let app = spawn_app().await;
    let t = app.provision("roles").await;
    let name = json!({ "name": "Owner's Pick" });
    let renamed = patch_tenant(&app, t.id, &t.owner_token, name).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Owner's Pick");
    for body in [
        json!({ "plan": "pro" }),
        json!({ "status": "suspended" }),
        json!({ "limits": { "users": 50 } }),
    ] {
        refused(&app, t.id, &t.owner_token, body, 403, "forbidden").await;
    }
    let residency = json!({ "residency": { "regions": ["us-east1"] } });
    refused(
        &app,
        t.id,
        &t.owner_token,
        residency.clone(),
        403,
        "forbidden",
    )
    .await;
    let (_, admin) = app.add_user(&t, "admin").await;
    refused(&app, t.id, &admin, json!({ "name": "x" }), 403, "forbidden").await;

    let (_, compliance) = app.add_user(&t, "compliance").await;
    let set = patch_tenant(&app, t.id, &compliance, residency).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["residency"], json!({ "regions": ["us-east1"] }));
    let name = json!({ "name": "Compliant" });
    refused(&app, t.id, &compliance, name, 403, "forbidden").await;
    let eu = json!({ "residency": { "jurisdiction": "eu" } });
    refused(&app, t.id, &compliance, eu, 400, "residency_violation").await;
    let own = app
        .get(&format!("/v1/tenants/{}", t.id), &t.owner_token)
        .await;
    assert_eq!(own.body["name"], "Owner's Pick");
    assert_eq!(own.body["residency"], json!({ "regions": ["us-east1"] }));
}

#[actix_web::test]
async fn invalid_and_empty_patches_are_refused() {
    let app = spawn_app().await;
    let t = app.provision("invalid").await;
    let admin = app.platform_token();
    let cases = [
        json!({ "limits": { "users": 0 } }),
        json!({ "limits": { "message_bytes": 10_000_000 } }),
        json!({ "limits": { "bogus": 1 } }),
        json!({ "name": "   " }),
        json!({}),
    ];
    for body in cases {
        refused(&app, t.id, &admin, body, 400, "validation_failed").await;
    }
    refused(
        &app,
        t.id,
        &t.owner_token,
        json!({}),
        400,
        "validation_failed",
    )
    .await;
    let now = app.get(&format!("/v1/tenants/{}", t.id), &admin).await;
    assert_eq!(now.body["config_version"], 1, "{}", now.body);
    assert_eq!(now.body["limit_overrides"]["users"], Value::Null);
}

/// `GET /v1/tenants?slug=`: exactly that tenant or an empty list, so a script can
/// look its tenant up instead of creating it twice (issue 12's walk-through).
#[actix_web::test]
async fn the_directory_finds_a_tenant_by_its_exact_slug() {
    let app = spawn_app().await;
    let admin = app.platform_token();
    let acme = app.provision("acme").await;
    app.provision("acme-eu").await;

    let found = app.get("/v1/tenants?slug=acme", &admin).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let items = found.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", found.body);
    assert_eq!(items[0]["id"], acme.id.to_string());
    assert_eq!(items[0]["slug"], "acme");

    let none = app.get("/v1/tenants?slug=acm", &admin).await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body["items"], json!([]));
    assert_problem(
        &app.get("/v1/tenants?slug=Not_A_Slug", &admin).await,
        400,
        "invalid_query",
    );
    assert_problem(
        &app.get("/v1/tenants?slug=acme", &acme.owner_token).await,
        403,
        "forbidden",
    );
}
