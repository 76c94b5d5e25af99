//! Who may link which collection (`calendar_grants`, V34): a tenant admin
//! grants a collection of an account to one user or to everyone in the tenant;
//! a link is inserted only under a grant (`calendars::LINK_SQL`), and revoking
//! a grant deletes the links no other grant still covers, with their events.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::db::TenantTx;
use crate::error::ErrorCode;
use crate::ids::{CalendarAccountId, CalendarGrantId, UserId};
use crate::pagination::{Keyset, Page};
use crate::store::error::StoreError;
use crate::store::page::{keyset_page, keyset_sql};

use super::accounts::get_account;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Grant {
    pub id: CalendarGrantId,
    pub account_id: CalendarAccountId,
    /// The collection's canonical path on the account's server.
    pub path: String,
    /// The user it is granted to; `null`: everyone in the tenant.
    pub user_id: Option<UserId>,
    /// The admin who granted it; `null` for the grants V34 made for the links
    /// that existed before grants did.
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

macro_rules! grant_columns {
    () => {
        "id, account_id, path, user_id, created_by, created_at"
    };
}
const GRANT_COLUMNS: &str = grant_columns!();
const GRANTS_PAGE: &str = keyset_sql!(grant_columns!(), "calendar_grants", "AND account_id = $5");

fn grant(row: &Row) -> Grant {
    Grant {
        id: CalendarGrantId::from_uuid(row.get("id")),
        account_id: CalendarAccountId::from_uuid(row.get("account_id")),
        path: row.get("path"),
        user_id: row
            .get::<_, Option<uuid::Uuid>>("user_id")
            .map(UserId::from_uuid),
        created_by: row
            .get::<_, Option<uuid::Uuid>>("created_by")
            .map(UserId::from_uuid),
        created_at: row.get("created_at"),
    }
}

/// Grants `path` (canonical, `calendar::path`) of `account` to `user` (`None`:
/// everyone). The user must be in the tenant and not erased, read `FOR SHARE`
/// in the inserting transaction: an erasure racing it (which updates that row
/// and deletes the user's grants) waits for it, and the serializable
/// transactions let only one order stand (`compliance::erasure`).
pub async fn create_grant(
    tx: &TenantTx<'_>,
    account: CalendarAccountId,
    path: &str,
    user: Option<UserId>,
    by: UserId,
) -> Result<Grant, StoreError> {
    get_account(tx, account).await?;
    if let Some(user) = user {
        let known = tx
            .query_opt(
                "SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 AND status <> 'deleted' \
                 FOR SHARE",
                &[tx.tenant_id().as_uuid(), user.as_uuid()],
            )
            .await?;
        if known.is_none() {
            return Err(StoreError::Conflict {
                code: ErrorCode::CalendarGrantUserUnknown,
                detail: format!("no user {user} in this tenant"),
            });
        }
    }
    // `DO NOTHING` on either unique index (per user, or for everyone).
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO calendar_grants (tenant_id, id, home_region, account_id, path, \
                    user_id, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT DO NOTHING RETURNING {GRANT_COLUMNS}"
            ),
            &[
                tx.tenant_id().as_uuid(),
                CalendarGrantId::new_random().as_uuid(),
                &tx.home_region().as_str(),
                account.as_uuid(),
                &path,
                &user.map(|u| *u.as_uuid()),
                by.as_uuid(),
            ],
        )
        .await?;
    row.map(|row| grant(&row))
        .ok_or_else(|| StoreError::Conflict {
            code: ErrorCode::CalendarGrantExists,
            detail: "this collection is already granted to this user (or to everyone)".into(),
        })
}

pub async fn grants_page(
    tx: &TenantTx<'_>,
    account: CalendarAccountId,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<Grant>, StoreError> {
    get_account(tx, account).await?;
    let read = |row: &Row| Ok(grant(row));
    keyset_page(
        tx,
        GRANTS_PAGE,
        &[account.as_uuid()],
        limit,
        after,
        read,
        |g| Keyset {
            at: g.created_at,
            id: *g.id.as_uuid(),
        },
    )
    .await
}

/// The links a revoked grant leaves uncovered: of the grant's collection, its
/// user's (or anyone's, for an everyone grant) that no remaining grant gives
/// their user. Their events go with them (V23's cascade), as when an account is
/// deleted. `$1` tenant, `$2` account, `$3` path, `$4` the grant's user or NULL.
const UNCOVERED_LINKS_SQL: &str = "DELETE FROM calendar_links l \
     WHERE l.tenant_id = $1 AND l.account_id = $2 AND l.path = $3 \
       AND ($4::uuid IS NULL OR l.user_id = $4) \
       AND NOT EXISTS (SELECT 1 FROM calendar_grants g \
           WHERE g.tenant_id = l.tenant_id AND g.account_id = l.account_id \
             AND g.path = l.path AND (g.user_id = l.user_id OR g.user_id IS NULL))";

/// Revokes a grant and deletes, in this transaction, the links (and events) it
/// alone covered; returns the grant and how many links went.
pub async fn revoke_grant(
    tx: &TenantTx<'_>,
    account: CalendarAccountId,
    id: CalendarGrantId,
) -> Result<(Grant, u64), StoreError> {
    get_account(tx, account).await?;
    let revoked = tx
        .query_opt(
            &format!(
                "DELETE FROM calendar_grants WHERE tenant_id = $1 AND account_id = $2 AND id = $3 \
                 RETURNING {GRANT_COLUMNS}"
            ),
            &[tx.tenant_id().as_uuid(), account.as_uuid(), id.as_uuid()],
        )
        .await?
        .map(|row| grant(&row))
        .ok_or_else(|| StoreError::not_found("calendar_grant", *id.as_uuid()))?;
    let unlinked = tx
        .execute(
            UNCOVERED_LINKS_SQL,
            &[
                tx.tenant_id().as_uuid(),
                account.as_uuid(),
                &revoked.path,
                &revoked.user_id.map(|u| *u.as_uuid()),
            ],
        )
        .await?;
    Ok((revoked, unlinked))
}
