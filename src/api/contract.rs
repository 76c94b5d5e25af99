//! The API's contract beyond its success bodies, in one place. `OPERATIONS` names
//! every operation once: its operationId, who may call it and the error codes its
//! handler answers itself. `error_codes` adds what every operation of its shape
//! answers (routing, authentication, limits, the database, body, query and path
//! extractors), and `Contract` (a utoipa `Modify`) writes the result into the
//! document: each status as `application/problem+json` with the shared `Problem`
//! schema, its `code` narrowed to the codes of that status, and the headers those
//! answers carry. So a new route gets its error responses by construction and
//! cannot be forgotten: `tests/api/openapi.rs` fails for an operation this table
//! does not list, and fuzzes the app against the document.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use utoipa::openapi::path::{HttpMethod, Operation as OpenApiOperation, ParameterIn};
use utoipa::openapi::schema::{AllOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ContentBuilder, Header, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema,
};

use crate::error::ErrorCode;

/// Who may call an operation; decides which limits and checks can refuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// No token needed (health, readiness, this document).
    Public,
    /// Platform admins only; a tenant token is refused before any transaction.
    Platform,
    /// Tenant users only.
    Tenant,
    /// Platform admins and tenant users.
    Either,
    /// No token: the request names its tenant (a refresh token's prefix) and is
    /// routed to the tenant's home region like a tenant request (`scope::signin`).
    SignIn,
}

/// One operation of the app, as the contract knows it.
#[derive(Debug)]
pub struct Operation {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub who: Who,
    /// Codes the handler (or the store it calls) answers beyond `error_codes`' rules.
    pub codes: &'static [ErrorCode],
}

const fn op(
    id: &'static str,
    method: &'static str,
    path: &'static str,
    who: Who,
    codes: &'static [ErrorCode],
) -> Operation {
    Operation {
        id,
        method,
        path,
        who,
        codes,
    }
}

/// The operations an operator may call: their handlers' policies are
/// `scope::PlatformOperator` or `scope::Authenticated`. Every other
/// authenticated operation answers an operator 403 `operator_forbidden`;
/// `tests/api/operator.rs` checks both against the running app.
pub const OPERATOR_OPERATIONS: &[&str] = &[
    "listDirectory",
    "listRegions",
    "getRegionTenantCounts",
    "listTopTenants",
    "drainRegion",
    "undrainRegion",
    "evacuateRegion",
    "getRelocation",
    "getCalendarHealth",
    "checkCalendarHealth",
];

