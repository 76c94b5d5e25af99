//! The tenant keyring: each tenant's data keys (DEKs, `tenant_keys`, V18),
//! wrapped by its jurisdiction's KEK through a `KeyProvider`, and the node's
//! bounded cache of unwrapped DEKs. Fields are sealed with
//! [`Keyring::seal`] and opened with [`Keyring::open`], both inside the caller's
//! tenant transaction.
//!
//! **Versions.** A tenant has at most one `active` version (partial unique
//! index); `seal` always uses it, creating version 1 lazily on the tenant's first
//! seal (two racing first seals: the loser's insert conflicts, SQLSTATE 40001
//! under SERIALIZABLE, and its retried transaction finds the winner's row).
//! `open` reads the version from the ciphertext header and accepts `active` and
//! `retired` versions; `destroyed` ones answer [`KeyringError::Destroyed`].
//!
//! **`seal` never trusts a cached active version.** It reads the active row in the
//! caller's (SERIALIZABLE) transaction every time, so a rotation, which retires
//! that row in its own transaction, and a concurrent seal are ordered by the
//! database: either the seal commits first, and the re-encryption job that the
//! rotation enqueued (and whose final check runs in a transaction after the
//! rotation committed) sees its row, or the seal reads the new version. Apart from
//! the exception below, only the unwrapped *key* of a version is cached, keyed (tenant, version): a version's
//! key never changes (a rewrap changes only how it is wrapped).
//!
//! **One exception: the post's assumed version.** A sealed post is the hottest
//! encrypted write, and the read of the active row was one more round trip on
//! each. [`Keyring::seal_assuming`] seals with a version this node saw active
//! (`active_versions`, committed rows only, same TTL as the keys) without
//! reading it, and returns that version; the caller's INSERT then checks, in the
//! statement that writes, that the version is still `active` (one primary-key
//! read of `tenant_keys`) and refuses the row otherwise
//! (`store::messages`, `crypto::messages::KeyVersionStale`), and the caller redoes
//! it with [`Keyring::seal`], which reads the row. So the check still runs in
//! the writing transaction, and SERIALIZABLE orders the post and a rotation
//! exactly as above.
//!
//! **Only committed keys are cached.** A key read from a row that the caller's own
//! transaction created (`created_at = now()`: the row's default is the creating
//! transaction's timestamp) is not cached, because that transaction may still
//! roll back and a retry create a different key under the same version.
//!
//! **Errors.** Destroyed keys answer 410 `tenant_keys_destroyed`; a provider
//! that cannot be reached or throttles (`KeyError::Unavailable`, after the
//! SDK's retries) answers 503 `key_provider_unavailable` with `Retry-After`;
//! refusals (key disabled, access denied) and unreadable ciphertext are opaque
//! 500s. The cause is logged either way, never key bytes.
//!
//! **Cache and wiping.** Unwrapped DEKs live in a moka cache as `Arc<Dek>`; the
//! key bytes are `Zeroizing` inside `Dek`, so they are wiped when the last `Arc`
//! drops (evicted from the cache and no seal/open still holding it). The AES
//! key schedule ring expands from them is kept in the `Dek` too (expanded once,
//! not for every field) and is not wiped: ring does not zeroize its schedules. `Dek` has no
//! `Debug`, `Serialize` or `Clone`, and no error here carries key bytes.
//! `destroy_tenant_keys` evicts the tenant at once on this node; another node
//! keeps a cached key at most `encryption.dek_cache_ttl_ms` (default 5 min).

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use zeroize::Zeroizing;

use super::envelope::{self, Binding, Dek, EnvelopeError};
use super::kms::AwsKmsProvider;
use super::provider::{KeyError, KeyProvider, LocalFileProvider, WrappedDek};
use super::settings::{EncryptionSettings, ProviderKind};
use crate::db::{DbError, TenantTx};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The tenant's keys were destroyed (crypto-shredding): its encrypted data
    /// can never be read again, and nothing new is sealed for it.
    #[error("the tenant's encryption keys were destroyed")]
    Destroyed,
    /// The ciphertext names a version the tenant never had.
    #[error("no data key version {0} for this tenant")]
    UnknownVersion(u32),
    /// Not a ciphertext, or one that does not open with its key and binding
    /// (copied from another row, column or tenant, or altered).
    #[error("stored ciphertext of {table}.{column} row {row} does not open: {source}")]
    Unreadable {
        table: String,
        column: String,
        row: String,
        source: EnvelopeError,
    },
    /// A binding for another tenant than the transaction's.
    #[error("a binding for another tenant than the transaction's")]
    WrongTenant,
    #[error("no jurisdiction for home region `{0}`")]
    UnknownRegion(String),
    #[error(transparent)]
    Provider(#[from] KeyError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<KeyringError> for ApiError {
    fn from(err: KeyringError) -> Self {
        match err {
            KeyringError::Destroyed => ApiError::TenantKeysDestroyed,
            KeyringError::Db(err) => err.into(),
            // KMS unreachable or throttling (after the SDK's own retries): 503
            // with Retry-After, not a 500, since it may pass; cause logged.
            KeyringError::Provider(err) if err.is_retryable() => {
                tracing::warn!(error = %err, "key provider unavailable");
                ApiError::KeyProviderUnavailable
            }
            // Provider refusals, format and binding failures: an opaque 500, the
            // cause (never key bytes: no error above holds any) logged with the
            // request id.
            other => ApiError::internal(other),
        }
    }
}

