//! Key-encryption keys behind one trait. `KeyProvider` wraps and unwraps DEKs
//! with the KEK of a jurisdiction; `LocalFileProvider` (dev, tests) keeps one
//! random 256-bit KEK per jurisdiction in a JSON file (0600) and wraps with
//! AES-256-GCM. Every provider binds a wrapped DEK to its tenant, jurisdiction
//! and version, so a wrapped DEK copied to another tenant (or claimed for
//! another jurisdiction or version) does not unwrap. `AwsKmsProvider`
//! (`crypto::kms`) is the production implementation; an HSM through PKCS#11
//! would be another (docs/architecture.md says how).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::envelope::{Binding, Dek, EnvelopeError};
use crate::ids::TenantId;

/// A DEK as stored: wrapped by the KEK `kek_id` of `jurisdiction`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDek {
    pub jurisdiction: String,
    pub kek_id: String,
    pub blob: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no key-encryption key for jurisdiction `{0}`")]
    UnknownJurisdiction(String),
    #[error("key-encryption key `{0}` is not available")]
    UnknownKek(String),
    #[error("the wrapped key does not open with its key-encryption key")]
    Unwrap,
    #[error("key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// The key service cannot be reached or did not answer in time (network,
    /// timeout, throttling, its internal error): may pass, the caller may retry.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// The key service refused (access denied, key not found, disabled or
    /// pending deletion): retrying does not help; an operator must act.
    #[error("key service refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

impl KeyError {
    /// Whether the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync {
    /// Wraps `dek` (version `dek.version`) of `tenant` under the current KEK of
    /// `jurisdiction`.
    async fn wrap(
        &self,
        tenant: TenantId,
        jurisdiction: &str,
        dek: &Dek,
    ) -> Result<WrappedDek, KeyError>;
    /// The DEK of `tenant` inside `wrapped`, as version `version`; fails unless
    /// it was wrapped for that tenant, jurisdiction and version.
    async fn unwrap(
        &self,
        tenant: TenantId,
        wrapped: &WrappedDek,
        version: u32,
    ) -> Result<Dek, KeyError>;
}

#[derive(Serialize, Deserialize)]
struct KekEntry {
    id: String,
    /// Base64 of 32 random bytes.
    key: String,
}

#[derive(Serialize, Deserialize, Default)]
struct KekFile {
    /// Jurisdiction → its KEK.
    keys: BTreeMap<String, KekEntry>,
}

/// KEKs from a local file (see the module doc). Never for production: the KEK
/// sits next to the data it protects.
pub struct LocalFileProvider {
    keks: BTreeMap<String, (String, Dek)>,
}

/// The wrapping reuses the field envelope: the binding names the tenant, the
/// jurisdiction and the KEK with the DEK version (`row`, "kek-id/version").
fn kek_binding<'a>(tenant: TenantId, jurisdiction: &'a str, row: &'a str) -> Binding<'a> {
    Binding {
        tenant,
        table: "kek",
        column: jurisdiction,
        row,
    }
}

impl LocalFileProvider {
    /// Loads `path`, first adding a new KEK for each of `jurisdictions` it lacks.
    pub fn ensure(path: &Path, jurisdictions: &[&str]) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError::File {
            path: path.to_owned(),
            reason,
        };
        let mut file: KekFile = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KekFile::default(),
            Err(e) => return Err(fail(e.to_string())),
        };
        let mut added = false;
        for jurisdiction in jurisdictions {
            if !file.keys.contains_key(*jurisdiction) {
                let dek = Dek::generate(1)?;
                file.keys.insert(
                    (*jurisdiction).to_owned(),
                    KekEntry {
                        id: format!("local-{jurisdiction}-{}", uuid::Uuid::now_v7().simple()),
                        key: STANDARD.encode(dek.secret_bytes()),
                    },
                );
                added = true;
            }
        }
        if added {
            write_private(path, &file).map_err(fail)?;
        }
        let mut keks = BTreeMap::new();
        for (jurisdiction, entry) in file.keys {
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(&entry.key)
                    .map_err(|e| fail(e.to_string()))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| fail(format!("the key of `{jurisdiction}` is not 32 bytes")))?;
            keks.insert(jurisdiction, (entry.id, Dek::new(1, Zeroizing::new(key))));
        }
        Ok(Self { keks })
    }
}

fn write_private(path: &Path, file: &KekFile) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_string_pretty(file).map_err(|e| e.to_string())?;
    let temp = path.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| e.to_string())?;
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    std::fs::rename(&temp, path).map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl KeyProvider for LocalFileProvider {
    async fn wrap(
        &self,
        tenant: TenantId,
        jurisdiction: &str,
        dek: &Dek,
    ) -> Result<WrappedDek, KeyError> {
        let (kek_id, kek) = self
            .keks
            .get(jurisdiction)
            .ok_or_else(|| KeyError::UnknownJurisdiction(jurisdiction.to_owned()))?;
        let row = format!("{kek_id}/{}", dek.version);
        let blob = kek.seal(&kek_binding(tenant, jurisdiction, &row), dek.secret_bytes())?;
        Ok(WrappedDek {
            jurisdiction: jurisdiction.to_owned(),
            kek_id: kek_id.clone(),
            blob,
        })
    }

    async fn unwrap(
        &self,
        tenant: TenantId,
        wrapped: &WrappedDek,
        version: u32,
    ) -> Result<Dek, KeyError> {
        let (kek_id, kek) = self
            .keks
            .get(&wrapped.jurisdiction)
            .filter(|(id, _)| *id == wrapped.kek_id)
            .ok_or_else(|| KeyError::UnknownKek(wrapped.kek_id.clone()))?;
        let row = format!("{kek_id}/{version}");
        let plain = kek
            .open(
                &kek_binding(tenant, &wrapped.jurisdiction, &row),
                &wrapped.blob,
            )
            .map_err(|_| KeyError::Unwrap)?;
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyError::Unwrap)?;
        Ok(Dek::new(version, Zeroizing::new(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_keks_wrap_and_unwrap_and_persist() {
        let dir =
            std::env::temp_dir().join(format!("meridian-kek-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keks.json");
        let provider = LocalFileProvider::ensure(&path, &["eu", "us"]).unwrap();
        let mode = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let dek = Dek::generate(7).unwrap();
        let tenant = TenantId::from_uuid(uuid::Uuid::now_v7());
        let wrapped = provider.wrap(tenant, "eu", &dek).await.unwrap();
        assert!(!wrapped.blob.windows(32).any(|w| w == dek.secret_bytes()));
        // Reloaded from the file: the same KEKs open it.
        let again = LocalFileProvider::ensure(&path, &["eu"]).unwrap();
        let opened = again.unwrap(tenant, &wrapped, 7).await.unwrap();
        assert_eq!(opened.secret_bytes(), dek.secret_bytes());
        assert_eq!(opened.version, 7);
        // Claimed for another jurisdiction: no.
        let moved = WrappedDek {
            jurisdiction: "us".into(),
            ..wrapped.clone()
        };
        assert!(again.unwrap(tenant, &moved, 7).await.is_err());
        // Another tenant's row, or another version: no.
        let other = TenantId::from_uuid(uuid::Uuid::now_v7());
        assert!(matches!(
            again.unwrap(other, &wrapped, 7).await,
            Err(KeyError::Unwrap)
        ));
        assert!(matches!(
            again.unwrap(tenant, &wrapped, 8).await,
            Err(KeyError::Unwrap)
        ));
        assert!(matches!(
            provider.wrap(tenant, "apac", &dek).await,
            Err(KeyError::UnknownJurisdiction(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
