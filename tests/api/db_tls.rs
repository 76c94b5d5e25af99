//! TLS to the database (`database.tls`): a second private PostgreSQL cluster,
//! started only for these tests, with `ssl = on`, a server certificate for
//! `db.meridian.test` from a CA made here, and a pg_hba.conf of `hostssl` lines
//! only (no plain connection is accepted) plus `cert` authentication for the
//! role `meridian_cert`. Connections name the host `db.meridian.test` and reach
//! it at `hostaddr=127.0.0.1`, so the certificate's name is checked for real.

use std::path::PathBuf;
use std::sync::OnceLock;

use meridian::db::tls::{DbTlsSettings, TlsMode, connect_one};
use meridian_local::embedded_pg::{EmbeddedPg, ServerExtras};

use crate::helpers::{spawn_app_with, test_settings};
use crate::pki::{TestCa, temp_dir};

const HOST: &str = "db.meridian.test";
const DB: &str = "tls_app";

struct TlsCluster {
    _pg: EmbeddedPg,
    /// `postgres://postgres:pw@` (host, port and database follow).
    superuser_prefix: String,
    port: u16,
    app_password: String,
    ca_file: PathBuf,
    /// The CA that signed the `meridian_cert` client certificate.
    client_ca: TestCa,
}

impl TlsCluster {
    fn url(&self, prefix: &str, host: &str, db: &str) -> String {
        format!("{prefix}{host}:{}/{db}?hostaddr=127.0.0.1", self.port)
    }
    fn superuser_url(&self, host: &str, db: &str) -> String {
        self.url(&self.superuser_prefix, host, db)
    }
    fn app_url(&self, host: &str) -> String {
        let prefix = format!("postgres://meridian_app:{}@", self.app_password);
        self.url(&prefix, host, DB)
    }
    fn verify_full(&self) -> DbTlsSettings {
        DbTlsSettings {
            mode: TlsMode::VerifyFull,
            ca_file: Some(self.ca_file.clone()),
            ..Default::default()
        }
    }
}

fn tls_cluster() -> &'static TlsCluster {
    static CLUSTER: OnceLock<TlsCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // Own thread and runtime: the caller is inside the test's runtime.
        std::thread::spawn(|| {
            let dir = temp_dir("pg-tls");
            let ca = TestCa::new("Meridian test database CA");
            let server = ca.server(&[HOST], &[]);
            let client_ca = TestCa::new("Meridian test client CA");
            let extras = ServerExtras {
                tls: Some((server.cert_pem.clone(), server.key_pem.clone())),
                client_ca_pem: Some(client_ca.pem()),
                hba: Some(
                    "hostssl all meridian_cert 127.0.0.1/32 cert\n\
                     hostssl all all 127.0.0.1/32 scram-sha-256\n"
                        .into(),
                ),
            };
            let pg = EmbeddedPg::start_with(&dir.join("pg"), &extras)
                .expect("starting the TLS PostgreSQL cluster");
            let plain = pg.superuser_url("");
            let superuser_prefix = plain.split("127.0.0.1:").next().unwrap().to_owned();
            let ca_file = ca.write(&dir, "ca.pem");
            let cluster = TlsCluster {
                superuser_prefix,
                port: pg.port(),
                app_password: meridian::secret::alphanumeric(24).unwrap(),
                _pg: pg,
                ca_file,
                client_ca,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let tls = cluster.verify_full();
                let (admin, _driver) = connect_one(&cluster.superuser_url(HOST, "postgres"), &tls)
                    .await
                    .unwrap();
                for statement in [
                    &format!("CREATE DATABASE {DB}"),
                    "CREATE ROLE meridian_cert LOGIN",
                ] {
                    admin.batch_execute(statement).await.unwrap();
                }
                // The migrations run over verify-full too: the server takes nothing else.
                meridian::db::migrate::run_with_tls(
                    &cluster.superuser_url(HOST, DB),
                    &tls,
                    Some(&cluster.app_password),
                    Some(meridian::db::Dialect::Postgres),
                )
                .await
                .unwrap();
            });
            cluster
        })
        .join()
        .expect("TLS cluster start-up panicked")
    })
}

