//! The web console (issue 18): static HTML, JavaScript modules and CSS built into
//! the binary (`include_str!`, no build step, nothing fetched at run time) and
//! served by every node under `/console/`. The console is a client of the public
//! JSON API on the same origin: it holds no data and decides nothing about
//! tenants or roles, so isolation stays the API's.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles and
//! fetches from this origin only, no inline code, no framing) and `nosniff`. The
//! assets are revalidated (`no-cache`) against a strong ETag, the SHA-256 of
//! their bytes, so a deployed change is picked up at once and an unchanged file
//! costs a `304`. These routes are not API operations: they are outside `/v1`
//! (routing passes them through untouched) and outside the OpenAPI document.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;

/// `default-src 'self'` with nothing loosened: no inline script or style, no
/// `eval`; `connect-src 'self'` keeps every fetch on this node.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file: its name under `/console/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/console.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("assets/api.js"),
    },
    Asset {
        name: "session.js",
        content_type: JS,
        body: include_str!("assets/session.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JS,
        body: include_str!("assets/dom.js"),
    },
    Asset {
        name: "views.js",
        content_type: JS,
        body: include_str!("assets/views.js"),
    },
    Asset {
        name: "charts.js",
        content_type: JS,
        body: include_str!("assets/charts.js"),
    },
    Asset {
        name: "usage_history.js",
        content_type: JS,
        body: include_str!("assets/usage_history.js"),
    },
    Asset {
        name: "compliance.js",
        content_type: JS,
        body: include_str!("assets/compliance.js"),
    },
    Asset {
        name: "erasure.js",
        content_type: JS,
        body: include_str!("assets/erasure.js"),
    },
    Asset {
        name: "residency_edit.js",
        content_type: JS,
        body: include_str!("assets/residency_edit.js"),
    },
    Asset {
        name: "webhooks.js",
        content_type: JS,
        body: include_str!("assets/webhooks.js"),
    },
    Asset {
        name: "impersonations.js",
        content_type: JS,
        body: include_str!("assets/impersonations.js"),
    },
    Asset {
        name: "audit_filters.js",
        content_type: JS,
        body: include_str!("assets/audit_filters.js"),
    },
    Asset {
        name: "acting.js",
        content_type: JS,
        body: include_str!("assets/acting.js"),
    },
    Asset {
        name: "platform.js",
        content_type: JS,
        body: include_str!("assets/platform.js"),
    },
    Asset {
        name: "regionmap.js",
        content_type: JS,
        body: include_str!("assets/regionmap.js"),
    },
    Asset {
        name: "calendar.js",
        content_type: JS,
        body: include_str!("assets/calendar.js"),
    },
    Asset {
        name: "origin.js",
        content_type: JS,
        body: include_str!("assets/origin.js"),
    },
    Asset {
        name: "top.js",
        content_type: JS,
        body: include_str!("assets/top.js"),
    },
    Asset {
        name: "provision.js",
        content_type: JS,
        body: include_str!("assets/provision.js"),
    },
    Asset {
        name: "quotas.js",
        content_type: JS,
        body: include_str!("assets/quotas.js"),
    },
    Asset {
        name: "relocation.js",
        content_type: JS,
        body: include_str!("assets/relocation.js"),
    },
];

/// Each asset's ETag (`"<base64url SHA-256>"`), computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = ring::digest::digest(&ring::digest::SHA256, asset.body.as_bytes());
            format!(
                "\"{}\"",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
            )
        })
        .collect()
});

/// Registers `/console` (a redirect to `/console/`), `/console/` and its files.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(to_index))
        .route("/console/", web::get().to(file))
        .route("/console/{name}", web::get().to(file));
}

/// The page's relative URLs resolve under `/console/` only with the slash.
async fn to_index() -> HttpResponse {
    let mut res = HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish();
    protect(&mut res);
    res
}

async fn file(req: HttpRequest) -> HttpResponse {
    let name = req.match_info().get("name").unwrap_or("");
    let mut res = match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(&req, &ASSETS[i], &ETAGS[i]),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    };
    protect(&mut res);
    res
}

fn serve(req: &HttpRequest, asset: &Asset, etag: &str) -> HttpResponse {
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    let mut res = if fresh {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .content_type(asset.content_type)
            .body(asset.body)
    };
    let headers = res.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The headers every console answer carries, errors and redirects included.
fn protect(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_etag() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{}", a.name);
            for b in &ASSETS[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
        let mut tags = ETAGS.clone();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }

    /// Every file of `assets/` is served (a module left out of `ASSETS`
    /// would be a 404 the moment a page imports it), and nothing else.
    #[test]
    fn every_file_of_the_assets_directory_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console/assets");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|name| {
                if name == "index.html" {
                    String::new()
                } else {
                    name
                }
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    /// No inline script or style, which the CSP would refuse: the page's code
    /// is only in the module files it names.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = ASSETS[0].body;
        assert!(!html.contains("<style"), "inline style element");
        assert!(!html.contains(" style="), "inline style attribute");
        let handler = html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name_end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            name_end > 0 && rest[name_end..].starts_with('=')
        });
        assert!(!handler, "inline event handler");
        for script in html.split("<script").skip(1) {
            let head = &script[..script.find('>').unwrap_or(script.len())];
            assert!(head.contains("src="), "inline script: <script{head}>");
        }
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for forbidden in ["eval(", "new Function", "innerHTML", "localStorage"] {
                assert!(
                    !asset.body.contains(forbidden),
                    "{}: {forbidden}",
                    asset.name
                );
            }
        }
    }
}
