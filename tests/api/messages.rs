//! `/v1/channels/{id}/messages`: keyset paging (newest first, ties by id), 404s
//! for missing channels, cascade on channel delete, roles, exact bodies.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// Follows `next_cursor` from the first page; returns the pages' sizes and items.
async fn all_pages(
    app: &TestApp,
    token: &str,
    channel: Uuid,
    limit: u32,
) -> (Vec<usize>, Vec<Value>) {
    let (mut sizes, mut items, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let mut path = format!("/v1/channels/{channel}/messages?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, token).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let batch = page.body["items"].as_array().unwrap();
        sizes.push(batch.len());
        items.extend(batch.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (sizes, items),
        }
    }
}

/// Asserts strictly descending `(created_at, id)` and returns the ids in order.
fn assert_newest_first(items: &[Value]) -> Vec<Uuid> {
    let keys: Vec<(DateTime<Utc>, Uuid)> = items
        .iter()
        .map(|m| {
            let at = m["created_at"].as_str().unwrap().parse().unwrap();
            (at, m["id"].as_str().unwrap().parse().unwrap())
        })
        .collect();
    for pair in keys.windows(2) {
        assert!(
            pair[0] > pair[1],
            "out of order: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    keys.into_iter().map(|(_, id)| id).collect()
}

#[actix_web::test]
async fn paging_returns_every_message_once_newest_first() {
    let app = spawn_app().await;
    let t = app.provision("paging").await;
    let channel = app.create_channel(&t, "busy").await;
    let mut posted = Vec::new();
    for n in 0..120 {
        posted.push(app.post_message(&t, channel, &format!("message {n}")).await);
    }
    let (sizes, items) = all_pages(&app, &t.owner_token, channel, 50).await;
    assert_eq!(sizes, vec![50, 50, 20]);
    let ids = assert_newest_first(&items);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 120, "duplicates");
    posted.reverse();
    assert_eq!(ids, posted);
    assert_eq!(items[0]["body"], "message 119");
    assert_eq!(items[119]["body"], "message 0");

    // Without `limit`, a page holds 50 and says there is more.
    let first = app
        .get(&format!("/v1/channels/{channel}/messages"), &t.owner_token)
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 50);
    assert!(first.body["next_cursor"].is_string(), "{}", first.body);
    assert_eq!(first.body["items"][0]["id"], posted[0].to_string());
}

#[actix_web::test]
async fn messages_with_the_same_timestamp_page_by_id() {
    let app = spawn_app().await;
    let t = app.provision("ties").await;
    let channel = app.create_channel(&t, "ties").await;
    let before = app.post_message(&t, channel, "older").await;
    // Seven messages sharing one created_at, written directly under RLS.
    let db = app.app_role_client().await;
    db.execute(
        "SELECT set_config('app.tenant_id', $1, false)",
        &[&t.id.to_string()],
    )
    .await
    .unwrap();
    let mut tied: Vec<Uuid> = (0..7).map(|_| Uuid::new_v4()).collect();
    let at = Utc::now() + chrono::Duration::hours(1);
    for id in &tied {
        db.execute(
            "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
             VALUES ($1, $2, 'us-east1', $3, $4, 'tied', $5)",
            &[&t.id, id, &channel, &t.owner_id, &at],
        )
        .await
        .unwrap();
    }
    let (sizes, items) = all_pages(&app, &t.owner_token, channel, 3).await;
    assert_eq!(sizes, vec![3, 3, 2]);
    let ids = assert_newest_first(&items);
    tied.sort_unstable_by(|a, b| b.cmp(a));
    tied.push(before);
    assert_eq!(ids, tied);
}

#[actix_web::test]
async fn missing_channels_are_404() {
    let app = spawn_app().await;
    let t = app.provision("missing").await;
    let path = format!("/v1/channels/{}/messages", Uuid::now_v7());
    let post = app
        .post(&path, &t.owner_token, json!({ "body": "hello?" }))
        .await;
    assert_problem(&post, 404, "not_found");
    assert_problem(&app.get(&path, &t.owner_token).await, 404, "not_found");
    // An existing but empty channel is an empty page, not a 404.
    let channel = app.create_channel(&t, "quiet").await;
    let empty = app
        .get(&format!("/v1/channels/{channel}/messages"), &t.owner_token)
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.body, json!({ "items": [], "next_cursor": null }));
}

