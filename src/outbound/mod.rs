//! The one outbound HTTP client (webhooks, the AI engine): SSRF-safe by
//! construction. A request's host is resolved first (hickory, or the IP literal),
//! every resolved address is vetted (`vet`: loopback, private, link-local incl.
//! cloud metadata, CGNAT, unspecified, multicast … refused; loopback allowed only
//! by the dev/test setting `outbound.allow_loopback`), and the TCP connection goes
//! to the vetted address itself, so no second resolution can swap it. Redirects
//! are never followed (a 3xx is the answer). Connect and whole-exchange time and
//! the answer's size are bounded. `https://` URLs run over TLS (rustls with the
//! ring provider; Mozilla's roots from `webpki-roots`, plus the PEM file of
//! `outbound.extra_ca_file`), the certificate verified for the URL's host.

pub mod url;
pub mod vet;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub use url::{Host, HttpUrl};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboundSettings {
    /// Dev/test only: let requests reach loopback addresses (never other
    /// internal ranges). Off by default.
    pub allow_loopback: bool,
    #[serde(rename = "connect_timeout_ms", with = "crate::config::millis")]
    pub connect_timeout: Duration,
    /// The whole exchange: connect, send, read the answer.
    #[serde(rename = "total_timeout_ms", with = "crate::config::millis")]
    pub total_timeout: Duration,
    /// Answers larger than this are cut off and count as a failure.
    pub max_response_bytes: usize,
    /// Name servers; empty: the `nameserver` lines of /etc/resolv.conf.
    pub dns_servers: Vec<IpAddr>,
    /// A PEM file of CA certificates trusted for `https` besides Mozilla's roots
    /// (a private CA of an internal AI engine or receiver). None by default.
    pub extra_ca_file: Option<PathBuf>,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            allow_loopback: false,
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            dns_servers: Vec::new(),
            extra_ca_file: None,
        }
    }
}

/// A timeout as the whole milliseconds `OutboundError::Timeout` names.
fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("refused: {host} resolves to {ip}, which is {reason}")]
    Refused {
        host: String,
        ip: IpAddr,
        reason: &'static str,
    },
    #[error("could not resolve {0}")]
    Resolve(String),
    #[error("connecting failed: {0}")]
    Connect(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("the answer exceeded {0} bytes")]
    TooLarge(usize),
    #[error("invalid HTTP answer: {0}")]
    Protocol(String),
    /// The TLS handshake failed (unknown issuer, wrong name, expired, …).
    #[error("TLS: {0}")]
    Tls(String),
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The answer's `ETag` header, if any (CalDAV's PUT answers carry one).
    pub etag: Option<String>,
}

/// What an exchange sends: the verb and the body's content type.
#[derive(Clone, Copy)]
enum Method {
    Get,
    PostJson,
    PostForm,
    /// Any verb (WebDAV's PROPFIND, REPORT, PUT, DELETE), the content type given.
    Other(&'static str, &'static str),
}

/// One request of `Client::request`: WebDAV/CalDAV verbs, their headers and
/// a larger answer bound than a webhook's (a calendar's multistatus).
pub struct Request<'a> {
    pub method: &'static str,
    pub url: &'a HttpUrl,
    pub headers: &'a [(&'a str, String)],
    /// e.g. `application/xml; charset=utf-8`; empty: no `Content-Type`.
    pub content_type: &'static str,
    pub body: &'a [u8],
    pub max_response_bytes: usize,
    /// Bounds of this exchange (CalDAV has its own, `calendar.*`): the TCP
    /// (and TLS) connect, and the whole exchange.
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
}

#[derive(Clone)]
pub struct Client {
    settings: OutboundSettings,
    resolver: Arc<TokioResolver>,
    tls: tokio_rustls::TlsConnector,
}

