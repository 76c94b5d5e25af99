//! `encryption.*` settings: which `KeyProvider` holds the KEKs, and the DEK
//! cache. Validated at start (`Settings::validate`), before the node listens.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the key-encryption keys live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// `LocalFileProvider`: a JSON file of KEKs next to the node (dev, tests).
    #[default]
    Local,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EncryptionSettings {
    pub provider: ProviderKind,
    /// The local provider's KEK file; created (0600) on first start with one KEK
    /// per jurisdiction of the topology, like `meridian dev` creates `keys.json`.
    pub kek_file: PathBuf,
    /// How long an unwrapped DEK stays in this node's cache. It also bounds how
    /// long *another* node may still open a tenant's data after its keys were
    /// destroyed (this node evicts at once), so it is kept short.
    #[serde(rename = "dek_cache_ttl_ms", with = "crate::config::millis")]
    pub dek_cache_ttl: Duration,
    /// DEK versions held at once (all tenants together).
    pub dek_cache_capacity: u64,
    /// Rotate a tenant's DEK once its active version is this old (days); 0: never
    /// on a schedule (on demand only).
    pub rotate_after_days: u32,
    /// Ciphertexts one re-encryption batch rewrites (one transaction).
    pub reencrypt_batch: u32,
}

impl Default for EncryptionSettings {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Local,
            kek_file: "keks.json".into(),
            dek_cache_ttl: Duration::from_secs(300),
            dek_cache_capacity: 10_000,
            rotate_after_days: 0,
            reencrypt_batch: 200,
        }
    }
}

impl EncryptionSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&self.dek_cache_ttl) {
            return Err("encryption.dek_cache_ttl_ms must be 10..=3600000".into());
        }
        if self.dek_cache_capacity == 0 {
            return Err("encryption.dek_cache_capacity must be positive".into());
        }
        if !(1..=10_000).contains(&self.reencrypt_batch) {
            return Err("encryption.reencrypt_batch must be 1..=10000".into());
        }
        if self.provider == ProviderKind::Local && self.kek_file.as_os_str().is_empty() {
            return Err("encryption.kek_file must be set for the local provider".into());
        }
        Ok(())
    }
}
