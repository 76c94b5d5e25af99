//! `meridian dev --tls`: a local certificate authority in the state directory
//! (`tls/ca.pem`, its key `tls/ca.key`, 0600) made on first use and kept, so a
//! client told to trust it once (`curl --cacert`, a browser) keeps trusting it;
//! and at every start a fresh node certificate signed by it (`tls/node.crt` +
//! `node.key`) for every region's loopback address, `localhost`,
//! `api.meridian.test` and `*.api.meridian.test`. The CA is rebuilt from its
//! kept key and name each start: a certificate it signs chains to the kept
//! `ca.pem` (same subject, same key), so nothing but the key needs reading.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CA_NAME: &str = "Meridian dev CA (local only)";

/// The files a TLS `meridian dev` serves with.
#[derive(Clone, Debug)]
pub struct DevTls {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Makes (first time) or re-uses the CA under `dir` and issues a node
/// certificate for `addresses` and the local API names.
pub fn prepare(dir: &Path, addresses: &[SocketAddr]) -> anyhow::Result<DevTls> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_file = dir.join("ca.pem");
    let ca_key_file = dir.join("ca.key");
    let ca_key = if ca_key_file.is_file() && ca_file.is_file() {
        let pem = fs::read_to_string(&ca_key_file)
            .with_context(|| format!("reading {}", ca_key_file.display()))?;
        KeyPair::from_pem(&pem).with_context(|| format!("parsing {}", ca_key_file.display()))?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&ca_key_file, &key.serialize_pem())?;
        fs::write(&ca_file, cert.pem())
            .with_context(|| format!("writing {}", ca_file.display()))?;
        key
    };
    let issuer = ca_params()?.self_signed(&ca_key)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    let mut ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
    ips.sort();
    ips.dedup();
    leaf.subject_alt_names = ["localhost", "api.meridian.test", "*.api.meridian.test"]
        .into_iter()
        .map(|n| n.try_into().map(SanType::DnsName))
        .collect::<Result<Vec<_>, _>>()?;
    leaf.subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    leaf.distinguished_name
        .push(DnType::CommonName, "meridian dev node");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer, &ca_key)?;
    let cert_file = dir.join("node.crt");
    let key_file = dir.join("node.key");
    fs::write(&cert_file, cert.pem())
        .with_context(|| format!("writing {}", cert_file.display()))?;
    write_private(&key_file, &key.serialize_pem())?;
    Ok(DevTls {
        ca_file,
        cert_file,
        key_file,
    })
}

impl DevTls {
    /// A client configuration trusting only this CA (readiness checks).
    pub fn client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let config = meridian::server_tls::hop_client_config(Some(&self.ca_file))
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(config))
    }
}

/// `GET path` over `stream`; the answer's status.
pub async fn status_over<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
) -> anyhow::Result<u16> {
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    let line = std::str::from_utf8(&head)?;
    Ok(line.get(9..12).context("short status line")?.parse()?)
}

/// `GET path` over https to `address`, verified for its IP by `tls`.
pub async fn https_status(
    address: SocketAddr,
    path: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<u16> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await?;
    status_over(stream, &address.to_string(), path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CA is made once and kept; each start's node certificate chains to the
    /// kept `ca.pem` and names the regions' addresses.
    #[test]
    fn the_ca_is_kept_and_new_node_certificates_chain_to_it() {
        let dir = std::env::temp_dir().join(format!("meridian-dev-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let address: SocketAddr = "127.0.0.11:8080".parse().unwrap();
        let first = prepare(&dir, &[address]).unwrap();
        let ca = fs::read_to_string(&first.ca_file).unwrap();
        let first_cert = fs::read_to_string(&first.cert_file).unwrap();
        let test_server: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let second = prepare(&dir, &[address, test_server]).unwrap();
        assert_eq!(fs::read_to_string(&second.ca_file).unwrap(), ca, "CA kept");
        assert_ne!(fs::read_to_string(&second.cert_file).unwrap(), first_cert);
        let key_mode = fs::metadata(dir.join("ca.key")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
            0o600
        );
        // A TLS server with the second certificate, verified against the CA only.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let settings = meridian::server_tls::ServerTlsSettings {
                cert_file: Some(second.cert_file.clone()),
                key_file: Some(second.key_file.clone()),
                ..Default::default()
            };
            let config = settings.server_config().unwrap().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let local = listener.local_addr().unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut tls = acceptor.accept(tcp).await.unwrap();
                let mut request = [0u8; 16];
                let _ = tls.read(&mut request).await;
                tls.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                    .await
                    .unwrap();
                tls.shutdown().await.unwrap();
            });
            let status = https_status(local, "/", &second.client_config().unwrap())
                .await
                .unwrap();
            assert_eq!(status, 204);
        });
        let _ = fs::remove_dir_all(&dir);
    }
}
