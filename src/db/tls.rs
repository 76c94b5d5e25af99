//! TLS to the database (`database.tls`): rustls with the ring provider, the same
//! style as the outbound client (`crate::outbound`), through
//! `tokio-postgres-rustls`.
//!
//! - `disable` (the default): plain TCP. For the embedded PostgreSQL of
//!   `meridian dev` and the tests, which listens on loopback only and has no
//!   certificate; a node warns at start when it uses it for a host that is not
//!   loopback. Production (terraform) sets `verify-full`.
//! - `require`: encrypted, but the server's certificate is NOT verified (any
//!   certificate is taken; the handshake's signatures are still checked). Weak:
//!   it stops a passive listener, not an active man in the middle.
//! - `verify-full`: the certificate must chain to `ca_file` (else Mozilla's
//!   roots) and carry the host name of `database.url`.
//!
//! With `client_cert_file` + `client_key_file` the node presents a client
//! certificate (CockroachDB and PostgreSQL `cert` authentication). Every file is
//! read and parsed when the settings are validated, so a bad one stops the start
//! with a message naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    #[default]
    Disable,
    Require,
    VerifyFull,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DbTlsSettings {
    /// `disable` | `require` | `verify-full` (`MERIDIAN_DATABASE__TLS__MODE`).
    pub mode: TlsMode,
    /// PEM CA bundle the server's certificate must chain to (`verify-full`);
    /// unset: Mozilla's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key for certificate authentication.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

/// What a connection uses: plain TCP or this rustls configuration.
pub enum Connector {
    Plain,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(key: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("database.tls.{key} {}: {e}", path.display())
}

fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, e))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

impl DbTlsSettings {
    /// The connector these settings ask for; every file read and parsed.
    pub fn connector(&self) -> Result<Connector, String> {
        let client_auth = match (&self.client_cert_file, &self.client_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let chain = certificates("client_cert_file", cert)?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| file_error("client_key_file", key, e))?;
                Some((chain, key_der))
            }
            _ => {
                return Err("database.tls.client_cert_file and client_key_file go together".into());
            }
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match self.mode {
            TlsMode::Disable => {
                if self.ca_file.is_some() || client_auth.is_some() {
                    return Err(
                        "database.tls files are set but database.tls.mode is disable; \
                         set it to verify-full"
                            .into(),
                    );
                }
                return Ok(Connector::Plain);
            }
            TlsMode::Require => {
                if self.ca_file.is_some() {
                    return Err(
                        "database.tls.ca_file is set but mode require does not verify \
                         the server; set database.tls.mode=verify-full"
                            .into(),
                    );
                }
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            }
            TlsMode::VerifyFull => {
                let mut roots = rustls::RootCertStore::empty();
                match &self.ca_file {
                    Some(path) => {
                        for cert in certificates("ca_file", path)? {
                            roots
                                .add(cert)
                                .map_err(|e| file_error("ca_file", path, e))?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                builder.with_root_certificates(roots)
            }
        };
        let config = match client_auth {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("database.tls.client_cert_file and client_key_file do not fit: {e}")
            })?,
        };
        Ok(Connector::Rustls(
            tokio_postgres_rustls::MakeRustlsConnect::new(config),
        ))
    }

    /// The same settings as a node reads them, from `MERIDIAN_DATABASE__TLS__*`
    /// alone (for `meridian migrate`, which has no settings file).
    pub fn from_env() -> anyhow::Result<Self> {
        use figment::providers::{Env, Serialized};
        Ok(
            figment::Figment::from(Serialized::defaults(Self::default()))
                .merge(Env::prefixed("MERIDIAN_DATABASE__TLS__"))
                .extract()?,
        )
    }

    /// The `sslmode` tokio-postgres negotiates with (the URL's own is overridden:
    /// these settings decide).
    pub fn ssl_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Require | TlsMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// One connection over `url` with these settings (migrations, admin tasks); its
/// driver runs on a spawned task.
pub async fn connect_one(
    url: &str,
    tls: &DbTlsSettings,
) -> anyhow::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.ssl_mode(tls.ssl_mode());
    match tls.connector().map_err(anyhow::Error::msg)? {
        Connector::Plain => {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            Ok((client, drive(conn)))
        }
        Connector::Rustls(tls) => {
            let (client, conn) = config.connect(tls).await?;
            Ok((client, drive(conn)))
        }
    }
}

fn drive<F>(conn: F) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::warn!(error = %err, "database connection ended");
        }
    })
}

/// `require`: takes any certificate. Handshake signatures are still verified, so
/// the session is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_and_must_fit_the_mode() {
        let missing = DbTlsSettings {
            mode: TlsMode::VerifyFull,
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = missing.connector().err().unwrap();
        assert!(
            err.starts_with("database.tls.ca_file /nonexistent/ca.pem"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("meridian-dbtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = DbTlsSettings {
            ca_file: Some(empty),
            ..missing.clone()
        }
        .connector()
        .err()
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let half = DbTlsSettings {
            mode: TlsMode::VerifyFull,
            client_cert_file: Some("/x".into()),
            ..Default::default()
        };
        assert!(half.connector().err().unwrap().contains("go together"));
        let ignored = DbTlsSettings {
            mode: TlsMode::Disable,
            ca_file: Some("/x".into()),
            ..Default::default()
        };
        assert!(
            ignored
                .connector()
                .err()
                .unwrap()
                .contains("mode is disable")
        );
        assert!(matches!(
            DbTlsSettings::default().connector(),
            Ok(Connector::Plain)
        ));
        assert!(matches!(
            DbTlsSettings {
                mode: TlsMode::Require,
                ..Default::default()
            }
            .connector(),
            Ok(Connector::Rustls(_))
        ));
    }
}
