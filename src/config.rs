//! Node settings: embedded defaults → the region file → `MERIDIAN_*` environment
//! variables (nested keys split on `__`, e.g. `MERIDIAN_DATABASE__URL`), validated
//! at start. Settings are a value passed to `Application::build`, never a global.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::{Deserialize, Serialize};

use crate::secret::{Secret, SecretUrl};
use crate::topology::Topology;

/// Durations in settings are written in milliseconds, under keys ending in `_ms`
/// (`http.body_timeout_ms = 10000`, `MERIDIAN_HTTP__BODY_TIMEOUT_MS`); in code they
/// are `Duration`s.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let ms = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
        serializer.serialize_u64(ms)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// The admin listener when neither `admin.bind` nor the region file's
/// `local.admin_address` says otherwise: the public listener's IP, port 9090.
pub fn default_admin_address(public: SocketAddr) -> SocketAddr {
    SocketAddr::new(public.ip(), 9090)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    /// The region this node serves (a file `regions/<region>.toml` must exist).
    pub region: String,
    pub regions_dir: PathBuf,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub directory: DirectorySettings,
    pub limits: LimitSettings,
    pub routing: RoutingSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    /// The node's worker pool (`jobs::JobSettings`).
    #[serde(default)]
    pub jobs: crate::jobs::JobSettings,
    /// The SSRF-safe client of webhooks and the AI engine (`crate::outbound`).
    #[serde(default)]
    pub outbound: crate::outbound::OutboundSettings,
    #[serde(default)]
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Calendar sync (`crate::calendar`).
    #[serde(default)]
    pub calendar: crate::calendar::CalendarSettings,
    /// Channel summaries and their engines (`crate::summaries`).
    #[serde(default)]
    pub summaries: crate::summaries::SummarySettings,
    /// Envelope encryption: KEK provider and DEK cache (`crypto::settings`).
    #[serde(default)]
    pub encryption: crate::crypto::settings::EncryptionSettings,
    /// GDPR exports: the region's export store, expiry, batch size (`crate::compliance`).
    #[serde(default)]
    pub exports: crate::compliance::ExportSettings,
    /// Tenant erasure: the grace period before it starts (`compliance::tenant_erasure`).
    #[serde(default)]
    pub erasure: crate::compliance::tenant_erasure::TenantErasureSettings,
    /// Retention enforcement: how often, batch sizes
    /// (`crate::compliance::retention_job`).
    #[serde(default)]
    pub retention: crate::compliance::retention_job::RetentionSettings,
    /// The key that signs audit checkpoints, receipts and reports
    /// (`crypto::signing`).
    #[serde(default)]
    pub signing: crate::crypto::signing::SigningSettings,
    /// Residency evidence: how often served-region counts are written
    /// (`tenancy::served`).
    #[serde(default)]
    pub residency: crate::tenancy::served::ResidencySettings,
    /// Members' accesses, written in batches (`crate::access_log`).
    #[serde(default)]
    pub access_log: crate::access_log::AccessLogSettings,
    /// How often and in what batches tenant audit events are chained
    /// (`audit::seal`).
    #[serde(default)]
    pub audit: crate::audit::seal::AuditSettings,
    /// Usage per hour, sampled per region (`crate::limits::history`).
    #[serde(default)]
    pub usage_history: crate::limits::history::UsageHistorySettings,
    /// The API's DNS name (`api.meridian.test` locally). `{slug}.<api_domain>`
    /// names a tenant: a request to it is served only for that tenant's tokens
    /// (`routing::host`).
    #[serde(default = "default_api_domain")]
    pub api_domain: String,
    /// The platform's OIDC provider, where platform admins and operators sign
    /// in (`crate::platform`); none: platform tokens come only from the issuer.
    #[serde(default)]
    pub platform_identity: Option<crate::platform::PlatformIdentity>,
}

fn default_api_domain() -> String {
    "api.meridian.test".into()
}

