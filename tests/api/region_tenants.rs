//! `GET /v1/regions/tenants` (tenant counts per region and the failover of
//! regions not serving, for the console's region map) and the search and
//! filters of `GET /v1/tenants` (`q`, `region`, `plan`, `status`).

use serde_json::{Value, json};

use crate::helpers::assert_problem;
use crate::operator::operator_token;
use crate::regions::{eventually, provision_in, spawn_regions};

fn region<'a>(counts: &'a Value, id: &str) -> &'a Value {
    counts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == id)
        .unwrap_or_else(|| panic!("no {id} in {counts}"))
}

#[actix_web::test]
async fn tenant_counts_per_region_follow_a_drain() {
    // Nodes for the EU regions, so that a drained one has somewhere to fail over to.
    let nodes = spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let app = &nodes["us-east1"];
    let admin = app.platform_token();
    for region in ["europe-west1", "europe-west3"] {
        eventually(&format!("{region} healthy"), async || {
            let regions = app.get("/v1/regions", &admin).await;
            regions.body["regions"].as_array().is_some_and(|all| {
                all.iter()
                    .any(|r| r["id"] == region && r["healthy"] == true)
            })
        })
        .await;
    }
    let eu = json!({ "jurisdiction": "eu" });
    provision_in(app, "rt-us", "us-east1", None).await;
    provision_in(app, "rt-eu1", "europe-west1", Some(eu.clone())).await;
    let (eu2, _) = provision_in(app, "rt-eu2", "europe-west1", Some(eu.clone())).await;
    // A platform admin's change of a tenant is served in its home region (an
    // EU-pinned tenant's is redirected there from the US node).
    let suspended = nodes["europe-west1"]
        .patch(
            &format!("/v1/tenants/{eu2}"),
            &admin,
            json!({ "status": "suspended" }),
        )
        .await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);

    let counts = app.get("/v1/regions/tenants", &admin).await;
    assert_eq!(counts.status, 200, "{}", counts.body);
    let regions = app.get("/v1/regions", &admin).await;
    assert_eq!(
        counts.body["items"].as_array().unwrap().len(),
        regions.body["regions"].as_array().unwrap().len(),
        "every region of the topology"
    );
    let west1 = region(&counts.body, "europe-west1");
    assert_eq!(
        (
            &west1["homed"],
            &west1["active"],
            &west1["suspended"],
            &west1["served"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(1)),
        "{west1}"
    );
    assert_eq!(west1["failover"], json!([]));
    assert_eq!(region(&counts.body, "us-east1")["homed"], 1);
    assert_eq!(region(&counts.body, "asia-southeast1")["homed"], 0);

    // Operators see it (an operational view); tenant users do not.
    let operator = operator_token(app);
    assert_eq!(app.get("/v1/regions/tenants", &operator).await.status, 200);
    let (_, owner) = provision_in(app, "rt-owner", "us-east1", None).await;
    assert_problem(
        &app.get("/v1/regions/tenants", &owner).await,
        403,
        "forbidden",
    );

    // Drained: its active EU tenant is served by the next EU region of its
    // failover order, as `/v1/regions` and the drain's own report say.
    let drained = app
        .post("/v1/regions/europe-west1/drain", &operator, json!({}))
        .await;
    assert_eq!(drained.status, 200, "{}", drained.body);
    let to = drained.body["failover"][0]["to"].clone();
    assert_eq!(to, "europe-west3", "{}", drained.body);
    let counts = app.get("/v1/regions/tenants", &operator).await;
    let west1 = region(&counts.body, "europe-west1");
    assert_eq!(west1["served"], 0, "{west1}");
    assert_eq!(
        west1["failover"],
        json!([{ "to": "europe-west3", "tenants": 1 }])
    );
    assert_eq!(region(&counts.body, "europe-west3")["served"], 1);
    let regions = app.get("/v1/regions", &operator).await;
    let state = regions.body["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "europe-west1")
        .unwrap()["state"]
        .clone();
    assert_eq!(state, "drained");

    let undrained = app
        .post("/v1/regions/europe-west1/undrain", &operator, json!({}))
        .await;
    assert_eq!(undrained.status, 200, "{}", undrained.body);
    let counts = app.get("/v1/regions/tenants", &operator).await;
    assert_eq!(region(&counts.body, "europe-west1")["failover"], json!([]));
    assert_eq!(region(&counts.body, "europe-west1")["served"], 1);
}

#[actix_web::test]
async fn the_tenant_list_searches_and_filters() {
    // An EU node: the platform admin's change of the EU tenant is served there.
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let app = &nodes["us-east1"];
    let admin = app.platform_token();
    provision_in(app, "flt-alpha", "us-east1", None).await;
    let (beta, _) = provision_in(app, "flt-beta", "europe-west1", None).await;
    provision_in(app, "other-gamma", "us-east1", None).await;
    let pro = app
        .patch(
            &format!("/v1/tenants/{beta}"),
            &admin,
            json!({ "plan": "pro", "status": "suspended" }),
        )
        .await;
    assert_eq!(pro.status, 200, "{}", pro.body);
    let slugs = async |query: &str| -> Vec<String> {
        let page = app.get(&format!("/v1/tenants?{query}"), &admin).await;
        assert_eq!(page.status, 200, "{query}: {}", page.body);
        let mut slugs: Vec<String> = page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["slug"].as_str().unwrap().to_owned())
            .collect();
        slugs.sort();
        slugs
    };
    assert_eq!(slugs("q=FLT").await, ["flt-alpha", "flt-beta"]);
    // The name is searched too (`provision_in` names a tenant by its slug).
    assert_eq!(slugs("q=gamm").await, ["other-gamma"]);
    assert_eq!(slugs("region=europe-west1").await, ["flt-beta"]);
    assert_eq!(slugs("plan=pro").await, ["flt-beta"]);
    assert_eq!(slugs("status=suspended").await, ["flt-beta"]);
    assert_eq!(
        slugs("q=flt&status=active&region=us-east1").await,
        ["flt-alpha"]
    );
    assert!(slugs("q=flt&plan=enterprise").await.is_empty());
    for bad in ["plan=gold", "status=gone", "region=mars-1", "q="] {
        let reply = app.get(&format!("/v1/tenants?{bad}"), &admin).await;
        assert_problem(&reply, 400, "invalid_query");
    }
}
