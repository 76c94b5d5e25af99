//! KEK rotation: `meridian keys rewrap` moves every live DEK of a jurisdiction
//! onto the KEK its provider wraps with *now* (`KeyProvider::is_current`). Only
//! the wrapping changes: the DEK bytes, and so every ciphertext sealed with
//! them, stay exactly as they are (no re-encryption of data), and a DEK cached
//! unwrapped on any node stays valid.
//!
//! **Local provider.** `meridian keys rotate-kek --jurisdiction j` appends a new
//! KEK version to the file (`crypto::local_kek`); nodes pick it up without a
//! restart; `rewrap` then moves the DEKs. **AWS KMS.** KMS rotates a key's
//! backing material itself (automatic rotation keeps the key id and decrypts
//! old ciphertext), so nothing is rewrapped for that. Rewrapping is for a
//! *replaced* key: the new key id goes into `encryption.kms.keys.<j>`, the old
//! one into `encryption.kms.previous_keys.<j>` (so it still unwraps), and
//! `rewrap` moves the DEKs (Decrypt under the old key, Encrypt under the new);
//! once it reports nothing left, the old key may be scheduled for deletion.
//!
//! **Batches.** Tenants in id order, `batch` per transaction (each tenant's
//! versions locked `FOR UPDATE`, rewrapped, recorded in its trail and in the
//! platform trail, in that one transaction). A version already under the
//! current KEK is skipped, so the command is idempotent and, stopped half-way,
//! resumes by running it again. Destroyed versions hold nothing to rewrap.

use serde_json::json;
use uuid::Uuid;

use super::keyring::{Keyring, KeyringError};
use super::provider::KeyError;
use crate::audit;
use crate::db::{Database, TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};

/// What a `rewrap` run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RewrapReport {
    pub tenants_checked: u64,
    pub tenants_rewrapped: u64,
    pub versions_rewrapped: u64,
}

/// Rewraps the tenant's live versions of `jurisdiction` (every jurisdiction:
/// `None`) that are not under their provider's current KEK. Returns the
/// versions rewrapped with the KEK each was under before.
pub async fn rewrap_stale(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    jurisdiction: Option<&str>,
) -> Result<Vec<(u32, String)>, KeyringError> {
    let tenant = tx.tenant_id();
    let rows = tx
        .query(
            "SELECT version, jurisdiction, kek_id FROM tenant_keys
             WHERE tenant_id = $1 AND state <> 'destroyed'
               AND ($2::text IS NULL OR jurisdiction = $2)
             ORDER BY version FOR UPDATE",
            &[tenant.as_uuid(), &jurisdiction],
        )
        .await?;
    let mut moved = Vec::new();
    for row in rows {
        let version = row.get::<_, i32>(0).unsigned_abs();
        let (held_by, kek_id): (String, String) = (row.get(1), row.get(2));
        if keyring.provider().is_current(&held_by, &kek_id).await? {
            continue;
        }
        let dek = keyring.version(tx, tenant, version).await?;
        let wrapped = keyring.provider().wrap(tenant, &held_by, &dek).await?;
        tx.execute(
            "UPDATE tenant_keys SET kek_id = $3, wrapped = $4 WHERE tenant_id = $1 AND version = $2",
            &[
                tenant.as_uuid(),
                &row.get::<_, i32>(0),
                &wrapped.kek_id,
                &wrapped.blob,
            ],
        )
        .await?;
        moved.push((version, kek_id));
    }
    Ok(moved)
}