/// Every operation of `api::routes`. The operationIds are what client generators
/// name their methods after, so each is unique and says what it does.
pub const OPERATIONS: &[Operation] = &[
    op("getHealth", "GET", "/healthz", Who::Public, &[]),
    op(
        "getReadiness",
        "GET",
        "/readyz",
        Who::Public,
        &[ErrorCode::Unavailable],
    ),
    op("getOpenApi", "GET", "/openapi.json", Who::Public, &[]),
    op("getSigningKeys", "GET", "/signing-keys", Who::Public, &[]),
    op(
        "createTenant",
        "POST",
        "/v1/tenants",
        Who::Platform,
        &[
            ErrorCode::Forbidden,
            ErrorCode::SlugTaken,
            ErrorCode::EmailTaken,
            ErrorCode::ResidencyViolation,
        ],
    ),
    op(
        "listTenants",
        "GET",
        "/v1/tenants",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "listDirectory",
        "GET",
        "/v1/directory",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op("getTenant", "GET", "/v1/tenants/{id}", Who::Either, &[]),
    op(
        "updateTenant",
        "PATCH",
        "/v1/tenants/{id}",
        Who::Either,
        &[
            ErrorCode::Forbidden,
            ErrorCode::ResidencyViolation,
            ErrorCode::ResidencyConflict,
            // The status of a tenant with an erasure is the erasure's.
            ErrorCode::ErasurePending,
        ],
    ),
    op(
        "getTenantAiEngine",
        "GET",
        "/v1/tenants/{id}/ai-engine",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "updateTenantAiEngine",
        "PATCH",
        "/v1/tenants/{id}/ai-engine",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getTenantEncryption",
        "GET",
        "/v1/tenants/{id}/encryption",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "updateTenantEncryption",
        "PATCH",
        "/v1/tenants/{id}/encryption",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getTenantKeys",
        "GET",
        "/v1/tenants/{id}/keys",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getResidencyReport",
        "GET",
        "/v1/tenants/{id}/residency-report",
        Who::Either,
        // A tenant's report is counted like a search (`limits::cost`).
        &[
            ErrorCode::Forbidden,
            ErrorCode::ExpensiveLimited,
            ErrorCode::NodeBusy,
        ],
    ),
    op(
        "rotateTenantKeys",
        "POST",
        "/v1/tenants/{id}/keys/rotate",
        Who::Either,
        &[
            ErrorCode::Forbidden,
            ErrorCode::TenantKeysDestroyed,
            ErrorCode::RotationInProgress,
            ErrorCode::RotationTooFrequent,
        ],
    ),
    op(
        "destroyTenantKeys",
        "DELETE",
        "/v1/tenants/{id}/keys",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "startImpersonation",
        "POST",
        "/v1/tenants/{id}/impersonations",
        Who::Either,
        &[
            ErrorCode::Forbidden,
            ErrorCode::TenantSuspended,
            ErrorCode::ImpersonationWritesNotAllowed,
        ],
    ),
    op(
        "listImpersonations",
        "GET",
        "/v1/tenants/{id}/impersonations",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "revokeImpersonation",
        "DELETE",
        "/v1/tenants/{id}/impersonations/{impersonation_id}",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getImpersonationPolicy",
        "GET",
        "/v1/tenants/{id}/impersonation-policy",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "updateImpersonationPolicy",
        "PATCH",
        "/v1/tenants/{id}/impersonation-policy",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "createUser",
        "POST",
        "/v1/users",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::PlanLimitExceeded,
            ErrorCode::EmailTaken,
        ],
    ),
    op(
        "listUsers",
        "GET",
        "/v1/users",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getUser",
        "GET",
        "/v1/users/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "updateUser",
        "PATCH",
        "/v1/users/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::LastOwner],
    ),
    op(
        "deleteUser",
        "DELETE",
        "/v1/users/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::LastOwner],
    ),
    op(
        "createChannel",
        "POST",
        "/v1/channels",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::ChannelNameTaken],
    ),
    op(
        "listChannels",
        "GET",
        "/v1/channels",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getChannel",
        "GET",
        "/v1/channels/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "deleteChannel",
        "DELETE",
        "/v1/channels/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "postMessage",
        "POST",
        "/v1/channels/{id}/messages",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::MessageTooLarge,
            ErrorCode::QuotaExceeded,
        ],
    ),
    op(
        "listMessages",
        "GET",
        "/v1/channels/{id}/messages",
        Who::Tenant,
        // A page of more than `big_page_rows` is metered (`limits::db_time`).
        &[ErrorCode::Forbidden, ErrorCode::ExpensiveLimited],
    ),
    op(
        "getMessage",
        "GET",
        "/v1/channels/{id}/messages/{message_id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "searchMessages",
        "GET",
        "/v1/search",
        Who::Tenant,
        // `q` is checked like any text field (not blank, no control characters);
        // search is expensive work, with its tenant's and node's budget
        // (`limits::cost`).
        // An encrypted tenant's messages are not searchable server-side.
        &[
            ErrorCode::SearchUnavailableEncrypted,
            ErrorCode::Forbidden,
            ErrorCode::ValidationFailed,
            ErrorCode::ExpensiveLimited,
            ErrorCode::NodeBusy,
        ],
    ),
    op(
        "listAuditEvents",
        "GET",
        "/v1/audit",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "listAccessLog",
        "GET",
        "/v1/access-log",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::InvalidQuery,
            ErrorCode::InvalidCursor,
        ],
    ),
    op(
        "verifyAuditTrail",
        "GET",
        "/v1/audit/verify",
        Who::Either,
        // Its reads are big pages, metered (`limits::db_time`).
        &[
            ErrorCode::ExpensiveLimited,
            ErrorCode::Forbidden,
            ErrorCode::ValidationFailed,
            ErrorCode::InvalidId,
            ErrorCode::NotFound,
        ],
    ),
    op(
        "exportAuditTrail",
        "GET",
        "/v1/audit/export",
        Who::Either,
        // Its reads are big pages, metered (`limits::db_time`).
        &[
            ErrorCode::ExpensiveLimited,
            ErrorCode::Forbidden,
            ErrorCode::ValidationFailed,
            ErrorCode::InvalidId,
            ErrorCode::NotFound,
        ],
    ),
    op(
        "getUsage",
        "GET",
        "/v1/usage",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getTenantUsage",
        "GET",
        "/v1/tenants/{id}/usage",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getUsageHistory",
        "GET",
        "/v1/usage/history",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op("listRegions", "GET", "/v1/regions", Who::Either, &[]),
    op(
        "getRegionTenantCounts",
        "GET",
        "/v1/regions/tenants",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "listTopTenants",
        "GET",
        "/v1/regions/{id}/top-tenants",
        Who::Platform,
        &[ErrorCode::Forbidden, ErrorCode::NotFound],
    ),
    op(
        "drainRegion",
        "POST",
        "/v1/regions/{id}/drain",
        Who::Platform,
        &[ErrorCode::Forbidden, ErrorCode::DrainStrandsTenants],
    ),
    op(
        "undrainRegion",
        "POST",
        "/v1/regions/{id}/undrain",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "startRelocation",
        "POST",
        "/v1/tenants/{id}/relocation",
        Who::Either,
        &[
            ErrorCode::Forbidden,
            ErrorCode::ResidencyViolation,
            ErrorCode::RelocationInProgress,
            ErrorCode::ErasurePending,
        ],
    ),
    op(
        "getRelocation",
        "GET",
        "/v1/tenants/{id}/relocation",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "evacuateRegion",
        "POST",
        "/v1/regions/{id}/evacuate",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "listJobs",
        "GET",
        "/v1/jobs",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "createWebhook",
        "POST",
        "/v1/webhooks",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::WebhookUrlRefused,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "listWebhooks",
        "GET",
        "/v1/webhooks",
        Who::Tenant,
        // A page of more than `big_page_rows` is metered (`limits::db_time`).
        &[ErrorCode::Forbidden, ErrorCode::ExpensiveLimited],
    ),
    op(
        "getWebhook",
        "GET",
        "/v1/webhooks/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "updateWebhook",
        "PATCH",
        "/v1/webhooks/{id}",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::WebhookUrlRefused,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "deleteWebhook",
        "DELETE",
        "/v1/webhooks/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "listWebhookDeliveries",
        "GET",
        "/v1/webhooks/{id}/deliveries",
        Who::Tenant,
        // A page of more than `big_page_rows` is metered (`limits::db_time`).
        &[ErrorCode::Forbidden, ErrorCode::ExpensiveLimited],
    ),
    op(
        "createCalendarAccount",
        "POST",
        "/v1/calendar-accounts",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::CalendarUrlRefused,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "listCalendarAccounts",
        "GET",
        "/v1/calendar-accounts",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getCalendarAccount",
        "GET",
        "/v1/calendar-accounts/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "deleteCalendarAccount",
        "DELETE",
        "/v1/calendar-accounts/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "syncCalendarAccount",
        "POST",
        "/v1/calendar-accounts/{id}/sync",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "syncAllCalendarAccounts",
        "POST",
        "/v1/calendar-accounts/sync",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "createCalendarGrant",
        "POST",
        "/v1/calendar-accounts/{id}/grants",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::CalendarGrantExists,
            ErrorCode::CalendarGrantUserUnknown,
        ],
    ),
    op(
        "listCalendarGrants",
        "GET",
        "/v1/calendar-accounts/{id}/grants",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "deleteCalendarGrant",
        "DELETE",
        "/v1/calendar-accounts/{id}/grants/{grant_id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "linkMyCalendar",
        "POST",
        "/v1/me/calendars",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::CalendarNotGranted,
        ],
    ),
    op(
        "listMyCalendars",
        "GET",
        "/v1/me/calendars",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "listCalendarEvents",
        "GET",
        "/v1/calendar-events",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::ValidationFailed],
    ),
    op(
        "createCalendarEvent",
        "POST",
        "/v1/calendar-events",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::CalendarServerFailed,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "updateCalendarEvent",
        "PATCH",
        "/v1/calendar-events/{id}",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::PreconditionRequired,
            ErrorCode::ValidationFailed,
            ErrorCode::NotFound,
            ErrorCode::CalendarEditConflict,
            ErrorCode::CalendarServerFailed,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "deleteCalendarEvent",
        "DELETE",
        "/v1/calendar-events/{id}",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::PreconditionRequired,
            ErrorCode::ValidationFailed,
            ErrorCode::NotFound,
            ErrorCode::CalendarEditConflict,
            ErrorCode::CalendarServerFailed,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "getCalendarHealth",
        "GET",
        "/v1/calendar-health",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "checkCalendarHealth",
        "POST",
        "/v1/calendar-health/check",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "createIdentityProvider",
        "POST",
        "/v1/identity-providers",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::TenantKeysDestroyed],
    ),
    op(
        "listIdentityProviders",
        "GET",
        "/v1/identity-providers",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getIdentityProvider",
        "GET",
        "/v1/identity-providers/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "updateIdentityProvider",
        "PATCH",
        "/v1/identity-providers/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::TenantKeysDestroyed],
    ),
    op(
        "deleteIdentityProvider",
        "DELETE",
        "/v1/identity-providers/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "testIdentityProvider",
        "POST",
        "/v1/identity-providers/{id}/test",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::TenantKeysDestroyed],
    ),
    op(
        "startPlatformSignIn",
        "GET",
        "/v1/auth/platform/oidc/start",
        Who::SignIn,
        &[ErrorCode::ValidationFailed],
    ),
    op(
        "finishPlatformSignIn",
        "GET",
        "/v1/auth/platform/oidc/callback",
        Who::SignIn,
        &[],
    ),
    op(
        "refreshPlatformSession",
        "POST",
        "/v1/auth/platform/refresh",
        Who::SignIn,
        &[ErrorCode::CsrfFailed],
    ),
    op(
        "endPlatformSession",
        "POST",
        "/v1/auth/platform/logout",
        Who::SignIn,
        &[ErrorCode::CsrfFailed],
    ),
    op(
        "listPlatformUsers",
        "GET",
        "/v1/platform/users",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "createPlatformUser",
        "POST",
        "/v1/platform/users",
        Who::Platform,
        &[ErrorCode::Forbidden],
    ),
    op(
        "updatePlatformUser",
        "PATCH",
        "/v1/platform/users/{id}",
        Who::Platform,
        &[
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::LastPlatformAdmin,
        ],
    ),
    op(
        "refreshSession",
        "POST",
        "/v1/auth/refresh",
        Who::SignIn,
        &[ErrorCode::CsrfFailed, ErrorCode::TenantKeysDestroyed],
    ),
    op(
        "endSession",
        "POST",
        "/v1/auth/logout",
        Who::SignIn,
        &[ErrorCode::CsrfFailed],
    ),
    op(
        "getMe",
        "GET",
        "/v1/me",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "startOidcSignIn",
        "GET",
        "/v1/auth/{tenant_slug}/oidc/start",
        Who::SignIn,
        &[ErrorCode::ValidationFailed, ErrorCode::TenantKeysDestroyed],
    ),
    op(
        "finishOidcSignIn",
        "GET",
        "/v1/auth/oidc/callback",
        Who::SignIn,
        &[
            ErrorCode::PlanLimitExceeded,
            ErrorCode::EmailTaken,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "getSignInOrigin",
        "GET",
        "/v1/auth/{tenant_slug}/origin",
        Who::Public,
        &[
            ErrorCode::RateLimited,
            ErrorCode::ResidencyUnavailable,
            ErrorCode::Unavailable,
            ErrorCode::RetryExhausted,
        ],
    ),
    op(
        "signInWithLdap",
        "POST",
        "/v1/auth/{tenant_slug}/ldap",
        Who::SignIn,
        &[
            ErrorCode::PlanLimitExceeded,
            ErrorCode::EmailTaken,
            ErrorCode::TenantKeysDestroyed,
        ],
    ),
    op(
        "requestChannelSummary",
        "POST",
        "/v1/channels/{id}/summaries",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::AiQuotaExceeded,
            ErrorCode::AiEngineOutsideResidency,
            ErrorCode::AiEngineUnavailable,
        ],
    ),
    op(
        "getChannelSummary",
        "GET",
        "/v1/channels/{id}/summaries/{summary_id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getJob",
        "GET",
        "/v1/jobs/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "cancelJob",
        "POST",
        "/v1/jobs/{id}/cancel",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::JobFinished],
    ),
    op(
        "createExport",
        "POST",
        "/v1/exports",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::NotFound],
    ),
    op(
        "listExports",
        "GET",
        "/v1/exports",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getExport",
        "GET",
        "/v1/exports/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "downloadExport",
        "GET",
        "/v1/exports/{id}/download",
        Who::Tenant,
        &[
            ErrorCode::Forbidden,
            ErrorCode::ExportNotReady,
            ErrorCode::ExportExpired,
            ErrorCode::ExportLeftBehind,
            ErrorCode::RangeNotSatisfiable,
            ErrorCode::TenantKeysDestroyed,
            // Its one transaction writes the audit event.
            ErrorCode::ImpersonationReadOnly,
        ],
    ),
    op(
        "eraseUser",
        "POST",
        "/v1/users/{id}/erasure",
        Who::Tenant,
        &[ErrorCode::Forbidden, ErrorCode::LastOwner],
    ),
    op(
        "getErasure",
        "GET",
        "/v1/erasures/{id}",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getErasurePolicy",
        "GET",
        "/v1/tenants/{id}/erasure-policy",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "setErasurePolicy",
        "PATCH",
        "/v1/tenants/{id}/erasure-policy",
        Who::Tenant,
        &[ErrorCode::Forbidden],
    ),
    op(
        "eraseTenant",
        "DELETE",
        "/v1/tenants/{id}",
        Who::Either,
        &[
            ErrorCode::Forbidden,
            ErrorCode::ConfirmationMismatch,
            ErrorCode::RelocationInProgress,
        ],
    ),
    op(
        "restoreTenant",
        "POST",
        "/v1/tenants/{id}/restore",
        Who::Either,
        &[
            ErrorCode::Forbidden,
            ErrorCode::NoPendingErasure,
            ErrorCode::ErasureGraceOver,
        ],
    ),
    op(
        "getTenantErasure",
        "GET",
        "/v1/tenants/{id}/erasure",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "getRetention",
        "GET",
        "/v1/tenants/{id}/retention",
        Who::Either,
        &[ErrorCode::Forbidden],
    ),
    op(
        "setRetention",
        "PUT",
        "/v1/tenants/{id}/retention",
        Who::Either,
        &[
            ErrorCode::Forbidden,
            ErrorCode::AuditRetentionFloor,
            ErrorCode::RetentionExceedsPlan,
        ],
    ),
];

