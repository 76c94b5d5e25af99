//! Tenant subdomains (`routing::host`, `scope::check_host`): a request sent to
//! `{slug}.api.meridian.test` is served only for that tenant's tokens.

use meridian::routing::hop::{HopRequest, HopSigner};
use serde_json::Value;

use crate::helpers::{Reply, TestApp, assert_problem, spawn_app};
use crate::regions::{provision_in, spawn_regions};

/// `GET path` with `token` and these extra headers (`Host` among them).
async fn get_with(app: &TestApp, path: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
    get_via(&app.client, app, path, token, headers).await
}

/// `get_with` through `client` (one that does not follow redirects, say).
async fn get_via(
    client: &awc::Client,
    app: &TestApp,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = client
        .get(format!("{}{path}", app.base))
        .insert_header(("Authorization", format!("Bearer {token}")));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let mut res = req.send().await.unwrap();
    let bytes = res.body().await.unwrap();
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

async fn host_denials(app: &TestApp, owner_token: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let audit = app.get("/v1/audit?limit=200", owner_token).await;
        let found: Vec<Value> = audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "cross_tenant_denied" && e["details"]["reason"] == "host")
            .cloned()
            .collect();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            return found;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_tenant_host_serves_only_its_own_tokens() {
    let app = spawn_app().await;
    let acme = app.provision("acme").await;
    let globex = app.provision("globex").await;

    // Its own token, however the name is written.
    for host in [
        "acme.api.meridian.test",
        "ACME.Api.Meridian.Test",
        "acme.api.meridian.test.",
        "acme.api.meridian.test:8080",
    ] {
        let reply = get_with(&app, "/v1/channels", &acme.owner_token, &[("Host", host)]).await;
        assert_eq!(reply.status, 200, "{host}: {}", reply.body);
    }

    // Another tenant's token: 404, like an unknown slug, and audited in the
    // named tenant's trail.
    let crossed = get_with(
        &app,
        "/v1/channels",
        &globex.owner_token,
        &[("Host", "Acme.api.meridian.test.:443")],
    )
    .await;
    assert_problem(&crossed, 404, "not_found");
    let unknown = get_with(
        &app,
        "/v1/channels",
        &globex.owner_token,
        &[("Host", "nobody.api.meridian.test")],
    )
    .await;
    assert_problem(&unknown, 404, "not_found");
    assert_eq!(
        without_request_id(crossed.body),
        without_request_id(unknown.body)
    );
    let denials = host_denials(&app, &acme.owner_token).await;
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(
        denials[0]["details"]["actor_tenant_id"],
        globex.id.to_string()
    );
    assert_eq!(denials[0]["details"]["host"], "acme.api.meridian.test");
    assert_eq!(denials[0]["actor"], globex.owner_id.to_string());
    assert!(host_denials(&app, &globex.owner_token).await.is_empty());

    // Platform tokens are for the API's own name.
    let admin = get_with(
        &app,
        "/v1/tenants",
        &app.platform_token(),
        &[("Host", "acme.api.meridian.test")],
    )
    .await;
    assert_problem(&admin, 404, "not_found");
    let apex = get_with(
        &app,
        "/v1/tenants",
        &app.platform_token(),
        &[("Host", "api.meridian.test")],
    )
    .await;
    assert_eq!(apex.status, 200, "{}", apex.body);

    // Without a valid token: the usual 401, known slug or not.
    for host in ["acme.api.meridian.test", "nobody.api.meridian.test"] {
        let reply = get_with(&app, "/v1/channels", "not-a-token", &[("Host", host)]).await;
        assert_problem(&reply, 401, "unauthenticated");
    }

    // No binding on the apex, a region's name or a bare address.
    for host in [
        "api.meridian.test",
        "us-east1.api.meridian.test",
        "127.0.0.1",
    ] {
        let reply = get_with(&app, "/v1/channels", &globex.owner_token, &[("Host", host)]).await;
        assert_eq!(reply.status, 200, "{host}: {}", reply.body);
    }

    // A client's X-Forwarded-Host is not believed, either way.
    let spoofed_in = get_with(
        &app,
        "/v1/channels",
        &globex.owner_token,
        &[
            ("Host", "api.meridian.test"),
            ("X-Forwarded-Host", "acme.api.meridian.test"),
        ],
    )
    .await;
    assert_eq!(spoofed_in.status, 200, "{}", spoofed_in.body);
    let spoofed_out = get_with(
        &app,
        "/v1/channels",
        &globex.owner_token,
        &[
            ("Host", "acme.api.meridian.test"),
            ("X-Forwarded-Host", "globex.api.meridian.test"),
        ],
    )
    .await;
    assert_problem(&spoofed_out, 404, "not_found");
}

/// The binding holds across a forwarded hop: the forwarder signs the client's
/// host and the serving node checks it again.
#[actix_web::test]
async fn the_host_binding_is_checked_again_after_a_hop() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let (origin, home) = (&nodes["us-east1"], &nodes["europe-west1"]);
    let (_, acme) = provision_in(origin, "acme-eu", "europe-west1", None).await;
    let (_, globex) = provision_in(origin, "globex-eu", "europe-west1", None).await;

    // Forwarded from us-east1 to europe-west1 with its host, and served there.
    let served = get_with(
        origin,
        "/v1/channels",
        &acme,
        &[("Host", "acme-eu.api.meridian.test")],
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(
        crate::regions::header(&served, "x-meridian-region"),
        "europe-west1"
    );
    // Refused at the origin, before any hop.
    let refused = get_with(
        origin,
        "/v1/channels",
        &globex,
        &[("Host", "acme-eu.api.meridian.test")],
    )
    .await;
    assert_problem(&refused, 404, "not_found");

    // A genuine marker (the nodes' secret) for globex's token on acme's host:
    // the serving node refuses it on the signed host.
    let signer = HopSigner::new("test hop secret, shared by every node");
    let authorization = format!("Bearer {globex}\n");
    let sign = |host: &str, id: &str| {
        signer.sign(
            "us-east1",
            id,
            &HopRequest {
                method: "GET",
                path_and_query: "/v1/channels",
                authorization: authorization.as_bytes(),
                body: b"",
                host,
                client: "",
            },
        )
    };
    let marker = sign(
        "acme-eu.api.meridian.test",
        "0123456789abcdef0123456789abcdef",
    );
    let hop = get_with(
        home,
        "/v1/channels",
        &globex,
        &[
            ("X-Meridian-Hop", marker.as_str()),
            ("X-Forwarded-Host", "acme-eu.api.meridian.test"),
        ],
    )
    .await;
    assert_problem(&hop, 404, "not_found");
    // The host is part of the signature: another one breaks the marker.
    let marker = sign(
        "globex-eu.api.meridian.test",
        "fedcba9876543210fedcba9876543210",
    );
    let swapped = get_with(
        home,
        "/v1/channels",
        &globex,
        &[
            ("X-Meridian-Hop", marker.as_str()),
            ("X-Forwarded-Host", "acme-eu.api.meridian.test"),
        ],
    )
    .await;
    assert_problem(&swapped, 403, "invalid_hop_marker");
}

/// A residency redirect of a request that came in on a tenant host names that
/// tenant's host at the serving region (`{slug}.{region}.<api_domain>`), not
/// the region's bare endpoint: the follow-up keeps its host binding (issue 14:
/// the 307 used to drop the tenant host).
#[actix_web::test]
async fn a_redirect_from_a_tenant_host_keeps_the_tenant_host() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let (origin, home) = (&nodes["us-east1"], &nodes["europe-west1"]);
    let eu = serde_json::json!({ "jurisdiction": "eu" });
    let (_, acme) = provision_in(home, "acme-pinned", "europe-west1", Some(eu.clone())).await;
    let (_, globex) = provision_in(home, "globex-pinned", "europe-west1", Some(eu)).await;

    let no_redirects = awc::Client::builder().disable_redirects().finish();
    let redirected = get_via(
        &no_redirects,
        origin,
        "/v1/channels?limit=5",
        &acme,
        &[("Host", "acme-pinned.api.meridian.test")],
    )
    .await;
    assert_eq!(redirected.status, 307, "{}", redirected.body);
    let location = crate::regions::header(&redirected, "location");
    let port = home.base.rsplit_once(':').unwrap().1;
    let host = format!("acme-pinned.europe-west1.api.meridian.test:{port}");
    assert_eq!(location, format!("http://{host}/v1/channels?limit=5"));
    assert!(
        redirected.body["detail"]
            .as_str()
            .unwrap()
            .contains(&location),
        "{}",
        redirected.body
    );

    // Followed (the name resolved to europe-west1's node): served for acme,
    // still bound to acme for anyone else's token.
    let followed = get_with(home, "/v1/channels?limit=5", &acme, &[("Host", &host)]).await;
    assert_eq!(followed.status, 200, "{}", followed.body);
    let other = get_with(home, "/v1/channels?limit=5", &globex, &[("Host", &host)]).await;
    assert_problem(&other, 404, "not_found");

    // Without a tenant host the redirect still names the region's endpoint.
    let plain = get_via(&no_redirects, origin, "/v1/channels?limit=5", &acme, &[]).await;
    assert_eq!(plain.status, 307, "{}", plain.body);
    assert_eq!(
        crate::regions::header(&plain, "location"),
        format!("{}/v1/channels?limit=5", home.base)
    );
}
