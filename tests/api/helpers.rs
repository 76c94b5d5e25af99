//! The test harness: one private PostgreSQL cluster per test binary (started on
//! first use from the system's binaries, stopped when the binary exits), a
//! migrated template database, and per test a fresh database cloned from it with
//! the real application booted on port 0 in front of it.
//!
//! With `MERIDIAN_TEST_COCKROACH_URL` (an admin URL of an insecure CockroachDB
//! 25.2 or later cluster whose nodes carry the five regions of `regions/`; see
//! docs/cockroachdb.md) the same suite runs against that cluster instead: each
//! test gets a new database migrated with `meridian migrate`'s runner (CockroachDB
//! has no `CREATE DATABASE … TEMPLATE`). Every run says on stderr which one it used.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use awc::http::StatusCode;
use meridian::Application;
use meridian::auth::{Claims, KeySet, Role, TokenVerifier};
use meridian::config::{LogFormat, Settings};
use meridian_local::embedded_pg::EmbeddedPg;
use serde_json::{Value, json};
use uuid::Uuid;

const TEMPLATE: &str = "meridian_template";

/// Rate and concurrency overrides that tests other than the limit tests never reach.
pub static UNLIMITED_RATE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!({ "requests_per_second": 100_000, "burst": 1_000_000, "concurrent_requests": 10_000 }),
);

pub struct Cluster {
    _pg: Option<EmbeddedPg>,
    /// `postgres://user[:pw]@host:port/` (the database name follows).
    superuser_base: String,
    /// `host:port`.
    host: String,
    /// `?sslmode=…` and the like, or empty.
    query: String,
    app_password: String,
    pub dialect: meridian::db::Dialect,
    pub keys_file: PathBuf,
    /// The local KEK file every test node shares (nodes of one test share a
    /// database, so they must share the KEKs that wrap its DEKs).
    pub kek_file: PathBuf,
}

/// Splits `postgres://user@host:port/db?query` into (`postgres://user@host:port/`,
/// `host:port`, `?query`).
fn split_url(url: &str) -> (String, String, String) {
    let (url, query) = match url.split_once('?') {
        Some((u, q)) => (u, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default().to_owned();
    (format!("{scheme}://{authority}/"), host, query)
}

/// Written past the test harness's output capture, so it shows in every run.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "meridian tests: {line}");
}

/// Removes state of earlier test runs whose process is gone.
fn sweep_stale(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix("meridian-test-")
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // Own thread and runtime: the caller may be inside another runtime.
        std::thread::spawn(|| {
            let root = std::env::temp_dir();
            sweep_stale(&root);
            let dir = root.join(format!("meridian-test-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let keys_file = dir.join("keys.json");
            KeySet::ensure_file(&keys_file).unwrap();
            let kek_file = dir.join("keks.json");
            meridian::crypto::provider::LocalFileProvider::ensure(&kek_file, &["apac", "eu", "us"])
                .unwrap();
            meridian::crypto::signing::ensure_key_file(&dir.join("signing-key.json")).unwrap();
            if let Some(url) = std::env::var("MERIDIAN_TEST_COCKROACH_URL")
                .ok()
                .filter(|u| !u.is_empty())
            {
                announce("CockroachDB run: MERIDIAN_TEST_COCKROACH_URL is set; every test migrates its own database on that cluster");
                let (superuser_base, host, query) = split_url(&url);
                return Cluster {
                    _pg: None,
                    superuser_base,
                    host,
                    query,
                    app_password: meridian_local::dev::random_alphanumeric(24).unwrap(),
                    dialect: meridian::db::Dialect::Cockroach,
                    keys_file,
                    kek_file,
                };
            }
            announce("CockroachDB run SKIPPED (MERIDIAN_TEST_COCKROACH_URL is not set): this run uses the embedded PostgreSQL 15 only");
            let pg =
                EmbeddedPg::start(&dir.join("pg")).expect("starting the test PostgreSQL cluster");
            let app_password = meridian_local::dev::random_alphanumeric(24).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                meridian_local::dev::create_database_if_missing(&pg.superuser_url("postgres"), TEMPLATE)
                    .await
                    .unwrap();
                meridian::db::migrate::run(
                    &pg.superuser_url(TEMPLATE),
                    Some(&app_password),
                    Some(meridian::db::Dialect::Postgres),
                )
                .await
                .unwrap();
            });
            let (superuser_base, host, query) = split_url(&pg.superuser_url(""));
            Cluster {
                _pg: Some(pg),
                superuser_base,
                host,
                query,
                app_password,
                dialect: meridian::db::Dialect::Postgres,
                keys_file,
                kek_file,
            }
        })
        .join()
        .expect("cluster start-up panicked")
    })
}

