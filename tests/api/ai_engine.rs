//! The OpenAI-compatible summary engine against a stub the test starts (an actix
//! server speaking `/v1/chat/completions` that counts requests and returns usage
//! counts): what it is sent, how its answers and failures are read, the exact
//! ledger commit, the tenant's opt-in and the residency gate.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use meridian::outbound::{Client, OutboundSettings};
use meridian::summaries::engine::{Engine, EngineError, Input};
use meridian::summaries::openai::{OpenAi, OpenAiSettings};
use serde_json::{Value, json};
use uuid::Uuid;

/// Usage counts the stub reports for every answer.
pub const PROMPT_TOKENS: u64 = 57;
pub const COMPLETION_TOKENS: u64 = 19;

#[derive(Default)]
pub struct StubState {
    /// Requests received: (authorization header, body).
    pub got: Vec<(String, Value)>,
    /// Statuses to answer, in turn; empty: 200 with a completion.
    pub answers: VecDeque<u16>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

pub type Stub = Arc<Mutex<StubState>>;

async fn complete(req: HttpRequest, body: web::Json<Value>, stub: web::Data<Stub>) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, delay) = {
        let mut stub = stub.lock().unwrap();
        stub.got.push((auth, body.into_inner()));
        (stub.answers.pop_front().unwrap_or(200), stub.delay)
    };
    if let Some(delay) = delay {
        actix_web::rt::time::sleep(delay).await;
    }
    if status != 200 {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({"error": {"message": "stub says no"}}));
    }
    HttpResponse::Ok().json(json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "The billing migration runs on Thursday. A rollback plan is being written."}}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
    }))
}

/// A stub engine on 127.0.0.1: its base URL (`…/v1`) and state.
pub fn stub() -> (String, Stub) {
    let state: Stub = Arc::default();
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/chat/completions", web::post().to(complete))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (format!("http://{addr}/v1"), state)
}

pub fn engine_settings(base_url: &str, region: &str) -> OpenAiSettings {
    OpenAiSettings {
        base_url: base_url.into(),
        model: "stub-model".into(),
        api_key: "sk-test-key".into(),
        region: region.into(),
        jurisdiction: None,
        timeout: Duration::from_secs(5),
        max_tokens: 200,
    }
}

fn loopback_client() -> Client {
    Client::new(OutboundSettings {
        allow_loopback: true,
        ..OutboundSettings::default()
    })
    .unwrap()
}

fn thread() -> Vec<(Uuid, String)> {
    [
        "The database migration for billing is on Thursday night.",
        "Who writes the rollback plan?",
        "I will, today.",
    ]
    .iter()
    .map(|m| (Uuid::now_v7(), (*m).to_owned()))
    .collect()
}

#[actix_web::test]
async fn the_engine_sends_the_window_and_reads_content_and_usage() {
    let (base, stub) = stub();
    let engine = OpenAi::new(engine_settings(&base, "us-east1"), loopback_client()).unwrap();
    let messages = thread();
    let input = Input {
        messages: &messages,
        max_sentences: 2,
    };
    let estimate = engine.estimate(&input);
    let out = engine.summarise(&input).await.unwrap();
    assert_eq!(out.tokens_used, PROMPT_TOKENS + COMPLETION_TOKENS);
    assert!(estimate >= out.tokens_used && estimate >= 200, "{estimate}");
    assert!(
        out.text.starts_with("The billing migration"),
        "{}",
        out.text
    );
    assert_eq!(out.sentences.as_array().unwrap().len(), 2);
    let got = stub.lock().unwrap().got.clone();
    assert_eq!(got.len(), 1);
    let (auth, body) = &got[0];
    assert_eq!(auth, "Bearer sk-test-key");
    assert_eq!(body["model"], "stub-model");
    assert_eq!(body["max_tokens"], 200);
    let user = body["messages"][1]["content"].as_str().unwrap();
    for (_, m) in &messages {
        assert!(user.contains(m.as_str()), "{user}");
    }
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("at most 2 sentences")
    );
}

#[actix_web::test]
async fn engine_failures_are_retried_or_permanent() {
    let (base, stub) = stub();
    let mut settings = engine_settings(&base, "us-east1");
    settings.timeout = Duration::from_millis(300);
    let engine = OpenAi::new(settings, loopback_client()).unwrap();
    let messages = thread();
    let input = Input {
        messages: &messages,
        max_sentences: 2,
    };
    stub.lock().unwrap().answers = VecDeque::from([503, 429, 401, 400]);
    for expect_retry in [true, true, false, false] {
        let err = engine.summarise(&input).await.unwrap_err();
        assert_eq!(
            matches!(err, EngineError::Retry(_)),
            expect_retry,
            "{err:?}"
        );
    }
    stub.lock().unwrap().delay = Some(Duration::from_millis(1500));
    let err = engine.summarise(&input).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Retry(why) if why.contains("no answer within 300 ms")),
        "{err:?}"
    );
    // Nothing listens here: a connection failure is worth another try.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gone = OpenAi::new(
        engine_settings(&format!("http://127.0.0.1:{port}/v1"), "us-east1"),
        loopback_client(),
    )
    .unwrap();
    assert!(matches!(
        gone.summarise(&input).await.unwrap_err(),
        EngineError::Retry(_)
    ));
    // Without the loopback allowance the SSRF rules refuse it for good.
    let refused = OpenAi::new(
        engine_settings(&base, "us-east1"),
        Client::new(OutboundSettings::default()).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        refused.summarise(&input).await.unwrap_err(),
        EngineError::Permanent(_)
    ));
}
