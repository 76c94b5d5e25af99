//! Edits of recurring events against Radicale: the whole series (the master
//! VEVENT changed with If-Match, its RRULE and exceptions kept), one
//! occurrence moved (a RECURRENCE-ID override) and one removed (an EXDATE),
//! an occurrence the series does not have, and removing the series.

use serde_json::{Value, json};

use crate::calendar::{ALICE, FROM, TO, connect, events, link, summaries, sync, with_if_match};
use crate::helpers::{TestApp, assert_problem, spawn_app};
use crate::radicale::Radicale;

/// Weekly at 09:00 UTC on the four Mondays of December 2026.
const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n\
    UID:standup\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T091500Z\r\n\
    SUMMARY:Standup\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n\
    DESCRIPTION:soon\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

fn pairs(items: &[Value]) -> Vec<(String, String)> {
    summaries(items)
}

fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn listed(app: &TestApp, token: &str) -> Vec<Value> {
    events(app, token, FROM, TO).await
}

#[actix_web::test]
async fn a_series_and_single_occurrences_are_edited_through_to_the_server() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/team/").await;
    server.put(ALICE, "/alice/team/standup.ics", SERIES).await;
    let app = spawn_app().await;
    let a = app.provision("calseries").await;
    let token = a.owner_token.clone();
    let account = connect(&app, &a, &server.base, ALICE.1).await;
    link(&app, &token, account, "/alice/team/").await;
    assert_eq!(sync(&app, &a, account).await["state"], "succeeded");
    let items = listed(&app, &token).await;
    assert_eq!(items.len(), 4, "{items:?}");
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let event = format!("/v1/calendar-events/{id}");
    let on_server = async || {
        server
            .request("GET", "/alice/team/standup.ics", ALICE, &[], "")
            .await
    };

    // The whole series: summary and attendees of the master; rule and alarm kept.
    let etag = items[0]["etag"].as_str().unwrap().to_owned();
    let series = json!({"summary": "Team standup", "attendees": ["bob@example.com"]});
    let reply = with_if_match(&app, &token, "PATCH", &event, &etag, Some(series)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["recurring"], true);
    let etag = reply.body["etag"].as_str().unwrap().to_owned();
    let stored = on_server().await;
    assert_eq!(stored.etag.as_deref(), Some(etag.as_str()));
    for kept in [
        "SUMMARY:Team standup",
        "RRULE:FREQ=WEEKLY;COUNT=4",
        "TRIGGER:-PT5M",
        "bob@example.com",
    ] {
        assert!(stored.body.contains(kept), "{kept}: {}", stored.body);
    }
    let items = listed(&app, &token).await;
    assert_eq!(items.len(), 4);
    assert!(
        items
            .iter()
            .all(|e| e["summary"] == "Team standup" && e["etag"] == etag.as_str())
    );

    // One occurrence moved: an override on the server, the others unchanged.
    let moved = with_if_match(
        &app,
        &token,
        "PATCH",
        &format!("{event}?occurrence=2026-12-14T09:00:00Z"),
        &etag,
        Some(
            json!({"summary": "Standup (late)", "starts_at": "2026-12-14T15:00:00Z",
                    "ends_at": "2026-12-14T15:15:00Z"}),
        ),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["recurrence_id"], "2026-12-14T09:00:00Z");
    assert_eq!(moved.body["starts_at"], "2026-12-14T15:00:00Z");
    let etag = moved.body["etag"].as_str().unwrap().to_owned();
    assert!(
        on_server()
            .await
            .body
            .contains("RECURRENCE-ID:20261214T090000Z")
    );

    // One occurrence removed: an EXDATE; the answer carries the new ETag.
    let removed = with_if_match(
        &app,
        &token,
        "DELETE",
        &format!("{event}?occurrence=2026-12-21T09:00:00Z"),
        &etag,
        None,
    )
    .await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    let etag = removed
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let stored = on_server().await;
    assert!(
        stored.body.contains("EXDATE:20261221T090000Z"),
        "{}",
        stored.body
    );
    assert_eq!(stored.etag.as_deref(), Some(etag.as_str()));
    let expected = owned(&[
        ("2026-12-07T09:00:00Z", "Team standup"),
        ("2026-12-14T15:00:00Z", "Standup (late)"),
        ("2026-12-28T09:00:00Z", "Team standup"),
    ]);
    assert_eq!(pairs(&listed(&app, &token).await), expected);
    // A sync finds its own writes: nothing changes.
    assert_eq!(sync(&app, &a, account).await["state"], "succeeded");
    assert_eq!(pairs(&listed(&app, &token).await), expected);

    // An instant the series has no occurrence at (or no longer has): 404;
    // a malformed one: 400. Nothing is written.
    for (at, status, code) in [
        ("2026-12-22T09:00:00Z", 404, "not_found"),
        ("2026-12-21T09:00:00Z", 404, "not_found"),
        ("next-monday", 400, "invalid_query"),
    ] {
        let path = format!("{event}?occurrence={at}");
        let reply = with_if_match(&app, &token, "DELETE", &path, &etag, None).await;
        assert_problem(&reply, status, code);
    }
    assert_eq!(on_server().await.etag.as_deref(), Some(etag.as_str()));

    // The whole series, with the current ETag: gone there and here.
    let gone = with_if_match(&app, &token, "DELETE", &event, &etag, None).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(on_server().await.status, 404);
    assert!(listed(&app, &token).await.is_empty());
}

/// `occurrence` on an event that does not recur is refused with a clear code.
#[actix_web::test]
async fn an_occurrence_of_a_single_event_is_refused() {
    let Some(server) = Radicale::start(&[ALICE]) else {
        return;
    };
    server.mkcalendar(ALICE, "/alice/cal/").await;
    let app = spawn_app().await;
    let a = app.provision("calsingle").await;
    let account = connect(&app, &a, &server.base, ALICE.1).await;
    let calendar = link(&app, &a.owner_token, account, "/alice/cal/").await;
    let created = app
        .post(
            "/v1/calendar-events",
            &a.owner_token,
            json!({ "calendar_id": calendar, "summary": "Once", "starts_at": "2026-12-08T10:00:00Z",
                    "ends_at": "2026-12-08T11:00:00Z" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let path = format!(
        "/v1/calendar-events/{}?occurrence=2026-12-08T10:00:00Z",
        created.body["id"].as_str().unwrap()
    );
    let etag = created.body["etag"].as_str().unwrap();
    let reply = with_if_match(
        &app,
        &a.owner_token,
        "PATCH",
        &path,
        etag,
        Some(json!({"summary": "x"})),
    )
    .await;
    assert_problem(&reply, 400, "validation_failed");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("does not recur")
    );
}
