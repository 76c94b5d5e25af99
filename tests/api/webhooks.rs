//! Webhooks end to end: a receiver the test starts on 127.0.0.1 gets the
//! tenant's events, in order, signed the Standard Webhooks way (checked with the
//! PyPI `standardwebhooks` library when the test venv has it, and always with
//! Python's own `hmac`); retries, disabling with an audit event, secret rotation,
//! and the SSRF refusals with the loopback allowance off.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, fresh_database, spawn_app_with, test_settings};

#[derive(Clone, Debug)]
struct Got {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

#[derive(Default)]
pub(crate) struct Inbox {
    got: Vec<Got>,
    /// Statuses to answer, in turn; empty: 200.
    answers: VecDeque<u16>,
    /// Answer every request with this status (after `answers`).
    always: Option<u16>,
    /// Redirect every request here instead.
    redirect: Option<String>,
}

pub(crate) type Shared = Arc<Mutex<Inbox>>;

async fn receive(req: HttpRequest, body: web::Bytes, inbox: web::Data<Shared>) -> HttpResponse {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut inbox = inbox.lock().unwrap();
    inbox.got.push(Got {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if let Some(to) = inbox.redirect.clone() {
        return HttpResponse::TemporaryRedirect()
            .insert_header(("location", to))
            .finish();
    }
    let status = inbox.answers.pop_front().or(inbox.always).unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// A receiver on 127.0.0.1: its base URL and inbox.
pub(crate) fn receiver() -> (String, Shared) {
    let inbox: Shared = Arc::default();
    let data = web::Data::new(inbox.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(receive))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (format!("http://{addr}"), inbox)
}

async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = check() {
            return v;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn app_with(allow_loopback: bool, disable_after: i32) -> TestApp {
    let mut settings = test_settings(&fresh_database().await);
    settings.outbound.allow_loopback = allow_loopback;
    settings.webhooks.disable_after = disable_after;
    settings.webhooks.backoff_base = Duration::from_millis(50);
    settings.webhooks.backoff_max = Duration::from_millis(200);
    settings.jobs.poll_interval = Duration::from_millis(50);
    spawn_app_with(settings).await
}

/// Python's `standardwebhooks` (if the venv has it) and, independently, Python's
/// `hmac`: both must accept the delivery under `secret`.
fn verify_in_python(secret: &str, got: &Got) {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pytools/bin/python");
    let script = r#"
import sys, json, base64, hmac, hashlib
secret, msg_id, ts, sig, body = sys.argv[1:6]
key = base64.b64decode(secret[len("whsec_"):])
expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
assert any(s == "v1," + expected for s in sig.split(" ")), "hmac: no matching signature"
try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    print("stdlib-only"); sys.exit(0)
Webhook(secret).verify(body, {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig})
print("standardwebhooks")
"#;
    let python = if venv.exists() {
        venv
    } else {
        "python3".into()
    };
    let out = std::process::Command::new(python)
        .args([
            "-c",
            script,
            secret,
            &got.id,
            &got.timestamp,
            &got.signature,
            &got.body,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verification failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if String::from_utf8_lossy(&out.stdout).trim() == "stdlib-only" {
        eprintln!(
            "standardwebhooks not installed in the test venv: verified with Python's hmac only"
        );
    }
}

#[actix_web::test]
async fn deliveries_arrive_in_order_signed_and_verifiable_and_rotation_signs_with_both() {
    let app = app_with(true, 20).await;
    let t = app.provision("hooked").await;
    let (base, inbox) = receiver();
    let (hook, secret) = app
        .create_webhook(&t, json!({"url": format!("{base}/in"), "event_types": ["channel.created", "message.posted"]}))
        .await;
    assert!(secret.starts_with("whsec_"));
    // The secret is write-only: never in a read.
    let read = app
        .get(&format!("/v1/webhooks/{hook}"), &t.owner_token)
        .await;
    assert_eq!(read.status, 200);
    assert!(read.body.get("secret").is_none(), "{}", read.body);
    let list = app.get("/v1/webhooks", &t.owner_token).await;
    assert!(!list.body.to_string().contains(&secret));

    let channel = app.create_channel(&t, "general").await;
    for i in 0..5 {
        app.post_message(&t, channel, &format!("message {i}")).await;
    }
    app.add_user(&t, "member").await; // not in the filter
    let got = until("6 deliveries", || {
        let got = inbox.lock().unwrap().got.clone();
        (got.len() >= 6).then_some(got)
    })
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        inbox.lock().unwrap().got.len(),
        6,
        "user.added is filtered out"
    );
    let bodies: Vec<Value> = got
        .iter()
        .map(|g| serde_json::from_str(&g.body).unwrap())
        .collect();
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types[0], "channel.created");
    assert!(types[1..].iter().all(|t| *t == "message.posted"));
    let texts: Vec<&str> = bodies[1..]
        .iter()
        .map(|b| b["data"]["object"]["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "message 0",
            "message 1",
            "message 2",
            "message 3",
            "message 4"
        ]
    );
    let seqs: Vec<i64> = bodies
        .iter()
        .map(|b| b["data"]["seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in sequence order: {seqs:?}"
    );
    for g in &got {
        verify_in_python(&secret, g);
    }
    // A tampered body does not verify.
    let mut forged = got[0].clone();
    forged.body = forged.body.replace("general", "generaL");
    let forged_ok = std::panic::catch_unwind(|| verify_in_python(&secret, &forged)).is_ok();
    assert!(!forged_ok, "a changed body must not verify");

    // The delivery log shows each as succeeded.
    let log = app
        .get(&format!("/v1/webhooks/{hook}/deliveries"), &t.owner_token)
        .await;
    assert_eq!(log.status, 200);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert!(
        items
            .iter()
            .all(|d| d["state"] == "succeeded" && d["last_status"] == 200),
        "{items:?}"
    );

    // Rotation: a new secret, returned once; both sign during the overlap.
    let rotated = app
        .patch(
            &format!("/v1/webhooks/{hook}"),
            &t.owner_token,
            json!({"rotate_secret": true}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    app.post_message(&t, channel, "after rotation").await;
    let last = until("the 7th delivery", || {
        inbox.lock().unwrap().got.get(6).cloned()
    })
    .await;
    assert_eq!(last.signature.split(' ').count(), 2, "{}", last.signature);
    verify_in_python(&new_secret, &last);
    verify_in_python(&secret, &last);
}

#[actix_web::test]
async fn failures_are_retried_then_the_endpoint_is_disabled_and_audited() {
    let app = app_with(true, 3).await;
    let t = app.provision("flaky").await;
    let (base, inbox) = receiver();
    // First one failure then success: the same delivery is retried and arrives.
    inbox.lock().unwrap().answers.push_back(503);
    let (hook, _) = app
        .create_webhook(&t, json!({"url": format!("{base}/in")}))
        .await;
    let channel = app.create_channel(&t, "c").await;
    until("a retry that succeeds", || {
        (inbox.lock().unwrap().got.len() >= 2).then_some(())
    })
    .await;
    let got = inbox.lock().unwrap().got.clone();
    assert_eq!(got[0].id, got[1].id, "a retry keeps its webhook-id");
    let log = app
        .get(&format!("/v1/webhooks/{hook}/deliveries"), &t.owner_token)
        .await;
    let first = &log.body["items"][0];
    assert_eq!(
        (first["state"].as_str(), first["attempts"].as_i64()),
        (Some("succeeded"), Some(2)),
        "{first}"
    );

    // Now the receiver fails for good: 3 failures in a row disable the endpoint.
    inbox.lock().unwrap().always = Some(500);
    app.post_message(&t, channel, "will fail").await;
    let mut state = Value::Null;
    for _ in 0..300 {
        state = app
            .get(&format!("/v1/webhooks/{hook}"), &t.owner_token)
            .await
            .body;
        if state["enabled"] == false {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state["enabled"], false, "{state}");
    assert!(
        state["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 failed attempts")
    );
    assert_eq!(
        inbox.lock().unwrap().got.len(),
        2 + 3,
        "no attempt after disabling"
    );
    let audit = app.get("/v1/audit", &t.owner_token).await;
    let disabled_events: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "webhook_disabled")
        .collect();
    assert_eq!(disabled_events.len(), 1, "{}", audit.body);
    assert_eq!(disabled_events[0]["target_id"], hook.to_string());
    let log = app
        .get(&format!("/v1/webhooks/{hook}/deliveries"), &t.owner_token)
        .await;
    let pending = &log.body["items"][0];
    assert_eq!(
        (
            pending["state"].as_str(),
            pending["attempts"].as_i64(),
            pending["last_status"].as_i64()
        ),
        (Some("pending"), Some(3), Some(500))
    );

    // Re-enabled with the receiver healthy, the pending delivery goes out.
    inbox.lock().unwrap().always = None;
    let reply = app
        .patch(
            &format!("/v1/webhooks/{hook}"),
            &t.owner_token,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    until("the delivery after re-enabling", || {
        (inbox.lock().unwrap().got.len() >= 6).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn internal_addresses_are_refused_before_any_connection() {
    let app = app_with(false, 20).await;
    let t = app.provision("ssrf").await;
    let (base, inbox) = receiver();
    let port = base.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("http://127.0.0.1:{port}/in"),
        "http://10.1.2.3/in".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        format!("http://localhost:{port}/in"),
        "http://[::1]/in".into(),
        "http://100.64.0.1/in".into(),
        "http://[::ffff:127.0.0.1]/in".into(),
    ] {
        let reply = app
            .post("/v1/webhooks", &t.owner_token, json!({"url": url}))
            .await;
        assert_problem(&reply, 400, "webhook_url_refused");
    }
    // At delivery time every resolved address is vetted again: a URL that became
    // internal (set behind the API's back here), or a name that resolves to
    // loopback through the resolver (a hosts-file name), is never connected to.
    let (hook, _) = app
        .create_webhook(&t, json!({"url": "http://hooks.example/in"}))
        .await;
    let db = app.superuser_client().await;
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let loopback_name = hosts
        .lines()
        .filter(|l| l.trim_start().starts_with("127."))
        .flat_map(|l| l.split_whitespace().skip(1))
        .find(|n| *n != "localhost" && !n.ends_with(".localhost") && !n.starts_with('#'))
        .map(str::to_owned);
    let mut urls = vec![
        format!("http://127.0.0.1:{port}/in"),
        format!("http://localhost:{port}/in"),
        "http://10.1.2.3/in".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ];
    match &loopback_name {
        Some(name) => urls.push(format!("http://{name}:{port}/in")),
        None => eprintln!("no non-localhost loopback name in /etc/hosts: resolver case skipped"),
    }
    for (i, url) in urls.iter().enumerate() {
        while db
            .execute(
                "UPDATE webhook_endpoints SET url = $2, failure_streak = 0 WHERE id = $1",
                &[&hook, url],
            )
            .await
            .is_err()
        {}
        app.create_channel(&t, &format!("c{}", i + 1)).await;
        let mut error = String::new();
        for _ in 0..300 {
            let log = app
                .get(&format!("/v1/webhooks/{hook}/deliveries"), &t.owner_token)
                .await;
            let items = log.body["items"].as_array().unwrap();
            if let Some(d) = items.iter().find(|d| {
                d["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("refused"))
                    && d["last_status"].is_null()
            }) {
                error = d["last_error"].as_str().unwrap().to_owned();
                // Out of the way of the next URL (retried: a worker may hold the row).
                while db
                    .execute(
                        "UPDATE webhook_deliveries SET state = 'failed' WHERE endpoint_id = $1",
                        &[&hook],
                    )
                    .await
                    .is_err()
                {}
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(error.contains("refused"), "{url}: {error}");
    }
    assert!(
        inbox.lock().unwrap().got.is_empty(),
        "the receiver on loopback was never reached"
    );
}

#[actix_web::test]
async fn redirects_are_not_followed() {
    let app = app_with(true, 20).await;
    let t = app.provision("redirected").await;
    let (first, first_inbox) = receiver();
    let (second, second_inbox) = receiver();
    first_inbox.lock().unwrap().redirect = Some(format!("{second}/stolen"));
    let (hook, _) = app
        .create_webhook(&t, json!({"url": format!("{first}/in")}))
        .await;
    app.create_channel(&t, "c").await;
    until("the first receiver's request", || {
        (!first_inbox.lock().unwrap().got.is_empty()).then_some(())
    })
    .await;
    let mut delivery = Value::Null;
    for _ in 0..100 {
        let log = app
            .get(&format!("/v1/webhooks/{hook}/deliveries"), &t.owner_token)
            .await;
        delivery = log.body["items"][0].clone();
        if delivery["last_status"] == 307 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivery["last_status"], 307, "{delivery}");
    assert_ne!(delivery["state"], "succeeded");
    assert!(
        second_inbox.lock().unwrap().got.is_empty(),
        "the redirect target was never called"
    );
}

/// Regression of the security review of 2026-11-30: the endpoint as the API
/// answers it holds its plaintext secret once (creation, rotation); its `Debug`
/// (what a `tracing` field with `?` or an error's context would print) never
/// shows it.
#[test]
fn a_webhooks_debug_never_shows_its_secret() {
    let now = chrono::Utc::now();
    let webhook = meridian::webhooks::store::Webhook {
        id: meridian::ids::WebhookId::new_random(),
        url: "https://hooks.example/in".into(),
        description: String::new(),
        event_types: Vec::new(),
        enabled: true,
        disabled_reason: None,
        failure_streak: 0,
        previous_secret_expires_at: None,
        created_at: now,
        updated_at: now,
        secret: Some("whsec_do_not_print_me".into()),
    };
    let printed = format!("{webhook:?}");
    assert!(!printed.contains("do_not_print_me"), "{printed}");
    assert!(printed.contains("hooks.example"), "{printed}");
}
