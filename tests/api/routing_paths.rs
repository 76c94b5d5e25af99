//! Routing must run on exactly the path actix's router matches: for every route of
//! the OpenAPI document, escaped and otherwise non-canonical spellings of its path
//! are either routed like the plain path or refused before any handler runs.
//! And a captured hop marker serves only the request it was made for, once.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::free_port;
use crate::helpers::{
    Reply, TestApp, assert_problem, fresh_database, spawn_app_with, test_settings,
};
use crate::regions::{eventually, header, provision_in, spawn_regions};

/// Problem codes that mean "refused before any handler or data": the path was
/// not canonical, or the router matched no resource.
const REFUSALS: [&str; 3] = [
    "non_canonical_path",
    "route_not_found",
    "method_not_allowed",
];

fn no_redirects() -> awc::Client {
    awc::Client::builder().disable_redirects().finish()
}

async fn send(
    node: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    extra: Option<(&str, &str)>,
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = no_redirects()
        .request(method, format!("{}{path}", node.base))
        .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(header) = extra {
        req = req.insert_header(header);
    }
    let mut res = match body {
        Some(body) => req.send_json(body).await,
        None => req.send().await,
    }
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    let bytes = res.body().limit(16 << 20).await.unwrap();
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
    }
}

/// Percent-encodes every byte of `s` but `/`, with upper- or lowercase hex digits.
fn escape_all(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| match (b, upper) {
            (b'/', _) => "/".to_owned(),
            (_, true) => format!("%{b:02X}"),
            (_, false) => format!("%{b:02x}"),
        })
        .collect()
}

/// Spellings of the plain path `path` (`/v1/…`): escapes of the prefix and of
/// the rest (both cases of hex digits), `%2F` for `/`, empty and dot segments,
/// trailing slashes, escaped characters that would change the meaning, and an
/// escaped query.
fn variants(path: &str) -> Vec<String> {
    let rest = &path["/v1".len()..];
    let last = rest.rfind('/').unwrap();
    let (head, tail) = rest.split_at(last + 1);
    let mut out = vec![
        format!("/%761{rest}"),
        format!("/%76%31{rest}"),
        format!("/v%31{rest}"),
        format!("/%56%31{rest}"),
        format!("/v1{}", escape_all(rest, false)),
        format!("/v1{}", escape_all(rest, true)),
        format!("/%76%31{}", escape_all(rest, true)),
        format!("/v1{head}{}{}", escape_all(&tail[..1], true), &tail[1..]),
        format!("/v1{head}{}{}", escape_all(&tail[..1], false), &tail[1..]),
        format!("/v1%2F{}", &rest[1..]),
        format!("/v1%2f{}", &rest[1..]),
        format!("/{path}"),
        format!("/v1/{rest}"),
        format!("/v1/.{rest}"),
        format!("/v1/%2e{rest}"),
        format!("/v1/%2E{rest}"),
        format!("/v1/..{path}"),
        format!("/v1/%2e%2e{path}"),
        format!("{path}/"),
        format!("{path}%2F"),
        format!("{path}/."),
        format!("{path}%3Fx=1"),
        format!("{path}%20"),
        format!("{path}%00"),
        format!("{path}%C3%A9"),
        format!("{path}?%6cimit=5"),
        format!("/%761{rest}?limit=5&q=%2Fx"),
    ];
    if last > 0 {
        out.push(format!("/v1{}%2F{}", &head[..head.len() - 1], tail));
        out.push(format!("/v1{}%2f{}", &head[..head.len() - 1], tail));
    }
    out
}

fn query_of(path: &str) -> &str {
    path.find('?').map_or("", |i| &path[i..])
}

fn code(reply: &Reply) -> &str {
    reply.body["code"].as_str().unwrap_or_default()
}

fn refused(reply: &Reply) -> bool {
    reply.status.is_client_error() && REFUSALS.contains(&code(reply))
}

struct Ids {
    tenant: Uuid,
    user: Uuid,
    channel: String,
    message: String,
}