/// The admin listener, which serves `/metrics` and nothing public.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminSettings {
    /// Defaults to the region file's `local.admin_address` when `http.bind` also
    /// comes from the region file, else to the public listener's IP with port
    /// 9090. Keep it off the load balancer: metrics name tenants.
    pub bind: Option<SocketAddr>,
    /// How many of the busiest tenants get their own `tenant` label.
    pub top_tenants: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoutingSettings {
    /// Shared by all nodes: signs and verifies hop markers (at least 16 characters).
    pub hop_secret: Secret,
    /// Base URL per region for node-to-node forwarding; defaults to
    /// `http://<local.address>` from the region files (`https://` when this
    /// node's listener has TLS, `http.tls`).
    pub peers: std::collections::BTreeMap<String, String>,
    /// Redirect clients to the peers' URLs instead of the regions' public endpoints
    /// (local runs, where the public endpoints do not exist).
    pub redirect_to_peers: bool,
    #[serde(rename = "forward_timeout_ms", with = "millis")]
    pub forward_timeout: Duration,
    /// Local IP forwarded hops leave from (`MERIDIAN_ROUTING__SOURCE_ADDRESS`); with
    /// `meridian dev --wan`, the node's own loopback IP, so the peer's delay proxy
    /// knows which region the hop comes from. Unset: the OS picks.
    pub source_address: Option<std::net::IpAddr>,
    /// How often peers' `/readyz` and the drained flags are checked.
    #[serde(rename = "probe_interval_ms", with = "millis")]
    pub probe_interval: Duration,
    #[serde(rename = "probe_timeout_ms", with = "millis")]
    pub probe_timeout: Duration,
    /// Probes missed in a row before a peer region counts as unreachable (its
    /// tenants then fail over); one answer makes it reachable again.
    pub unreachable_after: u32,
    /// PEM CA bundle trusted, besides Mozilla's roots, for https peers (a private
    /// CA of the nodes' listener certificates; `server_tls`).
    #[serde(default)]
    pub hop_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HttpSettings {
    /// Defaults to the region file's `local.address`.
    pub bind: Option<SocketAddr>,
    pub workers: usize,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// On SIGTERM, how long `/readyz` fails before the listener closes, so load
    /// balancers and GeoDNS stop sending traffic first.
    #[serde(rename = "shutdown_grace_ms", with = "millis")]
    pub shutdown_grace: Duration,
    /// Time a client has to send a request's head (line and headers).
    #[serde(rename = "header_timeout_ms", with = "millis")]
    pub header_timeout: Duration,
    /// Time a client has to send a whole request body once its head has arrived:
    /// a slow body cannot hold a connection (or anything else) for longer.
    #[serde(rename = "body_timeout_ms", with = "millis")]
    pub body_timeout: Duration,
    /// TLS on the public listener (`server_tls`); off unless both files are set.
    #[serde(default)]
    pub tls: crate::server_tls::ServerTlsSettings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// Connection URL for the service role (`meridian_app`), which owns no table;
    /// its password never prints (`SecretUrl`).
    pub url: SecretUrl,
    pub pool_size: usize,
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// Attempts for a transaction that fails with SQLSTATE 40001.
    pub max_retries: u32,
    /// `postgres` or `cockroach` (`MERIDIAN_DATABASE__DIALECT`): picks the statements
    /// that differ (`db::dialect`). Default postgres, the embedded database.
    #[serde(default)]
    pub dialect: crate::db::Dialect,
    /// TLS to the database (`db::tls`); default `disable`, for the loopback
    /// embedded PostgreSQL of dev and tests. Production sets `verify-full`.
    #[serde(default)]
    pub tls: crate::db::tls::DbTlsSettings,
    /// Most posts one transaction of a tenant's post lane writes
    /// (`scope::post_lanes`); 0: no lanes, every post its own transaction.
    #[serde(default = "default_post_batch_max")]
    pub post_batch_max: usize,
    /// Lane writers (transactions at once, so pooled connections) per tenant on
    /// a node.
    #[serde(default = "default_post_writers")]
    pub post_writers_per_tenant: usize,
    /// How long a post waits in its lane for a writer before it goes on its own
    /// path (1 ms..=10 s): what one slow batch can add to its tenant's other posts.
    /// Keep it well above a batch's time on the deployment's database: below it,
    /// ordinary batches send their posts to transactions of their own.
    #[serde(
        rename = "post_lane_wait_ms",
        with = "millis",
        default = "default_post_lane_wait"
    )]
    pub post_lane_wait: Duration,
}

fn default_post_batch_max() -> usize {
    32
}

/// A hundred batches' time (a batch takes about a millisecond on two cores).
fn default_post_lane_wait() -> Duration {
    Duration::from_millis(100)
}

