//! Regression of the security review of 2026-11-30: a node that serves a
//! forwarded request keeps its per-address limits on the client the forwarding
//! node served (carried in the signed hop marker), not on the forwarding node's
//! own address. On the peer's address, every client routed through one node
//! shared one bucket: one client's flood of sign-ins locked all the others out.

use serde_json::json;

use crate::regions::{provision_in, spawn_regions};

/// A sign-in attempt sent from the loopback address `from` to `node`: its status
/// and the region that answered.
async fn sign_in_from(
    base: &str,
    from: &str,
    slug: &str,
    username: &str,
    spoofed: Option<&str>,
) -> (u16, String) {
    let client = awc::Client::builder()
        .connector(awc::Connector::new().local_address(from.parse().unwrap()))
        .finish();
    let mut request = client.post(format!("{base}/v1/auth/{slug}/ldap"));
    if let Some(address) = spoofed {
        request = request.insert_header(("x-meridian-client", address));
    }
    let reply = request
        .send_json(&json!({ "username": username, "password": "wrong" }))
        .await
        .unwrap();
    let region = reply
        .headers()
        .get("x-meridian-region")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (reply.status().as_u16(), region)
}

#[actix_web::test]
async fn a_forwarded_clients_flood_does_not_lock_out_the_other_clients_of_its_node() {
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let us = &nodes["us-east1"];
    // No residency policy: the US node forwards the EU tenant's sign-ins.
    provision_in(us, "fwd-eu", "europe-west1", None).await;

    // One client (127.0.0.2) floods sign-ins through the US node until the EU
    // node refuses it.
    // Each attempt names another account, so only the address's budgets (the
    // anonymous limit and the password attempts per address) can refuse it.
    let mut flooded = false;
    for i in 0..60 {
        let username = format!("guess{i}");
        let (status, region) = sign_in_from(&us.base, "127.0.0.2", "fwd-eu", &username, None).await;
        assert_eq!(region, "europe-west1", "the sign-in was not forwarded");
        if status == 429 {
            flooded = true;
            break;
        }
    }
    assert!(flooded, "the flooding client was never limited");
    // Not even by naming another address itself: only a peer node's signed
    // marker carries the client's address.
    let (status, _) = sign_in_from(
        &us.base,
        "127.0.0.2",
        "fwd-eu",
        "mallory",
        Some("198.51.100.9"),
    )
    .await;
    assert_eq!(status, 429, "a client's own x-meridian-client was believed");

    // Another client of the same US node is not limited by that flood.
    let (status, region) = sign_in_from(&us.base, "127.0.0.3", "fwd-eu", "alice", None).await;
    assert_eq!(region, "europe-west1");
    assert_ne!(
        status, 429,
        "a client was limited by another client's flood"
    );
}
