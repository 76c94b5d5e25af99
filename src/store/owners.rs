//! The owner invariants, enforced in the transaction that writes the change:
//! - only owners make or unmake owners and compliance officers (a compliance
//!   officer changes the tenant's residency, so an admin who could make one,
//!   itself included, could widen the residency);
//! - the tenant keeps at least one active owner (`last_owner`).
//!
//! The target's role and status are read in the writing transaction, and the
//! actor's role is the one the transaction's prologue confirmed for the token's
//! user, so neither check acts on a value changed meanwhile (SERIALIZABLE
//! aborts one of two concurrent demotions of the last two owners).

use super::error::StoreError;
use super::users::{self, User, UserChanges, UserStatus};
use crate::auth::{Permission, Role};
use crate::db::TenantTx;
use crate::ids::UserId;

/// Roles that carry more than an admin's rights: owners (everything) and
/// compliance officers (the residency policy).
fn is_privileged(role: Role) -> bool {
    matches!(role, Role::Owner | Role::Compliance)
}

/// Refuses `actor` a change that makes or unmakes a privileged role.
fn check_grant(actor: Role, touches_privileged: bool) -> Result<(), StoreError> {
    if touches_privileged && !actor.allows(Permission::ManageTenant) {
        return Err(StoreError::NotAllowed);
    }
    Ok(())
}

/// Refuses a change that would leave the tenant without an active owner.
async fn keep_an_owner(
    tx: &TenantTx<'_>,
    target: &User,
    stays_active_owner: bool,
) -> Result<(), StoreError> {
    let is_active_owner = target.role == Role::Owner && target.status == UserStatus::Active;
    if is_active_owner && !stays_active_owner && users::count_active_owners(tx).await? <= 1 {
        return Err(StoreError::LastOwner);
    }
    Ok(())
}

/// Refuses `actor` an identity-provider mapping change that hands out, or stops
/// handing out, a privileged role: a mapping grants its role to every user the
/// directory puts in the group, so it is decided like granting the role.
pub fn check_mapping(actor: Role, touches_privileged: bool) -> Result<(), StoreError> {
    check_grant(actor, touches_privileged)
}

/// Creates a user with `role`, if `actor` may grant it.
pub async fn create(
    tx: &TenantTx<'_>,
    actor: Role,
    email: &str,
    display_name: &str,
    role: Role,
) -> Result<User, StoreError> {
    check_grant(actor, is_privileged(role))?;
    users::create(tx, email, display_name, role).await
}

/// Applies `changes` to user `id` if `actor` may and an active owner remains;
/// returns the user before and after.
pub async fn update(
    tx: &TenantTx<'_>,
    actor: Role,
    id: UserId,
    changes: &UserChanges,
) -> Result<(User, User), StoreError> {
    let target = users::get(tx, id).await?;
    let role_after = changes.role.unwrap_or(target.role);
    let status_after = changes.status.unwrap_or(target.status);
    let role_changes = changes.role.is_some_and(|r| r != target.role);
    let status_changes = changes.status.is_some_and(|s| s != target.status);
    let touches = is_privileged(target.role) || is_privileged(role_after);
    check_grant(actor, (role_changes || status_changes) && touches)?;
    let stays = role_after == Role::Owner && status_after == UserStatus::Active;
    keep_an_owner(tx, &target, stays).await?;
    let user = users::update(tx, id, changes).await?;
    Ok((target, user))
}

/// Deletes user `id` if `actor` may and an active owner remains; returns the
/// user as it was.
pub async fn delete(tx: &TenantTx<'_>, actor: Role, id: UserId) -> Result<User, StoreError> {
    let target = users::get(tx, id).await?;
    check_grant(actor, is_privileged(target.role))?;
    keep_an_owner(tx, &target, false).await?;
    users::delete(tx, id).await?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only owners grant or take away the privileged roles; anyone who may
    /// manage users changes the others.
    #[test]
    fn only_owners_touch_privileged_roles() {
        let roles = [
            Role::Owner,
            Role::Admin,
            Role::Member,
            Role::Viewer,
            Role::Compliance,
        ];
        for actor in roles {
            assert!(check_grant(actor, false).is_ok());
            assert_eq!(check_grant(actor, true).is_ok(), actor == Role::Owner);
        }
        assert!(is_privileged(Role::Owner) && is_privileged(Role::Compliance));
        assert!(!is_privileged(Role::Admin) && !is_privileged(Role::Viewer));
    }
}