/// Every `(method, plain path, body)` of the OpenAPI document under `/v1`, with
/// the path parameters set to the EU tenant's real ids.
fn api_routes(ids: &Ids) -> Vec<(String, String, Option<Value>)> {
    let doc = serde_json::to_value(meridian::api::openapi()).unwrap();
    let mut routes = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.starts_with("/v1/") {
            // Not under the routed scope: the only such routes are public ones.
            assert!(
                ["/healthz", "/readyz", "/openapi.json", "/signing-keys"]
                    .contains(&template.as_str()),
                "{template} is outside /v1: does it need routing?"
            );
            continue;
        }
        let id = match template.split('/').nth(2) {
            Some("tenants") => ids.tenant.to_string(),
            Some("users") => ids.user.to_string(),
            Some("channels") => ids.channel.clone(),
            Some("regions") => "europe-west1".to_owned(),
            // Routing decides on the tenant, not the job: any job id will do.
            Some("jobs") => Uuid::from_u128(7).to_string(),
            Some("webhooks") => Uuid::from_u128(9).to_string(),
            Some("identity-providers") => Uuid::from_u128(10).to_string(),
            Some("platform") => Uuid::from_u128(11).to_string(),
            Some("calendar-accounts") => Uuid::from_u128(12).to_string(),
            Some("calendar-events") => Uuid::from_u128(13).to_string(),
            Some("exports") => Uuid::from_u128(14).to_string(),
            Some("erasures") => Uuid::from_u128(15).to_string(),
            _ => String::new(),
        };
        let path = template
            .replace("{id}", &id)
            .replace("{message_id}", &ids.message)
            .replace("{summary_id}", &Uuid::from_u128(8).to_string())
            .replace("{impersonation_id}", &Uuid::from_u128(11).to_string())
            .replace("{grant_id}", &Uuid::from_u128(16).to_string())
            .replace("{tenant_slug}", "eu-pinned");
        assert!(
            !path.contains('{'),
            "no value for a parameter of {template}"
        );
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            // Bodies the handler would accept, so a request that slipped past
            // routing would show as a write.
            let body = match (method.as_str(), template.rsplit('/').next()) {
                ("POST", Some("channels")) => Some(json!({ "name": "slipped" })),
                ("POST", Some("messages")) => Some(json!({ "body": "slipped" })),
                ("POST", Some("grants")) => Some(json!({ "path": "/slipped/" })),
                ("POST", Some("users")) => Some(
                    json!({ "email": "slipped@x.example", "display_name": "S", "role": "member" }),
                ),
                ("PATCH", Some("impersonation-policy")) => Some(json!({ "writes_allowed": true })),
                ("PATCH", _) if template.starts_with("/v1/users") => {
                    Some(json!({ "display_name": "slipped" }))
                }
                ("PATCH", _) => Some(json!({ "name": "slipped" })),
                ("POST", Some("relocation")) => Some(json!({ "to_region": "europe-west3" })),
                ("POST", Some("impersonations")) => Some(json!({ "reason": "slipped" })),
                ("POST", Some("drain")) => Some(json!({ "dry_run": true })),
                ("POST", _) => Some(json!({})),
                _ => None,
            };
            routes.push((method, path.clone(), body));
        }
    }
    assert!(routes.len() >= 20, "{routes:?}");
    routes
}

/// What the EU tenant's data looks like, read at its home node.
async fn snapshot(home: &TestApp, token: &str, ids: &Ids) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        format!("/v1/tenants/{}", ids.tenant),
        "/v1/users".to_owned(),
        "/v1/channels".to_owned(),
        format!("/v1/channels/{}/messages", ids.channel),
    ] {
        let reply = home.get(&path, token).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        seen.push(reply.body);
    }
    seen
}

