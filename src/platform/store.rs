//! Every statement on `platform_users`, `platform_refresh_tokens` and
//! `platform_oidc_sign_ins`, in a platform transaction. Token and flow rows are
//! found by their hash and locked (`FOR UPDATE`), as the tenants' are
//! (`sessions::store`, `identity::oidc`), so two refreshes racing with one
//! token cannot both rotate it.

use tokio_postgres::Row;
use uuid::Uuid;

use super::{PlatformUser, PlatformUserStatus};
use crate::auth::Role;
use crate::db::PlatformTx;
use crate::sessions::REFRESH_TTL_SECONDS;
use crate::store::StoreError;
use crate::store::error::{Unique, taken};

const COLUMNS: &str = "id, issuer, subject, email, role, status, created_at, updated_at";

fn user(row: &Row) -> Result<PlatformUser, StoreError> {
    let role: String = row.get(4);
    let role = Role::parse(&role)
        .filter(|r| r.is_platform_role())
        .ok_or_else(|| StoreError::internal(anyhow::anyhow!("platform user role `{role}`")))?;
    Ok(PlatformUser {
        id: row.get(0),
        issuer: row.get(1),
        subject: row.get(2),
        email: row.get(3),
        role,
        status: PlatformUserStatus::parse(row.get(5)),
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}

pub async fn get(tx: &PlatformTx<'_>, id: Uuid) -> Result<Option<PlatformUser>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM platform_users WHERE id = $1");
    tx.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

/// The user the provider `issuer` knows as `subject` (never found by email).
pub async fn find(
    tx: &PlatformTx<'_>,
    issuer: &str,
    subject: &str,
) -> Result<Option<PlatformUser>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM platform_users WHERE issuer = $1 AND subject = $2");
    tx.query_opt(&sql, &[&issuer, &subject])
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

/// Every platform user, oldest first (platform staff are a handful of people).
pub async fn list(tx: &PlatformTx<'_>) -> Result<Vec<PlatformUser>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM platform_users ORDER BY created_at, id LIMIT 1000");
    tx.query(&sql, &[]).await?.iter().map(user).collect()
}

pub async fn create(
    tx: &PlatformTx<'_>,
    issuer: &str,
    subject: &str,
    email: &str,
    role: Role,
) -> Result<PlatformUser, StoreError> {
    let sql = format!(
        "INSERT INTO platform_users (id, issuer, subject, email, role)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    let row = tx
        .query_one(
            &sql,
            &[&Uuid::now_v7(), &issuer, &subject, &email, &role.as_str()],
        )
        .await
        .map_err(taken(Unique::PlatformIdentity, || {
            "a platform user with this issuer and subject exists".into()
        }))?;
    user(&row)
}

/// Changes a user's status and/or role; `None` when there is no such user.
/// Refuses (`LastPlatformAdmin`) a change that would leave no active platform
/// admin: the active admins' rows are locked (`FOR UPDATE`) before the count,
/// so of two concurrent demotions of the last two admins the second waits for
/// the first and counts one (SERIALIZABLE would abort it otherwise anyway).
pub async fn update(
    tx: &PlatformTx<'_>,
    id: Uuid,
    status: Option<PlatformUserStatus>,
    role: Option<Role>,
) -> Result<Option<PlatformUser>, StoreError> {
    let admins: Vec<Uuid> = tx
        .query(
            "SELECT id FROM platform_users WHERE role = 'platform_admin' AND status = 'active'
             ORDER BY id FOR UPDATE",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let stays_admin = role.is_none_or(|r| r == Role::PlatformAdmin)
        && status.is_none_or(|s| s == PlatformUserStatus::Active);
    if admins.contains(&id) && !stays_admin && admins.len() <= 1 {
        return Err(StoreError::LastPlatformAdmin);
    }
    let sql = format!(
        "UPDATE platform_users SET status = COALESCE($2, status), role = COALESCE($3, role),
                updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let status = status.map(PlatformUserStatus::as_str);
    let role = role.map(Role::as_str);
    tx.query_opt(&sql, &[&id, &status, &role])
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

/// A stored platform refresh token, as a refresh decides on it.
pub struct StoredToken {
    pub id: Uuid,
    pub family: Uuid,
    pub user: Uuid,
    /// Neither rotated nor revoked.
    pub active: bool,
    pub expired: bool,
}

/// The token whose hash is `hash`, locked for the rest of the transaction.
pub async fn find_token(
    tx: &PlatformTx<'_>,
    hash: &[u8],
) -> Result<Option<StoredToken>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, family_id, user_id, state = 'active', expires_at <= now()
             FROM platform_refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            &[&hash],
        )
        .await?;
    Ok(row.map(|row| StoredToken {
        id: row.get(0),
        family: row.get(1),
        user: row.get(2),
        active: row.get(3),
        expired: row.get(4),
    }))
}

pub async fn insert_token(
    tx: &PlatformTx<'_>,
    family: Uuid,
    user: Uuid,
    hash: &[u8],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO platform_refresh_tokens (id, family_id, user_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 second')",
        &[&Uuid::now_v7(), &family, &user, &hash, &REFRESH_TTL_SECONDS],
    )
    .await?;
    Ok(())
}

pub async fn mark_rotated(tx: &PlatformTx<'_>, id: Uuid) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE platform_refresh_tokens SET state = 'rotated' WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Ends every token of `family`; the number that were still active.
pub async fn revoke_family(tx: &PlatformTx<'_>, family: Uuid) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            "UPDATE platform_refresh_tokens SET state = 'revoked'
             WHERE family_id = $1 AND state = 'active'",
            &[&family],
        )
        .await?)
}

/// A platform sign-in in flight, as the callback finds it.
pub struct Flow {
    pub nonce: String,
    pub verifier: String,
    pub redirect_uri: String,
}

pub async fn store_flow(
    tx: &PlatformTx<'_>,
    state_hash: &[u8],
    nonce: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO platform_oidc_sign_ins (id, state_hash, nonce, code_verifier, redirect_uri,
                                             expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + $6::bigint * interval '1 second')",
        &[
            &Uuid::now_v7(),
            &state_hash,
            &nonce,
            &verifier,
            &redirect_uri,
            &crate::identity::oidc::FLOW_TTL_SECONDS,
        ],
    )
    .await?;
    Ok(())
}

/// Uses up the flow of `state_hash`: `Err(reason)` when there is none, it
/// expired, or it was used already (a replay).
pub async fn take_flow(
    tx: &PlatformTx<'_>,
    state_hash: &[u8],
) -> Result<Result<Flow, &'static str>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT id, nonce, code_verifier, redirect_uri, used_at IS NOT NULL,
                    expires_at <= now()
             FROM platform_oidc_sign_ins WHERE state_hash = $1 FOR UPDATE",
            &[&state_hash],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err("unknown_state"));
    };
    if row.get::<_, bool>(4) {
        return Ok(Err("state_replayed"));
    }
    if row.get::<_, bool>(5) {
        return Ok(Err("state_expired"));
    }
    let id: Uuid = row.get(0);
    tx.execute(
        "UPDATE platform_oidc_sign_ins SET used_at = now() WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(Ok(Flow {
        nonce: row.get(1),
        verifier: row.get(2),
        redirect_uri: row.get(3),
    }))
}
