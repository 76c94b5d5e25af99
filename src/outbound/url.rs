//! The URLs outbound requests accept: `http[s]://host[:port]/path`, parsed strictly
//! (no user info, no fragments, no control characters or spaces), so the host the
//! checks judge is the host the request goes to.

use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: Host,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// `host[:port]` as sent in the `Host` header.
    pub authority: String,
    /// `https`: the exchange runs over TLS, the certificate checked for `host`.
    pub tls: bool,
}

/// Parses `raw`, or says why it is refused.
pub fn parse(raw: &str) -> Result<HttpUrl, String> {
    if raw.len() > 2048 {
        return Err("the URL is longer than 2048 characters".into());
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the URL contains spaces or control characters".into());
    }
    let (rest, tls) = if let Some(rest) = raw.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = raw.strip_prefix("http://") {
        (rest, false)
    } else {
        return Err("the URL must start with http:// or https://".into());
    };
    if raw.contains('#') {
        return Err("the URL must not have a fragment".into());
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    if authority.contains('@') {
        return Err("the URL must not contain user info".into());
    }
    let (host_part, port) = split_port(authority, if tls { 443 } else { 80 })?;
    if host_part.is_empty() {
        return Err("the URL has no host".into());
    }
    let host = if let Some(v6) = host_part
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
    {
        Host::Ip(IpAddr::V6(v6.parse().map_err(|_| "invalid IPv6 address")?))
    } else if let Ok(ip) = host_part.parse::<IpAddr>() {
        Host::Ip(ip)
    } else {
        let name = host_part.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        // Numeric-looking names (`0x7f.1`, `2130706433`, `127.1`) are read as IPv4
        // by some resolvers: refused rather than guessed.
        let numeric = |l: &str| {
            l.chars().all(|c| c.is_ascii_digit())
                || l.strip_prefix("0x")
                    .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
        };
        // A top-level label is never numeric; `0x…` labels are hex octets to some.
        let looks_numeric = name.rsplit('.').next().is_some_and(numeric)
            || name.split('.').any(|l| l.starts_with("0x") && numeric(l));
        if !valid || looks_numeric {
            return Err(format!("`{host_part}` is not a valid host name"));
        }
        Host::Name(name)
    };
    Ok(HttpUrl {
        host,
        port,
        path,
        authority: authority.to_owned(),
        tls,
    })
}

fn split_port(authority: &str, default: u16) -> Result<(&str, u16), String> {
    let colon = if authority.starts_with('[') {
        authority.find("]:").map(|i| i + 1)
    } else {
        authority.rfind(':')
    };
    match colon {
        Some(i) => {
            let port: u16 = authority[i + 1..]
                .parse()
                .map_err(|_| "invalid port".to_owned())?;
            if port == 0 {
                return Err("invalid port".into());
            }
            Ok((&authority[..i], port))
        }
        None => Ok((authority, default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_paths() {
        let u = parse("http://example.com:8080/hook?x=1").unwrap();
        assert_eq!(u.host, Host::Name("example.com".into()));
        assert_eq!((u.port, u.path.as_str()), (8080, "/hook?x=1"));
        let u = parse("http://[::1]:9/").unwrap();
        assert_eq!(u.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(parse("http://h.example").unwrap().path, "/");
        assert_eq!(parse("http://h.example?q").unwrap().path, "/?q");
        let u = parse("https://api.example/v1").unwrap();
        assert_eq!((u.port, u.tls), (443, true));
        assert!(!parse("http://api.example/").unwrap().tls);
    }

    #[test]
    fn refuses_ambiguous_urls() {
        for bad in [
            "ftp://x.example/",
            "http://user@x.example/",
            "http://x.example/a b",
            "http://x.example/#f",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://x.example:0/",
            "http://x.example:99999/",
            "http://",
            "http://exa_mple.com/",
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
