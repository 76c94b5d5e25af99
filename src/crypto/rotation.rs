//! Key lifecycle on `tenant_keys`: rotation (a new active DEK version plus a
//! re-encryption job), crypto-shredding (`destroy_tenant_keys`) and rewrapping
//! under another jurisdiction's KEK (relocation, KEK rotation).
//!
//! **Re-encryption.** The `keys.reencrypt` job rewrites every ciphertext of the
//! tenant that is not under the active version, in batches of
//! `encryption.reencrypt_batch` rows, one transaction per batch (rows locked,
//! opened with their own version, sealed with the active one). A batch only
//! picks rows still under another version, so re-running one is harmless and a
//! job whose worker died is resumed by the next lease holder where it stopped.
//! Old versions stay `retired` (they still open) throughout; once no ciphertext
//! under them is left, the job sets their `drained_at` in a final transaction
//! that re-checks every registered column. Retired keys are kept (not
//! destroyed): a restored backup may still hold ciphertext under them.
//!
//! **The registry.** [`ENCRYPTED`] lists every encrypted column: (table, sealed
//! column, AAD column, SQL expression of the row id as bound). A feature that
//! encrypts a new column (message bodies, summaries) adds its entry here, and
//! rotation, the re-encryption job and the canary test cover it.

use uuid::Uuid;

use super::envelope::Binding;
use super::keyring::{Keyring, KeyringError};
use crate::db::TenantTx;

/// One encrypted column (see the module doc).
pub struct EncryptedColumn {
    pub table: &'static str,
    /// The `bytea` column holding the ciphertext.
    pub column: &'static str,
    /// The column name bound into the AAD (`Binding::column`).
    pub aad_column: &'static str,
    /// SQL giving the row id exactly as bound (`Binding::row`), as text.
    pub row_id: &'static str,
    /// SQL of the columns that, with `tenant_id`, identify the row for the update.
    pub key: &'static str,
}

/// Every encrypted column of a tenant.
pub const ENCRYPTED: &[EncryptedColumn] = &[
    EncryptedColumn {
        table: "identity_providers",
        column: "secret_sealed",
        aad_column: "secret",
        row_id: "id::text",
        key: "id",
    },
    EncryptedColumn {
        table: "webhook_endpoints",
        column: "secret_sealed",
        aad_column: "secret",
        row_id: "id::text",
        key: "id",
    },
    EncryptedColumn {
        table: "webhook_endpoints",
        column: "previous_secret_sealed",
        aad_column: "secret",
        row_id: "id::text",
        key: "id",
    },
    // A calendar account's password or token (`calendar::store`).
    EncryptedColumn {
        table: "calendar_accounts",
        column: "secret_sealed",
        aad_column: "secret",
        row_id: "id::text",
        key: "id",
    },
    // A tenant's message bodies and summaries, when its policy encrypts them
    // (`crypto::messages`; plaintext rows are sealed by `crypto::seal_messages`).
    EncryptedColumn {
        table: "messages",
        column: "body_enc",
        aad_column: super::messages::BODY.1,
        row_id: "id::text",
        key: "id",
    },
    EncryptedColumn {
        table: "channel_summaries",
        column: "sealed",
        aad_column: super::messages::SUMMARY.1,
        row_id: "id::text",
        key: "id",
    },
    // The per-subject keys of the audit trail's personal details
    // (`audit::personal`, V33), wrapped by the tenant's DEK.
    EncryptedColumn {
        table: "subject_keys",
        column: "key_sealed",
        aad_column: "key_sealed",
        row_id: "subject_id::text",
        key: "subject_id",
    },
];

/// The job kind that re-encrypts a tenant after a rotation.
pub const REENCRYPT_KIND: &str = "keys.reencrypt";

/// The header bytes (format, version) of a ciphertext under `version`.
fn header(version: u32) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&version.to_be_bytes());
    out
}

