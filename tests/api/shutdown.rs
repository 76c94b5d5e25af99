//! Graceful shutdown: readiness fails first, requests in flight when the listener
//! closes are answered in full, and new connections are refused afterwards.

use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{fresh_database, spawn_app_with, test_settings};

#[actix_web::test]
async fn readiness_fails_first_and_requests_in_flight_are_answered_in_full() {
    let mut settings = test_settings(&fresh_database().await);
    settings.http.shutdown_grace = std::time::Duration::from_millis(1_000);
    // 120 requests share 8 connections: on a loaded machine some wait longer than
    // the default 5 s for one, which would be a 503 unrelated to the shutdown.
    settings.database.connect_timeout = std::time::Duration::from_secs(120);
    let app = spawn_app_with(settings).await;
    let t = app.provision("graceful").await;
    let channel = app.create_channel(&t, "general").await;
    // Pages of 200 messages of 3 kB: each answer is real work (~600 kB of JSON).
    let body = "x".repeat(3_000);
    for _ in 0..200 {
        app.post_message(&t, channel, &body).await;
    }
    let client = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .conn_keep_alive(Duration::ZERO)
                .limit(0),
        )
        .timeout(Duration::from_secs(20))
        .finish();
    let url = format!("{}/v1/channels/{channel}/messages?limit=200", app.base);

    let shutdown = app.shutdown.clone();
    let stopping = actix_web::rt::spawn(async move { shutdown.run().await });
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    // The grace period: not ready any more, still serving.
    assert_eq!(app.request("GET", "/readyz", None, None).await.status, 503);
    assert_eq!(app.request("GET", "/healthz", None, None).await.status, 200);

    // 120 requests at once, well before the listener closes (all connect at once:
    // no client-side connection limit): one worker needs longer than the rest of
    // the grace period to answer them all, so the stop finds many in flight.
    let requests = (0..120).map(|_| {
        let request = client
            .get(&url)
            .insert_header(("Authorization", format!("Bearer {}", t.owner_token)));
        async move {
            let mut response = request.send().await.map_err(|e| e.to_string())?;
            let body: serde_json::Value = response
                .json()
                .limit(4 << 20)
                .await
                .map_err(|e| format!("body cut off: {e}"))?;
            match body["items"].as_array() {
                Some(items) => Ok((response.status().as_u16(), items.len())),
                None => Err(format!("{}: {body}", response.status())),
            }
        }
    });
    let answers = join_all(requests).await;
    stopping.await.unwrap();
    for answer in answers {
        assert_eq!(answer, Ok((200, 200)));
    }

    // Stopped: new connections are refused.
    let after = client.get(format!("{}/healthz", app.base)).send().await;
    assert!(
        matches!(after, Err(awc::error::SendRequestError::Connect(_))),
        "{after:?}"
    );
}