#[actix_web::test]
async fn every_route_is_routed_on_the_path_the_router_matches() {
    let nodes = spawn_regions(&[
        "us-east1",
        "europe-west1",
        "europe-west3",
        "asia-southeast1",
    ])
    .await;
    let (us, west1, west3) = (
        &nodes["us-east1"],
        &nodes["europe-west1"],
        &nodes["europe-west3"],
    );
    let (tenant, owner) = provision_in(
        west1,
        "eu-pinned",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    let created = west1
        .post("/v1/channels", &owner, json!({ "name": "general" }))
        .await;
    let channel = created.body["id"].as_str().unwrap().to_owned();
    let posted = west1
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &owner,
            json!({ "body": "hello" }),
        )
        .await;
    let users = west1.get("/v1/users", &owner).await;
    let ids = Ids {
        tenant,
        user: users.body["items"][0]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        channel,
        message: posted.body["id"].as_str().unwrap().to_owned(),
    };
    let before = snapshot(west1, &owner, &ids).await;
    let routes = api_routes(&ids);

    // The reproductions of the finding, verbatim.
    let plain = send(us, "GET", "/v1/channels", &owner, None, None).await;
    assert_eq!(plain.status, 307);
    let escaped = send(us, "GET", "/%761/channels", &owner, None, None).await;
    assert_eq!(escaped.status, 307, "{}", escaped.body);
    assert_eq!(
        header(&escaped, "location"),
        format!("{}/v1/channels", west1.base)
    );
    let made_in_asia = send(
        &nodes["asia-southeast1"],
        "POST",
        "/%761/channels",
        &owner,
        Some(&json!({ "name": "made-in-asia" })),
        None,
    )
    .await;
    assert_eq!(made_in_asia.status, 307, "{}", made_in_asia.body);
    let garbage_hop = send(
        us,
        "GET",
        "/%761/channels",
        &owner,
        None,
        Some(("X-Meridian-Hop", "garbage")),
    )
    .await;
    assert_problem(&garbage_hop, 403, "invalid_hop_marker");

    // Regions the residency excludes redirect every spelling to the plain path, or refuse it.
    let mut failures = Vec::new();
    let redirected = async |node: &TestApp| {
        crate::metrics::value(
            &crate::metrics::scrape(node).await,
            "meridian_routing_total",
            &[
                ("decision", "redirected"),
                ("target_region", "europe-west1"),
            ],
        )
    };
    for region in ["us-east1", "asia-southeast1"] {
        let node = &nodes[region];
        let counted_before = redirected(node).await;
        let mut redirects = 0.0;
        for (method, path, body) in &routes {
            let reply = send(node, method, path, &owner, body.as_ref(), None).await;
            assert_eq!(
                reply.status, 307,
                "{method} {path} at {region}: {}",
                reply.body
            );
            redirects += 1.0;
            for variant in variants(path) {
                let reply = send(node, method, &variant, &owner, body.as_ref(), None).await;
                let location = format!("{}{path}{}", west1.base, query_of(&variant));
                if reply.status == 307 && header(&reply, "location") == location {
                    redirects += 1.0;
                } else if !refused(&reply) {
                    failures.push(format!(
                        "{method} {variant} at {region}: {} {} {}",
                        reply.status,
                        header(&reply, "x-meridian-region"),
                        reply.body
                    ));
                }
            }
        }
        // Escapes of plain characters are routed, not merely refused (8 spellings a route).
        assert!(
            redirects >= 9.0 * routes.len() as f64,
            "{redirects} at {region}"
        );
        // Every spelling that was routed is counted as routed.
        assert_eq!(
            redirected(node).await - counted_before,
            redirects,
            "redirects counted at {region}"
        );
    }

    // Inside the EU, every spelling is forwarded to the home region, or refused.
    for (method, path, _) in routes.iter().filter(|(m, _, _)| m == "GET") {
        let reply = send(west3, method, path, &owner, None, None).await;
        assert_eq!(
            header(&reply, "x-meridian-region"),
            "europe-west1",
            "{path}"
        );
        for variant in variants(path) {
            let reply = send(west3, method, &variant, &owner, None, None).await;
            if header(&reply, "x-meridian-region") != "europe-west1" && !refused(&reply) {
                failures.push(format!(
                    "{method} {variant} at europe-west3: {} {} {}",
                    reply.status,
                    header(&reply, "x-meridian-region"),
                    reply.body
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} spellings skipped routing:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        snapshot(west1, &owner, &ids).await,
        before,
        "nothing was written outside the routed path"
    );

    // Both EU regions drained: no spelling reaches the tenant's data anywhere.
    let admin = us.platform_token();
    for region in ["europe-west1", "europe-west3"] {
        let drained = us
            .post(
                &format!("/v1/regions/{region}/drain"),
                &admin,
                json!({ "force": true }),
            )
            .await;
        assert_eq!(drained.status, 200, "{}", drained.body);
    }
    for node in nodes.values() {
        eventually("the EU tenant is unavailable", async || {
            send(node, "GET", "/v1/channels", &owner, None, None)
                .await
                .status
                == 503
        })
        .await;
    }
    for (region, node) in &nodes {
        for (method, path, _) in routes.iter().filter(|(m, _, _)| m == "GET") {
            for variant in std::iter::once(path.clone()).chain(variants(path)) {
                let reply = send(node, method, &variant, &owner, None, None).await;
                if code(&reply) != "residency_unavailable" && !refused(&reply) {
                    failures.push(format!(
                        "{method} {variant} at {region} (EU drained): {} {}",
                        reply.status, reply.body
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} spellings skipped the drain:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A forwarded request as the next hop received it.
#[derive(Clone, Default)]
struct Captured {
    path_and_query: String,
    marker: String,
    /// The client's address the forwarder signed with the marker.
    client: String,
    body: Vec<u8>,
}

/// Stands in for a peer: records what it is sent and answers 200.
fn spawn_capture(port: u16) -> Arc<Mutex<Vec<Captured>>> {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    let server = HttpServer::new(move || {
        let sink = sink.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let sink = sink.clone();
            async move {
                if let Some(marker) = req.headers().get("x-meridian-hop") {
                    sink.lock().unwrap().push(Captured {
                        path_and_query: req.uri().to_string(),
                        marker: marker.to_str().unwrap().to_owned(),
                        client: req
                            .headers()
                            .get("x-meridian-client")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default(),
                        body: body.to_vec(),
                    });
                }
                HttpResponse::Ok().json(json!({}))
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    captured
}

async fn replay(
    node: &TestApp,
    path: &str,
    token: &str,
    (marker, client): (&str, &str),
    body: &[u8],
) -> Reply {
    let mut res = no_redirects()
        .post(format!("{}{path}", node.base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Meridian-Hop", marker))
        .insert_header(("X-Meridian-Client", client))
        .send_body(body.to_vec())
        .await
        .unwrap();
    let bytes = res.body().await.unwrap();
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[actix_web::test]
async fn a_captured_hop_marker_serves_only_its_own_request_once() {
    // us-east1 forwards to a capturing stand-in for europe-west1; the real
    // europe-west1 node then gets the captured marker replayed at it.
    let db = fresh_database().await;
    let (home_port, capture_port) = (free_port(), free_port());
    let captured = spawn_capture(capture_port);
    let mut settings = test_settings(&db);
    settings.region = "europe-west1".into();
    settings.http.bind = Some(format!("127.0.0.1:{home_port}").parse().unwrap());
    let home = spawn_app_with(settings).await;
    let mut settings = test_settings(&db);
    settings.routing.peers = [(
        "europe-west1".to_owned(),
        format!("http://127.0.0.1:{capture_port}"),
    )]
    .into();
    let us = spawn_app_with(settings).await;

    let (tenant, owner) = provision_in(&home, "replayed", "europe-west1", None).await;
    let channel = home
        .post("/v1/channels", &owner, json!({ "name": "c" }))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tenant = crate::helpers::Tenant {
        id: tenant,
        owner_id: Uuid::nil(),
        owner_token: owner.clone(),
    };
    let (_, member) = home.add_user(&tenant, "member").await;

    let path = format!("/v1/channels/{channel}/messages?x=1");
    let forwarded = us.post(&path, &owner, json!({ "body": "captured" })).await;
    assert_eq!(forwarded.status, 200, "{}", forwarded.body);
    let seen = captured.lock().unwrap().clone();
    let [hop] = seen.as_slice() else {
        panic!("expected one forwarded request, got {}", seen.len());
    };
    assert_eq!(hop.path_and_query, path);
    assert!(!hop.client.is_empty(), "the forwarder named no client");
    let marker = (hop.marker.as_str(), hop.client.as_str());
    let body = hop.body.as_slice();
    let plain = format!("/v1/channels/{channel}/messages");

    // Anything else than the signed request: another caller, body, query, path
    // or client address.
    let other_body = br#"{"body":"forged"}"#.as_slice();
    let other_client = (marker.0, "198.51.100.9");
    let reply = replay(&home, &path, &owner, other_client, body).await;
    assert_eq!(reply.status, 403, "another client address: {}", reply.body);
    assert_eq!(reply.body["code"], "invalid_hop_marker");
    let other_query = format!("{plain}?x=2");
    let other_channel = format!("/v1/channels/{}/messages?x=1", Uuid::new_v4());
    for (what, path, token, body) in [
        ("another token", path.as_str(), member.as_str(), body),
        ("another body", &path, &owner, other_body),
        ("another query", &other_query, &owner, body),
        ("no query", &plain, &owner, body),
        ("another path", &other_channel, &owner, body),
    ] {
        let reply = replay(&home, path, token, marker, body).await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.body);
        assert_eq!(reply.body["code"], "invalid_hop_marker", "{what}");
    }
    // The marker is genuine: the exact request is served once, then never again.
    let first = replay(&home, &path, &owner, marker, body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = replay(&home, &path, &owner, marker, body).await;
    assert_eq!(
        again.status, 403,
        "the exact request replayed: {}",
        again.body
    );
    assert_eq!(again.body["code"], "invalid_hop_marker");

    let page = home.get(&plain, &owner).await;
    let bodies: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["captured"]);
}
