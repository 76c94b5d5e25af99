//! `/v1/search`: only the caller's tenant's messages, whatever the query; ranked
//! by relevance; paged by `next_cursor`; bounded query length.

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Reply, Tenant, TestApp, assert_problem, spawn_app};

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn search(app: &TestApp, tenant: &Tenant, q: &str, extra: &str) -> Reply {
    let path = format!("/v1/search?q={}{extra}", encode(q));
    app.get(&path, &tenant.owner_token).await
}

fn ids(reply: &Reply) -> Vec<Uuid> {
    let items = reply.body["items"].as_array().expect("items");
    items
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Posts `bodies` in a new channel of `tenant`; returns the message ids in order.
async fn post_all(app: &TestApp, tenant: &Tenant, bodies: &[&str]) -> Vec<Uuid> {
    let channel = app.create_channel(tenant, "search").await;
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(app.post_message(tenant, channel, body).await);
    }
    ids
}

const A_BODIES: [&str; 3] = [
    "quarterly banana forecast aardvark",
    "banana banana banana quarterly forecast",
    "banana smoothie recipe",
];
/// B shares A's words; `zeppelin` and `bravo` are B's alone.
const B_BODIES: [&str; 3] = [
    "quarterly banana forecast zeppelin",
    "banana smoothie zeppelin bravo secret",
    "bravo tenant_id 1=1 香蕉 bänänä",
];

#[actix_web::test]
async fn search_only_ever_returns_the_callers_messages() {
    let app = spawn_app().await;
    let (a, b) = (
        app.provision("search-a").await,
        app.provision("search-b").await,
    );
    let a_ids = post_all(&app, &a, &A_BODIES).await;
    let b_posted = post_all(&app, &b, &B_BODIES).await;
    let b_ids: HashSet<Uuid> = b_posted.iter().copied().collect();
    let (q256, q257) = ("banana or ".repeat(25) + "banana", "x".repeat(257));
    assert_eq!(q256.chars().count(), 256);
    let b_id = b.id.to_string();
    let all: &[usize] = &[0, 1, 2];
    // (query, Some(A's expected messages) or None where only isolation is checked)
    let cases: Vec<(&str, Option<&[usize]>)> = vec![
        ("banana", Some(all)),
        ("quarterly banana forecast", Some(&[0, 1])),
        ("\"quarterly banana\"", Some(&[0])),
        ("banana OR anything", Some(all)),
        ("banana or zeppelin", Some(all)),
        ("-forecast banana", Some(&[2])),
        ("aardvark", Some(&[0])),
        ("zeppelin", Some(&[])),
        ("bravo", Some(&[])),
        ("' OR 1=1 --", Some(&[])),
        ("banana') OR ('1'='1", None),
        ("banana | zeppelin & !aardvark", None),
        ("banana:* <-> (forecast)", None),
        ("%", Some(&[])),
        ("*", Some(&[])),
        ("tenant_id", Some(&[])),
        (&b_id, Some(&[])),
        ("香蕉 bänänä 🍌", Some(&[])),
        ("\\'; SELECT * FROM messages; --", Some(&[])),
        (&q256, Some(all)),
        ("the and of", Some(&[])),
    ];
    for (q, expected) in cases {
        let reply = search(&app, &a, q, "").await;
        assert_eq!(reply.status, 200, "{q:?}: {}", reply.body);
        let found = ids(&reply);
        for id in &found {
            assert!(!b_ids.contains(id), "{q:?} returned B's message {id}");
            assert!(a_ids.contains(id), "{q:?} returned unknown message {id}");
        }
        let text = reply.body.to_string();
        for leak in B_BODIES.iter().chain(&["zeppelin", "bravo", "香蕉"]) {
            assert!(!text.contains(leak), "{q:?} leaked B's text: {text}");
        }
        if let Some(expected) = expected {
            let got: HashSet<Uuid> = found.into_iter().collect();
            let want: HashSet<Uuid> = expected.iter().map(|&i| a_ids[i]).collect();
            assert_eq!(got, want, "{q:?}: {}", reply.body);
        }
    }
    // And B, searching the shared words, sees only its own.
    let reply = search(&app, &b, "banana", "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got: HashSet<Uuid> = ids(&reply).into_iter().collect();
    assert_eq!(
        got,
        HashSet::from([b_posted[0], b_posted[1]]),
        "{}",
        reply.body
    );

    assert_problem(&search(&app, &a, &q257, "").await, 400, "validation_failed");
}

#[actix_web::test]
async fn more_occurrences_rank_first() {
    let app = spawn_app().await;
    let a = app.provision("rank").await;
    // The weaker match is posted last, so newest-first could not explain the order.
    let posted = post_all(
        &app,
        &a,
        &[
            "mango mango mango forecast mango",
            "mango forecast",
            "unrelated words entirely",
        ],
    )
    .await;
    let reply = search(&app, &a, "mango", "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(ids(&reply), posted[..2], "{}", reply.body);
    let ranks: Vec<f64> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rank"].as_f64().unwrap())
        .collect();
    assert!(ranks[0] > ranks[1], "ranks {ranks:?}");
}

#[actix_web::test]
async fn paging_yields_every_match_once() {
    let app = spawn_app().await;
    let (a, b) = (app.provision("page-a").await, app.provision("page-b").await);
    let bodies = [
        "kiwi one",
        "kiwi kiwi two",
        "kiwi three",
        "no match",
        "kiwi four",
        "kiwi kiwi kiwi five",
    ];
    let posted = post_all(&app, &a, &bodies).await;
    post_all(&app, &b, &bodies).await;
    let matching: HashSet<Uuid> = posted
        .iter()
        .copied()
        .filter(|&id| id != posted[3])
        .collect();

    let (mut seen, mut ranks, mut sizes, mut cursor) =
        (Vec::new(), Vec::new(), Vec::new(), None::<String>);
    loop {
        let extra = match &cursor {
            Some(c) => format!("&limit=2&cursor={c}"),
            None => "&limit=2".to_owned(),
        };
        let reply = search(&app, &a, "kiwi", &extra).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let items = reply.body["items"].as_array().unwrap();
        sizes.push(items.len());
        ranks.extend(items.iter().map(|m| m["rank"].as_f64().unwrap()));
        seen.extend(ids(&reply));
        match &reply.body["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => break,
            other => panic!("next_cursor {other}"),
        }
        assert!(sizes.len() < 10, "paging does not end");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), matching);
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "ranks {ranks:?}");
}

