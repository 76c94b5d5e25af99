//! `/v1/tenants`: provisioning validation, the paged directory, who may read and
//! change a tenant, and changes that take effect on the very next request.

use std::collections::HashSet;

use meridian::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn new_tenant(slug: &str) -> Value {
    json!({ "slug": slug, "name": "Acme", "home_region": "us-east1",
            "owner": { "email": format!("owner@{slug}.example"), "display_name": "Owner" } })
}

async fn patch_tenant(
    app: &TestApp,
    id: impl std::fmt::Display,
    token: &str,
    body: Value,
) -> crate::helpers::Reply {
    app.patch(&format!("/v1/tenants/{id}"), token, body).await
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
    let cases = [
        (
            with(json!({ "home_region": "mars-north1" })),
            400,
            "validation_failed",
        ),
        (
            with(json!({ "home_region": "US_EAST" })),
            400,
            "validation_failed",
        ),
        (
            with(json!({ "slug": "Bad_Slug" })),
            400,
            "validation_failed",
        ),
        (with(json!({ "slug": "-dash" })), 400, "validation_failed"),
        (
            with(json!({ "residency": { "jurisdiction": "eu" } })),
            400,
            "residency_violation",
        ),
        (
            with(json!({ "residency": { "regions": ["mars-north1"] } })),
            400,
            "validation_failed",
        ),
        (with(json!({ "colour": "blue" })), 400, "validation_failed"),
        (
            with(json!({ "owner": { "email": "nope", "display_name": "x" } })),
            400,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let reply = app.post("/v1/tenants", &admin, body.clone()).await;
        assert_problem(&reply, status, code);
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
    let small = patch_tenant(
        &app,
        t.id,
        &admin,
        json!({ "limits": { "message_bytes": 10 } }),
    )
    .await;
    assert_eq!(small.status, 200, "{}", small.body);
    assert_eq!(small.body["limits"]["message_bytes"], 10);
    let eleven = app
        .post(&messages, &t.owner_token, json!({ "body": "01234567890" }))
        .await;
    assert_problem(&eleven, 413, "message_too_large");
    let ten = app
        .post(&messages, &t.owner_token, json!({ "body": "0123456789" }))
        .await;
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
    let renamed = patch_tenant(
        &app,
        t.id,
        &t.owner_token,
        json!({ "name": "Owner's Pick" }),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Owner's Pick");
    for body in [
        json!({ "plan": "pro" }),
        json!({ "status": "suspended" }),
        json!({ "limits": { "users": 50 } }),
    ] {
        assert_problem(
            &patch_tenant(&app, t.id, &t.owner_token, body).await,
            403,
            "forbidden",
        );
    }
    let residency = json!({ "residency": { "regions": ["us-east1"] } });
    assert_problem(
        &patch_tenant(&app, t.id, &t.owner_token, residency.clone()).await,
        403,
        "forbidden",
    );
    let (_, admin) = app.add_user(&t, "admin").await;
    assert_problem(
        &patch_tenant(&app, t.id, &admin, json!({ "name": "x" })).await,
        403,
        "forbidden",
    );

    let (compliance_id, _) = app.add_user(&t, "compliance").await;
    let compliance = app.token(t.id, compliance_id, Role::Compliance);
    let set = patch_tenant(&app, t.id, &compliance, residency).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["residency"], json!({ "regions": ["us-east1"] }));
    let name = patch_tenant(&app, t.id, &compliance, json!({ "name": "Compliant" })).await;
    assert_problem(&name, 403, "forbidden");
    let eu = patch_tenant(
        &app,
        t.id,
        &compliance,
        json!({ "residency": { "jurisdiction": "eu" } }),
    )
    .await;
    assert_problem(&eu, 400, "residency_violation");
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
        assert_problem(
            &patch_tenant(&app, t.id, &admin, body).await,
            400,
            "validation_failed",
        );
    }
    assert_problem(
        &patch_tenant(&app, t.id, &t.owner_token, json!({})).await,
        400,
        "validation_failed",
    );
    let now = app.get(&format!("/v1/tenants/{}", t.id), &admin).await;
    assert_eq!(now.body["config_version"], 1, "{}", now.body);
    assert_eq!(now.body["limit_overrides"]["users"], Value::Null);
}
