//! Compliance (issue 16 parts 2–4): GDPR exports built by a job into the
//! export store of the tenant's home region, sealed with the tenant's data key
//! and served with HTTP Range, and their expiry sweep; user erasure with a
//! signed receipt; tenant erasure after a grace period, with a signed receipt
//! (`tenant_erasure`, routes in `api/tenant_erasure.rs`); retention (the
//! policy: `retention`, its job: `retention_job`). The routes are
//! `api/exports.rs`, `api/erasures.rs` and `api/retention.rs`; the tables
//! `exports` and `erasures` (V22), the column `tenants.retention` (V27).

pub mod archive;
pub mod erasure;
pub mod export_job;
pub mod exports;
pub mod receipt;
pub mod retention;
pub mod retention_job;
pub mod sealed;
pub mod storage;
pub mod sweep;
pub mod tenant_erasure;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::keyring::Keyring;
use crate::jobs::{Registry, Schedule, ScheduleScope};
use storage::{Backend, ExportStorage, S3Bucket, S3Settings};

/// `exports.*` settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportSettings {
    /// The region's export store: `dir` (a directory, `dir`) or `s3` (the
    /// region's bucket, `s3`), `storage`.
    pub store: StoreKind,
    /// The `dir` store (shared by the region's nodes), or with `s3` where
    /// uploads are spooled before they are sent.
    pub dir: PathBuf,
    /// The region's bucket (`store = "s3"`).
    pub s3: S3Settings,
    /// How long a ready export can be downloaded; then 410 `export_expired`
    /// and the sweep removes its file.
    #[serde(rename = "ttl_ms", with = "crate::config::millis")]
    pub ttl: Duration,
    /// Rows read per transaction while building (memory is about one batch).
    pub batch_rows: u32,
    /// How often each tenant's expired exports are swept.
    #[serde(rename = "sweep_interval_ms", with = "crate::config::millis")]
    pub sweep_interval: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            store: StoreKind::Dir,
            dir: PathBuf::from("target/exports"),
            s3: S3Settings::default(),
            ttl: Duration::from_secs(7 * 24 * 3600),
            batch_rows: 1000,
            sweep_interval: Duration::from_secs(3600),
        }
    }
}

impl ExportSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100_000).contains(&self.batch_rows) {
            return Err("exports.batch_rows must be between 1 and 100000".into());
        }
        if self.ttl.is_zero() || self.sweep_interval.is_zero() {
            return Err("exports.ttl_ms and exports.sweep_interval_ms must be positive".into());
        }
        match self.store {
            StoreKind::Dir => Ok(()),
            StoreKind::S3 => self.s3.validate(),
        }
    }

    /// The store these settings name; `credentials` replace the AWS chain
    /// (a local S3 in tests).
    pub fn storage(&self, credentials: Option<aws_sdk_s3::config::Credentials>) -> ExportStorage {
        ExportStorage::new(match self.store {
            StoreKind::Dir => Backend::Dir(self.dir.clone()),
            StoreKind::S3 => Backend::S3 {
                bucket: S3Bucket::new(self.s3.clone(), credentials),
                spool: self.dir.clone(),
            },
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Dir,
    S3,
}

/// What the export routes and jobs share on a node (held by `hooks::Hooks`).
#[derive(Clone)]
pub struct Compliance {
    pub settings: ExportSettings,
    /// Tenant erasure's grace period.
    pub erasure: tenant_erasure::TenantErasureSettings,
    pub storage: ExportStorage,
    pub keyring: Arc<Keyring>,
    /// Signs erasure receipts and retention anchors (`crypto::signing`).
    pub signer: Arc<crate::crypto::signing::Signer>,
    pub retention: retention_job::RetentionSettings,
    /// The node's `access_log.retention_days` (the retention job's ceiling
    /// for the access log).
    pub access_log_days: u32,
}

impl Compliance {
    pub fn new(
        (settings, erasure, retention, access_log_days): (
            ExportSettings,
            tenant_erasure::TenantErasureSettings,
            retention_job::RetentionSettings,
            u32,
        ),
        keyring: Arc<Keyring>,
        signer: Arc<crate::crypto::signing::Signer>,
    ) -> anyhow::Result<Self> {
        settings.validate().map_err(anyhow::Error::msg)?;
        let storage = settings.storage(None);
        erasure.validate().map_err(anyhow::Error::msg)?;
        retention.validate().map_err(anyhow::Error::msg)?;
        Ok(Self {
            settings,
            erasure,
            storage,
            keyring,
            signer,
            retention,
            access_log_days,
        })
    }

    /// Adds the export build and sweep, erasure and retention jobs.
    pub fn register(&self, registry: Registry) -> Registry {
        registry
            .with(export_job::BuildExport {
                keyring: self.keyring.clone(),
                storage: self.storage.clone(),
                settings: self.settings.clone(),
            })
            .with(erasure::EraseUser {
                signer: self.signer.clone(),
                storage: self.storage.clone(),
                batch: self.settings.batch_rows,
            })
            .with(tenant_erasure::EraseTenant {
                signer: self.signer.clone(),
                keyring: self.keyring.clone(),
                storage: self.storage.clone(),
                batch: self.settings.batch_rows,
            })
            .with(sweep::SweepExports {
                storage: self.storage.clone(),
            })
            .with(sweep::RemoveArchives {
                storage: self.storage.clone(),
            })
            .with(retention_job::EnforceRetention {
                signer: self.signer.clone(),
                settings: self.retention.clone(),
                access_log_days: self.access_log_days,
            })
            .every(Schedule {
                kind: sweep::KIND,
                every: self.settings.sweep_interval,
                scope: ScheduleScope::EachTenant,
                max_attempts: 5,
            })
            .every(Schedule {
                kind: retention_job::KIND,
                every: self.retention.interval,
                scope: ScheduleScope::EachTenant,
                max_attempts: 5,
            })
    }
}