fn as_i32(version: u32) -> i32 {
    i32::try_from(version).unwrap_or(i32::MAX)
}

/// Retires the active version and makes the next one active; returns the new
/// version. The caller enqueues the re-encryption job in the same transaction.
pub async fn rotate(keyring: &Keyring, tx: &TenantTx<'_>) -> Result<u32, KeyringError> {
    let tenant = tx.tenant_id();
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) AS newest,
                    coalesce(bool_or(state = 'destroyed'), false) AS destroyed
               FROM tenant_keys WHERE tenant_id = $1",
            &[tenant.as_uuid()],
        )
        .await?;
    if row.get::<_, bool>("destroyed") {
        return Err(KeyringError::Destroyed);
    }
    let next = row.get::<_, i32>("newest").unsigned_abs() + 1;
    tx.execute(
        "UPDATE tenant_keys SET state = 'retired', retired_at = now()
         WHERE tenant_id = $1 AND state = 'active'",
        &[tenant.as_uuid()],
    )
    .await?;
    keyring.insert_version(tx, tenant, next, "active").await?;
    Ok(next)
}

/// Crypto-shredding: every version of the tenant's DEK `destroyed`, its
/// wrapped bytes removed, and this node's cached copies evicted (other nodes
/// keep theirs at most `encryption.dek_cache_ttl_ms`; the caller evicts again
/// after the commit, so no read in between re-caches one here). Afterwards
/// `open` and `seal` answer `Destroyed`. Returns the versions destroyed.
pub async fn destroy_tenant_keys(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
) -> Result<Vec<u32>, KeyringError> {
    let tenant = tx.tenant_id();
    let rows = tx
        .query(
            "UPDATE tenant_keys SET state = 'destroyed', wrapped = NULL, destroyed_at = now()
             WHERE tenant_id = $1 AND state <> 'destroyed' RETURNING version",
            &[tenant.as_uuid()],
        )
        .await?;
    let versions: Vec<u32> = rows
        .iter()
        .map(|r| r.get::<_, i32>(0).unsigned_abs())
        .collect();
    if versions.is_empty() {
        // Never had a key: record the tenant as shredded, so nothing is sealed
        // for it later either (version 1, destroyed, nothing wrapped).
        let home: String = tx
            .query_one(
                "SELECT home_region FROM tenants WHERE id = $1",
                &[tenant.as_uuid()],
            )
            .await?
            .get(0);
        let jurisdiction = keyring.jurisdiction_of(&home)?;
        tx.execute(
            "INSERT INTO tenant_keys (tenant_id, version, home_region, jurisdiction, kek_id,
                 wrapped, state, destroyed_at)
             VALUES ($1, 1, $2, $3, '', NULL, 'destroyed', now())
             ON CONFLICT (tenant_id, version) DO NOTHING",
            &[tenant.as_uuid(), &home, &jurisdiction],
        )
        .await?;
    }
    keyring.evict_tenant(tenant, versions.iter().copied().max().unwrap_or(1));
    Ok(versions)
}

/// Rewraps the tenant's live DEK versions not yet under `jurisdiction`'s KEK
/// (relocation across jurisdictions, KEK rotation). The DEKs themselves, and so
/// every ciphertext, stay as they are. Returns how many versions it rewrapped.
pub async fn rewrap(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    jurisdiction: &str,
) -> Result<u64, KeyringError> {
    let tenant = tx.tenant_id();
    let rows = tx
        .query(
            "SELECT version FROM tenant_keys
             WHERE tenant_id = $1 AND state <> 'destroyed' AND jurisdiction <> $2
             ORDER BY version FOR UPDATE",
            &[tenant.as_uuid(), &jurisdiction],
        )
        .await?;
    let mut count = 0;
    for row in rows {
        let version = row.get::<_, i32>(0).unsigned_abs();
        let dek = keyring.version(tx, tenant, version).await?;
        let wrapped = keyring.provider().wrap(tenant, jurisdiction, &dek).await?;
        tx.execute(
            "UPDATE tenant_keys SET jurisdiction = $3, kek_id = $4, wrapped = $5
             WHERE tenant_id = $1 AND version = $2",
            &[
                tenant.as_uuid(),
                &as_i32(version),
                &wrapped.jurisdiction,
                &wrapped.kek_id,
                &wrapped.blob,
            ],
        )
        .await?;
        count += 1;
    }
    Ok(count)
}

