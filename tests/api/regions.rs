//! Several regions' nodes in one test, on one database: home-region serving,
//! forwarding with a signed hop, residency redirects and the loop guard.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::free_port;
use crate::helpers::{TestApp, assert_problem, fresh_database, spawn_app_with, test_settings};

/// One node per region, all knowing each other's addresses.
pub(crate) async fn spawn_regions(regions: &[&str]) -> BTreeMap<String, TestApp> {
    let db = fresh_database().await;
    let ports: BTreeMap<String, u16> = regions
        .iter()
        .map(|r| (r.to_string(), free_port()))
        .collect();
    let peers: BTreeMap<String, String> = ports
        .iter()
        .map(|(r, p)| (r.clone(), format!("http://127.0.0.1:{p}")))
        .collect();
    let mut nodes = BTreeMap::new();
    for (region, port) in &ports {
        let mut settings = test_settings(&db);
        settings.region = region.clone();
        settings.http.bind = Some(format!("127.0.0.1:{port}").parse().unwrap());
        settings.routing.peers = peers.clone();
        nodes.insert(region.clone(), spawn_app_with(settings).await);
    }
    nodes
}

pub(crate) async fn provision_in(
    app: &TestApp,
    slug: &str,
    home: &str,
    residency: Option<serde_json::Value>,
) -> (Uuid, String) {
    let mut body = json!({ "slug": slug, "name": slug, "home_region": home,
        "owner": { "email": format!("o@{slug}.example"), "display_name": "O" },
        "limits": crate::helpers::UNLIMITED_RATE.clone() });
    if let Some(policy) = residency {
        body["residency"] = policy;
    }
    let reply = app.post("/v1/tenants", &app.platform_token(), body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id: Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
    let owner: Uuid = reply.body["owner"]["id"].as_str().unwrap().parse().unwrap();
    (id, app.token(id, owner, meridian::auth::Role::Owner))
}

pub(crate) fn header(reply: &crate::helpers::Reply, name: &str) -> String {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
async fn requests_are_served_at_home_and_forwarded_from_elsewhere() {
    let nodes = spawn_regions(&["us-east1", "europe-west1", "asia-southeast1"]).await;
    let (us, eu) = (&nodes["us-east1"], &nodes["europe-west1"]);
    // A platform admin can provision from any node: the directory is global.
    let (_, token) = provision_in(us, "globex", "europe-west1", None).await;

    let at_home = eu
        .post("/v1/channels", &token, json!({ "name": "general" }))
        .await;
    assert_eq!(at_home.status, 201, "{}", at_home.body);
    assert_eq!(header(&at_home, "x-meridian-region"), "europe-west1");
    assert_eq!(header(&at_home, "x-meridian-home-region"), "europe-west1");
    let channel = at_home.body["id"].as_str().unwrap().to_owned();

    // From another region: forwarded to the home region, body and status intact.
    for region in ["us-east1", "asia-southeast1"] {
        let node = &nodes[region];
        let posted = node
            .post(
                &format!("/v1/channels/{channel}/messages"),
                &token,
                json!({ "body": format!("via {region}") }),
            )
            .await;
        assert_eq!(posted.status, 201, "{}", posted.body);
        assert_eq!(
            header(&posted, "x-meridian-region"),
            "europe-west1",
            "served where the data lives"
        );
        assert_eq!(header(&posted, "x-meridian-home-region"), "europe-west1");
        assert!(posted.headers.get("x-request-id").is_some());
    }
    let page = us
        .get(&format!("/v1/channels/{channel}/messages"), &token)
        .await;
    assert_eq!(page.status, 200);
    let bodies: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["via asia-southeast1", "via us-east1"]);

    // Errors come back through the hop unchanged.
    let missing = us
        .get(&format!("/v1/channels/{}", Uuid::new_v4()), &token)
        .await;
    assert_problem(&missing, 404, "not_found");
    // One request, one id: the landing node's header and the home node's body agree.
    assert_eq!(
        missing
            .headers
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap(),
        missing.body["request_id"].as_str().unwrap()
    );

    // The landing nodes count what they forwarded, by target region.
    let forwarded = [("decision", "forwarded"), ("target_region", "europe-west1")];
    let from_us = crate::metrics::scrape(us).await;
    assert_eq!(
        crate::metrics::value(&from_us, "meridian_routing_total", &forwarded),
        3.0
    );
    let from_asia = crate::metrics::scrape(&nodes["asia-southeast1"]).await;
    assert_eq!(
        crate::metrics::value(&from_asia, "meridian_routing_total", &forwarded),
        1.0
    );
    let from_eu = crate::metrics::scrape(eu).await;
    assert!(crate::metrics::find(&from_eu, "meridian_routing_total", &[]).is_empty());
}

#[actix_web::test]
async fn a_pinned_tenant_is_redirected_from_regions_its_residency_excludes() {
    let nodes = spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let eu_only = json!({ "jurisdiction": "eu" });
    let (_, token) = provision_in(
        &nodes["europe-west1"],
        "eu-corp",
        "europe-west1",
        Some(eu_only),
    )
    .await;
    let no_redirects = awc::Client::builder().disable_redirects().finish();

    let mut response = no_redirects
        .get(format!("{}/v1/channels?limit=5", nodes["us-east1"].base))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        location,
        format!("{}/v1/channels?limit=5", nodes["europe-west1"].base)
    );
    assert_eq!(
        response.headers().get("x-meridian-region").unwrap(),
        "us-east1"
    );
    // Nothing of the tenant is processed in us-east1; the answer says where to go
    // and why, as a problem body (issue 12: a 307 had an empty body).
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let problem: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
    assert_eq!(problem["status"], 307);
    assert_eq!(problem["code"], "served_elsewhere");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&location)
            && detail.contains("europe-west1")
            && detail.contains("residency"),
        "{detail}"
    );

    // Inside the EU, the other region forwards instead.
    let reply = nodes["europe-west3"].get("/v1/channels", &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(header(&reply, "x-meridian-region"), "europe-west1");

    // The residency must hold for the home region itself.
    let refused = nodes["us-east1"]
        .post(
            "/v1/tenants",
            &nodes["us-east1"].platform_token(),
            json!({ "slug": "bad-pin", "name": "x", "home_region": "us-east1", "residency": { "jurisdiction": "eu" },
                    "owner": { "email": "o@bad.example", "display_name": "O" } }),
        )
        .await;
    assert_problem(&refused, 400, "residency_violation");
}