/// One: on two cores, 16 writers of one tenant post 11.4–11.6k/s with one lane
/// writer and 10.8k/s with two (smaller batches cost more per post); README,
/// Benchmarks.
fn default_post_writers() -> usize {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    /// JSON key set (see `auth::keys`); public keys verify, the signing key is optional.
    pub keys_file: PathBuf,
    pub leeway_seconds: u64,
    /// How often a node looks at `keys_file` for a changed key set (rotation
    /// without restart, `auth::reload`).
    #[serde(
        rename = "keys_poll_interval_ms",
        with = "millis",
        default = "default_keys_poll"
    )]
    pub keys_poll_interval: Duration,
    /// How long an access token this node issues lives (a session's; the
    /// refresh token renews it). 60–3600 s.
    #[serde(default = "default_access_ttl")]
    pub access_ttl_seconds: u64,
}

fn default_keys_poll() -> Duration {
    Duration::from_secs(1)
}

fn default_access_ttl() -> u64 {
    crate::sessions::ACCESS_TTL_SECONDS
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirectorySettings {
    /// How often a node polls the directory for changes made by other nodes.
    #[serde(rename = "refresh_interval_ms", with = "millis")]
    pub refresh_interval: Duration,
    pub cache_capacity: u64,
}

/// Node-wide limits; per-tenant limits come from plans and overrides.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LimitSettings {
    /// Requests per second (and burst) per client IP without a valid token.
    pub unauthenticated_per_second: u32,
    pub unauthenticated_burst: u32,
    /// How often denial counts are summarised into the tenants' audit trails.
    #[serde(rename = "denial_summary_interval_ms", with = "millis")]
    pub denial_summary_interval: Duration,
    /// What a request costs by class: weights, the expensive-work budget and
    /// statement timeouts (`limits::cost`).
    #[serde(default)]
    pub cost: crate::limits::cost::CostSettings,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            forward_timeout: Duration::from_secs(30),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
            unreachable_after: 3,
            hop_secret: Secret::default(),
            peers: Default::default(),
            redirect_to_peers: false,
            source_address: None,
            hop_ca_file: None,
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            unauthenticated_per_second: 5,
            unauthenticated_burst: 20,
            denial_summary_interval: Duration::from_secs(60),
            cost: crate::limits::cost::CostSettings::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `meridian=debug,warn`.
    pub filter: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "us-east1".into(),
            regions_dir: "regions".into(),
            http: HttpSettings {
                bind: None,
                workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
                body_limit_bytes: 256 * 1024,
                shutdown_grace: Duration::from_secs(5),
                header_timeout: Duration::from_secs(5),
                body_timeout: Duration::from_secs(10),
                tls: Default::default(),
            },
            database: DatabaseSettings {
                url: SecretUrl::default(),
                pool_size: 16,
                connect_timeout: Duration::from_secs(5),
                max_retries: 8,
                dialect: crate::db::Dialect::Postgres,
                tls: Default::default(),
                post_batch_max: default_post_batch_max(),
                post_writers_per_tenant: default_post_writers(),
                post_lane_wait: default_post_lane_wait(),
            },
            auth: AuthSettings {
                issuer: "meridian-local".into(),
                audience: "meridian-api".into(),
                keys_file: "keys.json".into(),
                leeway_seconds: 30,
                keys_poll_interval: default_keys_poll(),
                access_ttl_seconds: default_access_ttl(),
            },
            directory: DirectorySettings {
                refresh_interval: Duration::from_secs(1),
                cache_capacity: 1_000_000,
            },
            limits: LimitSettings::default(),
            routing: RoutingSettings::default(),
            admin: AdminSettings {
                bind: None,
                top_tenants: 20,
            },
            log: LogSettings {
                format: LogFormat::Json,
                filter: "info".into(),
            },
            api_domain: default_api_domain(),
            platform_identity: None,
            jobs: crate::jobs::JobSettings::default(),
            exports: crate::compliance::ExportSettings::default(),
            erasure: Default::default(),
            retention: Default::default(),
            outbound: Default::default(),
            webhooks: Default::default(),
            calendar: Default::default(),
            summaries: Default::default(),
            encryption: Default::default(),
            signing: Default::default(),
            residency: Default::default(),
            access_log: Default::default(),
            audit: Default::default(),
            usage_history: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
}

impl AuthSettings {
    /// The issuer and audience `meridian dev` and `meridian token` use.
    pub fn default_local() -> Self {
        Settings::default().auth
    }
}