/// One batch of re-encryption for `entry`: up to `limit` rows not under
/// `active`, resealed. Returns how many it rewrote (0: the column is done).
pub async fn reencrypt_batch(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    entry: &EncryptedColumn,
    active: u32,
    limit: u32,
) -> Result<u64, KeyringError> {
    let tenant = tx.tenant_id();
    let EncryptedColumn {
        table,
        column,
        aad_column,
        row_id,
        key,
    } = entry;
    let rows = tx
        .query(
            &format!(
                "SELECT {row_id} AS row_id, {key} AS key, {column} AS sealed FROM {table}
                 WHERE tenant_id = $1 AND {column} IS NOT NULL
                   AND substring({column} FROM 1 FOR 5) <> $2
                 ORDER BY {key} LIMIT $3 FOR UPDATE"
            ),
            &[tenant.as_uuid(), &header(active), &i64::from(limit)],
        )
        .await?;
    let dek = keyring.active(tx, tenant).await?;
    for row in &rows {
        let bound_row: String = row.get("row_id");
        let key_value: Uuid = row.get("key");
        let sealed: Vec<u8> = row.get("sealed");
        let binding = Binding {
            tenant,
            table,
            column: aad_column,
            row: &bound_row,
        };
        let plain = keyring.open(tx, &binding, &sealed).await?;
        let resealed = dek
            .seal(&binding, &plain)
            .map_err(|source| KeyringError::Unreadable {
                table: (*table).to_owned(),
                column: (*column).to_owned(),
                row: bound_row.clone(),
                source,
            })?;
        tx.execute(
            &format!("UPDATE {table} SET {column} = $3 WHERE tenant_id = $1 AND {key} = $2"),
            &[tenant.as_uuid(), &key_value, &resealed],
        )
        .await?;
    }
    Ok(rows.len() as u64)
}

/// Ciphertexts of the tenant not under `active`, over every registered column.
pub async fn remaining(tx: &TenantTx<'_>, active: u32) -> Result<i64, KeyringError> {
    let mut total = 0;
    for EncryptedColumn { table, column, .. } in ENCRYPTED {
        let row = tx
            .query_one(
                &format!(
                    "SELECT count(*) FROM {table} WHERE tenant_id = $1 AND {column} IS NOT NULL
                       AND substring({column} FROM 1 FOR 5) <> $2"
                ),
                &[tx.tenant_id().as_uuid(), &header(active)],
            )
            .await?;
        total += row.get::<_, i64>(0);
    }
    Ok(total)
}

/// The tenant's active version, if it has one.
pub async fn active_version(tx: &TenantTx<'_>) -> Result<Option<u32>, KeyringError> {
    Ok(tx
        .query_opt(
            "SELECT version FROM tenant_keys WHERE tenant_id = $1 AND state = 'active'",
            &[tx.tenant_id().as_uuid()],
        )
        .await?
        .map(|r| r.get::<_, i32>(0).unsigned_abs()))
}

/// The `keys.reencrypt` job (module doc): seals any plaintext secret left, then
/// rewrites every registered column in batches, then marks the retired versions
/// drained.
pub struct Reencrypt {
    pub keyring: std::sync::Arc<Keyring>,
    pub batch: u32,
}