#[actix_web::test]
async fn deleting_a_channel_deletes_its_messages() {
    let app = spawn_app().await;
    let t = app.provision("cascade").await;
    let doomed = app.create_channel(&t, "doomed").await;
    let kept = app.create_channel(&t, "kept").await;
    for n in 0..3 {
        app.post_message(&t, doomed, &format!("doomed {n}")).await;
    }
    let survivor = app.post_message(&t, kept, "still here").await;
    let reply = app
        .delete(&format!("/v1/channels/{doomed}"), &t.owner_token)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let path = format!("/v1/channels/{doomed}/messages");
    assert_problem(&app.get(&path, &t.owner_token).await, 404, "not_found");
    let post = app
        .post(&path, &t.owner_token, json!({ "body": "late" }))
        .await;
    assert_problem(&post, 404, "not_found");

    let db = app.app_role_client().await;
    db.execute(
        "SELECT set_config('app.tenant_id', $1, false)",
        &[&t.id.to_string()],
    )
    .await
    .unwrap();
    let count = |channel: Uuid| {
        let db = &db;
        async move {
            let row = db
                .query_one(
                    "SELECT count(*) FROM messages WHERE channel_id = $1",
                    &[&channel],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert_eq!(count(doomed).await, 0);
    assert_eq!(count(kept).await, 1);
    let page = app
        .get(&format!("/v1/channels/{kept}/messages"), &t.owner_token)
        .await;
    assert_eq!(page.body["items"][0]["id"], survivor.to_string());
}

#[actix_web::test]
async fn viewers_read_but_cannot_post() {
    let app = spawn_app().await;
    let t = app.provision("viewers").await;
    let channel = app.create_channel(&t, "general").await;
    let path = format!("/v1/channels/{channel}/messages");
    let (_, viewer) = app.add_user(&t, "viewer").await;
    let refused = app.post(&path, &viewer, json!({ "body": "hi" })).await;
    assert_problem(&refused, 403, "forbidden");
    let (member_id, member) = app.add_user(&t, "member").await;
    let posted = app.post(&path, &member, json!({ "body": "hi" })).await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    assert_eq!(posted.body["author_id"], member_id.to_string());
    let page = app.get(&path, &viewer).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let bodies: Vec<&Value> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"])
        .collect();
    assert_eq!(bodies, vec!["hi"]);
}

#[actix_web::test]
async fn bodies_round_trip_exactly() {
    let app = spawn_app().await;
    let t = app.provision("unicode").await;
    let channel = app.create_channel(&t, "intl").await;
    let path = format!("/v1/channels/{channel}/messages");
    let body = "  Grüße, 世界! 🚀🇪🇺\nzweite Zeile\r\n\ttab — \"quoted\" \\ back\u{200d}slash  ";
    let posted = app
        .post(&path, &t.owner_token, json!({ "body": body }))
        .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    assert_eq!(posted.body["body"], body);
    let location = posted.headers.get("location").unwrap().to_str().unwrap();
    assert_eq!(
        location,
        format!("{path}/{}", posted.body["id"].as_str().unwrap())
    );
    let page = app.get(&path, &t.owner_token).await;
    assert_eq!(page.body["items"][0]["body"], body);
    assert_eq!(page.body["items"][0]["id"], posted.body["id"]);
}

/// The page is written from its rows (`messages::page_json`), not by serde: its
/// bytes must be exactly what serde_json writes for the `Page<Message>` of the
/// same rows read back from the database — bodies that need escaping, non-ASCII
/// text, and a page with a next cursor followed by the last page.
#[actix_web::test]
async fn the_page_is_the_bytes_serde_json_writes_for_its_rows() {
    use meridian::ids::{ChannelId, MessageId, UserId};
    use meridian::pagination::{Keyset, Page};
    use meridian::store::messages::Message;

    let app = spawn_app().await;
    let t = app.provision("pagebytes").await;
    let channel = app.create_channel(&t, "bytes").await;
    for body in [
        "plain",
        "with \"quotes\" and a \\ backslash",
        "tab\tand\nnew line\r\n",
        "ünïcødé — 日本語 🎉 \u{2028}",
        "</script><b>&amp;",
    ] {
        app.post_message(&t, channel, body).await;
    }
    let rows = app
        .superuser_client()
        .await
        .query(
            "SELECT id, channel_id, author_id, body, created_at FROM messages
             WHERE tenant_id = $1 AND channel_id = $2 ORDER BY created_at DESC, id DESC",
            &[&t.id, &channel],
        )
        .await
        .unwrap();
    let message = |row: &tokio_postgres::Row| Message {
        id: MessageId::from_uuid(row.get(0)),
        channel_id: ChannelId::from_uuid(row.get(1)),
        author_id: UserId::from_uuid(row.get(2)),
        body: row.get(3),
        created_at: row.get(4),
    };
    let cursor = |m: &Message| {
        Keyset {
            at: m.created_at,
            id: *m.id.as_uuid(),
        }
        .encode()
    };
    let first = Page {
        items: rows[..3].iter().map(message).collect(),
        next_cursor: None,
    };
    let next = cursor(&first.items[2]);
    let first = Page {
        next_cursor: Some(next.clone()),
        ..first
    };
    let last: Page<Message> = Page {
        items: rows[3..].iter().map(message).collect(),
        next_cursor: None,
    };
    let path = format!("/v1/channels/{channel}/messages?limit=3");
    for (path, page) in [
        (path.clone(), first),
        (format!("{path}&cursor={next}"), last),
    ] {
        let mut res = app
            .client
            .get(format!("{}{path}", app.base))
            .insert_header(("Authorization", format!("Bearer {}", t.owner_token)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let bytes = res.body().await.unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            serde_json::to_string(&page).unwrap()
        );
    }
}