/// Settings of a node on the TLS cluster.
fn node_settings(url: String, tls: DbTlsSettings) -> meridian::config::Settings {
    let mut settings = test_settings(DB);
    settings.database.url = url.into();
    settings.database.tls = tls;
    settings
}

/// The whole start-up error of a node with these settings (it must fail).
async fn start_error(settings: meridian::config::Settings) -> String {
    match meridian::Application::build(settings).await {
        Ok(_) => panic!("the node started"),
        Err(err) => format!("{err:#}"),
    }
}

#[actix_web::test]
async fn verify_full_serves_the_app_over_encrypted_connections() {
    let cluster = tls_cluster();
    let app = spawn_app_with(node_settings(cluster.app_url(HOST), cluster.verify_full())).await;
    let tenant = app.provision("tls-db").await;
    let channel = app.create_channel(&tenant, "over-tls").await;
    app.post_message(&tenant, channel, "sent to the database over TLS")
        .await;
    // Every connection the node holds is encrypted, as the server sees it.
    let (admin, _driver) = connect_one(&cluster.superuser_url(HOST, DB), &cluster.verify_full())
        .await
        .unwrap();
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'meridian_app'",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(all > 0, "the node holds connections");
    assert_eq!(encrypted, all, "every connection of the node is TLS");
    app.stop().await;
}

#[actix_web::test]
async fn a_certificate_from_another_ca_is_refused() {
    let cluster = tls_cluster();
    let other = TestCa::new("Someone else's CA");
    let tls = DbTlsSettings {
        ca_file: Some(other.write(&temp_dir("other-ca"), "ca.pem")),
        ..cluster.verify_full()
    };
    let err = start_error(node_settings(cluster.app_url(HOST), tls)).await;
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[actix_web::test]
async fn a_certificate_for_another_host_name_is_refused() {
    let cluster = tls_cluster();
    // Same server, same CA, but the URL names a host the certificate does not carry.
    let url = cluster.app_url("replica.meridian.test");
    let err = start_error(node_settings(url, cluster.verify_full())).await;
    assert!(
        err.contains("certificate not valid for name \"replica.meridian.test\""),
        "{err}"
    );
}

#[actix_web::test]
async fn disable_against_a_server_that_requires_tls_says_what_to_set() {
    let cluster = tls_cluster();
    let err = start_error(node_settings(
        cluster.app_url(HOST),
        DbTlsSettings::default(),
    ))
    .await;
    assert!(err.contains("no encryption"), "{err}");
    assert!(
        err.contains("set database.tls.mode (MERIDIAN_DATABASE__TLS__MODE) to verify-full"),
        "{err}"
    );
}

#[actix_web::test]
async fn require_encrypts_without_verifying() {
    let cluster = tls_cluster();
    let require = DbTlsSettings {
        mode: TlsMode::Require,
        ..Default::default()
    };
    // Any name, no CA: accepted (that is what makes `require` weak).
    let (client, _driver) = connect_one(&cluster.superuser_url("anything.test", DB), &require)
        .await
        .unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
}

#[actix_web::test]
async fn client_certificate_authentication() {
    let cluster = tls_cluster();
    let dir = temp_dir("client-cert");
    let url = format!(
        "postgres://meridian_cert@{HOST}:{}/{DB}?hostaddr=127.0.0.1",
        cluster.port
    );
    let (cert, key) = cluster
        .client_ca
        .client("meridian_cert")
        .write(&dir, "good");
    let with_cert = DbTlsSettings {
        client_cert_file: Some(cert),
        client_key_file: Some(key),
        ..cluster.verify_full()
    };
    let (client, _driver) = connect_one(&url, &with_cert).await.unwrap();
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "meridian_cert");
    // No certificate, or one from a CA the server does not trust: refused.
    let without = connect_one(&url, &cluster.verify_full())
        .await
        .err()
        .unwrap();
    assert!(
        format!("{without:#}").contains("certificate"),
        "{without:#}"
    );
    let stranger = TestCa::new("Untrusted client CA");
    let (cert, key) = stranger.client("meridian_cert").write(&dir, "bad");
    let untrusted = DbTlsSettings {
        client_cert_file: Some(cert),
        client_key_file: Some(key),
        ..cluster.verify_full()
    };
    assert!(connect_one(&url, &untrusted).await.is_err());
}