/// The TLS client configuration: Mozilla's roots plus `extra_ca_file`'s.
fn tls_config(settings: &OutboundSettings) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.extra_ca_file {
        let read = |e: rustls::pki_types::pem::Error| {
            anyhow::anyhow!("outbound.extra_ca_file {}: {e}", path.display())
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(read)? {
            roots.add(cert.map_err(read)?)?;
            added += 1;
        }
        anyhow::ensure!(
            added > 0,
            "outbound.extra_ca_file {} holds no certificate",
            path.display()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Client {
    pub fn new(settings: OutboundSettings) -> anyhow::Result<Self> {
        let servers = if settings.dns_servers.is_empty() {
            system_name_servers()
        } else {
            settings.dns_servers.clone()
        };
        let name_servers = servers
            .into_iter()
            .map(|ip| NameServerConfig::new(ip, true, vec![ConnectionConfig::udp()]))
            .collect();
        let config = ResolverConfig::from_parts(None, vec![], name_servers);
        let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.use_hosts_file = ResolveHosts::Always;
        options.timeout = settings.connect_timeout;
        let resolver = builder.build()?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&settings)?));
        Ok(Self {
            settings,
            resolver: Arc::new(resolver),
            tls,
        })
    }

    pub fn settings(&self) -> &OutboundSettings {
        &self.settings
    }

    /// The vetted address to connect to for `url`, or why there is none. Every
    /// address the name resolves to must pass: a name mixing a public and an
    /// internal address is refused, not half-trusted.
    pub async fn vetted_address(&self, url: &HttpUrl) -> Result<SocketAddr, OutboundError> {
        let (label, ips) = match &url.host {
            Host::Ip(ip) => (ip.to_string(), vec![*ip]),
            // RFC 6761: `localhost` names are loopback, whatever a resolver says.
            Host::Name(name) if name == "localhost" || name.ends_with(".localhost") => (
                name.clone(),
                vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ],
            ),
            Host::Name(name) => {
                let lookup = self
                    .resolver
                    .lookup_ip(name.as_str())
                    .await
                    .map_err(|e| OutboundError::Resolve(format!("{name}: {e}")))?;
                (name.clone(), lookup.iter().collect())
            }
        };
        if ips.is_empty() {
            return Err(OutboundError::Resolve(label));
        }
        for ip in &ips {
            if let Some(reason) = vet::refusal(*ip, self.settings.allow_loopback) {
                return Err(OutboundError::Refused {
                    host: label,
                    ip: *ip,
                    reason,
                });
            }
        }
        Ok(SocketAddr::new(ips[0], url.port))
    }

    /// POSTs `body` (JSON) with `headers` to `url`; redirects are not followed.
    pub async fn post_json(
        &self,
        url: &HttpUrl,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Response, OutboundError> {
        self.post_json_within(url, headers, body, self.settings.total_timeout)
            .await
    }

    /// `post_json` with its own bound on the whole exchange (the AI engine's
    /// answers take longer than a webhook receiver's).
    pub async fn post_json_within(
        &self,
        url: &HttpUrl,
        headers: &[(&str, String)],
        body: &[u8],
        total: Duration,
    ) -> Result<Response, OutboundError> {
        tokio::time::timeout(total, self.exchange(Method::PostJson, url, headers, body))
            .await
            .map_err(|_| OutboundError::Timeout(millis(total)))?
    }

    /// GETs `url` (identity providers' discovery and keys); redirects are not
    /// followed.
    pub async fn get(&self, url: &HttpUrl) -> Result<Response, OutboundError> {
        let total = self.settings.total_timeout;
        tokio::time::timeout(total, self.exchange(Method::Get, url, &[], b""))
            .await
            .map_err(|_| OutboundError::Timeout(millis(total)))?
    }

    /// POSTs a form (`application/x-www-form-urlencoded`): an OIDC token request.
    pub async fn post_form(
        &self,
        url: &HttpUrl,
        headers: &[(&str, String)],
        form: &[u8],
    ) -> Result<Response, OutboundError> {
        let total = self.settings.total_timeout;
        tokio::time::timeout(total, self.exchange(Method::PostForm, url, headers, form))
            .await
            .map_err(|_| OutboundError::Timeout(millis(total)))?
    }

    /// Sends `request` (any verb) within the request's own connect and total
    /// timeouts; the answer may be up to `request.max_response_bytes`.
    /// Redirects are not followed.
    pub async fn request(&self, request: Request<'_>) -> Result<Response, OutboundError> {
        let total = request.total_timeout;
        let method = Method::Other(request.method, request.content_type);
        tokio::time::timeout(
            total,
            self.exchange_bounded(
                method,
                request.url,
                request.headers,
                request.body,
                request.max_response_bytes,
                request.connect_timeout,
            ),
        )
        .await
        .map_err(|_| OutboundError::Timeout(millis(total)))?
    }

    async fn exchange(
        &self,
        method: Method,
        url: &HttpUrl,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Response, OutboundError> {
        let limit = self.settings.max_response_bytes;
        let connect = self.settings.connect_timeout;
        self.exchange_bounded(method, url, headers, body, limit, connect)
            .await
    }

    async fn exchange_bounded(
        &self,
        method: Method,
        url: &HttpUrl,
        headers: &[(&str, String)],
        body: &[u8],
        limit: usize,
        connect: Duration,
    ) -> Result<Response, OutboundError> {
        let addr = self.vetted_address(url).await?;
        let stream = tokio::time::timeout(connect, TcpStream::connect(addr))
            .await
            .map_err(|_| OutboundError::Timeout(millis(connect)))?
            .map_err(|e| OutboundError::Connect(format!("{addr}: {e}")))?;
        if !url.tls {
            return self.send(stream, method, url, headers, body, limit).await;
        }
        // The name the certificate must carry is the URL's host (the address we
        // connect to was vetted for that host above).
        let name = match &url.host {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Name(name) => ServerName::try_from(name.clone())
                .map_err(|e| OutboundError::Tls(format!("{name}: {e}")))?,
        };
        let stream = tokio::time::timeout(connect, self.tls.connect(name, stream))
            .await
            .map_err(|_| OutboundError::Timeout(millis(connect)))?
            .map_err(|e| match e.kind() {
                // rustls reports a refused certificate or protocol as InvalidData;
                // anything else is the connection failing underneath.
                std::io::ErrorKind::InvalidData => OutboundError::Tls(e.to_string()),
                _ => OutboundError::Connect(format!("{addr}: {e}")),
            })?;
        self.send(stream, method, url, headers, body, limit).await
    }

    async fn send<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        method: Method,
        url: &HttpUrl,
        headers: &[(&str, String)],
        body: &[u8],
        limit: usize,
    ) -> Result<Response, OutboundError> {
        let other;
        let (verb, content_type) = match method {
            Method::Get => ("GET", ""),
            Method::PostJson => ("POST", "Content-Type: application/json\r\n"),
            Method::PostForm => (
                "POST",
                "Content-Type: application/x-www-form-urlencoded\r\n",
            ),
            Method::Other(verb, "") => (verb, ""),
            Method::Other(verb, content_type) => {
                other = format!("Content-Type: {content_type}\r\n");
                (verb, other.as_str())
            }
        };
        let mut request = format!(
            "{verb} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Meridian\r\n{content_type}\
                Content-Length: {}\r\nConnection: close\r\n",
            url.path,
            url.authority,
            body.len()
        );
        for (name, value) in headers {
            // Values are built by this program; refuse rather than inject.
            if value.contains(['\r', '\n']) || name.contains(['\r', '\n', ':']) {
                return Err(OutboundError::Protocol("header with a line break".into()));
            }
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let io = |e: std::io::Error| OutboundError::Connect(e.to_string());
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        read_response(&mut stream, limit).await
    }
}

async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: usize,
) -> Result<Response, OutboundError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| OutboundError::Connect(e.to_string()))?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > limit {
            return Err(OutboundError::TooLarge(limit));
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let status = parsed
            .parse(&buf)
            .map_err(|e| OutboundError::Protocol(e.to_string()))?;
        if let httparse::Status::Complete(head) = status {
            let code = parsed.code.unwrap_or(0);
            let length = parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            let etag = parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("etag"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(|v| v.trim().to_owned());
            let mut response =
                read_body(stream, buf, head, code, length, limit, &mut chunk).await?;
            response.etag = etag;
            return Ok(response);
        }
        if n == 0 {
            return Err(OutboundError::Protocol(
                "connection closed before the headers".into(),
            ));
        }
    }
}

async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
    head: usize,
    status: u16,
    length: Option<usize>,
    limit: usize,
    chunk: &mut [u8],
) -> Result<Response, OutboundError> {
    loop {
        if length.is_some_and(|len| buf.len() - head >= len) {
            break;
        }
        let n = stream
            .read(chunk)
            .await
            .map_err(|e| OutboundError::Connect(e.to_string()))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > limit {
            return Err(OutboundError::TooLarge(limit));
        }
    }
    Ok(Response {
        status,
        body: buf.split_off(head),
        etag: None,
    })
}

/// `nameserver` lines of /etc/resolv.conf (none if it cannot be read).
fn system_name_servers() -> Vec<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect()
}
