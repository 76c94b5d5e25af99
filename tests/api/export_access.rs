//! Regression of the security review of 2026-11-30: an export is seen and
//! downloaded under the caller's role now, not the role it had when it asked.
//! A compliance officer's tenant export holds every user's data; once that
//! officer is a member, it is as out of reach as any other member's export
//! (404, as a missing id), in `GET /v1/exports/{id}`, its download and the list.
//! A user's export of their own data stays theirs whatever their role.

use serde_json::json;
use uuid::Uuid;

use crate::exports::{download, finished, request};
use crate::helpers::{assert_problem, spawn_app};

#[actix_web::test]
async fn a_demoted_officer_loses_the_tenant_exports_it_asked_for() {
    let app = spawn_app().await;
    let t = app.provision("demoted-exporter").await;
    let (officer, officer_token) = app.add_user(&t, "compliance").await;
    let (member, _) = app.add_user(&t, "member").await;
    let tenant_export = request(&app, &officer_token, json!({ "scope": "tenant" })).await;
    let members_export = request(
        &app,
        &officer_token,
        json!({ "scope": "user", "user_id": member }),
    )
    .await;
    let own_export = request(&app, &officer_token, json!({ "scope": "user" })).await;
    for id in [tenant_export, members_export, own_export] {
        assert_eq!(finished(&app, &officer_token, id).await["state"], "ready");
    }

    let reply = app
        .patch(
            &format!("/v1/users/{officer}"),
            &t.owner_token,
            json!({ "role": "member" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let now_member = app.token(t.id, officer, meridian::auth::Role::Member);

    for id in [tenant_export, members_export] {
        let reply = app.get(&format!("/v1/exports/{id}"), &now_member).await;
        assert_problem(&reply, 404, "not_found");
        let reply = download(&app, &now_member, id, None).await;
        assert_eq!(
            reply.status,
            404,
            "{}",
            String::from_utf8_lossy(&reply.bytes)
        );
        let problem: serde_json::Value = serde_json::from_slice(&reply.bytes).unwrap();
        assert_eq!(problem["code"], "not_found");
    }
    let page = app.get("/v1/exports", &now_member).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let listed: Vec<Uuid> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, [own_export]);
    // Their own data stays theirs.
    let reply = download(&app, &now_member, own_export, None).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.bytes.is_empty());
    // The owner still sees every export.
    let reply = app
        .get(&format!("/v1/exports/{tenant_export}"), &t.owner_token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}