impl From<KeyringError> for crate::store::error::StoreError {
    fn from(err: KeyringError) -> Self {
        use crate::store::error::StoreError;
        match err {
            KeyringError::Destroyed => StoreError::KeysDestroyed,
            KeyringError::Db(err) => StoreError::Db(err),
            KeyringError::Provider(err) if err.is_retryable() => {
                tracing::warn!(error = %err, "key provider unavailable");
                StoreError::KeyProviderUnavailable
            }
            other => StoreError::internal(other),
        }
    }
}

/// The jurisdiction's name as KEKs are keyed (`regions/*.toml`'s spelling).
pub use super::settings::jurisdiction_name;

/// A `tenant_keys` row as the keyring reads it.
struct KeyRow {
    version: u32,
    state: String,
    wrapped: Option<WrappedDek>,
    /// Created by the reading transaction itself (not yet committed).
    own: bool,
}

/// The lookup `key_row` reads, by state or by version (literal SQL: a seal
/// runs on every encrypted write and must not format its statement).
macro_rules! key_lookup {
    () => {
        "SELECT version, state, jurisdiction, kek_id, wrapped, created_at = now() AS own \
         FROM tenant_keys WHERE tenant_id = $1 AND "
    };
}
const ACTIVE_SQL: &str = concat!(key_lookup!(), "state = 'active'");
const VERSION_SQL: &str = concat!(key_lookup!(), "version = $2");

fn key_row(row: &tokio_postgres::Row) -> KeyRow {
    let wrapped: Option<Vec<u8>> = row.get("wrapped");
    KeyRow {
        version: row.get::<_, i32>("version").unsigned_abs(),
        state: row.get("state"),
        wrapped: wrapped.map(|blob| WrappedDek {
            jurisdiction: row.get("jurisdiction"),
            kek_id: row.get("kek_id"),
            blob,
        }),
        own: row.get("own"),
    }
}

pub struct Keyring {
    provider: Arc<dyn KeyProvider>,
    topology: Arc<Topology>,
    cache: moka::sync::Cache<(TenantId, u32), Arc<Dek>>,
    /// The version each tenant's committed `active` row had when this node last
    /// read it: only an assumption, checked by the write that uses it.
    active_versions: moka::sync::Cache<TenantId, u32>,
    hits: Counter,
    misses: Counter,
    owner_rotation_interval: std::time::Duration,
}

impl Keyring {
    pub fn new(
        provider: Arc<dyn KeyProvider>,
        topology: Arc<Topology>,
        settings: &EncryptionSettings,
    ) -> Self {
        Self {
            provider,
            topology,
            cache: moka::sync::Cache::builder()
                .max_capacity(settings.dek_cache_capacity)
                .time_to_live(settings.dek_cache_ttl)
                .build(),
            active_versions: moka::sync::Cache::builder()
                .max_capacity(settings.dek_cache_capacity)
                .time_to_live(settings.dek_cache_ttl)
                .build(),
            hits: Counter::default(),
            misses: Counter::default(),
            owner_rotation_interval: settings.owner_rotation_interval,
        }
    }

    /// The provider `settings` name, ready for every jurisdiction of `topology`
    /// (the local provider's file gets a KEK for each one it lacks).
    pub async fn provider_from_settings(
        settings: &EncryptionSettings,
        topology: &Topology,
    ) -> Result<Arc<dyn KeyProvider>, KeyError> {
        match settings.provider {
            // A refused or disabled key stops the start; an unreachable KMS is
            // only logged (`check_keys`): the node may serve what needs no key.
            ProviderKind::AwsKms => {
                let kms = AwsKmsProvider::new(&settings.kms).await;
                kms.check_keys().await?;
                Ok(Arc::new(kms))
            }
            ProviderKind::Local => {
                let mut names: Vec<&str> = topology
                    .regions()
                    .map(|r| jurisdiction_name(r.jurisdiction))
                    .collect();
                names.sort_unstable();
                names.dedup();
                Ok(Arc::new(LocalFileProvider::ensure(
                    &settings.kek_file,
                    &names,
                )?))
            }
        }
    }

