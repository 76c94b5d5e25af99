//! The database: connection pool, error classification by SQLSTATE, tenant-scoped
//! and platform transactions (`tx`), and the migration runner (`migrate`).
//!
//! Handlers never see the pool: `Database` is held privately by `AppState`, and
//! the only ways in are `TenantTx` (tenant predicate + RLS setting built in) and
//! `PlatformTx` (handed out only to a verified platform admin or the node itself).

pub mod dialect;
pub mod migrate;
mod pools;
pub mod prune;
pub mod shards;
pub mod timestamp;
pub mod tls;
pub mod tx;

use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::config::DatabaseSettings;
pub use dialect::Dialect;
pub use tx::{PlatformTx, TenantTx, TokenCheck, Tx, TxMode, USER_REFUSED};

#[derive(Clone)]
pub struct Database {
    /// A pool per thread (`pools`): a connection's I/O stays on its user's thread.
    pools: Arc<pools::ThreadPools>,
    /// Shared with `/metrics` (a clone shares the buckets).
    pool_wait: prometheus_client::metrics::histogram::Histogram,
    max_retries: u32,
    dialect: Dialect,
    /// For the hint when the server refuses a plain connection.
    tls_mode: tls::TlsMode,
    /// Storage-usage shards held by this node's write transactions.
    usage_shards: Arc<shards::ShardLeases>,
    /// The node's region, for the platform audit trail (`in_region`).
    region: Option<crate::ids::RegionId>,
}

/// Database failures, classified by SQLSTATE (never by message text).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A serialization failure (40001) or deadlock (40P01) outlived every retry.
    #[error("transaction retries exhausted")]
    RetryExhausted,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// SQLSTATE 40003 (statement completion unknown): CockroachDB lost track of
    /// whether the COMMIT applied (e.g. a node failed mid-commit). Never retried
    /// here: the transaction may have committed, and running it again could apply
    /// it twice. Answered as 503 so the client decides (and can read first).
    #[error("transaction outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// SQLSTATE 57014: the statement ran past the `statement_timeout` its request
    /// class set (`limits::cost`); the transaction rolled back.
    #[error("statement cancelled by its timeout")]
    StatementTimeout,
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    /// The token's user is not active with the token's role: found by a write
    /// that checks the user itself (`TokenCheck::UserGuardedByWrite`), in place
    /// of the prologue's check. Answered as the prologue's refusal is (401).
    #[error("the token's user is disabled, deleted or has another role now")]
    UserRefused,
    #[error(transparent)]
    Other(anyhow::Error),
}

impl DbError {
    pub(crate) fn is_retryable(err: &tokio_postgres::Error) -> bool {
        let retryable = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
        ];
        err.code().is_some_and(|c| retryable.contains(c))
    }

    /// Whether a statement's error is the database's answer to that statement, so
    /// its transaction is aborted and nothing of it can commit; not a lost
    /// connection, a refusal to serve (SQLSTATE classes 08, 53, 57 other than the
    /// statement timeout) or an unknown COMMIT outcome, after which the
    /// transaction's fate is not known here.
    pub fn answered_by_database(&self) -> bool {
        match self {
            DbError::RetryExhausted
            | DbError::StatementTimeout
            | DbError::UniqueViolation { .. }
            | DbError::UserRefused => true,
            DbError::Other(cause) => cause
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(|e| e.code().is_some()),
            DbError::Unavailable(_) | DbError::OutcomeUnknown(_) => false,
        }
    }
}

/// An error with its causes: tokio-postgres's own message is only the kind
/// ("error performing TLS handshake", "db error"); the why is in its sources.
pub(crate) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

