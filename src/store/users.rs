//! Users of a tenant. Deleting a user is a soft delete (status `deleted`): their
//! messages keep an author id, their email becomes free again, their tokens die.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::error::{StoreError, Unique, taken};
use super::page::{keyset_page, keyset_sql};
use crate::auth::Role;
use crate::db::DbError;
use crate::db::TenantTx;
use crate::ids::UserId;
use crate::outbox::{self, Event};
use crate::pagination::{Keyset, Page};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub status: UserStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns `from_row` reads, as a literal so that statements can be constants
/// (`concat!`), listed by `store::hot_statements`.
macro_rules! columns {
    () => {
        "id, email, display_name, role, status, created_at, updated_at"
    };
}
const COLUMNS: &str = columns!();

pub const LIST_SQL: &str = keyset_sql!(columns!(), "users", "AND status <> 'deleted'");
pub const GET_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM users WHERE tenant_id = $1 AND id = $2 AND status <> 'deleted'"
);

fn from_row(row: &Row) -> Result<User, StoreError> {
    let role: String = row.get("role");
    let status: String = row.get("status");
    Ok(User {
        id: UserId::from_uuid(row.get("id")),
        email: row.get("email"),
        display_name: row.get("display_name"),
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::internal(anyhow::anyhow!("bad role {role}")))?,
        status: if status == "active" {
            UserStatus::Active
        } else {
            UserStatus::Disabled
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn email_taken(err: DbError) -> StoreError {
    taken(Unique::UserEmail, || {
        "a user with this email already exists in the tenant".into()
    })(err)
}

pub async fn create(
    tx: &TenantTx<'_>,
    email: &str,
    display_name: &str,
    role: Role,
) -> Result<User, StoreError> {
    let sql = format!(
        "INSERT INTO users (tenant_id, id, home_region, email, display_name, role)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    );
    let id = UserId::new_random();
    let row = tx
        .query_one(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &tx.home_region().as_str(),
                &email,
                &display_name,
                &role.as_str(),
            ],
        )
        .await
        .map_err(email_taken)?;
    let user = from_row(&row)?;
    outbox::record(
        tx,
        Event::new(
            "user.added",
            ("user", id.to_string()),
            json!({ "user": &user }),
        ),
    )
    .await?;
    Ok(user)
}

/// Users that count against the plan (everything not deleted).
pub async fn count(tx: &TenantTx<'_>) -> Result<i64, StoreError> {
    let row = tx
        .query_one(
            "SELECT count(*) FROM users WHERE tenant_id = $1 AND status <> 'deleted'",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn count_active_owners(tx: &TenantTx<'_>) -> Result<i64, StoreError> {
    let row = tx
        .query_one(
            "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'owner' AND status = \
                'active'",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn list(
    tx: &TenantTx<'_>,
    limit: u32,
    after: Option<Keyset>,
) -> Result<Page<User>, StoreError> {
    keyset_page(tx, LIST_SQL, &[], limit, after, from_row, |u| Keyset {
        at: u.created_at,
        id: *u.id.as_uuid(),
    })
    .await
}

pub async fn get(tx: &TenantTx<'_>, id: UserId) -> Result<User, StoreError> {
    match tx
        .query_opt(GET_SQL, &[tx.tenant_id().as_uuid(), id.as_uuid()])
        .await?
    {
        Some(row) => from_row(&row),
        None => Err(StoreError::not_found("user", *id.as_uuid())),
    }
}

#[derive(Debug, Default)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

pub async fn update(
    tx: &TenantTx<'_>,
    id: UserId,
    changes: &UserChanges,
) -> Result<User, StoreError> {
    let sql = format!(
        "UPDATE users SET display_name = COALESCE($3, display_name), role = COALESCE($4, role),
                status = COALESCE($5, status), updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND status <> 'deleted' RETURNING {COLUMNS}"
    );
    let status = changes.status.map(|s| match s {
        UserStatus::Active => "active",
        UserStatus::Disabled => "disabled",
    });
    let role = changes.role.map(Role::as_str);
    match tx
        .query_opt(
            &sql,
            &[
                tx.tenant_id().as_uuid(),
                id.as_uuid(),
                &changes.display_name,
                &role,
                &status,
            ],
        )
        .await?
    {
        Some(row) => {
            let user = from_row(&row)?;
            outbox::record(
                tx,
                Event::new(
                    "user.updated",
                    ("user", id.to_string()),
                    json!({ "user": &user }),
                ),
            )
            .await?;
            Ok(user)
        }
        None => Err(StoreError::not_found("user", *id.as_uuid())),
    }
}

pub async fn delete(tx: &TenantTx<'_>, id: UserId) -> Result<(), StoreError> {
    let deleted = tx
        .execute(
            "UPDATE users SET status = 'deleted', updated_at = now() WHERE tenant_id = $1 AND id = \
                $2 AND status <> 'deleted'",
            &[tx.tenant_id().as_uuid(), id.as_uuid()],
        )
        .await?;
    if deleted == 0 {
        return Err(StoreError::not_found("user", *id.as_uuid()));
    }
    outbox::record(
        tx,
        Event::new(
            "user.removed",
            ("user", id.to_string()),
            json!({ "user_id": id }),
        ),
    )
    .await?;
    Ok(())
}
