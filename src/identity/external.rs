//! `external_identities`: who a provider says a user is. Sign-in finds a user
//! by (provider, subject) only — never by email, which a provider (or whoever
//! controls a directory entry) can set to anything.

use crate::db::TenantTx;
use crate::ids::{ProviderId, UserId};
use crate::store::StoreError;

pub async fn find(
    tx: &TenantTx<'_>,
    provider: ProviderId,
    subject: &str,
) -> Result<Option<UserId>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT user_id FROM external_identities
             WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3",
            &[tx.tenant_id().as_uuid(), provider.as_uuid(), &subject],
        )
        .await?;
    Ok(row.map(|r| UserId::from_uuid(r.get(0))))
}

/// The subject `user` has at `provider` (the refresh's directory re-check).
pub async fn subject_of(
    tx: &TenantTx<'_>,
    provider: ProviderId,
    user: UserId,
) -> Result<Option<String>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT subject FROM external_identities
             WHERE tenant_id = $1 AND provider_id = $2 AND user_id = $3 LIMIT 1",
            &[tx.tenant_id().as_uuid(), provider.as_uuid(), user.as_uuid()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn link(
    tx: &TenantTx<'_>,
    provider: ProviderId,
    subject: &str,
    user: UserId,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO external_identities (tenant_id, provider_id, subject, home_region, user_id)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            tx.tenant_id().as_uuid(),
            provider.as_uuid(),
            &subject,
            &tx.home_region().as_str(),
            user.as_uuid(),
        ],
    )
    .await?;
    Ok(())
}