impl From<tokio_postgres::Error> for DbError {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(code) = err.code() else {
            // No SQLSTATE: the connection failed or closed.
            return DbError::Unavailable(with_causes(&err));
        };
        if DbError::is_retryable(&err) {
            return DbError::RetryExhausted;
        }
        if *code == SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN {
            return DbError::OutcomeUnknown(err.to_string());
        }
        if *code == SqlState::QUERY_CANCELED {
            return DbError::StatementTimeout;
        }
        if *code == SqlState::UNIQUE_VIOLATION {
            let constraint = err
                .as_db_error()
                .and_then(|e| e.constraint())
                .unwrap_or("unknown")
                .to_owned();
            return DbError::UniqueViolation { constraint };
        }
        let class = &code.code()[..2];
        // 08 connection exception, 53 insufficient resources, 57 operator intervention.
        if matches!(class, "08" | "53" | "57") {
            return DbError::Unavailable(err.to_string());
        }
        DbError::Other(anyhow::Error::new(err))
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

/// Plain TCP to a host that is not loopback crosses a network unencrypted.
fn warn_if_plain_to_remote(config: &tokio_postgres::Config, mode: tls::TlsMode) {
    use tokio_postgres::config::Host;
    if mode != tls::TlsMode::Disable {
        return;
    }
    let loopback = |host: &Host| match host {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    };
    // With `hostaddr` the connection goes to those addresses, whatever the name.
    let addrs = config.get_hostaddrs();
    let remote = if addrs.is_empty() {
        !config.get_hosts().iter().all(loopback)
    } else {
        !addrs.iter().all(|ip| ip.is_loopback())
    };
    if remote {
        tracing::warn!(
            "database.tls.mode is disable for a database that is not on loopback: the \
             connection is not encrypted (set MERIDIAN_DATABASE__TLS__MODE=verify-full)"
        );
    }
}

impl Database {
    pub fn connect(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let mut config = tokio_postgres::Config::from_str(settings.url.expose()).map_err(|e| {
            DbError::Other(anyhow::anyhow!(
                "database.url is not a valid connection string: {e}"
            ))
        })?;
        let timeout = settings.connect_timeout;
        config
            .connect_timeout(timeout)
            .application_name("meridian")
            .ssl_mode(settings.tls.ssl_mode());
        let connector = Arc::new(
            settings
                .tls
                .connector()
                .map_err(|e| DbError::Other(anyhow::anyhow!(e)))?,
        );
        warn_if_plain_to_remote(&config, settings.tls.mode);
        let make = move |max_size: usize| {
            // Connections are returned only after a clean COMMIT/ROLLBACK; an
            // interrupted transaction detaches its connection (see `tx`).
            let manager_config = ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            };
            let manager = match connector.as_ref() {
                tls::Connector::Plain => {
                    Manager::from_config(config.clone(), NoTls, manager_config)
                }
                tls::Connector::Rustls(rustls) => {
                    Manager::from_config(config.clone(), rustls.clone(), manager_config)
                }
            };
            Pool::builder(manager)
                .max_size(max_size)
                .wait_timeout(Some(timeout))
                .create_timeout(Some(timeout))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| format!("building the pool: {e}"))
        };
        // Checked once here, so a bad setting fails at start, not on first use.
        make(settings.pool_size).map_err(|e| DbError::Other(anyhow::anyhow!(e)))?;
        Ok(Self {
            pools: pools::ThreadPools::new(Arc::new(make), settings.pool_size),
            pool_wait: crate::metrics::latency_histogram(),
            max_retries: settings.max_retries.max(1),
            dialect: settings.dialect,
            tls_mode: settings.tls.mode,
            usage_shards: Arc::new(shards::ShardLeases::new()),
            region: None,
        })
    }

    /// The node's region: the platform trail an event about no tenant joins
    /// (`audit::record_platform`).
    pub fn in_region(mut self, region: crate::ids::RegionId) -> Self {
        self.region = Some(region);
        self
    }

    /// Splits `database.pool_size` over the node's `workers` threads (each gets its
    /// own pool; see `pools`). Call before the database is used.
    pub fn split_across_threads(mut self, workers: usize) -> Self {
        self.pools = self.pools.split(workers);
        self
    }

    /// A connection from this thread's pool.
    async fn connection(&self) -> Result<deadpool_postgres::Object, DbError> {
        let pool = self.pools.current().map_err(DbError::Unavailable)?;
        Ok(pool.get().await?)
    }

    /// Checked once at start: the server is the configured dialect (the statement
    /// set was chosen from it), and the service role does not escape row-level
    /// security (a superuser or BYPASSRLS role on PostgreSQL; an admin on
    /// CockroachDB, which RLS exempts even when forced). Refuses to run otherwise.
    pub async fn check_server(&self) -> anyhow::Result<()> {
        let client = self
            .connection()
            .await
            .map_err(|e| self.explain_refusal(e))?;
        let version: String = client
            .query_one("SELECT version()", &[])
            .await
            .map_err(DbError::from)?
            .get(0);
        let server = Dialect::from_version(&version);
        if server != self.dialect {
            anyhow::bail!(
                "database.dialect is {} but the server is {server} ({version}); set \
                    MERIDIAN_DATABASE__DIALECT={server}",
                self.dialect
            );
        }
        let privileged: bool = client
            .query_one(self.dialect.statements().privileged_role, &[])
            .await
            .map_err(DbError::from)?
            .get(0);
        if privileged {
            anyhow::bail!(
                "database.url connects as a role that bypasses row-level security (superuser, \
                    admin or BYPASSRLS); connect as meridian_app"
            );
        }
        Ok(())
    }

    /// A server that accepts only TLS answers a plain connection with SQLSTATE
    /// 28000 (no pg_hba.conf entry … no encryption): say what to set.
    fn explain_refusal(&self, err: DbError) -> anyhow::Error {
        let refused = match &err {
            DbError::Other(e) => e
                .downcast_ref::<tokio_postgres::Error>()
                .filter(|e| e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)),
            _ => None,
        };
        if let Some(refused) = refused
            && self.tls_mode == tls::TlsMode::Disable
        {
            let why = with_causes(refused);
            return anyhow::anyhow!(
                "the database refused a connection without TLS ({why}); the server may require \
                 TLS: set database.tls.mode (MERIDIAN_DATABASE__TLS__MODE) to verify-full, with \
                 database.tls.ca_file"
            );
        }
        anyhow::Error::new(err)
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.connection().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Summed over the threads' pools.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pools.status()
    }

    pub fn pool_wait_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.pool_wait.clone()
    }

    pub fn close(&self) {
        self.pools.close();
    }
}