#[actix_web::test]
async fn malformed_searches_are_400_problems() {
    let app = spawn_app().await;
    let a = app.provision("bad-search").await;
    let token = &a.owner_token;
    assert_problem(&app.get("/v1/search", token).await, 400, "invalid_query");
    for q in [
        "%20%20%20",
        "banana%00",
        &"x".repeat(257),
        &"%C3%A9".repeat(257),
    ] {
        let reply = app.get(&format!("/v1/search?q={q}"), token).await;
        assert_problem(&reply, 400, "validation_failed");
    }
    for extra in ["&limit=0", "&limit=201", "&limit=abc"] {
        let reply = app.get(&format!("/v1/search?q=banana{extra}"), token).await;
        assert_problem(&reply, 400, "invalid_query");
    }
    for cursor in ["garbage!", "azE6MTp4", "bzE6MTAwMDE", "bzE6LTE"] {
        let reply = app
            .get(&format!("/v1/search?q=banana&cursor={cursor}"), token)
            .await;
        assert_problem(&reply, 400, "invalid_cursor");
    }
    // The bound counts characters, not bytes: 256 two-byte characters are fine.
    let reply = app
        .get(&format!("/v1/search?q={}", "%C3%A9".repeat(256)), token)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

// The search plan (as the service role, under RLS, on `messages_search_idx` with
// `@@` as an index condition) is checked in `plans.rs` with every other hot statement.

/// `search_messages` runs as its owner, so RLS is not its wall: its own predicate
/// is. It answers only for the tenant in `app.tenant_id` (the setting RLS uses),
/// only when the caller's tenant argument is that tenant, nothing when the setting
/// is missing or empty, and an error when it is malformed, as RLS does.
#[actix_web::test]
async fn the_search_function_answers_only_for_the_tenant_in_the_setting() {
    if crate::helpers::cluster().dialect != meridian::db::Dialect::Postgres {
        return;
    }
    let app = spawn_app().await;
    let (a, b) = (app.provision("fn-a").await, app.provision("fn-b").await);
    let a_ids: HashSet<Uuid> = post_all(&app, &a, &["shared word alpha", "shared beta"])
        .await
        .into_iter()
        .collect();
    let b_ids: HashSet<Uuid> = post_all(&app, &b, &["shared word gamma"])
        .await
        .into_iter()
        .collect();
    let mut db = app.app_role_client().await;
    // V7's function (kept for nodes of the previous version) and V9's bounded one.
    for call in [
        "SELECT id FROM public.search_messages($1, $2, 100, 0)",
        "SELECT id FROM public.search_messages($1, $2, 100, 0, 1000)",
    ] {
        // (setting, tenant argument) → the messages expected; None: an error.
        let (a_id, b_id) = (a.id.to_string(), b.id.to_string());
        let none = HashSet::new();
        type Case<'a> = (Option<&'a str>, Uuid, Option<&'a HashSet<Uuid>>);
        let cases: Vec<Case> = vec![
            (Some(&a_id), a.id, Some(&a_ids)),
            (Some(&b_id), b.id, Some(&b_ids)),
            (Some(&a_id), b.id, Some(&none)),
            (Some(&b_id), a.id, Some(&none)),
            (None, a.id, Some(&none)),
            (Some(""), a.id, Some(&none)),
            (Some("not-a-uuid"), a.id, None),
        ];
        for (setting, tenant, expected) in cases {
            let tx = db.transaction().await.unwrap();
            if let Some(value) = setting {
                tx.execute("SELECT set_config('app.tenant_id', $1, true)", &[&value])
                    .await
                    .unwrap();
            }
            let result = tx.query(call, &[&tenant, &"shared"]).await;
            match expected {
                Some(want) => {
                    let got: HashSet<Uuid> = result
                        .unwrap_or_else(|e| panic!("{setting:?}/{tenant}: {e}"))
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    assert_eq!(&got, want, "setting {setting:?}, argument {tenant}");
                }
                None => {
                    let err = result.expect_err("a malformed setting was accepted");
                    assert_eq!(
                        err.code(),
                        Some(&tokio_postgres::error::SqlState::INVALID_TEXT_REPRESENTATION),
                        "{err:?}"
                    );
                }
            }
            drop(tx);
        }
    }

    // The service role can call the function, not change it.
    let replaced = db
        .batch_execute(
            "CREATE OR REPLACE FUNCTION public.search_messages(uuid, text, bigint, bigint)
             RETURNS TABLE (id uuid, channel_id uuid, author_id uuid, body text, created_at timestamptz, rank real)
             LANGUAGE sql AS 'SELECT id, channel_id, author_id, body, created_at, 0::real FROM public.messages'",
        )
        .await
        .expect_err("meridian_app replaced the function");
    assert_eq!(
        replaced.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{replaced:?}"
    );
}
