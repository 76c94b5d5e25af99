//! The local GeoDNS, for real: PowerDNS started from the generated files, small
//! fake nodes on the regions' loopback addresses answering `/readyz` with 200 or
//! 503 at will, and queries (hickory-resolver) sent from each location's subnet.
//! Needs `pdns_server` with the bind backend (Debian: pdns-server
//! pdns-backend-bind); without it the test fails and says so.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use meridian::topology::Topology;
use meridian_local::geodns::{GeoDns, GeoDnsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const API: &str = "api.meridian.test.";

/// A node that answers every request with its current status code; 0: it
/// accepts connections but never answers (a hung node).
struct FakeNode {
    status: Arc<AtomicU16>,
}

impl FakeNode {
    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

async fn serve(listener: TcpListener, status: Arc<AtomicU16>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let status = status.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf).await;
            if status == 0 {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes()).await;
        });
    }
}

/// One fake node per region on its loopback address, all on one free port (not
/// 8080, so a running `meridian dev` does not collide).
async fn fake_nodes(topology: &Topology) -> (u16, BTreeMap<String, FakeNode>) {
    'port: for _ in 0..50 {
        let first = topology.regions().next().unwrap().local_address.ip();
        let probe = TcpListener::bind((first, 0)).await.unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut listeners = Vec::new();
        for region in topology.regions() {
            match TcpListener::bind((region.local_address.ip(), port)).await {
                Ok(l) => listeners.push((region.id.to_string(), l)),
                Err(_) => continue 'port,
            }
        }
        let mut nodes = BTreeMap::new();
        for (region, listener) in listeners {
            let status = Arc::new(AtomicU16::new(200));
            tokio::spawn(serve(listener, status.clone()));
            nodes.insert(region, FakeNode { status });
        }
        return (port, nodes);
    }
    panic!("no port free on every region's loopback address");
}

/// A resolver asking `server` from `source`: the query leaves from that location.
fn resolver_from(server: SocketAddr, source: IpAddr) -> TokioResolver {
    // Every lookup must reach PowerDNS: the answer changes with health.
    meridian_local::geodns::resolver(server, source, Duration::from_secs(2), 1).unwrap()
}

/// An address inside the first client subnet of `region`: `a.b.c.0/n` → `a.b.c.7`.
fn location(topology: &Topology, region: &str) -> IpAddr {
    let subnet = &topology.find(region).unwrap().client_subnets[0];
    let base: Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
    IpAddr::V4(Ipv4Addr::from(u32::from(base) + 7))
}

fn node_ip(topology: &Topology, region: &str) -> IpAddr {
    topology.find(region).unwrap().local_address.ip()
}

/// A tenant's subdomain, which the wildcard record answers like `API`.
const TENANT: &str = "acme.api.meridian.test.";

async fn answer(resolver: &TokioResolver) -> Option<IpAddr> {
    answer_for(resolver, API).await
}

async fn answer_for(resolver: &TokioResolver, name: &str) -> Option<IpAddr> {
    let lookup = resolver.lookup_ip(name).await.ok()?;
    let ips: Vec<IpAddr> = lookup.iter().collect();
    assert!(ips.len() <= 1, "one node per answer, got {ips:?}");
    ips.first().copied()
}

/// Polls until `resolver` is answered `want`; returns how long it took.
async fn eventually(resolver: &TokioResolver, want: IpAddr, what: &str) -> Duration {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(10) {
        last = answer(resolver).await;
        if last == Some(want) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: expected {want}, still {last:?} after 10 s");
}

fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("meridian-{name}-{}-{nanos}", std::process::id()))
}

