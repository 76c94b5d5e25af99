//! Regression of the security review of 2026-11-30: a platform admin's request
//! that reads or writes one tenant's own rows is served in the tenant's home
//! region, whichever node it lands on, like the tenant's own requests (README
//! "Regions, residency"): its data keys (versions, the ciphertexts still to
//! re-encrypt, a rotation, their destruction) and its residency report (a
//! count of every table's rows of the tenant). Served elsewhere, an EU tenant's
//! rows would be read and its keys rotated by a US node.

use serde_json::json;

use crate::regions::{header, provision_in, spawn_regions};

#[actix_web::test]
async fn a_platform_admins_key_and_residency_routes_are_served_in_the_home_region() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let us = &nodes["us-east1"];
    // No residency policy: the US node forwards (an EU-pinned tenant's request
    // is redirected instead, which this client would follow without its token).
    let (tenant, _) = provision_in(us, "keys-eu", "europe-west1", None).await;
    let admin = us.platform_token();
    for (method, path, body, status) in [
        ("GET", format!("/v1/tenants/{tenant}/keys"), None, 200),
        (
            "GET",
            format!("/v1/tenants/{tenant}/residency-report"),
            None,
            200,
        ),
        (
            "POST",
            format!("/v1/tenants/{tenant}/keys/rotate"),
            Some(json!(null)),
            202,
        ),
        (
            "DELETE",
            format!("/v1/tenants/{tenant}/keys"),
            Some(json!({ "confirm": tenant.to_string() })),
            200,
        ),
    ] {
        let reply = us.request(method, &path, Some(&admin), body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert_eq!(
            header(&reply, "x-meridian-region"),
            "europe-west1",
            "{method} {path} was served outside the tenant's home region"
        );
        assert_eq!(header(&reply, "x-meridian-home-region"), "europe-west1");
    }
}

/// The same review: a platform admin's change of a tenant (`PATCH`, which
/// writes the tenant's audit event) and its erasure's request, state and
/// restore (rows of `tenant_erasures`, homed with the tenant) were served by
/// whichever node the request landed on.
#[actix_web::test]
async fn a_platform_admins_tenant_change_and_erasure_are_served_in_the_home_region() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let us = &nodes["us-east1"];
    let (tenant, owner) = provision_in(us, "patch-eu", "europe-west1", None).await;
    let admin = us.platform_token();
    for (method, path, body, status) in [
        (
            "PATCH",
            format!("/v1/tenants/{tenant}"),
            Some(json!({ "name": "Renamed by the platform" })),
            200,
        ),
        (
            "DELETE",
            format!("/v1/tenants/{tenant}"),
            Some(json!({ "confirm": "patch-eu" })),
            202,
        ),
        ("GET", format!("/v1/tenants/{tenant}/erasure"), None, 200),
        (
            "POST",
            format!("/v1/tenants/{tenant}/restore"),
            Some(json!(null)),
            200,
        ),
    ] {
        let reply = us.request(method, &path, Some(&admin), body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert_eq!(
            header(&reply, "x-meridian-region"),
            "europe-west1",
            "{method} {path} was served outside the tenant's home region"
        );
    }
    // The rename's event is in the tenant's trail (written by the EU node).
    let eu = &nodes["europe-west1"];
    let trail = eu.get("/v1/audit?action=tenant_updated", &owner).await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    assert_eq!(
        trail.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        trail.body
    );
}
