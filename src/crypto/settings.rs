//! `encryption.*` settings: which `KeyProvider` holds the key-encryption keys
//! (`encryption.provider`: a local file, or AWS KMS with its own section
//! `encryption.kms`, `crypto::kms`), the DEK cache, rotation and re-encryption.
//! Validated at start (`Settings::validate`), before the node listens. With KMS,
//! the node's own jurisdiction needs its key, or the node does not start (no
//! tenant homed here could get a data key), and a key named for a jurisdiction
//! no region file names is a typo, refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::millis;
use crate::topology::{Jurisdiction, Topology};

/// `encryption.provider` (`MERIDIAN_ENCRYPTION__PROVIDER`): where the KEKs live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderKind {
    /// `LocalFileProvider`: a JSON file of KEKs next to the node (dev, tests).
    #[default]
    #[serde(rename = "local")]
    Local,
    /// `AwsKmsProvider`: one KMS key per jurisdiction.
    #[serde(rename = "aws-kms")]
    AwsKms,
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
    #[serde(rename = "dek_cache_ttl_ms", with = "millis")]
    pub dek_cache_ttl: Duration,
    /// DEK versions held at once (all tenants together).
    pub dek_cache_capacity: u64,
    /// Rotate a tenant's DEK once its active version is this old (days); 0: never
    /// on a schedule (on demand only).
    pub rotate_after_days: u32,
    /// Ciphertexts one re-encryption batch rewrites (one transaction).
    pub reencrypt_batch: u32,
    /// How soon after the last rotation a tenant *owner* may rotate again (each
    /// rotation re-encrypts all the tenant's encrypted data on shared workers);
    /// platform admins and the schedule are not limited. 0: no limit.
    #[serde(rename = "owner_rotation_interval_ms", with = "millis")]
    pub owner_rotation_interval: Duration,
    /// The AWS KMS provider's section (`encryption.kms`).
    pub kms: KmsSettings,
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
            owner_rotation_interval: Duration::from_secs(3600),
            kms: KmsSettings::default(),
        }
    }
}

impl EncryptionSettings {
    /// The checks that need nothing but these settings.
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
        if self.owner_rotation_interval > Duration::from_secs(30 * 86_400) {
            return Err("encryption.owner_rotation_interval_ms must be at most 30 days".into());
        }
        if self.provider == ProviderKind::Local && self.kek_file.as_os_str().is_empty() {
            return Err("encryption.kek_file must be set for the local provider".into());
        }
        Ok(())
    }
}

/// `encryption.kms`. No credentials here: they come from the standard AWS chain
/// (environment, profile, web identity, ECS, the instance role through IMDSv2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KmsSettings {
    /// The AWS region of the KMS endpoint the node calls: its own region (the
    /// jurisdiction's multi-Region key has a replica there).
    #[serde(default)]
    pub region: String,
    /// Overrides the regional endpoint (a VPC endpoint; a local KMS in tests).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Jurisdiction (`us`, `eu`, `apac`) → the key's ARN (or id or alias) in
    /// this node's region, e.g. `MERIDIAN_ENCRYPTION__KMS__KEYS__EU`.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    /// Jurisdiction → the key `keys` replaced, while DEKs are still wrapped under
    /// it: it only unwraps, until `meridian keys rewrap` has moved them all
    /// (`crypto::kek_rotation`), e.g. `MERIDIAN_ENCRYPTION__KMS__PREVIOUS_KEYS__EU`.
    #[serde(default)]
    pub previous_keys: BTreeMap<String, String>,
    /// Bound on one attempt, connecting included.
    #[serde(
        rename = "attempt_timeout_ms",
        with = "millis",
        default = "default_attempt_timeout"
    )]
    pub attempt_timeout: Duration,
    /// Attempts per call (first one included) on errors that may pass:
    /// unreachable, timeout, throttling.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Bound on one call, all attempts and back-off included.
    #[serde(
        rename = "operation_timeout_ms",
        with = "millis",
        default = "default_operation_timeout"
    )]
    pub operation_timeout: Duration,
}

fn default_attempt_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_max_attempts() -> u32 {
    3
}

fn default_operation_timeout() -> Duration {
    Duration::from_secs(8)
}

impl Default for KmsSettings {
    fn default() -> Self {
        Self {
            region: String::new(),
            endpoint: None,
            keys: BTreeMap::new(),
            previous_keys: BTreeMap::new(),
            attempt_timeout: default_attempt_timeout(),
            max_attempts: default_max_attempts(),
            operation_timeout: default_operation_timeout(),
        }
    }
}

/// The name a jurisdiction has in settings and region files.
pub fn jurisdiction_name(jurisdiction: Jurisdiction) -> &'static str {
    match jurisdiction {
        Jurisdiction::Us => "us",
        Jurisdiction::Eu => "eu",
        Jurisdiction::Apac => "apac",
    }
}

impl EncryptionSettings {
    /// What `Settings::validate` reports; the message names the setting to fix.
    /// `own` is the jurisdiction of the node's region: its key is required. Keys
    /// of other jurisdictions are allowed but not required: a jurisdiction's key
    /// exists only in its own regions and admits only their node roles
    /// (`terraform/kms.tf`), so a US node cannot hold the EU key.
    pub fn validate_for(&self, topology: &Topology, own: Jurisdiction) -> Result<(), String> {
        if self.provider != ProviderKind::AwsKms {
            return Ok(());
        }
        let kms = &self.kms;
        if kms.region.is_empty() {
            return Err(
                "encryption.kms.region (MERIDIAN_ENCRYPTION__KMS__REGION) is required with \
                 encryption.provider = \"aws-kms\""
                    .into(),
            );
        }
        let named: std::collections::BTreeSet<&str> = topology
            .regions()
            .map(|r| jurisdiction_name(r.jurisdiction))
            .collect();
        let mut jurisdictions = kms.keys.keys().chain(kms.previous_keys.keys());
        if let Some(unknown) = jurisdictions.find(|j| !named.contains(j.as_str())) {
            return Err(format!(
                "encryption.kms.keys.{unknown}: no region file names jurisdiction `{unknown}` \
                 (known: {})",
                named.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        let own = jurisdiction_name(own);
        if kms.keys.get(own).is_none_or(|k| k.trim().is_empty()) {
            return Err(format!(
                "encryption.kms.keys has no key for `{own}`, the jurisdiction of this node's \
                 region (MERIDIAN_ENCRYPTION__KMS__KEYS__{})",
                own.to_uppercase()
            ));
        }
        if let Some(endpoint) = &kms.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(format!(
                "encryption.kms.endpoint must be an http(s) URL, not `{endpoint}`"
            ));
        }
        let ms = Duration::from_millis;
        if !(1..=10).contains(&kms.max_attempts)
            || !(ms(50)..=ms(60_000)).contains(&kms.attempt_timeout)
            || kms.operation_timeout < kms.attempt_timeout
        {
            return Err(
                "encryption.kms: max_attempts must be 1..=10, attempt_timeout_ms \
                        50..=60000 and operation_timeout_ms at least attempt_timeout_ms"
                    .into(),
            );
        }
        Ok(())
    }
}
