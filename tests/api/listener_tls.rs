//! TLS on the public listener (`http.tls`) and on the forwarding hop: nodes
//! serve https with a certificate from a CA made here, say so with HSTS, pick up
//! a renewed certificate without a restart, and forward to each other over
//! https, verifying the peer against `routing.hop_ca_file`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::helpers::free_port;
use crate::helpers::{fresh_database, spawn_app_with, test_settings};
use crate::pki::{TestCa, temp_dir};
use crate::regions::{eventually, header, provision_in};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Settings of a node serving https with `dir/node.crt` + `node.key`, trusting
/// `ca` for its peers.
fn tls_settings(db: &str, dir: &Path, ca: &TestCa) -> meridian::config::Settings {
    let mut settings = test_settings(db);
    let (cert, key) = ca.server(&["localhost"], &[LOOPBACK]).write(dir, "node");
    settings.http.tls.cert_file = Some(cert);
    settings.http.tls.key_file = Some(key);
    settings.http.tls.reload_interval = Duration::from_millis(100);
    settings.routing.hop_ca_file = Some(ca.write(dir, "ca.pem"));
    settings
}

/// The leaf certificate a TLS handshake with `port` presents (verified by `ca`).
async fn served_certificate(port: u16, ca: &Path) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(LOOPBACK.into()), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn der_of(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[actix_web::test]
async fn https_listener_sends_hsts_and_serves_a_renewed_certificate_without_restart() {
    let dir = temp_dir("listener-tls");
    let ca = TestCa::new("Meridian test node CA");
    let settings = tls_settings(&fresh_database().await, &dir, &ca);
    let ca_file = settings.routing.hop_ca_file.clone().unwrap();
    let app = spawn_app_with(settings).await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();

    let health = app.request("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(
        header(&health, "strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );
    // Problems carry it too.
    let missing = app.request("GET", "/v1/nothing-here", None, None).await;
    assert_eq!(
        header(&missing, "strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );
    let first = std::fs::read_to_string(dir.join("node.crt")).unwrap();
    assert_eq!(served_certificate(port, &ca_file).await, der_of(&first));

    // Renewal: new files in place; the next handshakes get the new certificate.
    let renewed = ca.server(&["localhost"], &[LOOPBACK]);
    renewed.write(&dir, "node");
    eventually("the renewed certificate is served", async || {
        served_certificate(port, &ca_file).await == der_of(&renewed.cert_pem)
    })
    .await;
    // A broken file (a renewal half-written) is not taken: the last good pair stays.
    std::fs::write(
        dir.join("node.crt"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        served_certificate(port, &ca_file).await,
        der_of(&renewed.cert_pem)
    );
    assert_eq!(app.request("GET", "/healthz", None, None).await.status, 200);
    app.stop().await;
}

#[actix_web::test]
async fn a_listener_without_a_usable_pair_does_not_start() {
    let dir = temp_dir("listener-tls-bad");
    let mut settings = test_settings("unused");
    let ca = TestCa::new("CA");
    let (cert, _) = ca.server(&["localhost"], &[]).write(&dir, "a");
    let (_, other_key) = ca.server(&["localhost"], &[]).write(&dir, "b");
    settings.http.tls.cert_file = Some(cert);
    settings.http.tls.key_file = Some(other_key);
    let err = meridian::Application::build(settings.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("do not fit"), "{err}");
    settings.http.tls.key_file = None;
    let err = meridian::Application::build(settings)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("go together"), "{err}");
}

#[actix_web::test]
async fn nodes_forward_to_each_other_over_https_verifying_the_peer() {
    let db = fresh_database().await;
    let dir = temp_dir("hop-tls");
    let ca = TestCa::new("Meridian test node CA");
    let ports = [("us-east1", free_port()), ("europe-west1", free_port())];
    let peers: std::collections::BTreeMap<String, String> = ports
        .iter()
        .map(|(r, p)| (r.to_string(), format!("https://127.0.0.1:{p}")))
        .collect();
    let mut nodes = Vec::new();
    for (region, port) in ports {
        let node_dir = dir.join(region);
        std::fs::create_dir_all(&node_dir).unwrap();
        let mut settings = tls_settings(&db, &node_dir, &ca);
        settings.region = region.into();
        settings.http.bind = Some(format!("127.0.0.1:{port}").parse().unwrap());
        settings.routing.peers = peers.clone();
        nodes.push(spawn_app_with(settings).await);
    }
    let (us, eu) = (&nodes[0], &nodes[1]);
    let (_, token) = provision_in(us, "hop-tls", "europe-west1", None).await;
    let posted = us
        .post("/v1/channels", &token, json!({ "name": "general" }))
        .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    assert_eq!(header(&posted, "x-meridian-region"), "europe-west1");
    let page = eu.get("/v1/channels", &token).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body["items"][0]["name"], "general");

    // A node that does not trust the peers' CA refuses the hop (it answers an
    // error instead of talking to an unverified peer).
    let mut stranger = test_settings(&db);
    let stranger_dir = dir.join("stranger");
    std::fs::create_dir_all(&stranger_dir).unwrap();
    let own_ca = TestCa::new("Another CA");
    stranger.routing.hop_ca_file = Some(own_ca.write(&stranger_dir, "ca.pem"));
    stranger.routing.peers = peers.clone();
    stranger.routing.peers.remove("us-east1");
    // Its probes fail too; keep the peer "reachable" so the tenant does not fail over.
    stranger.routing.unreachable_after = 100_000;
    let stranger = spawn_app_with(stranger).await;
    let refused = stranger
        .post("/v1/channels", &token, json!({ "name": "never" }))
        .await;
    crate::helpers::assert_problem(&refused, 503, "region_unreachable");
    let names: Vec<_> = eu.get("/v1/channels", &token).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["general"], "nothing reached the peer");
    for node in &nodes {
        node.stop().await;
    }
    stranger.stop().await;
}