    /// `encryption.owner_rotation_interval_ms`; `None` when 0 (no limit).
    pub fn owner_rotation_interval(&self) -> Option<std::time::Duration> {
        let interval = self.owner_rotation_interval;
        (!interval.is_zero()).then_some(interval)
    }

    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    /// The jurisdiction whose KEK wraps the DEKs of a tenant homed in `region`.
    pub fn jurisdiction_of(&self, region: &str) -> Result<&'static str, KeyringError> {
        self.topology
            .find(region)
            .map(|r| jurisdiction_name(r.jurisdiction))
            .ok_or_else(|| KeyringError::UnknownRegion(region.to_owned()))
    }

    /// Hits and misses of the DEK cache, for `/metrics`.
    pub fn cache_counters(&self) -> (Counter, Counter) {
        (self.hits.clone(), self.misses.clone())
    }

    /// Seals `plaintext` for `binding` with `tenant`'s active DEK (version 1 is
    /// created on the tenant's first seal). `db` must be a read-write transaction
    /// of `tenant`, the one that writes the ciphertext.
    pub async fn seal(
        &self,
        db: &TenantTx<'_>,
        tenant: TenantId,
        binding: &Binding<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        if tenant != db.tenant_id() || binding.tenant != tenant {
            return Err(KeyringError::WrongTenant);
        }
        let dek = self.active(db, tenant).await?;
        dek.seal(binding, plaintext)
            .map_err(|source| unreadable(binding, source))
    }

    /// Seals with the version this node last saw active for `tenant`, without
    /// reading it (or, when it has none, like `seal`), and returns the version
    /// used: the caller's write must check it is still active in its statement
    /// (module doc) and redo the write with `seal` when it is not.
    pub async fn seal_assuming(
        &self,
        db: &TenantTx<'_>,
        tenant: TenantId,
        binding: &Binding<'_>,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32), KeyringError> {
        if tenant != db.tenant_id() || binding.tenant != tenant {
            return Err(KeyringError::WrongTenant);
        }
        let dek = match self.active_versions.get(&tenant) {
            Some(version) => self.version(db, tenant, version).await?,
            None => self.active(db, tenant).await?,
        };
        let sealed = dek
            .seal(binding, plaintext)
            .map_err(|source| unreadable(binding, source))?;
        Ok((sealed, dek.version))
    }

    /// Forgets the version this node assumed active for `tenant` (its write
    /// found it no longer active).
    pub fn forget_active(&self, tenant: TenantId) {
        self.active_versions.invalidate(&tenant);
    }

    /// Opens a ciphertext sealed for `binding` (the version comes from its header).
    pub async fn open(
        &self,
        db: &TenantTx<'_>,
        binding: &Binding<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        self.opener().open(db, binding, ciphertext).await
    }

    /// Opens many fields of one transaction (a page), looking each DEK version
    /// up in the cache once rather than per field.
    pub fn opener(&self) -> Opener<'_> {
        Opener {
            keyring: self,
            last: None,
        }
    }

    /// The tenant's active DEK, read in `db` (never from a cached notion of which
    /// version is active: see the module doc).
    pub async fn active(
        &self,
        db: &TenantTx<'_>,
        tenant: TenantId,
    ) -> Result<Arc<Dek>, KeyringError> {
        let row = db.query_opt(ACTIVE_SQL, &[&tenant.as_uuid()]).await?;
        match row {
            Some(row) => {
                let row = key_row(&row);
                let (version, committed) = (row.version, !row.own);
                let dek = self.unwrap_row(tenant, row).await?;
                if committed {
                    self.active_versions.insert(tenant, version);
                }
                Ok(dek)
            }
            None => self.create_first(db, tenant).await,
        }
    }

    /// The DEK of `version`, from the cache or `tenant_keys`.
    pub async fn version(
        &self,
        db: &TenantTx<'_>,
        tenant: TenantId,
        version: u32,
    ) -> Result<Arc<Dek>, KeyringError> {
        if let Some(dek) = self.cache.get(&(tenant, version)) {
            self.hits.inc();
            return Ok(dek);
        }
        let row = db
            .query_opt(VERSION_SQL, &[&tenant.as_uuid(), &version_param(version)?])
            .await?
            .ok_or(KeyringError::UnknownVersion(version))?;
        self.unwrap_row(tenant, key_row(&row)).await
    }

    async fn unwrap_row(&self, tenant: TenantId, row: KeyRow) -> Result<Arc<Dek>, KeyringError> {
        if let Some(dek) = self.cache.get(&(tenant, row.version)) {
            self.hits.inc();
            return Ok(dek);
        }
        let wrapped = match (&row.wrapped, row.state.as_str()) {
            (Some(wrapped), "active" | "retired") => wrapped,
            _ => return Err(KeyringError::Destroyed),
        };
        self.misses.inc();
        let dek = Arc::new(self.provider.unwrap(tenant, wrapped, row.version).await?);
        if !row.own {
            self.cache.insert((tenant, row.version), dek.clone());
        }
        Ok(dek)
    }

    /// No active version: version 1 (or, after a rotation's retired versions
    /// only — which cannot happen — the next), unless the keys were destroyed.
    async fn create_first(
        &self,
        db: &TenantTx<'_>,
        tenant: TenantId,
    ) -> Result<Arc<Dek>, KeyringError> {
        let row = db
            .query_one(
                "SELECT coalesce(max(version), 0) AS newest,
                        coalesce(bool_or(state = 'destroyed'), false) AS destroyed
                   FROM tenant_keys WHERE tenant_id = $1",
                &[&tenant.as_uuid()],
            )
            .await?;
        if row.get::<_, bool>("destroyed") {
            return Err(KeyringError::Destroyed);
        }
        let next = row.get::<_, i32>("newest").unsigned_abs() + 1;
        self.insert_version(db, tenant, next, "active").await
    }

    /// Generates, wraps and inserts a new version of `tenant`'s DEK in `db`.
    /// Not cached: `db` may still roll back (module doc).
    pub async fn insert_version(
        &self,
        db: &TenantTx<'_>,
        tenant: TenantId,
        version: u32,
        state: &str,
    ) -> Result<Arc<Dek>, KeyringError> {
        let home: String = db
            .query_one(
                "SELECT home_region FROM tenants WHERE id = $1",
                &[&tenant.as_uuid()],
            )
            .await?
            .get(0);
        let jurisdiction = self.jurisdiction_of(&home)?;
        let dek = Dek::generate(version).map_err(KeyError::from)?;
        let wrapped = self.provider.wrap(tenant, jurisdiction, &dek).await?;
        // A racing transaction that inserted the same version first makes this
        // one fail (40001 under SERIALIZABLE, retried) rather than succeed twice.
        db.execute(
            "INSERT INTO tenant_keys (tenant_id, version, home_region, jurisdiction, kek_id, wrapped, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &tenant.as_uuid(),
                &version_param(version)?,
                &home,
                &wrapped.jurisdiction,
                &wrapped.kek_id,
                &wrapped.blob,
                &state,
            ],
        )
        .await?;
        Ok(Arc::new(dek))
    }

    /// Forgets `tenant`'s cached DEKs, versions 1..=`newest`, on this node
    /// (after a destroy; other nodes: the TTL).
    pub fn evict_tenant(&self, tenant: TenantId, newest: u32) {
        for version in 1..=newest {
            self.cache.invalidate(&(tenant, version));
        }
        self.active_versions.invalidate(&tenant);
    }
}