#[actix_web::test]
async fn forged_or_stale_hop_markers_are_refused() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let (_, token) = provision_in(&nodes["us-east1"], "hopper", "europe-west1", None).await;
    let foreign = meridian::routing::hop::HopSigner::new("not the nodes' secret at all");
    let request = |path| meridian::routing::hop::HopRequest {
        method: "GET",
        path_and_query: path,
        authorization: b"",
        body: b"",
        host: "",
        client: "",
    };
    let id = "0123456789abcdef0123456789abcdef";
    let stale_or_wrong = [
        "europe-west1".to_owned(),
        "europe-west1.1700000000.AAAA".to_owned(),
        foreign.sign("us-east1", id, &request("/v1/channels")),
        // Genuine format and secret, but for another request.
        meridian::routing::hop::HopSigner::new("test hop secret, shared by every node").sign(
            "us-east1",
            id,
            &request("/v1/users"),
        ),
    ];
    for marker in stale_or_wrong {
        for node in nodes.values() {
            let mut res = node
                .client
                .get(format!("{}/v1/channels", node.base))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("X-Meridian-Hop", marker.clone()))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "marker {marker}");
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["code"], "invalid_hop_marker");
        }
    }
}

/// Polls until `check` holds (nodes pick up drains and probes every 100 ms in
/// tests): every 50 ms for up to 40 s of wall time, as background work
/// (directory refreshes, scheduled jobs) is slower on a loaded 2-core CI
/// machine, where the node's worker also runs every tenant's other scheduled
/// jobs (a scheduled rotation once took over 15 s there). Only an upper bound: a
/// check that holds returns at once.
pub(crate) async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[actix_web::test]
async fn a_drained_region_fails_over_inside_residency_and_comes_back() {
    let nodes = spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let (us, west1, west3) = (
        &nodes["us-east1"],
        &nodes["europe-west1"],
        &nodes["europe-west3"],
    );
    let (_, eu) = provision_in(
        west1,
        "eu-tenant",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    let (_, pinned) = provision_in(
        west1,
        "pinned",
        "europe-west1",
        Some(json!({ "regions": ["europe-west1"] })),
    )
    .await;
    let admin = us.platform_token();
    let channel = west1
        .post("/v1/channels", &eu, json!({ "name": "ops" }))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The impact: the EU tenant moves to europe-west3, the pinned one has nowhere to go.
    let impact = us
        .post(
            "/v1/regions/europe-west1/drain",
            &admin,
            json!({ "dry_run": true }),
        )
        .await;
    assert_eq!(impact.status, 200, "{}", impact.body);
    assert_eq!(impact.body["failover"][0]["slug"], "eu-tenant");
    assert_eq!(impact.body["failover"][0]["to"], "europe-west3");
    assert_eq!(impact.body["unavailable"][0]["slug"], "pinned");
    assert_problem(
        &us.post("/v1/regions/europe-west1/drain", &admin, json!({}))
            .await,
        409,
        "drain_strands_tenants",
    );
    let drained = us
        .post(
            "/v1/regions/europe-west1/drain",
            &admin,
            json!({ "force": true }),
        )
        .await;
    assert_eq!(drained.body["drained"], true, "{}", drained.body);

    eventually("europe-west1 reports not ready", async || {
        west1.request("GET", "/readyz", None, None).await.status == 503
    })
    .await;
    // Drained, not down: the region list says so although its probe now fails.
    eventually(
        "the US node lists europe-west1 drained, europe-west3 serving, europe-north1 (no node) unreachable",
        async || {
            let list = us.get("/v1/regions", &admin).await;
            let state = |id: &str| {
                list.body["regions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["id"] == id)
                    .map(|r| r["state"].clone())
            };
            // europe-north1 has no node here; the drain impact below counts on
            // the US node's probes having seen that (they start out reachable).
            state("europe-west1") == Some(json!("drained"))
                && state("europe-west3") == Some(json!("serving"))
                && state("europe-north1") == Some(json!("unreachable"))
        },
    )
    .await;
    eventually("europe-west3 serves the EU tenant", async || {
        header(&west3.get("/v1/channels", &eu).await, "x-meridian-region") == "europe-west3"
    })
    .await;
    let posted = west3
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &eu,
            json!({ "body": "during the drain" }),
        )
        .await;
    assert_eq!(posted.status, 201);
    assert_eq!(header(&posted, "x-meridian-home-region"), "europe-west1");
    // The drained node forwards; the US node redirects, to the failover region.
    eventually("the drained node forwards to europe-west3", async || {
        header(&west1.get("/v1/channels", &eu).await, "x-meridian-region") == "europe-west3"
    })
    .await;
    let no_redirects = awc::Client::builder().disable_redirects().finish();
    let redirect = no_redirects
        .get(format!("{}/v1/channels", us.base))
        .insert_header(("Authorization", format!("Bearer {eu}")))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 307);
    assert_eq!(
        redirect
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("{}/v1/channels", west3.base)
    );
    // The pinned tenant is unavailable, clearly, everywhere.
    for node in nodes.values() {
        let reply = node.get("/v1/channels", &pinned).await;
        assert_problem(&reply, 503, "residency_unavailable");
        assert!(reply.headers.get("retry-after").is_some());
    }

    // Draining europe-west3 now would strand the EU tenant that failed over into it
    // (the pinned one is already unavailable): the impact must say so.
    let second = us
        .post(
            "/v1/regions/europe-west3/drain",
            &admin,
            json!({ "dry_run": true }),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["failover"], json!([]), "{}", second.body);
    let stranded: Vec<&str> = second.body["unavailable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(stranded, ["eu-tenant"]);
    assert_problem(
        &us.post("/v1/regions/europe-west3/drain", &admin, json!({}))
            .await,
        409,
        "drain_strands_tenants",
    );

    // Undrain: home again, with the write made during the drain.
    assert_eq!(
        us.post("/v1/regions/europe-west1/undrain", &admin, json!({}))
            .await
            .status,
        200
    );
    eventually("europe-west1 serves again", async || {
        header(&west3.get("/v1/channels", &eu).await, "x-meridian-region") == "europe-west1"
    })
    .await;
    let page = west1
        .get(&format!("/v1/channels/{channel}/messages"), &eu)
        .await;
    assert_eq!(page.body["items"][0]["body"], "during the drain");
    // Each node reads the drained flags on its own tick: europe-west3 can see the
    // undrain before europe-west1 itself does.
    eventually("europe-west1 sees its own undrain", async || {
        west1.request("GET", "/readyz", None, None).await.status == 200
    })
    .await;
    assert_eq!(west1.get("/v1/channels", &pinned).await.status, 200);
    let audit = us.get("/v1/audit", &admin).await.body.to_string();
    assert!(audit.contains("region_drained") && audit.contains("region_undrained"));
}

#[actix_web::test]
async fn a_dead_home_node_fails_over_after_the_probes_notice() {
    let nodes = spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let (west1, west3) = (&nodes["europe-west1"], &nodes["europe-west3"]);
    let (_, eu) = provision_in(
        west3,
        "eu-tenant",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    assert_eq!(
        header(&west3.get("/v1/channels", &eu).await, "x-meridian-region"),
        "europe-west1"
    );
    west1.stop().await;
    eventually("europe-west3 takes over", async || {
        let reply = west3.get("/v1/channels", &eu).await;
        reply.status == 200 && header(&reply, "x-meridian-region") == "europe-west3"
    })
    .await;
    let regions = west3.get("/v1/regions", &eu).await;
    let west1_status = regions.body["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "europe-west1")
        .unwrap()
        .clone();
    assert_eq!(west1_status["healthy"], false, "{west1_status}");
}

async fn wait_for_relocation(node: &TestApp, tenant: Uuid) -> serde_json::Value {
    let admin = node.platform_token();
    for _ in 0..300 {
        let reply = node
            .get(&format!("/v1/tenants/{tenant}/relocation"), &admin)
            .await;
        if matches!(reply.body["status"].as_str(), Some("done" | "failed")) {
            return reply.body;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("relocation did not finish");
}

#[actix_web::test]
async fn relocation_under_writes_loses_nothing_and_moves_every_row() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let (us, eu) = (&nodes["us-east1"], &nodes["europe-west1"]);
    let (tenant, token) = provision_in(us, "movers", "us-east1", None).await;
    let channel = us
        .post("/v1/channels", &token, json!({ "name": "moving" }))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/channels/{channel}/messages");
    for i in 0..300 {
        assert_eq!(
            us.post(&path, &token, json!({ "body": format!("before {i}") }))
                .await
                .status,
            201
        );
    }

    // A writer keeps posting through the US node while the tenant moves to Europe.
    let writing = std::rc::Rc::new(std::cell::Cell::new(true));
    let writer = {
        let (writing, token, path, base) = (
            writing.clone(),
            token.clone(),
            path.clone(),
            us.base.clone(),
        );
        actix_web::rt::spawn(async move {
            let client = awc::Client::default();
            let (mut acknowledged, mut failed) = (Vec::new(), 0);
            let mut i = 0;
            while writing.get() {
                i += 1;
                let sent = client
                    .post(format!("{base}{path}"))
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .send_json(&json!({ "body": format!("during {i}") }))
                    .await;
                match sent {
                    Ok(mut res) if res.status() == 201 => {
                        let body: serde_json::Value = res.json().await.unwrap();
                        acknowledged.push(body["id"].as_str().unwrap().to_owned());
                    }
                    _ => failed += 1,
                }
            }
            (acknowledged, failed)
        })
    };
    actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    let admin = us.platform_token();
    let started = us
        .post(
            &format!("/v1/tenants/{tenant}/relocation"),
            &admin,
            json!({ "to_region": "europe-west1" }),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let done = wait_for_relocation(us, tenant).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    writing.set(false);
    let (acknowledged, failed) = writer.await.unwrap();
    assert_eq!(done["status"], "done", "{done}");
    assert!(
        acknowledged.len() > 10,
        "the writer barely wrote: {}",
        acknowledged.len()
    );
    assert_eq!(failed, 0, "writes failed during the relocation");

    // Every acknowledged message is there exactly once, and every row lives in Europe.
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=200&cursor={c}"),
            None => format!("{path}?limit=200"),
        };
        let page = eu.get(&url, &token).await;
        assert_eq!(header(&page, "x-meridian-region"), "europe-west1");
        for item in page.body["items"].as_array().unwrap() {
            *seen
                .entry(item["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    for id in &acknowledged {
        assert_eq!(seen.get(id), Some(&1), "acknowledged message {id}");
    }
    assert_eq!(seen.len(), 300 + acknowledged.len());
    let (db, _) = tokio_postgres::connect(
        &crate::helpers::cluster().superuser_url(&us.db_name),
        tokio_postgres::NoTls,
    )
    .await
    .map(|(c, conn)| {
        actix_web::rt::spawn(conn);
        (c, ())
    })
    .unwrap();
    for table in [
        "users",
        "channels",
        "messages",
        "audit_events",
        "tenant_usage",
        "tenant_usage_shards",
    ] {
        let outside: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table} WHERE tenant_id = $1 AND home_region <> 'europe-west1'"), &[&tenant])
            .await
            .unwrap()
            .get(0);
        assert_eq!(outside, 0, "{table} has rows left behind");
    }
    assert!(
        done["counts_before"]["messages"].as_i64().unwrap() >= 300,
        "{done}"
    );
    assert!(
        done["counts_after"]["messages"].as_i64().unwrap()
            >= done["counts_before"]["messages"].as_i64().unwrap()
    );
    assert_eq!(
        us.get("/v1/channels", &token)
            .await
            .headers
            .get("x-meridian-home-region")
            .unwrap(),
        "europe-west1"
    );
}

#[actix_web::test]
async fn relocation_and_evacuation_respect_residency() {
    let nodes = spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let west1 = &nodes["europe-west1"];
    let admin = west1.platform_token();
    let (eu_tenant, eu_token) = provision_in(
        west1,
        "eu-only",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    let (pinned, _) = provision_in(
        west1,
        "pinned",
        "europe-west1",
        Some(json!({ "regions": ["europe-west1"] })),
    )
    .await;

    let refused = west1
        .post(
            &format!("/v1/tenants/{eu_tenant}/relocation"),
            &admin,
            json!({ "to_region": "us-east1" }),
        )
        .await;
    assert_problem(&refused, 400, "residency_violation");
    // Residency is changed by compliance officers and platform admins only.
    let (_, member) = {
        let tenant = crate::helpers::Tenant {
            id: eu_tenant,
            owner_id: Uuid::nil(),
            owner_token: eu_token.clone(),
        };
        west1.add_user(&tenant, "member").await
    };
    let reply = west1
        .patch(
            &format!("/v1/tenants/{eu_tenant}"),
            &member,
            json!({ "residency": null }),
        )
        .await;
    assert_problem(&reply, 403, "forbidden");
    let reply = west1
        .patch(
            &format!("/v1/tenants/{eu_tenant}"),
            &eu_token,
            json!({ "residency": null }),
        )
        .await;
    assert_problem(&reply, 403, "forbidden");

    let evacuation = west1
        .post("/v1/regions/europe-west1/evacuate", &admin, json!({}))
        .await;
    assert_eq!(evacuation.status, 200, "{}", evacuation.body);
    assert_eq!(
        evacuation.body["started"][0]["tenant_id"],
        eu_tenant.to_string()
    );
    assert_eq!(evacuation.body["started"][0]["to"], "europe-west3");
    assert_eq!(
        evacuation.body["refused"][0]["tenant_id"],
        pinned.to_string()
    );
    assert!(
        evacuation.body["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("residency")
    );
    let done = wait_for_relocation(west1, eu_tenant).await;
    assert_eq!(done["status"], "done", "{done}");
    let reply = nodes["europe-west3"].get("/v1/channels", &eu_token).await;
    assert_eq!(header(&reply, "x-meridian-region"), "europe-west3");
    assert_eq!(header(&reply, "x-meridian-home-region"), "europe-west3");
}

#[actix_web::test]
async fn a_relocation_whose_worker_died_is_resumed_by_another_node() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let us = &nodes["us-east1"];
    let (tenant, token) = provision_in(us, "orphan", "us-east1", None).await;
    let channel = us
        .post("/v1/channels", &token, json!({ "name": "c" }))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..20 {
        us.post(
            &format!("/v1/channels/{channel}/messages"),
            &token,
            json!({ "body": format!("m{i}") }),
        )
        .await;
    }
    // What a worker leaves behind when it dies right after switching the home
    // region: a running job with an expired lease, and every row still in us-east1.
    let (db, conn) = tokio_postgres::connect(
        &crate::helpers::cluster().superuser_url(&us.db_name),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    actix_web::rt::spawn(conn);
    db.execute(
        "UPDATE tenants SET home_region = 'europe-west1', config_version = config_version + 1, updated_at = now() WHERE id = $1",
        &[&tenant],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO relocations (id, tenant_id, from_region, to_region, status, requested_by, lease_owner, lease_until)
         VALUES ($1, $2, 'us-east1', 'europe-west1', 'running', 'test', 'a-dead-node', now() - interval '1 minute')",
        &[&Uuid::now_v7(), &tenant],
    )
    .await
    .unwrap();
    let done = wait_for_relocation(us, tenant).await;
    assert_eq!(done["status"], "done", "{done}");
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM messages WHERE tenant_id = $1 AND home_region <> 'europe-west1'",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(done["moved"]["messages"], 20, "{done}");
}

/// A superuser connection to the nodes' database, for set-ups the API refuses.
async fn superuser(node: &TestApp) -> tokio_postgres::Client {
    let (db, conn) = tokio_postgres::connect(
        &crate::helpers::cluster().superuser_url(&node.db_name),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    actix_web::rt::spawn(conn);
    db
}

/// An EU tenant homed in europe-west1 and a compliance officer's token.
async fn eu_tenant_with_officer(node: &TestApp, slug: &str) -> (Uuid, String) {
    let (id, owner) = provision_in(
        node,
        slug,
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    let tenant = crate::helpers::Tenant {
        id,
        owner_id: Uuid::nil(),
        owner_token: owner,
    };
    let (_, officer) = node.add_user(&tenant, "compliance").await;
    (id, officer)
}

/// Asserts the residency rule on the stored tenant row: its home region is one its
/// policy allows (the policies in these tests are `eu` or a list of regions).
async fn assert_home_inside_residency(db: &tokio_postgres::Client, tenant: Uuid) {
    let row = db
        .query_one(
            "SELECT home_region, residency FROM tenants WHERE id = $1",
            &[&tenant],
        )
        .await
        .unwrap();
    let (home, residency): (String, Option<serde_json::Value>) = (row.get(0), row.get(1));
    let allowed = match &residency {
        None => true,
        Some(policy) if policy["jurisdiction"] == "eu" => home.starts_with("europe-"),
        Some(policy) => policy["regions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == home.as_str()),
    };
    assert!(
        allowed,
        "tenant {tenant} is homed in {home} outside its residency {residency:?}"
    );
}

#[actix_web::test]
async fn a_residency_change_during_a_relocation_is_refused_and_the_switch_rechecks() {
    let nodes = spawn_regions(&["europe-west1", "europe-west3"]).await;
    let west1 = &nodes["europe-west1"];
    let admin = west1.platform_token();
    let db = superuser(west1).await;
    let (tenant, officer) = eu_tenant_with_officer(west1, "held").await;
    let path = format!("/v1/tenants/{tenant}");

    // A relocation to europe-west3 held before its switch: its worker (a live node,
    // by its lease) has not switched the home region yet.
    let job = Uuid::now_v7();
    db.execute(
        "INSERT INTO relocations (id, tenant_id, from_region, to_region, status, requested_by, lease_owner, lease_until)
         VALUES ($1, $2, 'europe-west1', 'europe-west3', 'pending', 'test', 'a-busy-node', now() + interval '1 hour')",
        &[&job, &tenant],
    )
    .await
    .unwrap();
    let pin = json!({ "residency": { "regions": ["europe-west1"] } });
    for token in [&officer, &admin] {
        let reply = west1.patch(&path, token, pin.clone()).await;
        assert_problem(&reply, 409, "residency_conflict");
    }
    // A policy that still allows the target is fine.
    let both = json!({ "residency": { "regions": ["europe-west1", "europe-west3"] } });
    let reply = west1.patch(&path, &officer, both).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The switch re-checks the policy it finds in the database: a policy that forbids
    // the target by now (written past the API, e.g. by a node of an older version)
    // fails the relocation instead of homing the tenant outside it.
    db.execute(
        "UPDATE tenants SET residency = '{\"regions\": [\"europe-west1\"]}', config_version = config_version + 1, updated_at = now() WHERE id = $1",
        &[&tenant],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE relocations SET lease_until = now() - interval '1 minute' WHERE id = $1",
        &[&job],
    )
    .await
    .unwrap();
    let done = wait_for_relocation(west1, tenant).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("residency"),
        "{done}"
    );
    let now = west1.get(&path, &admin).await;
    assert_eq!(now.body["home_region"], "europe-west1", "{}", now.body);
    assert_home_inside_residency(&db, tenant).await;

    // The report's sequence through the API: start a relocation, then pin the
    // residency to the region being left. The pin is refused while the job runs
    // (409) or, once it is done, because the home region is no longer allowed (400).
    let (tenant, officer) = eu_tenant_with_officer(west1, "raced").await;
    let started = west1
        .post(
            &format!("/v1/tenants/{tenant}/relocation"),
            &admin,
            json!({ "to_region": "europe-west3" }),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let reply = west1
        .patch(&format!("/v1/tenants/{tenant}"), &officer, pin.clone())
        .await;
    match reply.status.as_u16() {
        409 => assert_problem(&reply, 409, "residency_conflict"),
        _ => assert_problem(&reply, 400, "residency_violation"),
    }
    let done = wait_for_relocation(west1, tenant).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_home_inside_residency(&db, tenant).await;
}

#[actix_web::test]
async fn residency_changes_racing_relocations_never_break_residency() {
    let nodes = spawn_regions(&["europe-west1", "europe-west3"]).await;
    let (west1, west3) = (&nodes["europe-west1"], &nodes["europe-west3"]);
    let admin = west1.platform_token();
    let db = superuser(west1).await;
    let pin = json!({ "residency": { "regions": ["europe-west1"] } });
    for round in 0..3 {
        let mut tenants = Vec::new();
        for n in 0..8 {
            tenants.push(eu_tenant_with_officer(west1, &format!("race-{round}-{n}")).await);
        }
        let races = tenants.iter().enumerate().map(|(n, (tenant, officer))| {
            let (pin, admin) = (pin.clone(), admin.clone());
            async move {
                // Half the pins come from the compliance officer, half from a platform
                // admin; the requests go to either node.
                let patcher = if n % 2 == 0 { officer } else { &admin };
                let node = if n % 3 == 0 { west3 } else { west1 };
                let (relocation, tenant_path) = (
                    format!("/v1/tenants/{tenant}/relocation"),
                    format!("/v1/tenants/{tenant}"),
                );
                let target = json!({ "to_region": "europe-west3" });
                let relocate = west1.post(&relocation, &admin, target);
                let change = node.patch(&tenant_path, patcher, pin);
                futures_util::join!(relocate, change)
            }
        });
        let outcomes = futures_util::future::join_all(races).await;
        for ((tenant, _), (started, changed)) in tenants.iter().zip(&outcomes) {
            match started.status.as_u16() {
                202 => {
                    let done = wait_for_relocation(west1, *tenant).await;
                    assert!(
                        matches!(done["status"].as_str(), Some("done" | "failed")),
                        "{done}"
                    );
                }
                _ => assert_problem(started, 400, "residency_violation"),
            }
            match changed.status.as_u16() {
                200 => {}
                409 => assert_problem(changed, 409, "residency_conflict"),
                _ => assert_problem(changed, 400, "residency_violation"),
            }
            // One of the two wins; both cannot (the pin forbids the target).
            assert!(
                !(started.status == 202 && changed.status == 200),
                "relocation {} and pin {} both accepted",
                started.body,
                changed.body
            );
            assert_home_inside_residency(&db, *tenant).await;
        }
    }
}

/// A relocation moves every table whose rows carry a `home_region`: a table left
/// out of `relocation::TABLES` would keep a relocated tenant's rows in the old
/// region (the V13 sign-in tables once were).
#[actix_web::test]
async fn a_relocation_moves_every_homed_table() {
    let app = spawn_app_with(test_settings(&fresh_database().await)).await;
    let db = app.superuser_client().await;
    let homed: std::collections::BTreeSet<String> = db
        .query(
            "SELECT table_name::text FROM information_schema.columns
              WHERE table_schema = 'public' AND column_name = 'home_region'
                AND table_name IN (SELECT table_name FROM information_schema.tables
                                    WHERE table_schema = 'public' AND table_type = 'BASE TABLE')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Rows that describe a tenant or a region rather than belonging to one: the
    // tenants row is re-homed by the switch itself; the others are platform rows.
    let not_tenant_rows = [
        "tenants",
        "relocations",
        "platform_audit_events",
        "region_state",
    ];
    let moved: std::collections::BTreeSet<String> = meridian::relocation::relocated_tables()
        .map(str::to_owned)
        .collect();
    let missing: Vec<&String> = homed
        .iter()
        .filter(|t| !moved.contains(*t) && !not_tenant_rows.contains(&t.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "homed tables a relocation does not move: {missing:?}"
    );
    assert!(
        moved.is_subset(&homed),
        "moved tables without home_region: {moved:?}"
    );
}
