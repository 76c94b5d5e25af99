//! Who may change which part of a tenant, and what a change must hold before it
//! is written: the domain rules of `PATCH /v1/tenants/{id}`. The residency rules
//! that need the locked row (the home region, a relocation's target) run in the
//! writing transaction (`store::tenants`); these need only the change and the
//! caller's role.

use crate::auth::{Permission, Role};
use crate::error::ApiError;
use crate::store::tenants::TenantChanges;

/// A change must change something, and limit overrides must be in range.
pub fn check(changes: &TenantChanges) -> Result<(), ApiError> {
    if changes.is_empty() {
        return Err(ApiError::validation("nothing to change"));
    }
    if let Some(limits) = &changes.limits {
        limits.set.validate()?;
    }
    if changes.status == Some(crate::tenancy::TenantStatus::Erased) {
        return Err(ApiError::validation(
            "status `erased` is set by the tenant's erasure (DELETE /v1/tenants/{id}), not by PATCH",
        ));
    }
    Ok(())
}

/// What a member of the tenant may change of its own tenant: plan, status and
/// limits are the platform's (a tenant must not lift its own limits); the name
/// needs `ManageTenant`; the residency policy is the compliance officer's.
pub fn check_own(changes: &TenantChanges, role: Role) -> Result<(), ApiError> {
    if changes.plan.is_some() || changes.status.is_some() || changes.limits.is_some() {
        return Err(ApiError::Forbidden(
            "plan, status and limits are changed by platform admins",
        ));
    }
    if changes.name.is_some() && !role.allows(Permission::ManageTenant) {
        return Err(ApiError::Forbidden("your role does not allow this action"));
    }
    if changes.residency.is_some() && role != Role::Compliance {
        return Err(ApiError::Forbidden(
            "residency is changed by compliance officers or platform admins",
        ));
    }
    Ok(())
}
