//! https through the outbound client: a local TLS server whose certificate is
//! issued by a CA the test makes with rcgen. Trusted through
//! `outbound.extra_ca_file`, the AI engine gets its completion over https (and so
//! would a webhook: same client); without that CA, or for a name the
//! certificate does not carry, the handshake is refused.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use meridian::outbound::{Client, OutboundError, OutboundSettings};
use meridian::summaries::engine::{Engine, EngineError, Input};
use meridian::summaries::openai::OpenAi;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::ai_engine::engine_settings;

/// A CA (its PEM) and a server certificate for `127.0.0.1` only, signed by it.
fn ca_and_leaf() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Meridian test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    leaf.distinguished_name.push(DnType::CommonName, "engine");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    (
        ca_cert.pem(),
        leaf_cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
}

/// A TLS server on 127.0.0.1 answering every request with a chat completion;
/// its port and the number of requests it completed.
async fn tls_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (u16, Arc<AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    actix_web::rt::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue; // a client that refused our certificate
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            loop {
                let n = tls.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(head) = text.find("\r\n\r\n") {
                    let length: usize = text[..head]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= head + 4 + length || n == 0 {
                        break;
                    }
                }
            }
            let body = serde_json::json!({
                "choices": [{"message": {"role": "assistant", "content": "Served over TLS."}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
            })
            .to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tls.write_all(answer.as_bytes()).await.unwrap();
            tls.shutdown().await.ok();
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, served)
}

fn client(extra_ca_file: Option<std::path::PathBuf>) -> Client {
    Client::new(OutboundSettings {
        allow_loopback: true,
        extra_ca_file,
        ..OutboundSettings::default()
    })
    .unwrap()
}

#[actix_web::test]
async fn the_engine_speaks_https_to_a_server_of_a_trusted_private_ca() {
    let (ca_pem, cert, key) = ca_and_leaf();
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let (port, served) = tls_server(cert, key).await;
    let messages = vec![(Uuid::now_v7(), "Deploy on Friday?".to_owned())];
    let input = Input {
        messages: &messages,
        max_sentences: 1,
    };

    let base = format!("https://127.0.0.1:{port}/v1");
    let trusted = OpenAi::new(
        engine_settings(&base, "us-east1"),
        client(Some(ca_file.clone())),
    )
    .unwrap();
    let out = trusted.summarise(&input).await.unwrap();
    assert_eq!(
        (out.text.as_str(), out.tokens_used),
        ("Served over TLS.", 14)
    );
    assert_eq!(served.load(Ordering::SeqCst), 1);

    // Mozilla's roots alone do not know the test CA: refused, for good.
    let untrusted = OpenAi::new(engine_settings(&base, "us-east1"), client(None)).unwrap();
    let err = untrusted.summarise(&input).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Permanent(why) if why.contains("TLS")),
        "{err:?}"
    );
    // The certificate names 127.0.0.1, not `localhost`.
    let url =
        meridian::outbound::url::parse(&format!("https://localhost:{port}/v1/chat/completions"))
            .unwrap();
    let wrong_name = client(Some(ca_file.clone()))
        .post_json(&url, &[], b"{}")
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_name, OutboundError::Tls(_)),
        "{wrong_name:?}"
    );
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "no request went out unverified"
    );

    // A file without a certificate is refused at start.
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    assert!(
        Client::new(OutboundSettings {
            extra_ca_file: Some(empty),
            ..OutboundSettings::default()
        })
        .is_err()
    );
}
