//! Sign-in benchmarks (issue 14, "Benchmarks"), not tests: `#[ignore]`d, they
//! assert only that every request succeeded, never a time. `loadtest/signin.sh`
//! runs them in a release build against the same real fixtures as the tests (a
//! throwaway `slapd`, `oidc-provider-mock`) and the embedded PostgreSQL, one node:
//!
//! - LDAP sign-in (`POST /v1/auth/{slug}/ldap`): service bind, search, user
//!   bind, groups, then the user and the session in one transaction;
//! - refresh (`POST /v1/auth/refresh`), sequential (p50/p99) and from
//!   `CONCURRENCY` clients at once, each rotating its own session (req/s); an
//!   LDAP session's refresh asks the directory again, so both kinds are timed;
//! - OIDC: the callback alone (`GET /v1/auth/oidc/callback`: code exchange with
//!   the provider, JWKS from the cache, id_token checks, user and session), and
//!   `/oidc/start` (discovery, the sign-in row).
//!
//! Figures go to stdout and, when `MERIDIAN_BENCH_OUT` names a file, as JSON there.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const WARMUP: usize = 20;
const SAMPLES: usize = 300;
const CONCURRENCY: usize = 8;
const PER_CLIENT: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

/// p50, p99, max and mean in milliseconds.
fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort_unstable();
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
    json!({
        "n": samples.len(),
        "p50_ms": percentile(&samples, 0.50),
        "p99_ms": percentile(&samples, 0.99),
        "max_ms": percentile(&samples, 1.0),
        "mean_ms": mean * 1000.0,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Prints `figures` and merges them under `name` into `MERIDIAN_BENCH_OUT`.
fn report(name: &str, figures: Value) {
    println!(
        "{name}: {}",
        serde_json::to_string_pretty(&figures).unwrap()
    );
    let Some(path) = std::env::var_os("MERIDIAN_BENCH_OUT") else {
        return;
    };
    let mut all: Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    all[name] = figures;
    std::fs::write(&path, serde_json::to_vec_pretty(&all).unwrap()).unwrap();
}

async fn timed<T>(work: impl Future<Output = T>) -> (Duration, T) {
    let started = Instant::now();
    let out = work.await;
    (started.elapsed(), out)
}

/// Sequential refreshes of one session: p50/p99.
async fn refresh_chain(app: &TestApp, mut token: Value, n: usize) -> (Vec<Duration>, Value) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (took, reply) = timed(crate::signin::refresh(app, &token)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        token = reply.body["refresh_token"].clone();
        samples.push(took);
    }
    (samples, token)
}

/// `CONCURRENCY` sessions refreshed at once, `PER_CLIENT` times each: req/s.
async fn refresh_throughput(app: &TestApp, tokens: Vec<Value>) -> Value {
    let started = Instant::now();
    let runs = tokens
        .into_iter()
        .map(|token| refresh_chain(app, token, PER_CLIENT));
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let samples: Vec<Duration> = results.into_iter().flat_map(|(s, _)| s).collect();
    let mut figures = summary(samples);
    figures["clients"] = json!(CONCURRENCY);
    figures["req_per_s"] = json!((CONCURRENCY * PER_CLIENT) as f64 / elapsed);
    figures
}

/// Password sign-ins are limited per tenant + username (burst 5) and per client
/// address (burst 20), keyed on nothing a tenant can change: so each sample signs
/// in its own directory user from its own loopback source address.
fn ldap_users() -> crate::slapd::Slapd {
    let uids: Vec<String> = (0..WARMUP + SAMPLES).map(|i| format!("user{i}")).collect();
    let people: String = uids
        .iter()
        .map(|u| crate::slapd::person(u, &format!("{u}-pw"), &format!("{u}@example.com")))
        .collect();
    let members: Vec<&str> = uids.iter().map(String::as_str).collect();
    let groups = crate::slapd::group("engineering", &members);
    crate::slapd::Slapd::start(&(people + &groups))
}

fn client_from(i: usize) -> awc::Client {
    let source = std::net::Ipv4Addr::new(127, 0, 2 + (i / 250) as u8, 1 + (i % 250) as u8);
    awc::Client::builder()
        .connector(awc::Connector::new().local_address(source.into()))
        .timeout(Duration::from_secs(30))
        .finish()
}

#[actix_web::test]
#[ignore = "benchmark: loadtest/signin.sh"]
async fn bench_ldap_sign_in_and_refresh() {
    assert!(
        crate::slapd::available(),
        "slapd is needed (apt-get install slapd ldap-utils)"
    );
    let directory = ldap_users();
    let app = spawn_app().await;
    let tenant = app.provision("bench-ldap").await;
    // Every sample provisions a user: lift the plan's user cap.
    let lifted = app
        .patch(
            &format!("/v1/tenants/{}", tenant.id),
            &app.platform_token(),
            json!({"limits": {"users": 10_000}}),
        )
        .await;
    assert_eq!(lifted.status, 200, "{}", lifted.body);
    crate::signin::ldap_provider(&app, &tenant, &directory).await;
    let load_before = load_average();

    let url = format!("{}/v1/auth/bench-ldap/ldap", app.base);
    let mut sessions = Vec::new();
    let mut samples = Vec::new();
    for i in 0..WARMUP + SAMPLES {
        let client = client_from(i);
        let body = json!({"username": format!("user{i}"), "password": format!("user{i}-pw")});
        let (took, reply) = timed(async {
            let mut res = client.post(&url).send_json(&body).await.unwrap();
            let bytes = res.body().await.unwrap();
            (
                res.status(),
                serde_json::from_slice::<Value>(&bytes).unwrap(),
            )
        })
        .await;
        assert_eq!(reply.0, 200, "{}", reply.1);
        if i >= WARMUP {
            samples.push(took);
        }
        if sessions.len() <= CONCURRENCY {
            sessions.push(reply.1["refresh_token"].clone());
        }
    }
    let ldap = summary(samples);

    let first = sessions.pop().unwrap();
    let (_, first) = refresh_chain(&app, first, WARMUP).await;
    let (samples, _) = refresh_chain(&app, first, SAMPLES).await;
    let refresh = summary(samples);
    let concurrent =
        refresh_throughput(&app, sessions.into_iter().take(CONCURRENCY).collect()).await;
    report(
        "ldap",
        json!({
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "ldap_sign_in": ldap,
            "refresh_ldap_session_sequential": refresh,
            "refresh_ldap_session_concurrent": concurrent,
        }),
    );
}

#[actix_web::test]
#[ignore = "benchmark: loadtest/signin.sh"]
async fn bench_oidc_callback_and_refresh() {
    use crate::oidc::{MockProvider, REDIRECT, callback, mock_bin, no_redirects, query_param};
    let bin = mock_bin().expect("oidc-provider-mock is needed (tests/api/pytools.txt)");
    let mock = MockProvider::start(
        &bin,
        &[json!({"sub": "alice", "email": "alice@example.com", "groups": ["eng"]})],
    );
    let app = spawn_app().await;
    let tenant = app.provision("bench-oidc").await;
    crate::oidc::oidc_provider(&app, &tenant, &mock.issuer).await;
    let load_before = load_average();

    let (mut starts, mut idp, mut callbacks) = (Vec::new(), Vec::new(), Vec::new());
    let mut sessions = Vec::new();
    for i in 0..WARMUP + SAMPLES {
        let (took_start, (status, authorize)) =
            timed(crate::oidc::start(&app, "bench-oidc", REDIRECT)).await;
        assert_eq!(status, 302, "{authorize}");
        // The provider's own page (not Meridian's work), timed apart.
        let (took_idp, answer) = timed(
            no_redirects()
                .post(&authorize)
                .send_form(&[("sub", "alice")]),
        )
        .await;
        let answer = answer.unwrap();
        let back = answer
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let (code, state) = (
            query_param(&back, "code").unwrap(),
            query_param(&back, "state").unwrap(),
        );
        let (took_callback, session) = timed(callback(&app, &code, &state)).await;
        assert_eq!(session.status, 200, "{}", session.body);
        if i >= WARMUP {
            starts.push(took_start);
            idp.push(took_idp);
            callbacks.push(took_callback);
        }
        if sessions.len() <= CONCURRENCY {
            sessions.push(session.body["refresh_token"].clone());
        }
    }
    let first = sessions.pop().unwrap();
    let (_, first) = refresh_chain(&app, first, WARMUP).await;
    let (samples, _) = refresh_chain(&app, first, SAMPLES).await;
    let concurrent =
        refresh_throughput(&app, sessions.into_iter().take(CONCURRENCY).collect()).await;
    report(
        "oidc",
        json!({
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "oidc_start": summary(starts),
            "oidc_provider_authorize_not_meridian": summary(idp),
            "oidc_callback": summary(callbacks),
            "refresh_oidc_session_sequential": summary(samples),
            "refresh_oidc_session_concurrent": concurrent,
        }),
    );
}
