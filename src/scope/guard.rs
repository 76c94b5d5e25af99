//! `Guarded<P, S>`: the only extractor of a scope, with the policy the handler
//! needs in its type (as meilisearch's `GuardedData<ActionPolicy<…>, _>`). A
//! handler names who may call it in its signature, so it cannot forget the check:
//! `TenantScope`, `PlatformScope` and `Caller` are not extractors themselves.
//!
//! A policy is a type implementing `Policy`, a decision over the verified
//! `Principal` (never over the request). An `operator` is such a principal:
//! `PlatformOperator` and `Authenticated` admit it, every other policy refuses
//! it with `operator_forbidden`. An impersonation's token (`act`) is a tenant
//! principal with the `admin` role: the policies judge it like an admin, and what
//! makes it read-only is the transaction prologue (`db::tx`), which checks its row
//! and the tenant's write policy on every transaction; handlers keep their types.
//!
//! The check runs in the extractor, after authentication (401, 429) and before
//! the handler's other arguments are read: a caller whose role the route refuses
//! gets its 403 without the body being read.

use std::marker::PhantomData;
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::{Caller, PlatformScope, TenantScope};
use crate::auth::Role;
use crate::error::ApiError;

/// Who a request acts as, from its verified token (and the directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    PlatformAdmin,
    /// Runs regions; never reads tenant content.
    Operator,
    Tenant(Role),
}

/// A decision over the verified principal. `REFUSAL` is the 403's detail.
pub trait Policy {
    const REFUSAL: &'static str = "your role does not allow this action";
    fn allows(principal: Principal) -> bool;
}

/// The permissions as types (`perm::Read`, …), declared once with
/// `auth::Permission` in `auth::claims`.
pub use crate::auth::{PermissionType, perm};

/// Tenant users whose role grants `P` (`Role::allows`); platform admins, where
/// the scope admits them (`Caller`), are granted every tenant permission;
/// operators none (tenant content is not theirs to see).
pub struct Allow<P>(PhantomData<P>);

impl<P: PermissionType> Policy for Allow<P> {
    fn allows(principal: Principal) -> bool {
        match principal {
            Principal::PlatformAdmin => true,
            Principal::Operator => false,
            Principal::Tenant(role) => role.allows(P::PERMISSION),
        }
    }
}

/// Anyone with a valid token the scope admits, operators included: for routes
/// that show no tenant content (region state, relocation progress).
pub struct Authenticated;

impl Policy for Authenticated {
    fn allows(_: Principal) -> bool {
        true
    }
}

/// Platform admins only.
pub struct PlatformAdmin;

impl Policy for PlatformAdmin {
    const REFUSAL: &'static str = "this route is for platform admins";
    fn allows(principal: Principal) -> bool {
        principal == Principal::PlatformAdmin
    }
}

/// Platform admins and operators: running regions (drain, undrain, evacuate)
/// and the tenant directory's reduced view.
pub struct PlatformOperator;

impl Policy for PlatformOperator {
    const REFUSAL: &'static str = "this route is for platform operators and admins";
    fn allows(principal: Principal) -> bool {
        matches!(principal, Principal::PlatformAdmin | Principal::Operator)
    }
}

/// Tenant users and platform admins, not operators: routes that show or change
/// a tenant's own settings (its limits, residency, a relocation's start).
pub struct TenantOrPlatformAdmin;

impl Policy for TenantOrPlatformAdmin {
    fn allows(principal: Principal) -> bool {
        principal != Principal::Operator
    }
}

/// A scope a request can be extracted as, and the principal it acts for.
pub trait Scoped: Sized + 'static {
    fn extract(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Self, ApiError>>;
    fn principal(&self) -> Principal;
}

