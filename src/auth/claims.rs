//! Token claims and roles. Roles map to permissions in one table (`Role::allows`);
//! the permissions are declared once (`permissions!`), as values and as types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
    Compliance,
    /// Administers the platform; carries no tenant.
    PlatformAdmin,
    /// Runs the platform's regions (drain, undrain, evacuate, health,
    /// relocation progress, the tenant directory); carries no tenant and never
    /// reads tenant content (`scope::PlatformOperator`).
    Operator,
}

/// What a route needs, as a value (`Permission`, for `Role::allows`) and as a
/// type (`perm::*`, for `scope::Allow<…>`), both generated from the one list
/// below so the two cannot drift apart.
pub trait PermissionType {
    const PERMISSION: Permission;
}

macro_rules! permissions {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// What a route needs. Checked per route by `scope::Allow<perm::…>`
        /// (or `TenantScope::require`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Permission {
            $($(#[doc = $doc])* $name,)*
        }

        impl Permission {
            /// Every permission, in declaration order.
            pub const ALL: &[Permission] = &[$(Permission::$name,)*];
        }

        /// The permissions as types, for `scope::Allow<perm::…>`.
        pub mod perm {
            $(
                #[doc = concat!("`Permission::", stringify!($name), "`.")]
                pub struct $name;
                impl super::PermissionType for $name {
                    const PERMISSION: super::Permission = super::Permission::$name;
                }
            )*
        }
    };
}

permissions! {
    /// Read channels, messages, users, search, the own tenant.
    Read,
    PostMessage,
    ManageChannels,
    ManageUsers,
    ReadAudit,
    /// Limits and current usage.
    ReadUsage,
    /// Rename the tenant; make other users owners or compliance officers.
    ManageTenant,
    /// Webhook endpoints, their secrets and delivery logs.
    ManageWebhooks,
    /// Ask for a channel summary (spends the tenant's AI tokens).
    RequestSummary,
    /// See and cancel the tenant's background jobs.
    ManageJobs,
    /// The tenant's identity providers (OIDC, LDAP) and their role mappings.
    ManageIdentity,
    /// GDPR: export the whole tenant's or another user's data, erase users,
    /// shorten retention. Owners and compliance officers.
    ManageCompliance,
    /// Connect and remove the tenant's calendar (CalDAV) accounts.
    ManageCalendars,
    /// Link one's own calendars and read and write their events.
    UseCalendar,
}

impl Role {
    /// The single role → permission table.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Admin => matches!(
                permission,
                Read | PostMessage
                    | ManageChannels
                    | ManageUsers
                    | ReadAudit
                    | ReadUsage
                    | ManageWebhooks
                    | RequestSummary
                    | ManageJobs
                    | ManageIdentity
                    | ManageCalendars
                    | UseCalendar
            ),
            Role::Member => matches!(
                permission,
                Read | PostMessage | RequestSummary | UseCalendar
            ),
            Role::Viewer => matches!(permission, Read),
            Role::Compliance => matches!(permission, Read | ReadAudit | ManageCompliance),
            // Platform roles hold no tenant permission of their own; what a
            // platform admin may do in a tenant is the policies' decision.
            Role::PlatformAdmin | Role::Operator => false,
        }
    }

    pub fn is_tenant_role(self) -> bool {
        !self.is_platform_role()
    }

    /// A role without a tenant (`tid` absent).
    pub fn is_platform_role(self) -> bool {
        matches!(self, Role::PlatformAdmin | Role::Operator)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
            Role::Compliance => "compliance",
            Role::PlatformAdmin => "platform_admin",
            Role::Operator => "operator",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
    }
}

/// JWT claims. `tid` is present for tenant roles and absent for the platform
/// roles (`platform_admin`, `operator`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id (a UUID) for tenant roles; a person's name for the platform roles.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<Uuid>,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    /// Issued at; a token claiming to be issued in the future (beyond the leeway)
    /// is refused.
    pub iat: u64,
    /// Not before: refused until then (with the leeway). Optional for tokens from
    /// other issuers; `meridian token` sets it to the time of minting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// RFC 8693 §4.1 actor: present only on an impersonation's token, naming the
    /// platform admin who acts in the tenant (`impersonation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The impersonation this token belongs to (with `act`; then also its `sub`).
    /// Every request under it re-reads that row (`scope`): revoked or expired → 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imp: Option<Uuid>,
}

/// The `act` claim (RFC 8693): who acts on the token's subject's behalf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The platform admin's name.
    pub sub: String,
}

impl Claims {
    /// The impersonation id and the acting platform admin, when this is an
    /// impersonation's token.
    pub fn impersonation(&self) -> Option<(Uuid, &str)> {
        match (&self.act, self.imp) {
            (Some(act), Some(imp)) => Some((imp, act.sub.as_str())),
            _ => None,
        }
    }
}