struct Setup {
    topology: Topology,
    nodes: BTreeMap<String, FakeNode>,
    dns: GeoDns,
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn setup(name: &str) -> Setup {
    let topology = Topology::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../regions"
    )))
    .unwrap();
    let (port, nodes) = fake_nodes(&topology).await;
    let opts = GeoDnsOptions {
        port: 0,
        node_port: Some(port),
        ..GeoDnsOptions::default()
    };
    let dir = scratch(name);
    let (dns_dir, dns_topology) = (dir.clone(), topology.clone());
    let dns = tokio::task::spawn_blocking(move || GeoDns::start(&dns_dir, &dns_topology, &opts))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    Setup {
        topology,
        nodes,
        dns,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_location_gets_its_node_and_fails_over_in_its_order() {
    let s = setup("geodns").await;
    let t = &s.topology;
    let server = s.dns.address();
    let from = |region: &str| resolver_from(server, location(t, region));

    for region in t.regions() {
        let id = region.id.as_str();
        eventually(&from(id), node_ip(t, id), &format!("client in {id}")).await;
        // A tenant subdomain: the same node, by the same rule.
        assert_eq!(
            answer_for(&from(id), TENANT).await,
            Some(node_ip(t, id)),
            "{TENANT} from {id}"
        );
        // A region's own name is its node, not the wildcard's answer.
        assert_eq!(
            answer_for(&from(id), "asia-southeast1.api.meridian.test.").await,
            Some(node_ip(t, "asia-southeast1"))
        );
    }
    // A client in no region's subnet gets the first region's preference order.
    let first = t.regions().next().unwrap().id.as_str();
    let nowhere = resolver_from(server, "127.0.9.9".parse().unwrap());
    eventually(&nowhere, node_ip(t, first), "client in no subnet").await;

    // us-east1 fails over to europe-west1, then asia-southeast1 (its order).
    let us = from("us-east1");
    let order = &t.find("us-east1").unwrap().failover;
    assert_eq!(order[0].as_str(), "europe-west1");
    s.nodes["us-east1"].set(503);
    let took = eventually(&us, node_ip(t, "europe-west1"), "us-east1 down").await;
    eprintln!("failover us-east1 → europe-west1 seen after {took:?}");
    // The wildcard shares the API name's health checks: it has failed over too.
    assert_eq!(
        answer_for(&us, TENANT).await,
        Some(node_ip(t, "europe-west1"))
    );
    s.nodes["europe-west1"].set(503);
    eventually(
        &us,
        node_ip(t, order[1].as_str()),
        "us-east1 and europe-west1 down",
    )
    .await;
    // Other locations keep their own healthy node.
    let asia = from("asia-southeast1");
    assert_eq!(answer(&asia).await, Some(node_ip(t, "asia-southeast1")));
    // europe-west1's clients go to europe-west3, its first failover region.
    let eu = from("europe-west1");
    eventually(&eu, node_ip(t, "europe-west3"), "europe-west1 down").await;

    // Back up: clients return home.
    s.nodes["us-east1"].set(200);
    eventually(&us, node_ip(t, "us-east1"), "us-east1 back").await;

    // Every node down: the plain geo answer (the client's own region), not a random one.
    for node in s.nodes.values() {
        node.set(503);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for region in t.regions() {
        let id = region.id.as_str();
        assert_eq!(
            answer(&from(id)).await,
            Some(node_ip(t, id)),
            "all down, {id}"
        );
    }
}

/// A pause of 0–999 ms, so that flips fall at random points of the health
/// checker's one-second cycle (flipping right after an observed change would
/// always land just after a check: a phase-locked, worst-case figure).
async fn random_phase() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    tokio::time::sleep(Duration::from_millis(u64::from(nanos % 1000))).await;
}

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms: Vec<u128> = times.iter().map(|d| d.as_millis()).collect();
    eprintln!(
        "{what}: median {} ms, max {} ms, all {ms:?}",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

/// Failover time after a node starts answering 503 (or hangs), over several
/// trials. A measurement, not a test:
/// `cargo test --test geodns -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_failover_time() {
    let s = setup("geodns-measure").await;
    let t = &s.topology;
    let us = resolver_from(s.dns.address(), location(t, "us-east1"));
    let (home, next) = (node_ip(t, "us-east1"), node_ip(t, "europe-west1"));
    eventually(&us, home, "start").await;
    for (what, bad) in [("503", 503), ("hung", 0)] {
        let (mut down, mut up) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            random_phase().await;
            s.nodes["us-east1"].set(bad);
            down.push(eventually(&us, next, "down").await);
            random_phase().await;
            s.nodes["us-east1"].set(200);
            up.push(eventually(&us, home, "up").await);
        }
        summary(&format!("{what} → failover"), down);
        summary(&format!("{what} → back home after 200"), up);
    }
}
