//! Graceful shutdown: readiness fails first, requests in flight when the listener
//! closes are answered in full, and new connections are refused afterwards.

use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{fresh_database, spawn_app_with, test_settings};

#[actix_web::test]
async fn readiness_fails_first_and_requests_in_flight_are_answered_in_full() {
    let mut settings = test_settings(&fresh_database().await);
    settings.http.shutdown_grace_ms = 300;
    let app = spawn_app_with(settings).await;
    let t = app.provision("graceful").await;
    let channel = app.create_channel(&t, "general").await;
    for i in 0..20 {
        app.post_message(&t, channel, &format!("message {i}")).await;
    }
    let client = awc::Client::builder()
        .connector(awc::Connector::new().conn_keep_alive(Duration::ZERO))
        .timeout(Duration::from_secs(20))
        .finish();
    let url = format!("{}/v1/channels/{channel}/messages?limit=50", app.base);

    let shutdown = app.shutdown.clone();
    let stopping = actix_web::rt::spawn(async move { shutdown.run().await });
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    // The grace period: not ready any more, still serving.
    assert_eq!(app.request("GET", "/readyz", None, None).await.status, 503);
    assert_eq!(app.request("GET", "/healthz", None, None).await.status, 200);

    // 100 requests at once, shortly before the listener closes: one worker needs
    // longer than the rest of the grace period to answer them all, so the stop
    // finds many of them in flight.
    actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    let requests = (0..100).map(|_| {
        let request = client
            .get(&url)
            .insert_header(("Authorization", format!("Bearer {}", t.owner_token)));
        async move {
            let mut response = request.send().await.map_err(|e| e.to_string())?;
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|e| format!("body cut off: {e}"))?;
            Ok::<_, String>((
                response.status().as_u16(),
                body["items"].as_array().map_or(0, Vec::len),
            ))
        }
    });
    let answers = join_all(requests).await;
    stopping.await.unwrap();
    for answer in answers {
        assert_eq!(answer, Ok((200, 20)));
    }

    // Stopped: new connections are refused.
    let after = client.get(format!("{}/healthz", app.base)).send().await;
    assert!(
        matches!(after, Err(awc::error::SendRequestError::Connect(_))),
        "{after:?}"
    );
}
