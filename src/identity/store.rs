//! `identity_providers`: every statement on the table, in the tenant's
//! transaction. The secret is sealed with the tenant's DEK (`secret_sealed`,
//! `crypto::secrets`), written here and opened only by `secret_of` and
//! `for_signin` (for the code that talks to the provider), never by `get`/`list`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::{LdapConfig, OidcConfig, ProviderKind, RoleMapping};
use crate::auth::Role;
use crate::crypto::keyring::Keyring;
use crate::crypto::secrets;
use crate::db::TenantTx;
use crate::ids::ProviderId;
use crate::pagination::{Keyset, Page, keyset_page};
use crate::secret::Secret;
use crate::store::StoreError;

/// An identity provider as the API shows it: everything but the secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IdentityProvider {
    pub id: ProviderId,
    pub kind: ProviderKind,
    pub name: String,
    pub enabled: bool,
    /// Set for `kind: oidc`.
    pub oidc: Option<OidcConfig>,
    /// Set for `kind: ldap`.
    pub ldap: Option<LdapConfig>,
    /// Whether a secret is stored (it is never returned).
    pub has_secret: bool,
    pub role_mappings: Vec<RoleMapping>,
    /// The role of users in no mapped group; `null`: such users are refused.
    pub default_role: Option<Role>,
    /// Sign-ins whose email is in none of these domains are refused; empty: any.
    pub allowed_email_domains: Vec<String>,
    /// Exact URIs a sign-in may return to.
    pub redirect_uris: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The provider's settings, as written (checked by the API layer).
pub struct ProviderFields {
    pub name: String,
    pub enabled: bool,
    pub oidc: Option<OidcConfig>,
    pub ldap: Option<LdapConfig>,
    pub role_mappings: Vec<RoleMapping>,
    pub default_role: Option<Role>,
    pub allowed_email_domains: Vec<String>,
    pub redirect_uris: Vec<String>,
}

const COLUMNS: &str = "id, kind, name, enabled, config, (secret IS NOT NULL OR secret_sealed IS NOT NULL) AS has_secret, \
                       role_mappings, default_role, allowed_email_domains, redirect_uris, \
                       created_at, updated_at";

fn bad_row(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(anyhow::anyhow!("identity_providers: bad {what}: {e}"))
}

fn from_row(row: &Row) -> Result<IdentityProvider, StoreError> {
    let kind: String = row.get("kind");
    let kind = ProviderKind::parse(&kind).ok_or_else(|| bad_row("kind", &kind))?;
    let config: serde_json::Value = row.get("config");
    let (oidc, ldap) = match kind {
        ProviderKind::Oidc => (
            Some(serde_json::from_value(config).map_err(|e| bad_row("config", e))?),
            None,
        ),
        ProviderKind::Ldap => (
            None,
            Some(serde_json::from_value(config).map_err(|e| bad_row("config", e))?),
        ),
    };
    let default_role: Option<String> = row.get("default_role");
    Ok(IdentityProvider {
        id: ProviderId::from_uuid(row.get("id")),
        kind,
        name: row.get("name"),
        enabled: row.get("enabled"),
        oidc,
        ldap,
        has_secret: row.get("has_secret"),
        role_mappings: serde_json::from_value(row.get("role_mappings"))
            .map_err(|e| bad_row("role_mappings", e))?,
        default_role: default_role
            .map(|r| Role::parse(&r).ok_or_else(|| bad_row("default_role", &r)))
            .transpose()?,
        allowed_email_domains: row.get("allowed_email_domains"),
        redirect_uris: row.get("redirect_uris"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn not_found(id: ProviderId) -> StoreError {
    StoreError::not_found("identity_provider", *id.as_uuid())
}

fn config_json(fields: &ProviderFields) -> Result<serde_json::Value, StoreError> {
    match (&fields.oidc, &fields.ldap) {
        (Some(oidc), None) => serde_json::to_value(oidc).map_err(StoreError::internal),
        (None, Some(ldap)) => serde_json::to_value(ldap).map_err(StoreError::internal),
        _ => Err(StoreError::internal(anyhow::anyhow!(
            "a provider has exactly one kind's settings"
        ))),
    }
}

fn mappings_json(fields: &ProviderFields) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(&fields.role_mappings).map_err(StoreError::internal)
}

pub async fn create(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    kind: ProviderKind,
    fields: &ProviderFields,
    secret: Option<&Secret>,
) -> Result<IdentityProvider, StoreError> {
    let sql = format!(
        "INSERT INTO identity_providers (tenant_id, id, home_region, kind, name, enabled, config,
                secret_sealed, role_mappings, default_role, allowed_email_domains, redirect_uris)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    );
    let id = ProviderId::new_random();
    let sealed = match secret {
        Some(secret) => Some(seal(keyring, tx, id, secret).await?),
        None => None,
    };
    let row = tx
        .query_one(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &tx.home_region().as_str(),
                &kind.as_str(),
                &fields.name,
                &fields.enabled,
                &config_json(fields)?,
                &sealed,
                &mappings_json(fields)?,
                &fields.default_role.map(Role::as_str),
                &fields.allowed_email_domains,
                &fields.redirect_uris,
            ],
        )
        .await?;
    from_row(&row)
}

pub async fn list(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<IdentityProvider>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM identity_providers
         WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = tx
        .query(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                &after.map(|k| k.at),
                &after.map(|k| k.id),
                &(i64::from(limit) + 1),
            ],
        )
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(keyset_page(items, limit, |p| Keyset {
        at: p.created_at,
        id: *p.id.as_uuid(),
    }))
}

