//! The platform keeps an active platform admin: `PATCH /v1/platform/users/{id}`
//! refuses (409 `last_platform_admin`) to disable or demote the last one, and
//! decides it in the writing transaction, so two concurrent demotions of the
//! last two admins cannot both pass.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, fresh_database, spawn_app_with, test_settings};

const ISSUER: &str = "http://idp.example";

async fn create(app: &TestApp, subject: &str, role: &str) -> String {
    let created = app
        .post(
            "/v1/platform/users",
            &app.platform_token(),
            json!({"issuer": ISSUER, "subject": subject,
                   "email": format!("{subject}@example.com"), "role": role}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

async fn patch(app: &TestApp, id: &str, body: Value) -> crate::helpers::Reply {
    app.patch(
        &format!("/v1/platform/users/{id}"),
        &app.platform_token(),
        body,
    )
    .await
}

#[actix_web::test]
async fn the_last_active_platform_admin_is_neither_disabled_nor_demoted() {
    // A database of its own: the count is over every platform user.
    let app = spawn_app_with(test_settings(&fresh_database().await)).await;
    let (a, b) = (
        create(&app, "a", "platform_admin").await,
        create(&app, "b", "platform_admin").await,
    );
    let ops = create(&app, "ops", "operator").await;

    assert_eq!(
        patch(&app, &a, json!({"status": "disabled"})).await.status,
        200
    );
    for body in [
        json!({"status": "disabled"}),
        json!({"role": "operator"}),
        json!({"status": "disabled", "role": "platform_admin"}),
    ] {
        assert_problem(&patch(&app, &b, body).await, 409, "last_platform_admin");
    }
    // Changes that keep b an active admin, and changes to others, still pass.
    let same = patch(
        &app,
        &b,
        json!({"status": "active", "role": "platform_admin"}),
    )
    .await;
    assert_eq!(same.status, 200, "{}", same.body);
    let other = patch(&app, &ops, json!({"status": "disabled"})).await;
    assert_eq!(other.status, 200, "{}", other.body);
    // A disabled admin's changes never count against the rule.
    let demote_a = patch(&app, &a, json!({"role": "operator"})).await;
    assert_eq!(demote_a.status, 200, "{}", demote_a.body);
    let users = app.get("/v1/platform/users", &app.platform_token()).await;
    let b_row = users.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == b.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (b_row["role"].as_str(), b_row["status"].as_str()),
        (Some("platform_admin"), Some("active")),
        "refused changes wrote nothing"
    );

    // With a second active admin again, b can go.
    let a_back = patch(
        &app,
        &a,
        json!({"status": "active", "role": "platform_admin"}),
    )
    .await;
    assert_eq!(a_back.status, 200, "{}", a_back.body);
    assert_eq!(
        patch(&app, &b, json!({"role": "operator"})).await.status,
        200
    );
}

#[actix_web::test]
async fn concurrent_demotions_of_the_last_two_admins_leave_one() {
    let app = spawn_app_with(test_settings(&fresh_database().await)).await;
    // Each round races the survivor of the last round against a new admin:
    // exactly one of the two changes passes, and its partner survives.
    let mut survivor = create(&app, "first", "platform_admin").await;
    for round in 0..5 {
        let fresh = create(&app, &format!("admin{round}"), "platform_admin").await;
        let (r1, r2) = futures_util::join!(
            patch(&app, &survivor, json!({"status": "disabled"})),
            patch(&app, &fresh, json!({"role": "operator"})),
        );
        let statuses = [r1.status.as_u16(), r2.status.as_u16()];
        assert!(
            statuses == [200, 409] || statuses == [409, 200],
            "round {round}: {statuses:?} {} {}",
            r1.body,
            r2.body
        );
        let refused = if statuses[0] == 409 { &r1 } else { &r2 };
        assert_eq!(
            refused.body["code"], "last_platform_admin",
            "{}",
            refused.body
        );
        if statuses[0] == 200 {
            survivor = fresh;
        }
    }
    let users = app.get("/v1/platform/users", &app.platform_token()).await;
    let active_admins = users.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "platform_admin" && u["status"] == "active")
        .count();
    assert_eq!(active_admins, 1, "{}", users.body);
}