/// The table's entry for an operation of the document.
pub fn find(method: &str, path: &str) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|o| o.method.eq_ignore_ascii_case(method) && o.path == path)
}

/// What the document says about an operation's inputs, which decides the
/// extractor errors it can answer.
#[derive(Debug, Default)]
pub struct Shape {
    pub body: bool,
    pub query: BTreeSet<String>,
    pub path_params: bool,
    pub uuid_path_params: bool,
}

impl Shape {
    pub fn of(op: &OpenApiOperation) -> Self {
        let mut shape = Self {
            body: op.request_body.is_some(),
            ..Self::default()
        };
        for param in op.parameters.iter().flatten() {
            let RefOr::T(param) = param else { continue };
            match param.parameter_in {
                ParameterIn::Query => {
                    shape.query.insert(param.name.clone());
                }
                ParameterIn::Path => {
                    shape.path_params = true;
                    if matches!(&param.schema, Some(RefOr::T(Schema::Object(o)))
                        if o.format == Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    {
                        shape.uuid_path_params = true;
                    }
                }
                _ => {}
            }
        }
        shape
    }
}

/// Every code `op` can answer: its own and those its route and shape imply.
pub fn error_codes(op: &Operation, shape: &Shape) -> BTreeSet<ErrorCode> {
    let mut codes: BTreeSet<ErrorCode> = op.codes.iter().copied().collect();
    // Routing (`routing::middleware`) sees every `/v1` request before a handler:
    // it refuses non-canonical paths and bad hop markers, and for a tenant token
    // (which any authenticated route may be sent) it may find no region to serve
    // it or fail to reach the one that does.
    if op.path.starts_with("/v1/") {
        codes.extend([
            ErrorCode::NonCanonicalPath,
            ErrorCode::InvalidHopMarker,
            ErrorCode::Internal,
        ]);
    }
    if op.who != Who::Public {
        codes.extend([
            ErrorCode::Unauthenticated,
            ErrorCode::RateLimited,
            // Any valid tenant token is resolved to its tenant before the role check.
            ErrorCode::TenantSuspended,
            // … or suspended pending its erasure, or erased (a tombstone).
            ErrorCode::TenantPendingErasure,
            ErrorCode::TenantErased,
            ErrorCode::ResidencyUnavailable,
            ErrorCode::RegionUnreachable,
            // The database: the directory lookup, the user check and every transaction.
            ErrorCode::Unavailable,
            ErrorCode::RetryExhausted,
        ]);
    }
    if op.who != Who::Public && op.who != Who::SignIn && !OPERATOR_OPERATIONS.contains(&op.id) {
        codes.insert(ErrorCode::OperatorForbidden);
    }
    if op.who == Who::SignIn {
        // Its transaction has its class's statement timeout (no tenant slot).
        codes.insert(ErrorCode::StatementTimeout);
    }
    if matches!(op.who, Who::Tenant | Who::Either) {
        // A tenant's transactions take a concurrency slot, and each statement has
        // its request class's timeout.
        codes.extend([ErrorCode::ConcurrencyLimited, ErrorCode::StatementTimeout]);
    }
    if codes.contains(&ErrorCode::TenantKeysDestroyed) {
        // An operation that seals or opens with the tenant's keys may find the
        // key provider (KMS) unreachable.
        codes.insert(ErrorCode::KeyProviderUnavailable);
    }
    if op.path.starts_with("/v1/") && op.method != "GET" {
        // A unique violation the store does not name more precisely.
        codes.insert(ErrorCode::Conflict);
    }
    if matches!(op.who, Who::Tenant | Who::Either) && op.method != "GET" {
        // Any tenant token may be an impersonation's, whose writes are refused
        // unless it may write (`db::tx`, the prologue's impersonation check).
        codes.insert(ErrorCode::ImpersonationReadOnly);
    }
    if shape.body {
        codes.extend([
            ErrorCode::InvalidJson,
            ErrorCode::InvalidBody,
            ErrorCode::ValidationFailed,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
        ]);
    }
    if !shape.query.is_empty() {
        codes.insert(ErrorCode::InvalidQuery);
    }
    if shape.query.contains("cursor") {
        codes.insert(ErrorCode::InvalidCursor);
    }
    if shape.path_params {
        codes.insert(ErrorCode::NotFound);
    }
    if shape.uuid_path_params {
        codes.insert(ErrorCode::InvalidId);
    }
    codes
}

/// `error_codes` grouped by status (`ErrorCode::status`).
pub fn by_status(codes: &BTreeSet<ErrorCode>) -> BTreeMap<u16, Vec<ErrorCode>> {
    let mut grouped: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in codes {
        grouped
            .entry(code.status().as_u16())
            .or_default()
            .push(*code);
    }
    grouped
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Trace => "TRACE",
    }
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn header(description: &str, schema: ObjectBuilder) -> Header {
    let mut header = Header::new(schema);
    header.description = Some(description.to_owned());
    header
}

fn retry_after() -> Header {
    header(
        "Seconds to wait before retrying.",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1)),
    )
}