/// The provider; `for_update` locks its row (a PATCH decides on what it read).
pub async fn get(
    tx: &TenantTx<'_>,
    id: ProviderId,
    for_update: bool,
) -> Result<IdentityProvider, StoreError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql =
        format!("SELECT {COLUMNS} FROM identity_providers WHERE tenant_id = $1 AND id = $2{lock}");
    match tx
        .query_opt(&sql, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?
    {
        Some(row) => from_row(&row),
        None => Err(not_found(id)),
    }
}

/// The enabled provider of `kind` a sign-in uses: `id` when given, else the
/// tenant's only one of that kind (`None` when there is none, or several).
pub async fn for_signin(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    kind: ProviderKind,
    id: Option<ProviderId>,
) -> Result<Option<(IdentityProvider, Option<Secret>)>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, secret, secret_sealed FROM identity_providers
         WHERE tenant_id = $1 AND kind = $2 AND enabled AND ($3::uuid IS NULL OR id = $3) LIMIT 2"
    );
    let rows = tx
        .query(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                &kind.as_str(),
                &id.map(|i| *i.as_uuid()),
            ],
        )
        .await?;
    let [row] = rows.as_slice() else {
        return Ok(None);
    };
    let provider = from_row(row)?;
    let secret = open(keyring, tx, provider.id, row).await?;
    Ok(Some((provider, secret)))
}

/// The stored secret, for the code that presents it to the provider.
pub async fn secret_of(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    id: ProviderId,
) -> Result<Option<Secret>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT secret, secret_sealed FROM identity_providers WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    open(keyring, tx, id, &row).await
}

async fn seal(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    id: ProviderId,
    secret: &Secret,
) -> Result<Vec<u8>, StoreError> {
    Ok(secrets::seal(
        keyring,
        tx,
        "identity_providers",
        *id.as_uuid(),
        secret.expose(),
    )
    .await?)
}

/// The row's secret: its sealed column opened, or a legacy plaintext not yet
/// sealed (`crypto::secrets::seal_plaintext`).
async fn open(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    id: ProviderId,
    row: &Row,
) -> Result<Option<Secret>, StoreError> {
    Ok(secrets::open(
        keyring,
        tx,
        "identity_providers",
        *id.as_uuid(),
        row.get("secret_sealed"),
        row.get("secret"),
    )
    .await?)
}

/// Writes `fields` over the provider; `secret` replaces the stored one when given.
pub async fn update(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    id: ProviderId,
    fields: &ProviderFields,
    secret: Option<&Secret>,
) -> Result<IdentityProvider, StoreError> {
    let sql = format!(
        "UPDATE identity_providers SET name = $3, enabled = $4, config = $5,
                secret_sealed = COALESCE($6, secret_sealed),
                secret = CASE WHEN $6::bytea IS NULL THEN secret END, role_mappings = $7, default_role = $8,
                allowed_email_domains = $9, redirect_uris = $10, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let sealed = match secret {
        Some(secret) => Some(seal(keyring, tx, id, secret).await?),
        None => None,
    };
    let row = tx
        .query_opt(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &fields.name,
                &fields.enabled,
                &config_json(fields)?,
                &sealed,
                &mappings_json(fields)?,
                &fields.default_role.map(Role::as_str),
                &fields.allowed_email_domains,
                &fields.redirect_uris,
            ],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    from_row(&row)
}

/// Deletes the provider; its external identities go with it (FK cascade), so
/// its users can no longer sign in through it. Their sessions are ended by the
/// caller (`sessions::store::revoke_provider`).
pub async fn delete(tx: &TenantTx<'_>, id: ProviderId) -> Result<(), StoreError> {
    let deleted = tx
        .execute(
            "DELETE FROM identity_providers WHERE tenant_id = $1 AND id = $2",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?;
    if deleted == 0 {
        return Err(not_found(id));
    }
    Ok(())
}
