//! The per-tenant CalDAV bridge: the node's SSRF-safe client (`outbound`), the
//! tenant's opened account credentials and a semaphore bounding the tenant's
//! requests to its servers at once. A bridge is made on a tenant's first
//! calendar request or sync (lazily: most tenants of a node never need one),
//! kept in a moka cache, and evicted after `calendar.bridge_idle_ms` without use
//! (its credentials dropped with it) or when the cache is full. Its exchanges
//! are bounded by `calendar.connect_timeout_ms` / `calendar.request_timeout_ms`,
//! not the outbound client's webhook bounds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use tokio::sync::Semaphore;

use super::CalendarSettings;
use super::store::Credentials;
use crate::ids::{CalendarAccountId, TenantId};
use crate::outbound::{self, Client, HttpUrl, OutboundError, Request, Response};
use crate::secret::Secret;

/// What talking to a CalDAV server can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the server refused the credentials (HTTP {0})")]
    Unauthorized(u16),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// No answer within `calendar.connect_timeout_ms` or
    /// `calendar.request_timeout_ms` (the bound named), or the sync ran out of
    /// `calendar.sync_budget_ms`.
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("{0}")]
    Outbound(OutboundError),
    #[error("{0}")]
    Invalid(String),
}

impl From<OutboundError> for RemoteError {
    fn from(err: OutboundError) -> Self {
        match err {
            OutboundError::Timeout(ms) => Self::Timeout(format!("no answer within {ms} ms")),
            other => Self::Outbound(other),
        }
    }
}

/// One account's server: where, and the `Authorization` value.
pub struct Remote {
    origin: HttpUrl,
    authorization: Secret,
}

impl Remote {
    pub fn new(credentials: &Credentials) -> Result<Self, String> {
        let origin = outbound::url::parse(&credentials.base_url)?;
        let authorization = match credentials.auth_kind.as_str() {
            "token" => format!("Bearer {}", credentials.secret.expose()),
            _ => {
                let pair = format!("{}:{}", credentials.username, credentials.secret.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
        };
        Ok(Self {
            origin,
            authorization: Secret::new(authorization),
        })
    }

    /// The account's base path (checked by an active health check).
    pub fn base_path(&self) -> &str {
        &self.origin.path
    }

    fn url(&self, path: &str) -> HttpUrl {
        HttpUrl {
            path: path.to_owned(),
            ..self.origin.clone()
        }
    }
}

/// A tenant's bridge (see the module doc).
pub struct Bridge {
    pub tenant: TenantId,
    client: Client,
    remotes: Mutex<HashMap<CalendarAccountId, Arc<Remote>>>,
    permits: Semaphore,
    limits: Limits,
}

/// What bounds every exchange of a bridge (from `calendar.*`).
#[derive(Clone, Copy)]
struct Limits {
    max_response_bytes: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// A request through the bridge.
pub struct Call<'a> {
    pub method: &'static str,
    pub path: &'a str,
    pub depth: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: &'a [u8],
}

impl Bridge {
    pub fn remote(&self, account: CalendarAccountId) -> Option<Arc<Remote>> {
        self.remotes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&account)
            .cloned()
    }

    pub fn insert(&self, account: CalendarAccountId, remote: Remote) -> Arc<Remote> {
        let remote = Arc::new(remote);
        self.remotes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account, remote.clone());
        remote
    }

    pub fn forget(&self, account: CalendarAccountId) {
        self.remotes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&account);
    }

    /// Sends `call` to `remote` under the tenant's concurrency bound. A 401 or
    /// 403 on the account's own request is `Unauthorized`; other statuses are
    /// the caller's to judge.
    pub async fn send(&self, remote: &Remote, call: Call<'_>) -> Result<Response, RemoteError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RemoteError::Invalid("the bridge is closed".into()))?;
        let mut headers = call.headers;
        headers.push(("Authorization", remote.authorization.expose().to_owned()));
        if let Some(depth) = call.depth {
            headers.push(("Depth", depth.to_owned()));
        }
        let url = remote.url(call.path);
        let response = self
            .client
            .request(Request {
                method: call.method,
                url: &url,
                headers: &headers,
                content_type: call.content_type,
                body: call.body,
                max_response_bytes: self.limits.max_response_bytes,
                connect_timeout: self.limits.connect_timeout,
                total_timeout: self.limits.request_timeout,
            })
            .await?;
        if response.status == 401 {
            return Err(RemoteError::Unauthorized(response.status));
        }
        Ok(response)
    }
}

/// The node's bridges, one per tenant that uses calendars lately.
#[derive(Clone)]
pub struct BridgePool {
    cache: moka::sync::Cache<TenantId, Arc<Bridge>>,
    client: Client,
    per_tenant: usize,
    limits: Limits,
}

impl BridgePool {
    pub fn new(client: Client, settings: &CalendarSettings) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(settings.max_bridges)
            .time_to_idle(settings.bridge_idle)
            .build();
        Self {
            cache,
            client,
            per_tenant: settings.per_tenant_concurrency,
            limits: Limits {
                max_response_bytes: settings.max_response_bytes,
                connect_timeout: settings.connect_timeout,
                request_timeout: settings.request_timeout,
            },
        }
    }

    /// The tenant's bridge, made now if it has none.
    pub fn get(&self, tenant: TenantId) -> Arc<Bridge> {
        self.cache.get_with(tenant, || {
            Arc::new(Bridge {
                tenant,
                client: self.client.clone(),
                remotes: Mutex::new(HashMap::new()),
                permits: Semaphore::new(self.per_tenant),
                limits: self.limits,
            })
        })
    }

    /// The tenant's bridge if it has one (the health check uses cached
    /// credentials where it can).
    pub fn existing(&self, tenant: TenantId) -> Option<Arc<Bridge>> {
        self.cache.get(&tenant)
    }

    /// Bridges held now (after pending evictions ran).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every bridge idle for longer than `idle` now (the cache does it
    /// on its own as it is used; this is for tests and benchmarks).
    pub fn evict_idle(&self) {
        self.cache.run_pending_tasks();
    }

    pub fn idle_after(&self) -> Option<Duration> {
        self.cache.policy().time_to_idle()
    }
}
