//! How a virtual user reaches the API: an HTTP client bound to the user's source
//! address, a resolver whose queries leave from that same address (the GeoDNS
//! answers by the packet's source), and requests that follow 307s by `Location`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use awc::error::SendRequestError;
use awc::http::Method;
use hickory_resolver::TokioResolver;
use serde_json::Value;

/// Redirects followed before giving up (a loop would be a routing bug).
const MAX_REDIRECTS: u32 = 3;

/// A client whose connections leave from `source`.
pub fn client(source: IpAddr, timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .connector(
            awc::Connector::new()
                .local_address(source)
                .timeout(timeout.min(Duration::from_secs(2))),
        )
        .timeout(timeout)
        .disable_redirects()
        .finish()
}

/// Address `host` (counted from the subnet's base address) of an IPv4 subnet
/// written `a.b.c.d/len`.
pub fn source_in(subnet: &str, host: u32) -> anyhow::Result<IpAddr> {
    let (base, len) = subnet
        .split_once('/')
        .with_context(|| format!("client subnet `{subnet}` is not `address/length`"))?;
    let base: Ipv4Addr = base
        .parse()
        .with_context(|| format!("client subnet `{subnet}`: not an IPv4 address"))?;
    let len: u32 = len
        .parse()
        .with_context(|| format!("client subnet `{subnet}`: bad prefix length"))?;
    if len > 30 || host == 0 || u64::from(host) >= (1u64 << (32 - len)) - 1 {
        bail!("client subnet `{subnet}` has no host number {host} (use fewer users per location)");
    }
    Ok(IpAddr::V4(Ipv4Addr::from(u32::from(base) + host)))
}

/// `host:port` of an `http://host:port/…` URL.
pub fn authority_of(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    rest.split('/').next()?.parse().ok()
}

/// Percent-encodes a query value (cursors are opaque).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A resolver that asks `server` only, from `source`, never from a cache or
/// the hosts file, so every lookup shows what the GeoDNS answers right now.
pub fn resolver(server: SocketAddr, source: IpAddr) -> anyhow::Result<TokioResolver> {
    meridian_local::geodns::resolver(server, source, Duration::from_secs(1), 2)
        .map_err(anyhow::Error::msg)
}

/// One lookup: the first A record and until when it may be used (its TTL).
pub async fn lookup(resolver: &TokioResolver, name: &str) -> Result<(IpAddr, Instant), String> {
    let answer = resolver
        .lookup_ip(name)
        .await
        .map_err(|e| format!("resolving {name}: {e}"))?;
    let ip = answer
        .iter()
        .next()
        .ok_or_else(|| format!("resolving {name}: no A record"))?;
    Ok((ip, answer.valid_until()))
}

/// Where a user's requests go.
pub enum Locator {
    /// Ask the GeoDNS; re-resolve when the answer's TTL has passed.
    Dns {
        resolver: Box<TokioResolver>,
        name: String,
        port: u16,
        current: Option<(SocketAddr, Instant)>,
    },
    Fixed(SocketAddr),
}

impl Locator {
    pub async fn target(&mut self) -> Result<SocketAddr, String> {
        match self {
            Locator::Fixed(address) => Ok(*address),
            Locator::Dns {
                resolver,
                name,
                port,
                current,
            } => {
                if let Some((address, until)) = current
                    && Instant::now() < *until
                {
                    return Ok(*address);
                }
                let (ip, until) = lookup(resolver, name).await?;
                let address = SocketAddr::new(ip, *port);
                *current = Some((address, until));
                Ok(address)
            }
        }
    }
}

/// The final answer to a request, after redirects.
pub struct Answer {
    /// 599 when no HTTP answer came (see `code`).
    pub status: u16,
    pub code: Option<String>,
    pub body: Value,
    /// The region of the node the last attempt went to (from its address).
    pub landing: Option<String>,
    pub served: Option<String>,
    pub home: Option<String>,
    pub redirects: u32,
}

/// Sends a request, following 307s (same method and body) up to `MAX_REDIRECTS`.
pub async fn send(
    client: &awc::Client,
    regions: &HashMap<SocketAddr, String>,
    method: Method,
    mut url: String,
    token: &str,
    body: Option<&Value>,
) -> Answer {
    let mut redirects = 0;
    loop {
        let landing = authority_of(&url).and_then(|a| regions.get(&a).cloned());
        let request = client
            .request(method.clone(), &url)
            .insert_header(("Authorization", format!("Bearer {token}")));
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => {
                let kind = match err {
                    SendRequestError::Timeout => "timeout",
                    SendRequestError::Connect(_) => "connect",
                    _ => "transport",
                };
                return failed(kind, landing, redirects);
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (served, home) = (
            header("x-meridian-region"),
            header("x-meridian-home-region"),
        );
        if status == 307
            && redirects < MAX_REDIRECTS
            && let Some(location) = header("location")
        {
            redirects += 1;
            url = location;
            continue;
        }
        let bytes = match response.body().limit(16 << 20).await {
            Ok(bytes) => bytes,
            Err(_) => return failed("body", landing, redirects),
        };
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = if (200..300).contains(&status) {
            None
        } else {
            body["code"].as_str().map(str::to_owned)
        };
        return Answer {
            status,
            code,
            body,
            landing,
            served,
            home,
            redirects,
        };
    }
}

fn failed(kind: &str, landing: Option<String>, redirects: u32) -> Answer {
    Answer {
        status: 599,
        code: Some(kind.to_owned()),
        body: Value::Null,
        landing,
        served: None,
        home: None,
        redirects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_numbered_inside_the_subnet() {
        assert_eq!(
            source_in("127.0.2.0/24", 10).ok(),
            Some("127.0.2.10".parse().unwrap())
        );
        assert!(source_in("127.0.2.0/24", 255).is_err());
        assert!(source_in("127.0.2.0/24", 0).is_err());
        assert!(source_in("127.0.2.0", 1).is_err());
        assert!(source_in("::1/128", 1).is_err());
    }

    #[test]
    fn authorities_and_encoding() {
        assert_eq!(
            authority_of("http://127.0.0.21:8080/v1/channels"),
            Some("127.0.0.21:8080".parse().unwrap())
        );
        assert_eq!(authority_of("https://x/"), None);
        assert_eq!(encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }
}
