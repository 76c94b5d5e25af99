//! `DelayProxy`: a TCP relay on a region's public address that adds the WAN
//! latency between the connecting side's location and the region, in each
//! direction. It models latency, not bandwidth: every chunk read is stamped
//! `now + one-way delay` and written when that time comes, in order, so
//! back-to-back chunks pay the delay once.
//!
//! A new connection also pays for the TCP handshake the kernel already completed
//! locally: nothing the client sends reaches the node before one round trip after
//! accept (SYN, SYN-ACK), so a first request costs two round trips, as over a WAN.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::Wan;
use meridian::ids::RegionId;

/// Bytes read at once.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction: with `CHUNK`, up to 4 MiB per connection and
/// direction may be "on the wire" (the emulated window), enough for a LAN-speed
/// stream at intercontinental delays.
const IN_FLIGHT: usize = 64;

/// A listening delay proxy in front of one region's node.
pub struct DelayProxy {
    listener: TcpListener,
    upstream: SocketAddr,
    region: RegionId,
    wan: Arc<Wan>,
}

impl DelayProxy {
    /// Listens on `public` and relays to `upstream` (the node's internal address).
    pub async fn bind(
        public: SocketAddr,
        upstream: SocketAddr,
        region: RegionId,
        wan: Arc<Wan>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(public).await?;
        Ok(Self {
            listener,
            upstream,
            region,
            wan,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and relays until the task is dropped.
    pub async fn run(self) {
        loop {
            let (client, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(region = %self.region, error = %err, "wan proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let one_way = self.wan.one_way(peer.ip(), &self.region);
            let upstream = self.upstream;
            let region = self.region.clone();
            tokio::spawn(async move {
                if let Err(err) = relay(client, peer.ip(), upstream, one_way).await {
                    tracing::debug!(%region, %peer, error = %err, "wan proxy: connection ended");
                }
            });
        }
    }
}

async fn relay(
    client: TcpStream,
    source: IpAddr,
    upstream: SocketAddr,
    one_way: Duration,
) -> io::Result<()> {
    let accepted = Instant::now();
    let server = connect_from(source, upstream).await?;
    // Small writes must not wait for Nagle on top of the emulated delay.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // The first error ends both directions; dropping the halves closes both sockets.
    tokio::try_join!(
        pipe(client_read, server_write, one_way, accepted + one_way * 2),
        pipe(server_read, client_write, one_way, accepted),
    )?;
    Ok(())
}

/// Connects to the node from the client's own loopback address, so the node sees
/// the real client (per-IP limits, logs) rather than the proxy.
async fn connect_from(source: IpAddr, upstream: SocketAddr) -> io::Result<TcpStream> {
    if source.is_loopback() && source.is_ipv4() && upstream.is_ipv4() {
        let socket = TcpSocket::new_v4()?;
        if socket.bind(SocketAddr::new(source, 0)).is_ok() {
            match socket.connect(upstream).await {
                Ok(stream) => return Ok(stream),
                // Ports of that address exhausted: fall back to any source.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
                    ) => {}
                Err(err) => return Err(err),
            }
        }
    }
    TcpStream::connect(upstream).await
}

/// Copies `from` to `to`, each chunk leaving `delay` after it was read (and not
/// before `not_before + delay`); EOF is passed on as a write shutdown, in order.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    delay: Duration,
    not_before: Instant,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(IN_FLIGHT);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            let due = Instant::now().max(not_before) + delay;
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            // A closed channel means the writer failed; its error ends the relay.
            if tx.send((due, chunk)).await.is_err() || n == 0 {
                return Ok::<_, io::Error>(());
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            sleep_until(due).await;
            match chunk {
                Some(bytes) => to.write_all(&bytes).await?,
                None => {
                    to.shutdown().await?;
                    break;
                }
            }
        }
        Ok::<_, io::Error>(())
    };
    tokio::try_join!(reader, writer)?;
    Ok(())
}
