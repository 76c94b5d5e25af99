//! `refresh_tokens`: every statement on the table, in the tenant's transaction.
//! A token row is found by its hash and locked (`FOR UPDATE`), so two refreshes
//! racing with one token cannot both rotate it: the second waits, then sees it
//! `rotated` (SERIALIZABLE would abort one of them otherwise).

use uuid::Uuid;

use super::{REFRESH_TTL_SECONDS, RefreshToken};
use crate::db::TenantTx;
use crate::ids::{ProviderId, UserId};
use crate::store::StoreError;

/// A stored refresh token, as a refresh decides on it.
pub struct Stored {
    pub id: Uuid,
    pub family: Uuid,
    pub user: UserId,
    pub provider: Option<ProviderId>,
    /// Neither rotated nor revoked.
    pub active: bool,
    pub expired: bool,
}

/// The token whose hash is `hash`, locked for the rest of the transaction.
pub async fn find(tx: &TenantTx<'_>, hash: &[u8]) -> Result<Option<Stored>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, family_id, user_id, provider_id, state = 'active', expires_at <= now()
             FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2 FOR UPDATE",
            &[tx.tenant_id().as_uuid(), &hash],
        )
        .await?;
    Ok(row.map(|row| Stored {
        id: row.get(0),
        family: row.get(1),
        user: UserId::from_uuid(row.get(2)),
        provider: row.get::<_, Option<Uuid>>(3).map(ProviderId::from_uuid),
        active: row.get(4),
        expired: row.get(5),
    }))
}

/// Stores `token` as the newest of `family` (a new family for a sign-in).
pub async fn insert(
    tx: &TenantTx<'_>,
    family: Uuid,
    user: UserId,
    provider: Option<ProviderId>,
    token: &RefreshToken,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO refresh_tokens (tenant_id, id, home_region, family_id, user_id, provider_id,
                                     token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::bigint * interval '1 second')",
        &[
            tx.tenant_id().as_uuid(),
            &Uuid::now_v7(),
            &tx.home_region().as_str(),
            &family,
            user.as_uuid(),
            &provider.map(|p| *p.as_uuid()),
            &token.hash(),
            &REFRESH_TTL_SECONDS,
        ],
    )
    .await?;
    Ok(())
}

pub async fn mark_rotated(tx: &TenantTx<'_>, id: Uuid) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE refresh_tokens SET state = 'rotated' WHERE tenant_id = $1 AND id = $2",
        &[tx.tenant_id().as_uuid(), &id],
    )
    .await?;
    Ok(())
}

/// Ends every token of `family`; the number of tokens that were still active.
pub async fn revoke_family(tx: &TenantTx<'_>, family: Uuid) -> Result<u64, StoreError> {
    let revoked = tx
        .execute(
            "UPDATE refresh_tokens SET state = 'revoked'
             WHERE tenant_id = $1 AND family_id = $2 AND state = 'active'",
            &[tx.tenant_id().as_uuid(), &family],
        )
        .await?;
    Ok(revoked)
}

/// Ends the sessions started through `provider` (it is being deleted).
pub async fn revoke_provider(tx: &TenantTx<'_>, provider: ProviderId) -> Result<u64, StoreError> {
    let revoked = tx
        .execute(
            "UPDATE refresh_tokens SET state = 'revoked'
             WHERE tenant_id = $1 AND provider_id = $2 AND state = 'active'",
            &[tx.tenant_id().as_uuid(), provider.as_uuid()],
        )
        .await?;
    Ok(revoked)
}
