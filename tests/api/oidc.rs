//! OIDC sign-in: the whole code flow against a real provider (PyPI
//! `oidc-provider-mock`, pinned in `tests/api/pytools.txt`, on a free loopback
//! port), and the id_token checks against a provider the test runs itself (an
//! Ed25519 key set it can rotate, id_tokens it signs with any claims).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::free_port;
use crate::helpers::{Reply, Tenant, TestApp, assert_problem, spawn_app};

pub(crate) const REDIRECT: &str = "http://app.example/cb";

/// The mock's executable (`pytool::bin`).
pub(crate) fn mock_bin() -> Option<PathBuf> {
    crate::pytool::bin(
        "oidc-provider-mock",
        "oidc-provider-mock",
        "oidc-mock",
        "OIDC flow test",
    )
}

pub(crate) struct MockProvider {
    child: Child,
    pub(crate) issuer: String,
}

impl MockProvider {
    pub(crate) fn start(bin: &Path, users: &[Value]) -> Self {
        let port = free_port();
        let mut command = Command::new(bin);
        command.args(["-p", &port.to_string(), "-H", "127.0.0.1"]);
        for user in users {
            command.args(["--user-claims", &user.to_string()]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("oidc-provider-mock");
        crate::helpers::wait_listening(port, Duration::from_secs(30), "the mock");
        Self {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn no_redirects() -> awc::Client {
    awc::Client::builder().disable_redirects().finish()
}

pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// `/oidc/start` for `slug`: the provider's authorization URL.
pub(crate) async fn start(app: &TestApp, slug: &str, redirect_uri: &str) -> (u16, String) {
    let uri = redirect_uri.replace(':', "%3A").replace('/', "%2F");
    let response = no_redirects()
        .get(format!(
            "{}/v1/auth/{slug}/oidc/start?redirect_uri={uri}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), location)
}

pub(crate) async fn callback(app: &TestApp, code: &str, state: &str) -> Reply {
    let path = format!(
        "/v1/auth/oidc/callback?code={}&state={}",
        code.replace('+', "%2B"),
        state
    );
    app.request("GET", &path, None, None).await
}

pub(crate) async fn oidc_provider(app: &TestApp, tenant: &Tenant, issuer: &str) {
    crate::identity::create_provider(
        app,
        tenant,
        json!({
            "kind": "oidc", "name": "sso",
            "oidc": { "issuer": issuer, "client_id": "meridian" },
            "secret": "mock-client-secret",
            "role_mappings": [{ "group": "eng", "role": "member" }],
            "allowed_email_domains": ["example.com"],
            "redirect_uris": [REDIRECT],
        }),
    )
    .await;
}

#[actix_web::test]
async fn the_whole_code_flow_with_pkce_and_a_single_use_state() {
    let Some(bin) = mock_bin() else { return };
    let mock = MockProvider::start(
        &bin,
        &[
            json!({"sub": "alice", "email": "alice@example.com", "groups": ["eng"]}),
            json!({"sub": "eve", "email": "eve@elsewhere.example", "groups": ["eng"]}),
        ],
    );
    let app = spawn_app().await;
    let t = app.provision("oidc-flow").await;
    oidc_provider(&app, &t, &mock.issuer).await;

    // An unregistered redirect URI is refused before anything is sent anywhere.
    let (status, _) = start(&app, "oidc-flow", "http://evil.example/cb").await;
    assert_eq!(status, 400);
    let (status, _) = start(&app, "oidc-flow", "http://app.example/cb/more").await;
    assert_eq!(status, 400, "a prefix of a registered URI is not one");

    let sign_in = async |sub: &str| {
        let (status, authorize) = start(&app, "oidc-flow", REDIRECT).await;
        assert_eq!(status, 302, "{authorize}");
        assert!(
            authorize.starts_with(&format!("{}/", mock.issuer)),
            "{authorize}"
        );
        assert_eq!(
            query_param(&authorize, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert!(query_param(&authorize, "nonce").is_some());
        let mut answer = no_redirects()
            .post(&authorize)
            .send_form(&[("sub", sub)])
            .await
            .unwrap();
        let back = answer
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let back = back.unwrap_or_else(|| {
            panic!(
                "{}: {:?}",
                answer.status(),
                futures_util::FutureExt::now_or_never(answer.body())
            )
        });
        assert!(back.starts_with(REDIRECT), "{back}");
        (
            query_param(&back, "code").unwrap(),
            query_param(&back, "state").unwrap(),
        )
    };
    let (code, state) = sign_in("alice").await;
    assert_eq!(
        query_param(&format!("?state={state}"), "state").unwrap(),
        state
    );
    let session = callback(&app, &code, &state).await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(session.body["role"], "member");
    let me = app
        .get("/v1/me", session.body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.body["user"]["email"], "alice@example.com");

    // The same state again: refused (replayed), even with the code.
    assert_problem(&callback(&app, &code, &state).await, 401, "unauthenticated");
    // A tampered state matches no sign-in.
    let (code, state) = sign_in("alice").await;
    let tampered = format!(
        "{}{}",
        &state[..state.len() - 1],
        if state.ends_with('a') { 'b' } else { 'a' }
    );
    assert_problem(
        &callback(&app, &code, &tampered).await,
        401,
        "unauthenticated",
    );
    // The untampered one still works, and finds the same user.
    let again = callback(&app, &code, &state).await;
    assert_eq!(
        again.body["user_id"], session.body["user_id"],
        "{}",
        again.body
    );

    // An email outside the allowed domains is refused.
    let (code, state) = sign_in("eve").await;
    assert_problem(&callback(&app, &code, &state).await, 401, "unauthenticated");

    let audit = app.get("/v1/audit?limit=100", &t.owner_token).await;
    let reasons: Vec<String> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .map(|e| e["details"]["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "email_domain_not_allowed",
            "unknown_state",
            "state_replayed"
        ],
        "newest first"
    );
}

/// A provider run by the test: its key set and its next id_token are the
/// test's to choose.
struct FakeProvider {
    issuer: String,
    jwks: Arc<Mutex<Value>>,
    id_token: Arc<Mutex<String>>,
    handle: actix_web::dev::ServerHandle,
}

struct TestKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn test_key(kid: &str) -> TestKey {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    TestKey {
        kid: kid.into(),
        pkcs8,
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}),
    }
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&key.pkcs8),
    )
    .unwrap()
}

async fn fake_provider(keys: &[&TestKey]) -> FakeProvider {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let jwks = Arc::new(Mutex::new(
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}),
    ));
    let id_token = Arc::new(Mutex::new(String::new()));
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    });
    let (served_keys, served_token) = (jwks.clone(), id_token.clone());
    let server = HttpServer::new(move || {
        let (doc, keys, token) = (doc.clone(), served_keys.clone(), served_token.clone());
        App::new()
            .route(
                "/.well-known/openid-configuration",
                web::get().to(move || {
                    let doc = doc.clone();
                    async move { HttpResponse::Ok().json(doc) }
                }),
            )
            .route(
                "/jwks",
                web::get().to(move || {
                    let keys = keys.lock().unwrap().clone();
                    async move { HttpResponse::Ok().json(keys) }
                }),
            )
            .route(
                "/token",
                web::post().to(move || {
                    let token = token.lock().unwrap().clone();
                    async move {
                        HttpResponse::Ok().json(json!({"id_token": token, "token_type": "Bearer"}))
                    }
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    FakeProvider {
        issuer,
        jwks,
        id_token,
        handle,
    }
}

#[actix_web::test]
async fn id_tokens_are_checked_and_an_unknown_kid_refreshes_the_keys() {
    let (k1, k2, stranger) = (test_key("k1"), test_key("k2"), test_key("k3"));
    let provider = fake_provider(&[&k1]).await;
    let app = spawn_app().await;
    let t = app.provision("oidc-tokens").await;
    oidc_provider(&app, &t, &provider.issuer).await;
    let now = meridian::auth::keys::unix_now();

    // One sign-in with the id_token `make` builds from the flow's nonce.
    let attempt = async |key: &TestKey, make: &dyn Fn(&str) -> Value| {
        let (status, authorize) = start(&app, "oidc-tokens", REDIRECT).await;
        assert_eq!(status, 302);
        let state = query_param(&authorize, "state").unwrap();
        let nonce = query_param(&authorize, "nonce").unwrap();
        *provider.id_token.lock().unwrap() = sign(key, &make(&nonce));
        callback(&app, "any-code", &state).await
    };
    let good = |nonce: &str| {
        json!({"iss": provider.issuer, "aud": ["meridian", "other"], "sub": "dana", "exp": now + 300,
               "iat": now, "nonce": nonce, "email": "dana@example.com", "groups": ["eng"]})
    };
    let reply = attempt(&k1, &good).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    type Claims<'a> = Box<dyn Fn(&str) -> Value + 'a>;
    let refused: [(&str, Claims<'_>); 5] = [
        (
            "wrong nonce",
            Box::new(|n: &str| {
                let mut c = good(n);
                c["nonce"] = json!("not-the-nonce");
                c
            }),
        ),
        (
            "wrong aud",
            Box::new(|n: &str| {
                let mut c = good(n);
                c["aud"] = json!(["someone-else"]);
                c
            }),
        ),
        (
            "wrong iss",
            Box::new(|n: &str| {
                let mut c = good(n);
                c["iss"] = json!("http://evil.example");
                c
            }),
        ),
        (
            "expired",
            Box::new(|n: &str| {
                let mut c = good(n);
                c["exp"] = json!(now - 3600);
                c["iat"] = json!(now - 7200);
                c
            }),
        ),
        (
            "no nonce",
            Box::new(|n: &str| {
                let mut c = good(n);
                c.as_object_mut().unwrap().remove("nonce");
                c
            }),
        ),
    ];
    for (what, make) in &refused {
        let reply = attempt(&k1, make.as_ref()).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
    }
    // Signed by a key the provider never published: refused after a refetch.
    let reply = attempt(&stranger, &good).await;
    assert_eq!(reply.status, 401, "{}", reply.body);

    // The provider rotates to k2: the cached set lacks `k2`, so it is fetched again.
    *provider.jwks.lock().unwrap() = json!({"keys": [k2.jwk.clone()]});
    let reply = attempt(&k2, &good).await;
    assert_eq!(reply.status, 200, "after rotation: {}", reply.body);

    let audit = app.get("/v1/audit?limit=100", &t.owner_token).await;
    let refusals = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["reason"] == "id_token_refused")
        .count();
    assert_eq!(refusals, 6, "{}", audit.body);
    provider.handle.stop(false).await;
}
