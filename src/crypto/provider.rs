//! Key-encryption keys behind one trait. `KeyProvider` wraps and unwraps DEKs
//! with the KEK of a jurisdiction; `LocalFileProvider` (`crypto::local_kek`,
//! dev and tests) keeps versioned random 256-bit KEKs per jurisdiction in a
//! JSON file (0600) and wraps with AES-256-GCM. Every provider binds a wrapped DEK to its tenant, jurisdiction
//! and version, so a wrapped DEK copied to another tenant (or claimed for
//! another jurisdiction or version) does not unwrap. `AwsKmsProvider`
//! (`crypto::kms`) is the production implementation; an HSM through PKCS#11
//! would be another (docs/architecture.md says how).

use std::path::PathBuf;

use super::envelope::{Dek, EnvelopeError};
use crate::ids::TenantId;

pub use super::local_kek::LocalFileProvider;

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
    /// Whether `kek_id` is the KEK `wrap` uses now for `jurisdiction`. A DEK
    /// wrapped under another one (an older local KEK version, a replaced KMS
    /// key) is rewrapped by `meridian keys rewrap` (`crypto::kek_rotation`).
    async fn is_current(&self, jurisdiction: &str, kek_id: &str) -> Result<bool, KeyError>;
}
