//! `GET /v1/tenants/{id}/usage`: one tenant's limits and usage for platform
//! admins, the same report its owner's `GET /v1/usage` gives; refused to
//! operators and tenant users.

use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};
use crate::operator::operator_token;

#[actix_web::test]
async fn a_platform_admin_reads_a_tenants_usage_as_its_owner_does() {
    let app = spawn_app().await;
    let a = app.provision("tu-a").await;
    let b = app.provision("tu-b").await;
    let channel = app.create_channel(&a, "general").await;
    app.post_message(&a, channel, "eighteen bytes now").await;
    app.add_user(&a, "member").await;
    let limited = app
        .patch(
            &format!("/v1/tenants/{}", a.id),
            &app.platform_token(),
            json!({"plan": "pro", "limits": {"users": 7}}),
        )
        .await;
    assert_eq!(limited.status, 200, "{}", limited.body);

    let admin = app
        .get(
            &format!("/v1/tenants/{}/usage", a.id),
            &app.platform_token(),
        )
        .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    let owner = app.get("/v1/usage", &a.owner_token).await;
    for field in ["limits", "storage_bytes", "users", "ai_tokens"] {
        assert_eq!(
            admin.body[field], owner.body[field],
            "{field}: {}",
            admin.body
        );
    }
    assert_eq!(admin.body["storage_bytes"], 18);
    assert_eq!(admin.body["users"], 2);
    assert_eq!(admin.body["limits"]["users"], 7);
    // Tenant B's figures are its own.
    let other = app
        .get(
            &format!("/v1/tenants/{}/usage", b.id),
            &app.platform_token(),
        )
        .await;
    assert_eq!(other.body["storage_bytes"], 0, "{}", other.body);
    assert_eq!(other.body["users"], 1, "{}", other.body);

    assert_problem(
        &app.get(
            &format!("/v1/tenants/{}/usage", a.id),
            &operator_token(&app),
        )
        .await,
        403,
        "operator_forbidden",
    );
    assert_problem(
        &app.get(&format!("/v1/tenants/{}/usage", a.id), &a.owner_token)
            .await,
        403,
        "forbidden",
    );
    assert_problem(
        &app.get(
            &format!("/v1/tenants/{}/usage", uuid::Uuid::now_v7()),
            &app.platform_token(),
        )
        .await,
        404,
        "not_found",
    );
    assert_problem(
        &app.get("/v1/tenants/nope/usage", &app.platform_token())
            .await,
        400,
        "invalid_id",
    );
}