/// A key job's failure: destroyed keys end it for good; anything else is
/// retried, with the cause (not the opaque API text) in the job's error.
pub(crate) fn job_error(err: crate::error::ApiError) -> crate::jobs::JobError {
    match err {
        crate::error::ApiError::TenantKeysDestroyed => {
            crate::jobs::JobError::Permanent("the tenant's keys were destroyed".into())
        }
        crate::error::ApiError::Internal(cause) => {
            crate::jobs::JobError::Retry(format!("{cause:#}"))
        }
        other => crate::jobs::JobError::Retry(other.to_string()),
    }
}

#[async_trait::async_trait(?Send)]
impl crate::jobs::JobHandler for Reencrypt {
    fn kind(&self) -> &'static str {
        REENCRYPT_KIND
    }

    async fn run(
        &self,
        ctx: &crate::jobs::JobContext,
        _payload: &serde_json::Value,
    ) -> Result<serde_json::Value, crate::jobs::JobError> {
        use crate::db::TxMode;
        let keyring = &self.keyring;
        let plaintext = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                Ok(super::secrets::seal_plaintext(keyring, tx).await?)
            })
            .await
            .map_err(job_error)?;
        let mut rewritten = 0u64;
        for entry in ENCRYPTED {
            loop {
                let done = ctx
                    .tenant_tx(TxMode::ReadWrite, async |tx| {
                        let Some(active) = active_version(tx).await? else {
                            return Ok(0);
                        };
                        let n = reencrypt_batch(keyring, tx, entry, active, self.batch).await?;
                        tx.execute(
                            "UPDATE tenant_keys SET rewritten = rewritten + $2
                             WHERE tenant_id = $1 AND version = $3",
                            &[
                                tx.tenant_id().as_uuid(),
                                &i64::try_from(n).unwrap_or(i64::MAX),
                                &as_i32(active),
                            ],
                        )
                        .await?;
                        Ok(n)
                    })
                    .await
                    .map_err(job_error)?;
                rewritten += done;
                if done == 0 {
                    break;
                }
            }
        }
        // Only now, and only if every column is clean in this very transaction,
        // are the old versions marked drained.
        let drained = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                let Some(active) = active_version(tx).await? else {
                    return Ok(0);
                };
                if remaining(tx, active).await? > 0 {
                    return Ok(0);
                }
                Ok(tx
                    .execute(
                        "UPDATE tenant_keys SET drained_at = now()
                         WHERE tenant_id = $1 AND state = 'retired' AND drained_at IS NULL",
                        &[tx.tenant_id().as_uuid()],
                    )
                    .await?)
            })
            .await
            .map_err(job_error)?;
        Ok(serde_json::json!({
            "plaintext_sealed": plaintext,
            "rewritten": rewritten,
            "versions_drained": drained,
        }))
    }
}

/// The rotation guard's one read: the re-encryption job of the active version
/// (found by its idempotency key, `keys.reencrypt:<version>`, through the
/// unique index on (tenant, key): no scan of the tenant's job history) if
/// still queued or running, and the seconds since the last rotation (the
/// active version's age; version 1 came from the tenant's first seal, not a
/// rotation). No row: the tenant has no key yet.
const GUARD_SQL: &str = "SELECT j.id AS pending, CASE WHEN k.version > 1 \
       THEN extract(epoch FROM now() - k.created_at)::float8 END AS age_s \
     FROM tenant_keys k LEFT JOIN jobs j ON j.tenant_id = k.tenant_id \
       AND j.idempotency_key = $2::text || ':' || k.version::text \
       AND j.state IN ('queued', 'running') \
     WHERE k.tenant_id = $1 AND k.state = 'active'";