impl Settings {
    /// Defaults, then `base` overrides from the caller (the CLI), then `MERIDIAN_*`.
    pub fn load(base: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(base)
            .merge(
                Env::prefixed("MERIDIAN_")
                    .split("__")
                    .ignore(&["state_dir"]),
            )
            .extract()
            .map_err(Box::new)?;
        Ok(settings)
    }

    /// Checks the settings against the topology and fills the bind address from the
    /// region file. Everything a node needs is checked here, before it listens.
    pub fn validate(mut self) -> Result<(Self, Topology), ConfigError> {
        let topology = Topology::load(&self.regions_dir)?;
        let region = topology.find(&self.region).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "region `{}` has no file in {}",
                self.region,
                self.regions_dir.display()
            ))
        })?;
        // The region file's admin address belongs with its `local.address`; a
        // node told to listen elsewhere gets the default next to that.
        let admin_default = match self.http.bind {
            None => region.local_admin_address,
            Some(public) => default_admin_address(public),
        };
        let public = *self.http.bind.get_or_insert(region.local_address);
        let admin = *self.admin.bind.get_or_insert(admin_default);
        if admin == public && admin.port() != 0 {
            return Err(ConfigError::Invalid(format!(
                "admin.bind must differ from http.bind (both are {admin})"
            )));
        }
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.database.url.is_empty() {
            return invalid("database.url (MERIDIAN_DATABASE__URL) is required");
        }
        if let Err(e) = self.database.tls.connector() {
            return invalid(&e);
        }
        if let Err(e) = self.http.tls.server_config() {
            return invalid(&e);
        }
        if let Err(e) = crate::server_tls::hop_client_config(self.routing.hop_ca_file.as_deref()) {
            return invalid(&e);
        }
        if self.database.pool_size == 0 || self.http.workers == 0 {
            return invalid("database.pool_size and http.workers must be at least 1");
        }
        if self.database.post_batch_max > 1000
            || self.database.post_writers_per_tenant == 0
            || self.database.post_writers_per_tenant > self.database.pool_size
            || !(Duration::from_millis(1)..=Duration::from_secs(10))
                .contains(&self.database.post_lane_wait)
        {
            return invalid(
                "database.post_batch_max must be 0..=1000, database.post_writers_per_tenant \
                 1..=database.pool_size and database.post_lane_wait_ms 1..=10000",
            );
        }
        let ms = Duration::from_millis;
        if !(ms(100)..=ms(120_000)).contains(&self.http.header_timeout)
            || !(ms(100)..=ms(300_000)).contains(&self.http.body_timeout)
        {
            return invalid(
                "http.header_timeout_ms must be 100..=120000 and http.body_timeout_ms 100..=300000",
            );
        }
        if self.http.body_limit_bytes < 1024 {
            return invalid("http.body_limit_bytes must be at least 1024");
        }
        if self.auth.issuer.is_empty() || self.auth.audience.is_empty() {
            return invalid("auth.issuer and auth.audience must not be empty");
        }
        if !(60..=3600).contains(&self.auth.access_ttl_seconds) {
            return invalid("auth.access_ttl_seconds must be 60..=3600");
        }
        if crate::routing::host::normalise(&self.api_domain).as_deref()
            != Some(self.api_domain.as_str())
            || !self.api_domain.contains('.')
        {
            return invalid(
                "api_domain must be a lower-case DNS name with a dot, without port or trailing dot",
            );
        }
        if let Some(Err(e)) = self.platform_identity.as_ref().map(|p| p.validate()) {
            return invalid(&e);
        }
        if !(ms(50)..=ms(60_000)).contains(&self.auth.keys_poll_interval) {
            return invalid("auth.keys_poll_interval_ms must be 50..=60000");
        }
        if self.limits.unauthenticated_per_second == 0 || self.limits.unauthenticated_burst == 0 {
            return invalid(
                "limits.unauthenticated_per_second and limits.unauthenticated_burst must be \
                 positive",
            );
        }
        if let Err(e) = self.limits.cost.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.encryption.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.signing.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.residency.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.access_log.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.audit.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.usage_history.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.jobs.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.erasure.validate() {
            return invalid(&e);
        }
        if let Err(e) = self.calendar.validate() {
            return invalid(&e);
        }
        if self.summaries.openai.enabled()
            && let Err(e) = self.summaries.openai.endpoint()
        {
            return invalid(&e);
        }
        if self.limits.denial_summary_interval.is_zero() {
            return invalid("limits.denial_summary_interval_ms must be positive");
        }
        if self.routing.hop_secret.expose().chars().count() < 16 {
            return invalid(
                "routing.hop_secret (MERIDIAN_ROUTING__HOP_SECRET) must be at least 16 characters",
            );
        }
        if let Some(unknown) = self
            .routing
            .peers
            .keys()
            .find(|r| topology.find(r).is_none())
        {
            return Err(ConfigError::Invalid(format!(
                "routing.peers: unknown region `{unknown}`"
            )));
        }
        if let Some(ip) = self.routing.source_address
            && let Err(err) = std::net::TcpListener::bind((ip, 0))
        {
            return Err(ConfigError::Invalid(format!(
                "routing.source_address (MERIDIAN_ROUTING__SOURCE_ADDRESS): {ip} is not usable \
                 on this host: {err}"
            )));
        }
        if self.routing.unreachable_after == 0 {
            return invalid("routing.unreachable_after must be at least 1");
        }
        if self.routing.probe_interval.is_zero() || self.routing.probe_timeout.is_zero() {
            return invalid(
                "routing.probe_interval_ms and routing.probe_timeout_ms must be positive",
            );
        }
        if self.admin.top_tenants > 1_000 {
            return invalid("admin.top_tenants must be at most 1000 (it bounds label cardinality)");
        }
        if self.directory.refresh_interval.is_zero() {
            return invalid("directory.refresh_interval_ms must be positive");
        }
        let own = topology.find(&self.region).map(|r| r.jurisdiction);
        if let Some(Err(e)) = own.map(|own| self.encryption.validate_for(&topology, own)) {
            return invalid(&e);
        }
        Ok((self, topology))
    }

    pub fn keys_file(&self) -> &Path {
        &self.auth.keys_file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regions directory with one region file for `us-east1`.
    /// A scratch directory, removed when the test ends (passed or panicked), so
    /// test runs leave nothing behind in the temp dir.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    fn regions_dir(name: &str, local: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("meridian-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("us-east1.toml"),
            format!(
                "id = \"us-east1\"\njurisdiction = \"us\"\npublic_endpoint \
                    = \"https://x\"\n[local]\n{local}\n"
            ),
        )
        .unwrap();
        Scratch(dir)
    }

    /// Settings of a us-east1 node whose region files are in `regions_dir`, with
    /// what validation requires and nothing else.
    fn settings_in(regions_dir: PathBuf) -> Settings {
        Settings {
            region: "us-east1".into(),
            regions_dir,
            database: DatabaseSettings {
                url: "postgres://unused".into(),
                ..Settings::default().database
            },
            routing: RoutingSettings {
                hop_secret: "a hop secret of enough length".into(),
                ..Settings::default().routing
            },
            ..Settings::default()
        }
    }

    fn admin_bind(regions_dir: PathBuf) -> SocketAddr {
        let (settings, _) = settings_in(regions_dir).validate().unwrap();
        settings.admin.bind.unwrap()
    }

    /// `Debug` of the settings (what a start-up log or an error shows) names
    /// neither the database password nor the hop secret; the keys stay `_ms`
    /// milliseconds on the way in and out.
    #[test]
    fn settings_print_no_secret_and_read_milliseconds() {
        let mut settings = Settings::default();
        settings.database.url = "postgres://meridian_app:pa55word@db.internal/meridian".into();
        settings.routing.hop_secret = "the-shared-hop-secret".into();
        let printed = format!("{settings:?} {settings:#?}");
        assert!(!printed.contains("pa55word"), "{printed}");
        assert!(!printed.contains("the-shared-hop-secret"), "{printed}");
        assert!(printed.contains("db.internal"), "{printed}");
        let figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(("http.body_timeout_ms", 1_500))
            .merge(("routing.probe_interval_ms", 250));
        let loaded: Settings = figment.extract().unwrap();
        assert_eq!(loaded.http.body_timeout, Duration::from_millis(1_500));
        assert_eq!(loaded.routing.probe_interval, Duration::from_millis(250));
        assert_eq!(loaded.http.header_timeout, Duration::from_secs(5));
        let json = serde_json::to_value(&loaded).unwrap();
        assert_eq!(json["http"]["body_timeout_ms"], 1_500);
    }

    /// `audit.checkpoint_interval_ms` is read in milliseconds, defaults to an
    /// hour, and a value outside 1 minute..=1 day stops the start with the key
    /// named.
    #[test]
    fn the_checkpoint_interval_is_read_and_bounded_at_start() {
        let dir = regions_dir("checkpoint", "address = \"127.0.0.12:8080\"");
        let base = || settings_in(dir.to_path_buf());
        assert_eq!(
            base().audit.checkpoint_interval,
            Duration::from_secs(3600),
            "the default"
        );
        let loaded: Settings = Figment::from(Serialized::defaults(base()))
            .merge(("audit.checkpoint_interval_ms", 600_000))
            .extract()
            .unwrap();
        assert_eq!(loaded.audit.checkpoint_interval, Duration::from_secs(600));
        assert!(loaded.validate().is_ok());
        for bad in [59_999u64, 86_400_001] {
            let mut settings = base();
            settings.audit.checkpoint_interval = Duration::from_millis(bad);
            match settings.validate() {
                Err(ConfigError::Invalid(why)) => assert!(
                    why.contains("audit.checkpoint_interval_ms must be 60000..=86400000"),
                    "{bad}: {why}"
                ),
                other => panic!("{bad} ms accepted: {:?}", other.map(|_| ())),
            }
        }
        for edge in [60_000u64, 86_400_000] {
            let mut settings = base();
            settings.audit.checkpoint_interval = Duration::from_millis(edge);
            assert!(settings.validate().is_ok(), "{edge} ms refused");
        }
    }

    /// The post lanes' settings: defaults (32 posts, one writer, 100 ms), read
    /// from their keys, and bounded at start (writers 1..=pool_size, batch ≤
    /// 1000, 0 turning the lanes off; a wait of 1 ms..=10 s).
    #[test]
    fn the_post_lane_settings_are_read_and_bounded_at_start() {
        let dir = regions_dir("lanes", "address = \"127.0.0.12:8080\"");
        let base = || settings_in(dir.to_path_buf());
        assert_eq!(
            (
                base().database.post_batch_max,
                base().database.post_writers_per_tenant,
                base().database.post_lane_wait
            ),
            (32, 1, Duration::from_millis(100))
        );
        let loaded: Settings = Figment::from(Serialized::defaults(base()))
            .merge(("database.post_batch_max", 0))
            .merge(("database.post_writers_per_tenant", 4))
            .merge(("database.post_lane_wait_ms", 250))
            .extract()
            .unwrap();
        assert_eq!(loaded.database.post_batch_max, 0);
        assert_eq!(loaded.database.post_writers_per_tenant, 4);
        assert_eq!(loaded.database.post_lane_wait, Duration::from_millis(250));
        assert!(loaded.validate().is_ok());
        for (batch, writers, pool, wait_ms) in [
            (1001, 1, 16, 100),
            (32, 0, 16, 100),
            (32, 17, 16, 100),
            (32, 1, 16, 0),
            (32, 1, 16, 10_001),
        ] {
            let mut settings = base();
            settings.database.post_batch_max = batch;
            settings.database.post_writers_per_tenant = writers;
            settings.database.pool_size = pool;
            settings.database.post_lane_wait = Duration::from_millis(wait_ms);
            match settings.validate() {
                Err(ConfigError::Invalid(why)) => assert!(
                    why.contains("database.post_batch_max must be 0..=1000"),
                    "{batch}/{writers}/{pool}/{wait_ms}: {why}"
                ),
                other => panic!(
                    "{batch}/{writers}/{pool}/{wait_ms} accepted: {:?}",
                    other.map(|_| ())
                ),
            }
        }
    }

    #[test]
    fn region_files_with_different_admin_addresses_give_different_admin_binds() {
        // The shipped layout: no admin address, so the node's IP with port 9090.
        let first = regions_dir("first", "address = \"127.0.0.11:8080\"");
        // A second cluster on the same IP: other ports for both listeners.
        let second = regions_dir(
            "second",
            "address = \"127.0.0.11:8180\"\nadmin_address = \"127.0.0.11:9190\"",
        );
        assert_eq!(
            admin_bind(first.to_path_buf()),
            "127.0.0.11:9090".parse().unwrap()
        );
        assert_eq!(
            admin_bind(second.to_path_buf()),
            "127.0.0.11:9190".parse().unwrap()
        );
    }
}