/// The problem+json answer of `status` with exactly `codes`.
fn problem_response(status: u16, codes: &[ErrorCode]) -> Response {
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let narrowed = ObjectBuilder::new()
        .property(
            "code",
            string_schema().enum_values(Some(names.iter().copied())),
        )
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([status])),
        );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(narrowed);
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut response = ResponseBuilder::new()
        .description(format!("{reason}: {}", names.join(", ")))
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .header(
            "X-Request-Id",
            header("The request's id, also in the body.", string_schema()),
        );
    match status {
        401 => {
            response = response.header("WWW-Authenticate", header("`Bearer`.", string_schema()));
        }
        429 => {
            response = response
                .header("Retry-After", retry_after())
                .header(
                    "RateLimit-Policy",
                    header(
                        "`\"<tenant|user|ip>\";q=<burst>;w=<seconds>` (IETF httpapi RateLimit \
                         headers); with `rate_limited` only.",
                        string_schema(),
                    ),
                )
                .header(
                    "RateLimit",
                    header(
                        "`\"<tenant|user|ip>\";r=0;t=<seconds>`; with `rate_limited` only.",
                        string_schema(),
                    ),
                );
        }
        503 => response = response.header("Retry-After", retry_after()),
        _ => {}
    }
    response.build()
}