/// Rotates and enqueues the re-encryption job in `tx`, audited as `actor`;
/// returns the new version and the job.
///
/// **Guard** (cost amplification: each rotation re-encrypts every encrypted
/// field of the tenant on the region's shared workers). Refused with 409
/// `rotation_in_progress` while the previous rotation's re-encryption job is
/// queued or running, for everyone (a job that died or failed for good does
/// not block: the new job covers its rows); with `min_interval` (tenant
/// owners), refused with 429 `rotation_too_frequent` until the active version
/// is that old. The guard reads in `tx`, the SERIALIZABLE transaction that
/// then creates the version and the job: two concurrent rotations both passing
/// it would both insert the same next version, and one fails (40001, retried,
/// and then sees the other's job). No check-then-act.
pub async fn rotate_and_reencrypt(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    actor: &str,
    min_interval: Option<std::time::Duration>,
) -> Result<(u32, crate::ids::JobId), crate::error::ApiError> {
    use crate::error::{ApiError, ErrorCode};
    let guard = tx
        .query_opt(GUARD_SQL, &[tx.tenant_id().as_uuid(), &REENCRYPT_KIND])
        .await?;
    let pending = guard
        .as_ref()
        .and_then(|g| g.get::<_, Option<Uuid>>("pending"));
    if let Some(job) = pending {
        return Err(ApiError::Conflict {
            code: ErrorCode::RotationInProgress,
            detail: format!(
                "the previous rotation's re-encryption (job {job}) is still running; rotate \
                 again once it is done"
            ),
        });
    }
    let age = guard
        .as_ref()
        .and_then(|g| g.get::<_, Option<f64>>("age_s"));
    if let (Some(min), Some(age)) = (min_interval, age) {
        let left = min.as_secs_f64() - age;
        if left > 0.0 {
            return Err(ApiError::RotationTooFrequent {
                retry_after_s: left.ceil() as u64,
            });
        }
    }
    let version = rotate(keyring, tx).await?;
    let job = crate::jobs::NewJob {
        // The guard above finds the job by this key.
        idempotency_key: Some(format!("{REENCRYPT_KIND}:{version}")),
        max_attempts: 100,
        ..crate::jobs::NewJob::new(REENCRYPT_KIND, serde_json::json!({ "version": version }))
    };
    let job_id = crate::jobs::enqueue(tx, job).await?;
    crate::audit::record(
        tx,
        actor,
        "keys_rotated",
        Some(("tenant", tx.tenant_id().to_string())),
        serde_json::json!({ "version": version, "job_id": job_id }),
    )
    .await?;
    Ok((version, job_id))
}

/// The job kind of scheduled rotation (`encryption.rotate_after_days`).
pub const ROTATE_CHECK_KIND: &str = "keys.rotate_check";

/// Daily per tenant (a `ScheduleScope::EachTenant` schedule): rotates when the
/// active version is older than `after_days`. A tenant without keys, or with
/// destroyed ones, is left alone.
pub struct RotateCheck {
    pub keyring: std::sync::Arc<Keyring>,
    pub after_days: u32,
}

#[async_trait::async_trait(?Send)]
impl crate::jobs::JobHandler for RotateCheck {
    fn kind(&self) -> &'static str {
        ROTATE_CHECK_KIND
    }

    async fn run(
        &self,
        ctx: &crate::jobs::JobContext,
        _payload: &serde_json::Value,
    ) -> Result<serde_json::Value, crate::jobs::JobError> {
        let keyring = &self.keyring;
        let days = i64::from(self.after_days);
        let rotated = ctx
            .tenant_tx(crate::db::TxMode::ReadWrite, async |tx| {
                let due = tx
                    .query_opt(
                        "SELECT version FROM tenant_keys WHERE tenant_id = $1 AND state = 'active'
                           AND created_at < now() - $2::bigint * interval '1 day'",
                        &[tx.tenant_id().as_uuid(), &days],
                    )
                    .await?;
                if due.is_none() {
                    return Ok(None);
                }
                match rotate_and_reencrypt(keyring, tx, "schedule", None).await {
                    // An on-demand rotation is still re-encrypting: tomorrow.
                    Err(e) if e.code() == crate::error::ErrorCode::RotationInProgress => Ok(None),
                    other => Ok(Some(other?)),
                }
            })
            .await
            .map_err(job_error)?;
        Ok(serde_json::json!({ "rotated_to": rotated.map(|(v, _)| v) }))
    }
}