impl Cluster {
    pub fn superuser_url(&self, db: &str) -> String {
        format!("{}{db}{}", self.superuser_base, self.query)
    }
    pub fn app_url(&self, db: &str) -> String {
        format!(
            "postgres://meridian_app:{}@{}/{db}{}",
            self.app_password, self.host, self.query
        )
    }
}

pub struct TestApp {
    pub base: String,
    /// `http://<admin listener>/metrics`.
    pub metrics_url: String,
    pub db_name: String,
    pub verifier: Arc<TokenVerifier>,
    pub client: awc::Client,
    handle: actix_web::dev::ServerHandle,
    pub shutdown: meridian::Shutdown,
}

pub async fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!("t_{}", Uuid::new_v4().simple());
    let (client, conn) =
        tokio_postgres::connect(&cluster.superuser_url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let driver = actix_web::rt::spawn(conn);
    match cluster.dialect {
        meridian::db::Dialect::Postgres => client
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .await
            .unwrap(),
        meridian::db::Dialect::Cockroach => {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            meridian::db::migrate::run(
                &cluster.superuser_url(&name),
                Some(&cluster.app_password),
                Some(meridian::db::Dialect::Cockroach),
            )
            .await
            .unwrap();
        }
    }
    drop(client);
    let _ = driver.await;
    name
}

/// A new PostgreSQL database with the migrations up to `version` applied, as an
/// older release left it: its superuser URL and a client of it.
pub async fn database_migrated_to(version: i32) -> (String, tokio_postgres::Client) {
    let cluster = cluster();
    let name = format!("u_{}", Uuid::new_v4().simple());
    meridian_local::dev::create_database_if_missing(&cluster.superuser_url("postgres"), &name)
        .await
        .unwrap();
    let url = cluster.superuser_url(&name);
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    let before: Vec<_> = meridian::db::migrate::migrations(meridian::db::Dialect::Postgres)
        .unwrap()
        .into_iter()
        .filter(|m| m.version() <= version)
        .collect();
    refinery::Runner::new(&before)
        .run_async(&mut client)
        .await
        .unwrap();
    (url, client)
}

/// The repository's `regions/`: this harness also runs in `local/`'s CLI tests.
pub fn regions_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let here = manifest.join("regions");
    if here.is_dir() {
        here
    } else {
        manifest.join("../regions")
    }
}

pub fn test_settings(db_name: &str) -> Settings {
    let cluster = cluster();
    let mut settings = Settings {
        region: "us-east1".into(),
        regions_dir: regions_dir(),
        ..Settings::default()
    };
    settings.http.bind = Some("127.0.0.1:0".parse().unwrap());
    settings.admin.bind = Some("127.0.0.1:0".parse().unwrap());
    settings.http.workers = 1;
    settings.database.url = cluster.app_url(db_name).into();
    settings.database.dialect = cluster.dialect;
    settings.database.pool_size = 8;
    settings.auth.keys_file = cluster.keys_file.clone();
    settings.encryption.kek_file = cluster.kek_file.clone();
    settings.signing.key_file = cluster.kek_file.with_file_name("signing-key.json");
    settings.residency.served_flush = std::time::Duration::from_millis(200);
    settings.access_log.flush_interval = std::time::Duration::from_millis(200);
    // Audit events are chained by the node's sealer: within 50 ms here.
    settings.audit.seal_interval = std::time::Duration::from_millis(50);
    // Tests run retention jobs themselves. With hourly periods a new period's
    // scheduled job could start in the middle of one (a run at 18:00 did so);
    // a ten-year period makes the first tick's job the only scheduled one.
    settings.retention.interval = std::time::Duration::from_secs(10 * 365 * 24 * 3600);
    // Short, so tests of other nodes' view after a destroy need not wait long.
    settings.encryption.dek_cache_ttl = std::time::Duration::from_secs(2);
    settings.directory.refresh_interval = std::time::Duration::from_millis(200);
    settings.limits.unauthenticated_per_second = 100_000;
    settings.limits.unauthenticated_burst = 1_000_000;
    // The database-time budgets (20 ms/s per tenant by default) would refuse a
    // test's searches, audit verifications and large pages once a debug build
    // on a busy machine has spent them; `cost::*` sets its own and tests them.
    settings.limits.cost.db_ms_per_second = 0;
    settings.limits.cost.db_node_ms_per_second = 0;
    settings.limits.denial_summary_interval = std::time::Duration::from_millis(200);
    settings.routing.hop_secret = "test hop secret, shared by every node".into();
    settings.routing.redirect_to_peers = true;
    settings.routing.probe_interval = std::time::Duration::from_millis(100);
    settings.routing.probe_timeout = std::time::Duration::from_millis(500);
    settings.log.format = LogFormat::Pretty;
    settings.log.filter = "warn".into();
    // Webhook receivers and the AI stub the tests start listen on 127.0.0.1.
    settings.outbound.allow_loopback = true;
    // One export store per database: the nodes of a test share it like a
    // region's nodes share theirs.
    settings.exports.dir = std::env::temp_dir()
        .join("meridian-test-exports")
        .join(db_name);
    settings
}