impl Scoped for Caller {
    fn extract(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Self, ApiError>> {
        super::extract::caller(req)
    }

    fn principal(&self) -> Principal {
        match self {
            Caller::Platform(scope) => scope.principal(),
            Caller::Tenant(scope) => Principal::Tenant(scope.role()),
        }
    }
}

impl Scoped for TenantScope {
    fn extract(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Self, ApiError>> {
        let caller = super::extract::caller(req);
        Box::pin(async move {
            match caller.await? {
                Caller::Tenant(scope) => Ok(scope),
                Caller::Platform(scope) if scope.principal() == Principal::Operator => {
                    Err(ApiError::OperatorForbidden)
                }
                Caller::Platform(_) => Err(ApiError::Forbidden(
                    "this route is for tenant users, not platform admins",
                )),
            }
        })
    }

    fn principal(&self) -> Principal {
        Principal::Tenant(self.role())
    }
}

impl Scoped for PlatformScope {
    fn extract(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Self, ApiError>> {
        let caller = super::extract::caller(req);
        Box::pin(async move {
            match caller.await? {
                Caller::Platform(scope) => Ok(scope),
                Caller::Tenant(_) => Err(ApiError::Forbidden(PlatformAdmin::REFUSAL)),
            }
        })
    }

    fn principal(&self) -> Principal {
        match self.role() {
            Role::Operator => Principal::Operator,
            _ => Principal::PlatformAdmin,
        }
    }
}

/// A scope `S` whose principal policy `P` admits; derefs to the scope.
pub struct Guarded<P, S> {
    scope: S,
    policy: PhantomData<P>,
}

impl<P, S> Guarded<P, S> {
    pub fn into_inner(self) -> S {
        self.scope
    }
}

impl<P, S> Deref for Guarded<P, S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.scope
    }
}

impl<P: Policy + 'static, S: Scoped> FromRequest for Guarded<P, S> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let scope = S::extract(req);
        Box::pin(async move {
            let scope = scope.await?;
            match scope.principal() {
                principal if P::allows(principal) => {}
                // Its own code, so an operator's tooling tells "not for your
                // role, by design" from a misconfigured grant.
                Principal::Operator => return Err(ApiError::OperatorForbidden),
                _ => return Err(ApiError::Forbidden(P::REFUSAL)),
            }
            Ok(Self {
                scope,
                policy: PhantomData,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permission;

    /// The policies agree with the role table for every role and permission.
    #[test]
    fn policies_follow_the_role_table() {
        let roles = [
            Role::Owner,
            Role::Admin,
            Role::Member,
            Role::Viewer,
            Role::Compliance,
        ];
        for role in roles {
            let tenant = Principal::Tenant(role);
            assert_eq!(
                Allow::<perm::Read>::allows(tenant),
                role.allows(Permission::Read)
            );
            assert_eq!(
                Allow::<perm::ManageUsers>::allows(tenant),
                role.allows(Permission::ManageUsers)
            );
            assert_eq!(
                Allow::<perm::ManageTenant>::allows(tenant),
                role == Role::Owner
            );
            assert!(Authenticated::allows(tenant));
            assert!(!PlatformAdmin::allows(tenant));
            assert!(!PlatformOperator::allows(tenant));
            assert!(TenantOrPlatformAdmin::allows(tenant));
        }
        assert!(PlatformAdmin::allows(Principal::PlatformAdmin));
        assert!(!PlatformAdmin::allows(Principal::Operator));
        assert!(PlatformOperator::allows(Principal::Operator));
        assert!(PlatformOperator::allows(Principal::PlatformAdmin));
        assert!(!TenantOrPlatformAdmin::allows(Principal::Operator));
        // An operator holds no tenant permission, whichever it is.
        for permission in Permission::ALL {
            assert!(!Role::Operator.allows(*permission));
            assert!(!Role::PlatformAdmin.allows(*permission));
        }
        assert!(!Allow::<perm::Read>::allows(Principal::Operator));
        assert!(!Allow::<perm::ReadAudit>::allows(Principal::Operator));
        assert!(!Allow::<perm::ReadUsage>::allows(Principal::Operator));
        assert!(Allow::<perm::ReadAudit>::allows(Principal::PlatformAdmin));
        assert!(!Allow::<perm::ReadAudit>::allows(Principal::Tenant(
            Role::Member
        )));
    }
}
