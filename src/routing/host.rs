//! Tenant subdomains: `{slug}.<api_domain>` names a tenant, and a `/v1` request
//! to it is served only for that tenant's tokens.
//!
//! The host checked is the one the request was sent to, normalised the way DNS
//! and HTTP compare names: lower-case, a trailing dot dropped, the port
//! stripped. It is the `Host` header (HTTP/1.1) or the URI's authority (HTTP/2);
//! `X-Forwarded-Host` is believed only on a forwarded hop whose marker verified,
//! because the forwarder signs it (`hop::HopRequest::host`): a client cannot set
//! it to escape the binding.
//!
//! Only one label directly under `api_domain` is a slug. A label that is a
//! region id (`us-east1.<api_domain>`, the per-region names the GeoDNS serves)
//! is never a tenant, so a tenant whose slug equals a region id has no subdomain.
//! `{slug}.{region}.<api_domain>` names the tenant at one region: it is where a
//! residency redirect (307) sends a request that came in on a tenant host, so
//! the client keeps the tenant host and its binding (`region_host`). The apex,
//! other names and IP literals carry no binding.

use actix_web::HttpRequest;
use actix_web::http::header;

/// The header that carries the client's host across a forwarded hop.
pub const FORWARDED_HOST: &str = "x-forwarded-host";

/// `raw` as DNS compares it: ASCII lower-case, without port or trailing dot.
/// `None` for what is no host name (empty, an IP literal in brackets, bytes a
/// name cannot hold).
pub fn normalise(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        return None;
    }
    let name = match raw.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => raw,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(is_name_byte));
    valid.then_some(name)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// The host a client sent `req` to, normalised; on a verified hop, the one the
/// forwarding node signed.
pub fn requested_host(req: &HttpRequest, hop_verified: bool) -> Option<String> {
    if hop_verified {
        // The forwarder signs the client's host when it is a tenant host, and
        // sends none otherwise (no binding).
        return req
            .headers()
            .get(FORWARDED_HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(normalise);
    }
    let raw = match req.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?.to_owned(),
        None => req.uri().authority()?.as_str().to_owned(),
    };
    normalise(&raw)
}

/// The slug `host` names under `api_domain`, if it names one: exactly one label
/// directly under it that is not a region id.
pub fn tenant_slug<'h>(
    host: &'h str,
    api_domain: &str,
    is_region: impl Fn(&str) -> bool,
) -> Option<&'h str> {
    let labels = host.strip_suffix(api_domain)?.strip_suffix('.')?;
    let label = match labels.split_once('.') {
        // `{slug}.{region}.<api_domain>`: the tenant host at one region.
        Some((slug, region)) if is_region(region) => slug,
        Some(_) => return None,
        None => labels,
    };
    (!label.is_empty() && !label.contains('.') && !is_region(label)).then_some(label)
}

/// The tenant host of `slug` at `region`, on the scheme and port of `base` (the
/// region's URL for clients): where a residency redirect sends a request that
/// came in on a tenant host, so the follow-up is bound to the same tenant.
/// `None` when `base` is not `scheme://authority[/]`.
pub fn region_host(base: &str, slug: &str, region: &str, api_domain: &str) -> Option<String> {
    let (scheme, authority) = base.split_once("://")?;
    let authority = authority.trim_end_matches('/');
    if authority.contains('/') {
        return None;
    }
    // A port after the host (after `]` for an IPv6 literal), if any.
    let after_host = authority.rfind(']').map_or(authority, |i| &authority[i..]);
    let port = after_host
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    Some(match port {
        Some(port) => format!("{scheme}://{slug}.{region}.{api_domain}:{port}"),
        None => format!("{scheme}://{slug}.{region}.{api_domain}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_as_dns_names() {
        for (raw, want) in [
            ("acme.api.meridian.test", Some("acme.api.meridian.test")),
            ("ACME.Api.Meridian.Test", Some("acme.api.meridian.test")),
            ("acme.api.meridian.test.", Some("acme.api.meridian.test")),
            (
                "acme.api.meridian.test:8080",
                Some("acme.api.meridian.test"),
            ),
            (
                "acme.api.meridian.test.:443",
                Some("acme.api.meridian.test"),
            ),
            ("127.0.0.11:8080", Some("127.0.0.11")),
            ("[::1]:8080", None),
            ("acme.api.meridian.test:http", None),
            ("acme..api.meridian.test", None),
            ("acme api.meridian.test", None),
            ("", None),
        ] {
            assert_eq!(normalise(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn one_label_under_the_api_domain_is_a_slug_unless_it_is_a_region() {
        let api = "api.meridian.test";
        let region = |l: &str| l == "us-east1";
        assert_eq!(
            tenant_slug("acme.api.meridian.test", api, region),
            Some("acme")
        );
        assert_eq!(tenant_slug("api.meridian.test", api, region), None);
        assert_eq!(tenant_slug("us-east1.api.meridian.test", api, region), None);
        assert_eq!(tenant_slug("a.b.api.meridian.test", api, region), None);
        assert_eq!(tenant_slug("acmeapi.meridian.test", api, region), None);
        assert_eq!(
            tenant_slug("acme.api.meridian.test.evil", api, region),
            None
        );
        assert_eq!(tenant_slug("127.0.0.11", api, region), None);
        // The tenant host at one region, where residency redirects send it.
        assert_eq!(
            tenant_slug("acme.us-east1.api.meridian.test", api, region),
            Some("acme")
        );
        assert_eq!(
            tenant_slug("us-east1.us-east1.api.meridian.test", api, region),
            None
        );
        assert_eq!(
            tenant_slug("acme.elsewhere.api.meridian.test", api, region),
            None
        );
        assert_eq!(
            tenant_slug(".us-east1.api.meridian.test", api, region),
            None
        );
    }

    #[test]
    fn redirects_name_the_tenant_host_at_the_region() {
        let api = "api.meridian.test";
        assert_eq!(
            region_host("http://127.0.0.21:8080", "acme", "europe-west1", api).as_deref(),
            Some("http://acme.europe-west1.api.meridian.test:8080")
        );
        assert_eq!(
            region_host(
                "https://europe-west1.api.meridian.example/",
                "acme",
                "europe-west1",
                "api.meridian.example"
            )
            .as_deref(),
            Some("https://acme.europe-west1.api.meridian.example")
        );
        assert_eq!(
            region_host("http://[::1]:9", "acme", "us-east1", api).as_deref(),
            Some("http://acme.us-east1.api.meridian.test:9")
        );
        assert_eq!(
            region_host("http://[::1]", "acme", "us-east1", api).as_deref(),
            Some("http://acme.us-east1.api.meridian.test")
        );
        assert_eq!(region_host("no-scheme", "acme", "us-east1", api), None);
    }
}