/// See [`Keyring::opener`].
pub struct Opener<'k> {
    keyring: &'k Keyring,
    /// The DEK of the last field opened (a version's key never changes).
    last: Option<Arc<Dek>>,
}

impl Opener<'_> {
    /// Opens a ciphertext sealed for `binding`, like [`Keyring::open`].
    pub async fn open(
        &mut self,
        db: &TenantTx<'_>,
        binding: &Binding<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        if binding.tenant != db.tenant_id() {
            return Err(KeyringError::WrongTenant);
        }
        let version = envelope::version_of(ciphertext).map_err(|e| unreadable(binding, e))?;
        let dek = match &self.last {
            Some(dek) if dek.version == version => dek.clone(),
            _ => {
                let dek = self.keyring.version(db, binding.tenant, version).await?;
                self.last = Some(dek.clone());
                dek
            }
        };
        dek.open(binding, ciphertext)
            .map_err(|source| unreadable(binding, source))
    }
}

fn version_param(version: u32) -> Result<i32, KeyringError> {
    i32::try_from(version).map_err(|_| KeyringError::UnknownVersion(version))
}

fn unreadable(binding: &Binding<'_>, source: EnvelopeError) -> KeyringError {
    KeyringError::Unreadable {
        table: binding.table.to_owned(),
        column: binding.column.to_owned(),
        row: binding.row.to_owned(),
        source,
    }
}
