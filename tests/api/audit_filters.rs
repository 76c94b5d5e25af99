//! `GET /v1/audit` filters (issue 18, the console's audit page): action,
//! actor and a time range, each optional, combined with AND, kept across
//! pages by the cursor; bad values are `400 invalid_query`.

use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

fn actions(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn the_trail_is_filtered_by_action_actor_and_time_across_pages() {
    let app = spawn_app().await;
    let t = app.provision("audit-filters").await;
    let (_, admin) = app.add_user(&t, "admin").await;
    for name in ["one", "two", "three"] {
        app.create_channel(&t, name).await;
    }
    let admin_id = app.get("/v1/me", &admin).await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app
        .post(
            "/v1/channels",
            &admin,
            serde_json::json!({"name": "by-admin"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let all = app.get("/v1/audit?limit=200", &t.owner_token).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(actions(&all.body).iter().any(|a| a != "channel_created"));

    // By action, one per page: four pages, each of that action only.
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?action=channel_created&limit=1&cursor={c}"),
            None => "/v1/audit?action=channel_created&limit=1".to_owned(),
        };
        let page = app.get(&path, &t.owner_token).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            actions(&page.body).iter().all(|a| a == "channel_created"),
            "{}",
            page.body
        );
        seen += actions(&page.body).len();
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 4);

    // By actor (and action): the admin's channel only.
    let mine = app
        .get(
            &format!("/v1/audit?actor={admin_id}&action=channel_created"),
            &t.owner_token,
        )
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let items = mine.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", mine.body);
    assert_eq!(items[0]["actor"], admin_id.as_str());

    // By time: nothing before the tenant existed, everything up to now.
    let before = app
        .get("/v1/audit?to=2000-01-01T00:00:00Z", &t.owner_token)
        .await;
    assert_eq!(
        before.body["items"],
        serde_json::json!([]),
        "{}",
        before.body
    );
    let since = app
        .get(
            "/v1/audit?limit=200&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
            &t.owner_token,
        )
        .await;
    assert_eq!(actions(&since.body), actions(&all.body));

    for bad in [
        "?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "?action=",
        "?from=yesterday",
    ] {
        assert_problem(
            &app.get(&format!("/v1/audit{bad}"), &t.owner_token).await,
            400,
            "invalid_query",
        );
    }
    let long = "x".repeat(101);
    assert_problem(
        &app.get(&format!("/v1/audit?action={long}"), &t.owner_token)
            .await,
        400,
        "invalid_query",
    );
}
