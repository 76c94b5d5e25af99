//! TLS on the public listener (`http.tls`, off by default: in the cloud TLS ends
//! at the load balancer) and on the forwarding hop between nodes.
//!
//! Listener: rustls with the ring provider. The certificate and key are read
//! from `cert_file` / `key_file` at start (a bad pair stops the start) and again
//! at most every `reload_interval_ms`, at a handshake: when either file's bytes
//! changed and the new pair parses and fits, new handshakes get it; a broken or
//! half-written pair is logged and the previous one kept. So a renewed
//! certificate is served without a restart and without a timer task. With TLS
//! on, every answer carries `Strict-Transport-Security`.
//!
//! Hop: a node forwards to a peer (and probes its `/readyz`) over https when the
//! peer's URL (`routing.peers`) is https, verifying the certificate for the
//! URL's host against Mozilla's roots plus `routing.hop_ca_file` (a private CA
//! of the nodes). PEM through rustls-pki-types' `PemObject`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

/// Sent with every answer of a TLS listener: one year, subdomains included
/// (tenants are served under `{slug}.<api_domain>`).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerTlsSettings {
    /// PEM certificate chain (leaf first); with `key_file`, turns TLS on.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// How often, at most, the files are looked at for a new pair.
    #[serde(rename = "reload_interval_ms", with = "crate::config::millis")]
    pub reload_interval: Duration,
}

impl Default for ServerTlsSettings {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_interval: Duration::from_secs(2),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ServerTlsSettings {
    /// The listener's rustls configuration, or None when TLS is off. Reads and
    /// checks both files.
    pub fn server_config(&self) -> Result<Option<rustls::ServerConfig>, String> {
        let (cert, key) = match (&self.cert_file, &self.key_file) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => return Err("http.tls.cert_file and http.tls.key_file go together".into()),
        };
        if self.reload_interval.is_zero() {
            return Err("http.tls.reload_interval_ms must be positive".into());
        }
        let resolver = ReloadingCert::new(cert, key, self.reload_interval)?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        Ok(Some(config))
    }
}

/// The files' bytes and the key they made.
struct Loaded {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    key: Arc<CertifiedKey>,
    checked: Instant,
}

/// Serves the pair of files, re-read when they change (see the module doc).
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    interval: Duration,
    current: Mutex<Loaded>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loaded { .. }")
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("http.tls.{key} {}: {e}", path.display()))
}

/// The pair as rustls signs with it; checks that the key fits the certificate.
fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("http.tls.cert_file: {e}"))?;
    if chain.is_empty() {
        return Err("http.tls.cert_file holds no PEM certificate".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("http.tls.key_file: {e}"))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| format!("http.tls.cert_file and key_file do not fit: {e}"))?;
    Ok(certified)
}

impl ReloadingCert {
    pub fn new(cert_file: PathBuf, key_file: PathBuf, interval: Duration) -> Result<Self, String> {
        let cert_pem = read("cert_file", &cert_file)?;
        let key_pem = read("key_file", &key_file)?;
        let key = Arc::new(certified_key(&cert_pem, &key_pem)?);
        Ok(Self {
            cert_file,
            key_file,
            interval,
            current: Mutex::new(Loaded {
                cert_pem,
                key_pem,
                key,
                checked: Instant::now(),
            }),
        })
    }

    /// Re-reads the files if the interval has passed; keeps the old pair when the
    /// new one does not load.
    fn refresh(&self, loaded: &mut Loaded) {
        if loaded.checked.elapsed() < self.interval {
            return;
        }
        loaded.checked = Instant::now();
        let (Ok(cert_pem), Ok(key_pem)) = (
            read("cert_file", &self.cert_file),
            read("key_file", &self.key_file),
        ) else {
            tracing::warn!(
                "http.tls: the certificate or key file is unreadable; keeping the one loaded"
            );
            return;
        };
        if cert_pem == loaded.cert_pem && key_pem == loaded.key_pem {
            return;
        }
        match certified_key(&cert_pem, &key_pem) {
            Ok(key) => {
                loaded.key = Arc::new(key);
                loaded.cert_pem = cert_pem;
                loaded.key_pem = key_pem;
                tracing::info!(cert_file = %self.cert_file.display(), "http.tls: new certificate loaded");
            }
            // Often a renewal caught between writing the two files: the next
            // look, after it finished, loads it.
            Err(err) => {
                tracing::warn!(error = %err, "http.tls: new files do not load; keeping the one loaded")
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut loaded = self.current.lock().ok()?;
        self.refresh(&mut loaded);
        Some(loaded.key.clone())
    }
}

/// The hop's TLS client configuration: Mozilla's roots plus `hop_ca_file`'s.
pub fn hop_client_config(hop_ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = hop_ca_file {
        let error =
            |e: &dyn std::fmt::Display| format!("routing.hop_ca_file {}: {e}", path.display());
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| error(&e))? {
            roots
                .add(cert.map_err(|e| error(&e))?)
                .map_err(|e| error(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(error(&"holds no PEM certificate"));
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The hop speaks HTTP/1.1, as the listener's plain side does.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// An awc client for node-to-node traffic (hops, probes): https verified by
/// `hop_client_config`.
/// `timeout`: the whole exchange (awc's default without it); `source`: the
/// local IP the connection leaves from (`routing.source_address`).
pub fn hop_client(
    config: &Arc<rustls::ClientConfig>,
    timeout: Option<Duration>,
    source: Option<std::net::IpAddr>,
) -> awc::Client {
    let mut connector = awc::Connector::new().rustls_0_23(config.clone());
    if let Some(ip) = source {
        connector = connector.local_address(ip);
    }
    let builder = awc::Client::builder()
        .connector(connector)
        .disable_redirects();
    match timeout {
        Some(timeout) => builder.timeout(timeout).finish(),
        None => builder.finish(),
    }
}