pub async fn spawn_app() -> TestApp {
    let db_name = fresh_database().await;
    spawn_app_with(test_settings(&db_name)).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let db_name = settings
        .database
        .url
        .expose()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // A node with a TLS listener is asked over https, trusting the CA its peers
    // trust (`routing.hop_ca_file`).
    let https = settings.http.tls.cert_file.is_some();
    let hop_tls =
        meridian::server_tls::hop_client_config(settings.routing.hop_ca_file.as_deref()).unwrap();
    let keys = KeySet::load(&settings.auth.keys_file).unwrap();
    let verifier = Arc::new(TokenVerifier::new(keys, &settings.auth));
    let app = Application::build(settings)
        .await
        .expect("building the app");
    let handle = app.handle();
    let shutdown = app.shutdown();
    let base = format!(
        "{}://{}",
        if https { "https" } else { "http" },
        app.address()
    );
    let metrics_url = format!("http://{}/metrics", app.admin_address());
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        base,
        metrics_url,
        db_name,
        verifier,
        // awc's default 5 s bound is a timing assertion in disguise: the suite runs
        // dozens of nodes and PostgreSQL on two cores, where a request can queue
        // that long. Tests check answers, not speed (benchmarks do that).
        client: if https {
            meridian::server_tls::hop_client(
                &Arc::new(hop_tls),
                Some(std::time::Duration::from_secs(30)),
                None,
            )
        } else {
            awc::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .finish()
        },
        handle,
        shutdown,
    }
}

/// A provisioned tenant and its owner.
pub struct Tenant {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub owner_token: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub fn platform_token(&self) -> String {
        self.verifier
            .issue("test-admin".into(), None, Role::PlatformAdmin, 600)
            .unwrap()
    }

    pub fn token(&self, tenant: Uuid, user: Uuid, role: Role) -> String {
        self.verifier
            .issue(user.to_string(), Some(tenant), role, 600)
            .unwrap()
    }

    pub fn sign(&self, claims: &Claims) -> String {
        KeySet::load(&cluster().keys_file)
            .unwrap()
            .sign(claims)
            .unwrap()
    }

