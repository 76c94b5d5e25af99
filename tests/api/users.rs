//! `/v1/users`: the CRUD routes, token death on disable/delete, owner rules and
//! the plan's user limit (also under concurrent creates).

use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, assert_problem, spawn_app};

async fn create_user(app: &TestApp, token: &str, email: &str, role: &str) -> crate::helpers::Reply {
    app.post(
        "/v1/users",
        token,
        json!({ "email": email, "display_name": "Someone", "role": role }),
    )
    .await
}

/// Ids of the tenant's users, as listed (one page is enough in these tests).
async fn listed_ids(app: &TestApp, t: &Tenant) -> Vec<String> {
    let reply = app.get("/v1/users?limit=200", &t.owner_token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["next_cursor"].is_null(), "{}", reply.body);
    let items = reply.body["items"].as_array().unwrap();
    items
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn create_list_get_patch_delete() {
    let app = spawn_app().await;
    let t = app.provision("crud").await;
    let created = create_user(&app, &t.owner_token, " Ada@Example.COM ", "admin").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let location = created.headers.get("location").unwrap().to_str().unwrap();
    assert_eq!(location, format!("/v1/users/{id}"));
    assert_eq!(created.body["email"], "ada@example.com");
    assert_eq!(created.body["role"], "admin");
    assert_eq!(created.body["status"], "active");

    // Newest first: the new user, then the owner.
    assert_eq!(
        listed_ids(&app, &t).await,
        vec![id.clone(), t.owner_id.to_string()]
    );

    let got = app.get(location, &t.owner_token).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body, created.body);

    let patched = app
        .patch(
            location,
            &t.owner_token,
            json!({ "display_name": "Ada L." }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["display_name"], "Ada L.");
    let got = app.get(location, &t.owner_token).await;
    assert_eq!(got.body["display_name"], "Ada L.");
    assert_eq!(got.body["role"], "admin");

    let deleted = app.delete(location, &t.owner_token).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_problem(&app.get(location, &t.owner_token).await, 404, "not_found");
    assert_problem(
        &app.delete(location, &t.owner_token).await,
        404,
        "not_found",
    );
    assert_eq!(listed_ids(&app, &t).await, vec![t.owner_id.to_string()]);
}

#[actix_web::test]
async fn duplicate_email_is_refused_case_insensitively() {
    let app = spawn_app().await;
    let t = app.provision("dupes").await;
    let first = create_user(&app, &t.owner_token, "dup@example.com", "member").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = create_user(&app, &t.owner_token, "DUP@Example.com", "viewer").await;
    assert_problem(&again, 409, "email_taken");
    // A deleted user's email is free again.
    let id = first.body["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/users/{id}"), &t.owner_token)
            .await
            .status,
        204
    );
    let reused = create_user(&app, &t.owner_token, "Dup@example.com", "member").await;
    assert_eq!(reused.status, 201, "{}", reused.body);
}

#[actix_web::test]
async fn disabled_token_fails_at_once_and_works_again_when_reenabled() {
    let app = spawn_app().await;
    let t = app.provision("disable").await;
    let (id, token) = app.add_user(&t, "member").await;
    let path = format!("/v1/users/{id}");
    assert_eq!(app.get("/v1/channels", &token).await.status, 200);

    let off = app
        .patch(&path, &t.owner_token, json!({ "status": "disabled" }))
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["status"], "disabled");
    assert_problem(
        &app.get("/v1/channels", &token).await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &app.get(&format!("/v1/tenants/{}", t.id), &token).await,
        401,
        "unauthenticated",
    );

    let on = app
        .patch(&path, &t.owner_token, json!({ "status": "active" }))
        .await;
    assert_eq!(on.status, 200, "{}", on.body);
    assert_eq!(app.get("/v1/channels", &token).await.status, 200);
}

#[actix_web::test]
async fn deleted_user_token_fails_at_once_and_user_is_gone() {
    let app = spawn_app().await;
    let t = app.provision("deleted").await;
    let (id, token) = app.add_user(&t, "admin").await;
    assert_eq!(app.get("/v1/users", &token).await.status, 200);
    assert_eq!(
        app.delete(&format!("/v1/users/{id}"), &t.owner_token)
            .await
            .status,
        204
    );
    assert_problem(&app.get("/v1/users", &token).await, 401, "unauthenticated");
    assert_problem(
        &app.get(&format!("/v1/users/{id}"), &t.owner_token).await,
        404,
        "not_found",
    );
}