/// The answer of a tenant request that another region serves: a problem body
/// naming the target and the reason, and `Location`.
fn redirect_response() -> Response {
    let mut response = problem_response(307, &[ErrorCode::ServedElsewhere]);
    response.description =
        "Temporary Redirect: the tenant is served by another region, which `Location` names."
            .into();
    response.headers.insert(
        "Location".into(),
        header("The same request at the serving region.", string_schema()).into(),
    );
    response
}

/// Writes the contract into the generated document (see the module docs).
pub struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Patch, &mut item.patch),
                (HttpMethod::Delete, &mut item.delete),
            ] {
                let Some(op) = op.as_mut() else { continue };
                let Some(entry) = find(method_name(&method), path) else {
                    // Left as generated: the contract test names the missing entry.
                    continue;
                };
                apply(entry, op);
            }
        }
    }
}

fn apply(entry: &Operation, op: &mut OpenApiOperation) {
    op.operation_id = Some(entry.id.to_owned());
    op.security = match entry.who {
        Who::Public | Who::SignIn => None,
        _ => Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]),
    };
    let codes = error_codes(entry, &Shape::of(op));
    let responses = &mut op.responses.responses;
    // Error answers come from the table only: whatever a handler's attribute said
    // about them is replaced, so the two cannot disagree.
    responses.retain(|status, _| !(status.starts_with('4') || status.starts_with('5')));
    for (status, codes) in by_status(&codes) {
        responses.insert(
            status.to_string(),
            RefOr::T(problem_response(status, &codes)),
        );
    }
    if entry.who != Who::Public && entry.path.starts_with("/v1/") {
        responses.insert("307".into(), RefOr::T(redirect_response()));
    }
    // OpenAPI requires a description on every response.
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = status
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Response")
                .to_owned();
        }
        if let RefOr::T(response) = response
            && (status == "201" || status == "202")
        {
            response.headers.insert(
                "Location".into(),
                header(
                    "The created resource (or the job's progress).",
                    string_schema(),
                )
                .into(),
            );
        }
    }
}