/// Rewraps every tenant's stale DEKs (module doc), as `actor` in the trails.
pub async fn rewrap_all(
    db: &Database,
    keyring: &Keyring,
    jurisdiction: Option<&str>,
    batch: u32,
    actor: &str,
) -> Result<RewrapReport, ApiError> {
    let mut report = RewrapReport::default();
    let mut after = Uuid::nil();
    let details = json!({ "jurisdiction": jurisdiction, "batch": batch });
    db.platform_tx(TxMode::ReadWrite, async |tx| {
        Ok(audit::record_platform(tx, actor, "kek_rewrap_started", None, details.clone()).await?)
    })
    .await?;
    loop {
        let (last, done) = db
            .platform_tx(TxMode::ReadWrite, async |tx| {
                let mut done = RewrapReport::default();
                let tenants = tx
                    .query(
                        "SELECT id, home_region FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
                        &[&after, &i64::from(batch.max(1))],
                    )
                    .await?;
                let mut last = None;
                for row in &tenants {
                    let id = TenantId::from_uuid(row.get(0));
                    let home = RegionId::parse(row.get(1))
                        .map_err(|e| ApiError::internal(anyhow::Error::msg(e)))?;
                    let scoped = tx.enter_tenant(id, home).await?;
                    let moved = rewrap_stale(keyring, &scoped, jurisdiction).await?;
                    last = Some(*id.as_uuid());
                    done.tenants_checked += 1;
                    if moved.is_empty() {
                        continue;
                    }
                    done.tenants_rewrapped += 1;
                    done.versions_rewrapped += moved.len() as u64;
                    let details = json!({
                        "versions": moved.iter().map(|(v, _)| v).collect::<Vec<_>>(),
                        "from_kek_ids": moved.iter().map(|(_, k)| k).collect::<Vec<_>>(),
                    });
                    let target = Some(("tenant", id.to_string()));
                    audit::record(&scoped, actor, "deks_rewrapped", target, details.clone())
                        .await?;
                    audit::record_platform(tx, actor, "deks_rewrapped", Some(id), details).await?;
                }
                Ok((last, done))
            })
            .await?;
        report.tenants_checked += done.tenants_checked;
        report.tenants_rewrapped += done.tenants_rewrapped;
        report.versions_rewrapped += done.versions_rewrapped;
        match last {
            Some(last) => after = last,
            None => break,
        }
    }
    let details = json!({ "jurisdiction": jurisdiction, "report": report });
    db.platform_tx(TxMode::ReadWrite, async |tx| {
        Ok(audit::record_platform(tx, actor, "kek_rewrap_finished", None, details.clone()).await?)
    })
    .await?;
    Ok(report)
}

/// `meridian keys rewrap`: the settings' database and key provider (module doc).
pub async fn rewrap_from_settings(
    settings: crate::config::Settings,
    jurisdiction: Option<&str>,
    batch: u32,
    actor: &str,
) -> anyhow::Result<RewrapReport> {
    let (settings, topology) = settings.validate()?;
    let topology = std::sync::Arc::new(topology);
    if let Some(j) = jurisdiction
        && !topology
            .regions()
            .any(|r| super::settings::jurisdiction_name(r.jurisdiction) == j)
    {
        anyhow::bail!("no region of the topology is in jurisdiction `{j}`");
    }
    let provider = Keyring::provider_from_settings(&settings.encryption, &topology).await?;
    let keyring = Keyring::new(provider, topology, &settings.encryption);
    // The platform events these write join the settings' region's trail.
    let region = crate::ids::RegionId::parse(&settings.region).map_err(anyhow::Error::msg)?;
    let db = Database::connect(&settings.database)?.in_region(region);
    rewrap_all(&db, &keyring, jurisdiction, batch, actor)
        .await
        .map_err(|e| match e {
            ApiError::Internal(cause) => cause,
            other => anyhow::anyhow!("{other}"),
        })
}

/// `meridian keys rotate-kek` for the local provider: a new KEK version for
/// `jurisdiction` in the settings' KEK file, recorded in the platform trail.
pub async fn rotate_local_kek(
    settings: crate::config::Settings,
    jurisdiction: &str,
    actor: &str,
) -> anyhow::Result<super::local_kek::KekRotated> {
    use super::settings::ProviderKind;
    if settings.encryption.provider != ProviderKind::Local {
        anyhow::bail!(
            "rotate-kek is for the local provider; with aws-kms, KMS rotates the key's \
             material itself, and a replaced key is set in encryption.kms.keys (the old one \
             in encryption.kms.previous_keys) before `meridian keys rewrap`"
        );
    }
    let (settings, _) = settings.validate()?;
    // The platform events these write join the settings' region's trail.
    let region = crate::ids::RegionId::parse(&settings.region).map_err(anyhow::Error::msg)?;
    let db = Database::connect(&settings.database)?.in_region(region);
    let rotated =
        super::local_kek::LocalFileProvider::rotate(&settings.encryption.kek_file, jurisdiction)
            .map_err(|e| match e {
                KeyError::UnknownJurisdiction(j) => {
                    anyhow::anyhow!("the KEK file has no KEK for jurisdiction `{j}`")
                }
                other => other.into(),
            })?;
    let details = json!({
        "jurisdiction": rotated.jurisdiction,
        "previous_kek_id": rotated.previous_id,
        "kek_id": rotated.current_id,
        "version": rotated.version,
    });
    db.platform_tx(TxMode::ReadWrite, async |tx| {
        Ok(audit::record_platform(tx, actor, "kek_rotated", None, details.clone()).await?)
    })
    .await
    .map_err(|e| anyhow::anyhow!("the KEK file was rotated, but recording it failed: {e}"))?;
    Ok(rotated)
}