    /// Signs arbitrary claims (e.g. an `nbf`) with the cluster's signing key,
    /// whatever fields `Claims` has.
    pub fn sign_value(&self, claims: &Value) -> String {
        use base64::Engine;
        let text = std::fs::read_to_string(&cluster().keys_file).unwrap();
        let file: Value = serde_json::from_str(&text).unwrap();
        let kid = file["signing_kid"].as_str().unwrap();
        let entry = file["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap();
        let der = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(entry["private_key_pkcs8"].as_str().unwrap())
            .unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&der),
        )
        .unwrap()
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut res = match body {
            Some(body) => req.send_json(&body).await.unwrap(),
            None => req.send().await.unwrap(),
        };
        let bytes = res.body().limit(16 * 1024 * 1024).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status: res.status(),
            headers: res.headers().clone(),
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request("POST", path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request("PATCH", path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request("DELETE", path, Some(token), None).await
    }

    pub async fn provision(&self, slug: &str) -> Tenant {
        let reply = self
            .post(
                "/v1/tenants",
                &self.platform_token(),
                json!({ "slug": slug, "name": format!("{slug} Inc"), "home_region": "us-east1",
                        "owner": { "email": format!("owner@{slug}.example"), "display_name": "Owner" },
                        // Tests drive requests far faster than the free plan allows;
                        // tests of the rate limits set their own.
                        "limits": UNLIMITED_RATE.clone() }),
            )
            .await;
        assert_eq!(reply.status, 201, "provisioning {slug}: {}", reply.body);
        let id: Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
        let owner_id: Uuid = reply.body["owner"]["id"].as_str().unwrap().parse().unwrap();
        Tenant {
            id,
            owner_id,
            owner_token: self.token(id, owner_id, Role::Owner),
        }
    }

    /// Creates a user with `role` and returns its id and a token.
    pub async fn add_user(&self, tenant: &Tenant, role: &str) -> (Uuid, String) {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let reply = self
            .post(
                "/v1/users",
                &tenant.owner_token,
                json!({ "email": email, "display_name": role, "role": role }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let id: Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
        let role = Role::parse(role).unwrap();
        (id, self.token(tenant.id, id, role))
    }

    pub async fn create_channel(&self, tenant: &Tenant, name: &str) -> Uuid {
        let reply = self
            .post("/v1/channels", &tenant.owner_token, json!({ "name": name }))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// A webhook endpoint of `tenant` (its id, its secret).
    pub async fn create_webhook(&self, tenant: &Tenant, body: Value) -> (Uuid, String) {
        let reply = self.post("/v1/webhooks", &tenant.owner_token, body).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        (
            reply.body["id"].as_str().unwrap().parse().unwrap(),
            reply.body["secret"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn post_message(&self, tenant: &Tenant, channel: Uuid, body: &str) -> Uuid {
        let reply = self
            .post(
                &format!("/v1/channels/{channel}/messages"),
                &tenant.owner_token,
                json!({ "body": body }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Stops the node (graceful): in-flight requests finish, new connections are refused.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// A client of the test database as the superuser (owns the tables, bypasses RLS).
    /// Waits until the node's sealer has chained every audit event of `tenant`
    /// written so far (`audit::seal`, every 50 ms here), or fails after 10 s.
    pub async fn audit_chained(&self, tenant: Uuid) {
        audit_chained(&self.superuser_client().await, tenant).await;
    }

    pub async fn superuser_client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &cluster().superuser_url(&self.db_name),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        actix_web::rt::spawn(conn);
        client
    }

    /// The platform trail's events with `action`, once there are at least `count`
    /// of them (cross-tenant probes are audited after the response), or after 10 s.
    pub async fn platform_events(&self, action: &str, count: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let audit = self
                .get("/v1/audit?limit=200", &self.platform_token())
                .await;
            let events: Vec<Value> = audit.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["action"] == action)
                .cloned()
                .collect();
            if events.len() >= count || std::time::Instant::now() > deadline {
                return events;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A client of the test database as the service role (RLS applies).
    pub async fn app_role_client(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&cluster().app_url(&self.db_name), tokio_postgres::NoTls)
                .await
                .unwrap();
        actix_web::rt::spawn(conn);
        client
    }
}

/// Asserts a problem+json error with `code`.
pub fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "expected {status} {code}, got {}",
        reply.body
    );
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(content_type, "application/problem+json");
    assert!(
        reply.body["request_id"].is_string(),
        "problem without request_id: {}",
        reply.body
    );
}

/// A loopback port free right now (for a fixture process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on loopback `port`; panics naming
/// `what` after `within`.
pub fn wait_listening(port: u16, within: std::time::Duration, what: &str) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `TestApp::audit_chained` with a superuser client at hand.
pub async fn audit_chained(db: &tokio_postgres::Client, tenant: Uuid) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let unchained: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND seq IS NULL",
                &[&tenant],
            )
            .await
            .unwrap()
            .get(0);
        if unchained == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{unchained} audit events of {tenant} still unchained after 10 s"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
