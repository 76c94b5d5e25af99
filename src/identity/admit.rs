//! Who a successful sign-in becomes, decided in the transaction that issues
//! the session: the user linked to (provider, subject), or one provisioned just
//! in time within the tenant's user limit, with the role the provider's
//! mappings give the user's groups.
//!
//! - No mapping and no default role → refused (the user is outside the groups).
//! - An email outside `allowed_email_domains` → refused.
//! - A linked user who was disabled or deleted → refused; a deleted user is not
//!   silently re-created.
//! - A new user needs an email; one already used by an unlinked user is a
//!   conflict (the accounts are never merged on email alone).
//! - The directory's role replaces the user's role at each sign-in (and at each
//!   refresh of an LDAP session, `apply_role`), except that it never demotes
//!   the tenant's last active owner (`store::owners`).

use serde_json::json;

use super::store::IdentityProvider;
use super::{external, role_for};
use crate::audit;
use crate::auth::Role;
use crate::db::TenantTx;
use crate::ids::UserId;
use crate::sessions::{self, RefreshToken};
use crate::store::StoreError;
use crate::store::owners;
use crate::store::users::{self, User, UserChanges, UserStatus};

/// What the provider vouched for.
pub struct Claimed {
    pub subject: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub groups: Vec<String>,
}

pub enum Admission {
    User(UserId, Role),
    /// Refused, with the reason for the audit trail (never for the client).
    Refused(&'static str),
}

fn domain_allowed(provider: &IdentityProvider, email: Option<&str>) -> bool {
    if provider.allowed_email_domains.is_empty() {
        return true;
    }
    email
        .and_then(|e| e.rsplit_once('@'))
        .is_some_and(|(_, domain)| {
            provider
                .allowed_email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        })
}

pub async fn admit(
    tx: &TenantTx<'_>,
    provider: &IdentityProvider,
    claimed: &Claimed,
    user_limit: u32,
) -> Result<Admission, StoreError> {
    let Some(role) = role_for(
        &provider.role_mappings,
        provider.default_role,
        &claimed.groups,
    ) else {
        return Ok(Admission::Refused("not_in_a_mapped_group"));
    };
    let email = claimed
        .email
        .as_deref()
        .map(crate::validate::email)
        .transpose()
        .ok()
        .flatten();
    if !domain_allowed(provider, email.as_deref()) {
        return Ok(Admission::Refused("email_domain_not_allowed"));
    }
    if let Some(id) = external::find(tx, provider.id, &claimed.subject).await? {
        let user = match users::get(tx, id).await {
            Ok(user) => user,
            Err(StoreError::NotFound { .. }) => return Ok(Admission::Refused("user_deleted")),
            Err(other) => return Err(other),
        };
        if user.status != UserStatus::Active {
            return Ok(Admission::Refused("user_disabled"));
        }
        return Ok(Admission::User(id, apply_role(tx, &user, role).await?));
    }
    let Some(email) = email else {
        return Ok(Admission::Refused("no_email"));
    };
    // SERIALIZABLE makes this count-then-insert safe against concurrent sign-ins.
    if users::count(tx).await? >= i64::from(user_limit) {
        return Err(StoreError::PlanLimit {
            detail: format!("the plan allows {user_limit} users"),
        });
    }
    let name = claimed
        .display_name
        .as_deref()
        .and_then(|n| crate::validate::text("display_name", n, 200).ok())
        .unwrap_or_else(|| email.clone());
    let user = owners::create(tx, Role::Owner, &email, &name, role).await?;
    external::link(tx, provider.id, &claimed.subject, user.id).await?;
    Ok(Admission::User(user.id, role))
}

/// Gives `user` the directory's `role` (at a sign-in, and at each refresh of a
/// directory session); the role the user has afterwards. The mapping was set
/// (for privileged roles, by an owner) to decide roles: it acts with an
/// owner's authority, within the last-owner rule (the tenant's last active
/// owner keeps the role).
pub async fn apply_role(tx: &TenantTx<'_>, user: &User, role: Role) -> Result<Role, StoreError> {
    if user.role == role {
        return Ok(role);
    }
    let changes = UserChanges {
        role: Some(role),
        ..UserChanges::default()
    };
    match owners::update(tx, Role::Owner, user.id, &changes).await {
        Ok((_, updated)) => Ok(updated.role),
        Err(StoreError::LastOwner) => Ok(user.role),
        Err(other) => Err(other),
    }
}

/// Admits `claimed` and, if admitted, starts its session in the same
/// transaction: a new refresh-token family holding `refresh`, and
/// `login_succeeded` (with `method`) in the tenant's trail. A refusal comes
/// back with its reason for the caller to audit in its own words.
pub async fn start_session(
    tx: &TenantTx<'_>,
    provider: &IdentityProvider,
    claimed: &Claimed,
    user_limit: u32,
    refresh: &RefreshToken,
    method: &'static str,
) -> Result<Admission, StoreError> {
    let admission = admit(tx, provider, claimed, user_limit).await?;
    if let Admission::User(id, role) = admission {
        let family = uuid::Uuid::now_v7();
        sessions::store::insert(tx, family, id, Some(provider.id), refresh).await?;
        let details = json!({ "method": method, "role": role, "family_id": family });
        let target = Some(("identity_provider", provider.id.to_string()));
        audit::record(tx, &id.to_string(), "login_succeeded", target, details).await?;
    }
    Ok(admission)
}