#[actix_web::test]
async fn only_owners_make_owners() {
    let app = spawn_app().await;
    let t = app.provision("owners").await;
    let (_, admin) = app.add_user(&t, "admin").await;
    let by_admin = create_user(&app, &admin, "boss@example.com", "owner").await;
    assert_problem(&by_admin, 403, "forbidden");
    let (member, _) = app.add_user(&t, "member").await;
    let promote = app
        .patch(
            &format!("/v1/users/{member}"),
            &admin,
            json!({ "role": "owner" }),
        )
        .await;
    assert_problem(&promote, 403, "forbidden");
    let by_owner = create_user(&app, &t.owner_token, "boss@example.com", "owner").await;
    assert_eq!(by_owner.status, 201, "{}", by_owner.body);
    assert_eq!(by_owner.body["role"], "owner");
}

#[actix_web::test]
async fn the_last_active_owner_stays() {
    let app = spawn_app().await;
    let t = app.provision("lastowner").await;
    let me = format!("/v1/users/{}", t.owner_id);
    for change in [json!({ "role": "admin" }), json!({ "status": "disabled" })] {
        let reply = app.patch(&me, &t.owner_token, change).await;
        assert_problem(&reply, 409, "last_owner");
    }
    assert_problem(&app.delete(&me, &t.owner_token).await, 409, "last_owner");
    assert_eq!(app.get(&me, &t.owner_token).await.body["role"], "owner");

    // With a second owner, the first may be disabled, then deleted; not the second.
    let (second, second_token) = app.add_user(&t, "owner").await;
    let off = app
        .patch(&me, &second_token, json!({ "status": "disabled" }))
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    let second_path = format!("/v1/users/{second}");
    let demote = app
        .patch(&second_path, &second_token, json!({ "role": "admin" }))
        .await;
    assert_problem(&demote, 409, "last_owner");
    assert_eq!(app.delete(&me, &second_token).await.status, 204);
    assert_problem(
        &app.delete(&second_path, &second_token).await,
        409,
        "last_owner",
    );
    let demote_other = app
        .patch(&me, &second_token, json!({ "role": "admin" }))
        .await;
    assert_problem(&demote_other, 404, "not_found");
}

#[actix_web::test]
async fn plan_user_limit_applies_on_the_next_request() {
    let app = spawn_app().await;
    let t = app.provision("userlimit").await;
    let admin = app.platform_token();
    let tenant_path = format!("/v1/tenants/{}", t.id);
    for _ in 0..3 {
        app.add_user(&t, "member").await;
    }
    // Four users now; a limit of 3 refuses the very next create.
    let set = app
        .patch(&tenant_path, &admin, json!({ "limits": { "users": 3 } }))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["limits"]["users"], 3);
    let over = create_user(&app, &t.owner_token, "late@example.com", "member").await;
    assert_problem(&over, 403, "plan_limit_exceeded");

    // Deleting two brings the count to 2: exactly one more fits.
    let ids = listed_ids(&app, &t).await;
    for id in ids
        .iter()
        .filter(|id| **id != t.owner_id.to_string())
        .take(2)
    {
        assert_eq!(
            app.delete(&format!("/v1/users/{id}"), &t.owner_token)
                .await
                .status,
            204
        );
    }
    assert_eq!(
        create_user(&app, &t.owner_token, "a@example.com", "viewer")
            .await
            .status,
        201
    );
    let over = create_user(&app, &t.owner_token, "b@example.com", "viewer").await;
    assert_problem(&over, 403, "plan_limit_exceeded");

    let raise = app
        .patch(&tenant_path, &admin, json!({ "limits": { "users": 4 } }))
        .await;
    assert_eq!(raise.status, 200, "{}", raise.body);
    assert_eq!(
        create_user(&app, &t.owner_token, "b@example.com", "viewer")
            .await
            .status,
        201
    );
    assert_eq!(listed_ids(&app, &t).await.len(), 4);
}

#[actix_web::test]
async fn user_limit_is_exact_under_concurrent_creates() {
    let app = spawn_app().await;
    let t = app.provision("racing").await;
    let set = app
        .patch(
            &format!("/v1/tenants/{}", t.id),
            &app.platform_token(),
            json!({ "limits": { "users": 5 } }),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);

    let emails: Vec<String> = (0..12)
        .map(|_| format!("{}@example.com", Uuid::new_v4().simple()))
        .collect();
    let replies = join_all(
        emails
            .iter()
            .map(|email| create_user(&app, &t.owner_token, email, "member")),
    )
    .await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        created,
        4,
        "owner + 4 = 5: {:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != 201) {
        match reply.status.as_u16() {
            403 => assert_problem(reply, 403, "plan_limit_exceeded"),
            503 => assert_problem(reply, 503, "retry_exhausted"),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!(listed_ids(&app, &t).await.len(), 5);
}
