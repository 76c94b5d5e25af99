//! Stored secrets, always sealed with the tenant's DEK: identity-provider
//! secrets (OIDC client secrets, LDAP bind passwords) and webhook signing
//! secrets (current and rotated-out). Each has a `bytea` column next to the
//! plaintext `text` column of earlier versions (V18):
//!
//! | table | plaintext (legacy) | sealed | AAD column |
//! | --- | --- | --- | --- |
//! | `identity_providers` | `secret` | `secret_sealed` | `secret` |
//! | `webhook_endpoints` | `secret` | `secret_sealed` | `secret` |
//! | `webhook_endpoints` | `previous_secret` | `previous_secret_sealed` | `secret` |
//! | `calendar_accounts` | — (sealed from the start, V23) | `secret_sealed` | `secret` |
//!
//! A webhook's two secrets share the AAD column `secret` on purpose: a rotation
//! moves the current secret to `previous_secret_sealed` in SQL, without opening
//! it; swapping the two in SQL gains nothing (both are that endpoint's). The row
//! and tenant are bound as for every field.
//!
//! New writes fill only the sealed column. Rows written in plaintext (before the
//! upgrade, or by a node of the previous version during a rolling upgrade) are
//! still read, and [`seal_plaintext`] seals them and sets the plaintext to NULL:
//! every node runs it for the tenants of its region at start and every re-
//! encryption job runs it for its tenant, so after the upgrade none is left.
//!
//! Process-level secrets (the hop secret, the platform OIDC client secret, the
//! database password) are never stored in the database: they come from the
//! node's configuration or environment.

use uuid::Uuid;

use super::envelope::Binding;
use super::keyring::{Keyring, KeyringError};
use crate::db::TenantTx;
use crate::secret::Secret;

/// (table, plaintext column, sealed column, AAD column) of every stored secret;
/// the row id is the table's `id`.
pub const SECRET_COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("identity_providers", "secret", "secret_sealed", "secret"),
    ("webhook_endpoints", "secret", "secret_sealed", "secret"),
    (
        "webhook_endpoints",
        "previous_secret",
        "previous_secret_sealed",
        "secret",
    ),
];

fn binding<'a>(tx: &TenantTx<'_>, table: &'a str, row: &'a str) -> Binding<'a> {
    Binding {
        tenant: tx.tenant_id(),
        table,
        column: "secret",
        row,
    }
}

/// `value` sealed for `table`'s row `id` (the AAD column is `secret`).
pub async fn seal(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    table: &str,
    id: Uuid,
    value: &str,
) -> Result<Vec<u8>, KeyringError> {
    let row = id.to_string();
    keyring
        .seal(
            tx,
            tx.tenant_id(),
            &binding(tx, table, &row),
            value.as_bytes(),
        )
        .await
}

/// The secret of `table`'s row `id`: opened from `sealed`, else the legacy
/// plaintext, else none.
pub async fn open(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    table: &str,
    id: Uuid,
    sealed: Option<Vec<u8>>,
    plaintext: Option<String>,
) -> Result<Option<Secret>, KeyringError> {
    let Some(sealed) = sealed else {
        return Ok(plaintext.map(Secret::new));
    };
    let row = id.to_string();
    let plain = keyring.open(tx, &binding(tx, table, &row), &sealed).await?;
    let text = String::from_utf8(plain.to_vec()).map_err(|_| KeyringError::Unreadable {
        table: table.to_owned(),
        column: "secret".to_owned(),
        row: row.clone(),
        source: super::envelope::EnvelopeError::Format,
    })?;
    Ok(Some(Secret::new(text)))
}

/// Seals the plaintext secrets left in the transaction's tenant (see the module
/// doc); returns how many it sealed. Idempotent: it only touches rows whose
/// plaintext column is still set.
pub async fn seal_plaintext(keyring: &Keyring, tx: &TenantTx<'_>) -> Result<u64, KeyringError> {
    let mut sealed = 0;
    for (table, plain, sealed_column, _) in SECRET_COLUMNS {
        let rows = tx
            .query(
                &format!(
                    "SELECT id, {plain} FROM {table}
                     WHERE tenant_id = $1 AND {plain} IS NOT NULL FOR UPDATE"
                ),
                &[tx.tenant_id().as_uuid()],
            )
            .await?;
        for row in rows {
            let id: Uuid = row.get(0);
            let value = Secret::new(row.get::<_, String>(1));
            let ciphertext = seal(keyring, tx, table, id, value.expose()).await?;
            tx.execute(
                &format!(
                    "UPDATE {table} SET {sealed_column} = $3, {plain} = NULL
                     WHERE tenant_id = $1 AND id = $2"
                ),
                &[tx.tenant_id().as_uuid(), &id, &ciphertext],
            )
            .await?;
            sealed += 1;
        }
    }
    Ok(sealed)
}

/// Seals the plaintext secrets left in every tenant homed in `region` (a node
/// runs it once at start, in the background): the upgrade path for rows written
/// before V18 or by a node of the previous version. Returns how many it sealed;
/// a tenant that fails is logged and left for the next start or its next
/// re-encryption job.
pub async fn sweep_region(
    db: &crate::db::Database,
    keyring: &Keyring,
    region: &crate::ids::RegionId,
) -> u64 {
    use crate::db::TxMode;
    let tenants = db
        .platform_tx(TxMode::ReadOnly, async |tx| {
            Ok(tx
                .query(
                    "SELECT id FROM tenants WHERE home_region = $1",
                    &[&region.as_str()],
                )
                .await?)
        })
        .await;
    let tenants = match tenants {
        Ok(rows) => rows,
        Err(err) => {
            tracing::warn!(error = %err, "plaintext secret sweep: listing tenants failed");
            return 0;
        }
    };
    let mut total = 0;
    for row in tenants {
        let tenant = crate::ids::TenantId::from_uuid(row.get(0));
        let sealed = db
            .tenant_tx(tenant, region, None, TxMode::ReadWrite, async |tx| {
                Ok(seal_plaintext(keyring, tx).await?)
            })
            .await;
        match sealed {
            Ok(n) => total += n,
            Err(err) => {
                tracing::warn!(tenant = %tenant, error = %err, "plaintext secret sweep failed");
            }
        }
    }
    if total > 0 {
        tracing::info!(sealed = total, "plaintext secrets sealed");
    }
    total
}
