//! The WAN delay proxy over real sockets: a client bound in a region's client
//! subnet pays the round trip, an operator on 127.0.0.1 pays nothing, bulk data
//! arrives intact, half-closes pass through, and the node sees the real client.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian::ids::RegionId;
use meridian::topology::Topology;
use meridian_local::wan::{DelayProxy, Latency, Locator, Wan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const RTT: Duration = Duration::from_millis(80);
/// Every other figure is large, so a misclassified connection shows.
const MATRIX: &str = r#"
local_rtt_ms = 300
[rtt_ms]
"us-east1.europe-west1" = 80
"us-east1.europe-west3" = 300
"us-east1.asia-southeast1" = 300
"europe-west1.europe-west3" = 300
"europe-west1.asia-southeast1" = 300
"europe-west3.asia-southeast1" = 300
"us-east1.europe-north1" = 300
"europe-west1.europe-north1" = 300
"europe-west3.europe-north1" = 300
"europe-north1.asia-southeast1" = 300
"#;
/// In europe-west1's client subnet.
const EUROPEAN: &str = "127.0.2.9";
/// Scheduling slack on a loaded 2-core machine; bounds above the delay are loose.
const SLACK: Duration = Duration::from_millis(700);

fn wan() -> Arc<Wan> {
    let topology = Topology::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../regions"
    )))
    .unwrap();
    let latency = Latency::parse(MATRIX, Path::new("test matrix"), &topology).unwrap();
    Arc::new(Wan::new(latency, Locator::new(&topology).unwrap()))
}

fn us_east1() -> RegionId {
    RegionId::parse("us-east1").unwrap()
}

/// A proxy for us-east1 in front of `upstream`; returns its address.
async fn proxy_to(upstream: SocketAddr) -> SocketAddr {
    let proxy = DelayProxy::bind("127.0.0.1:0".parse().unwrap(), upstream, us_east1(), wan())
        .await
        .unwrap();
    let address = proxy.local_addr().unwrap();
    tokio::spawn(proxy.run());
    address
}

/// Echoes every connection; shuts its side down after the client's EOF.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                if tokio::io::copy(&mut read, &mut write).await.is_ok() {
                    let _ = write.shutdown().await;
                }
            });
        }
    });
    address
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(to).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

async fn round_trip(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    stream.write_all(b"ping").await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"ping");
    started.elapsed()
}

#[test]
fn delays_follow_the_source_location() {
    let wan = wan();
    let at = |ip: &str| wan.one_way(ip.parse::<IpAddr>().unwrap(), &us_east1());
    assert_eq!(at(EUROPEAN), RTT / 2);
    assert_eq!(at("127.0.0.21"), RTT / 2, "europe-west1's node forwarding");
    assert_eq!(at("127.0.1.5"), Duration::from_millis(150), "a local user");
    assert_eq!(at("127.0.0.1"), Duration::ZERO, "an operator or a probe");
}

#[tokio::test]
async fn a_remote_client_pays_the_handshake_and_then_one_round_trip_per_exchange() {
    let proxy = proxy_to(echo_server().await).await;
    let mut stream = connect_from(EUROPEAN, proxy).await;
    let first = round_trip(&mut stream).await;
    assert!(
        first >= RTT * 2 && first < RTT * 2 + SLACK,
        "first exchange (handshake + request) took {first:?}"
    );
    for _ in 0..3 {
        let next = round_trip(&mut stream).await;
        assert!(
            next >= RTT && next < RTT + SLACK,
            "later exchange took {next:?}"
        );
    }
}

#[tokio::test]
async fn an_operator_on_127_0_0_1_pays_nothing() {
    let proxy = proxy_to(echo_server().await).await;
    let started = Instant::now();
    let mut stream = connect_from("127.0.0.1", proxy).await;
    for _ in 0..3 {
        round_trip(&mut stream).await;
    }
    // Any location in the test matrix would cost at least 2 × 80 ms here.
    let took = started.elapsed();
    assert!(took < RTT * 2, "three exchanges took {took:?}");
}

#[tokio::test]
async fn a_megabyte_arrives_intact_and_in_order_then_eof() {
    let proxy = proxy_to(echo_server().await).await;
    let stream = connect_from(EUROPEAN, proxy).await;
    let sent: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let (mut read, mut write) = stream.into_split();
    let body = sent.clone();
    let writer = tokio::spawn(async move {
        // Many small writes, so chunks are cut at arbitrary places.
        for piece in body.chunks(7_919) {
            write.write_all(piece).await.unwrap();
        }
        write.shutdown().await.unwrap();
    });
    let mut received = Vec::new();
    let started = Instant::now();
    // read_to_end returns only when the echo server's EOF came back through.
    tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut received))
        .await
        .expect("no EOF through the proxy")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "bytes changed or reordered");
    assert!(started.elapsed() >= RTT * 2);
}

/// Reads to EOF, then answers with the peer's IP and the byte count, and closes.
async fn counting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                stream.read_to_end(&mut all).await.unwrap();
                let answer = format!("{} {}", peer.ip(), all.len());
                stream.write_all(answer.as_bytes()).await.unwrap();
            });
        }
    });
    address
}

#[tokio::test]
async fn a_half_close_reaches_the_node_and_its_answer_still_comes_back() {
    let proxy = proxy_to(counting_server().await).await;
    let mut stream = connect_from(EUROPEAN, proxy).await;
    stream.write_all(b"three").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("the half-close did not reach the server, or its close did not come back")
        .unwrap();
    // The node sees the client's own address, not the proxy's.
    assert_eq!(answer, format!("{EUROPEAN} 5"));
}

#[tokio::test]
async fn a_dead_node_closes_the_client_connection() {
    let vacant = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = vacant.local_addr().unwrap();
    drop(vacant);
    let proxy = proxy_to(address).await;
    let mut stream = connect_from(EUROPEAN, proxy).await;
    let mut buf = [0u8; 1];
    let outcome = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the client was left hanging");
    assert!(matches!(outcome, Ok(0) | Err(_)), "{outcome:?}");
}
