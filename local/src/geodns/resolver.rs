//! Asking the GeoDNS as a client in a given location would: hickory-resolver,
//! pointed at one server, sending from a chosen source address (the GeoDNS
//! answers by it), with no cache and no hosts file, so every lookup shows what
//! the GeoDNS answers right now. Used to tell when it is up, by its tests and by
//! `loadtest`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

/// A resolver that asks only `server`, from `source`; each lookup waits up to
/// `timeout` per attempt.
pub fn resolver(
    server: SocketAddr,
    source: IpAddr,
    timeout: Duration,
    attempts: usize,
) -> Result<TokioResolver, String> {
    let mut connection = ConnectionConfig::udp();
    connection.port = server.port();
    connection.bind_addr = Some(SocketAddr::new(source, 0));
    let name_server = NameServerConfig::new(server.ip(), true, vec![connection]);
    let config = ResolverConfig::from_parts(None, vec![], vec![name_server]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    options.cache_size = 0;
    options.ip_strategy = LookupIpStrategy::Ipv4Only;
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = timeout;
    options.attempts = attempts;
    builder
        .build()
        .map_err(|e| format!("building a resolver for {server} from {source}: {e}"))
}
