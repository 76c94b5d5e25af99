//! `ApiError`: every error the HTTP API can answer, rendered as RFC 9457
//! problem+json with a stable `code`. The code → status table lives here and
//! nowhere else; internal causes are logged with the request id and never sent.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input: body, query, path, cursor, or a field that fails validation.
    #[error("{detail}")]
    BadRequest { code: ErrorCode, detail: String },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("message body exceeds the plan's limit of {limit} bytes")]
    MessageTooLarge { limit: usize },
    /// The client did not send its request body within `http.body_timeout_ms`.
    #[error("the request body did not arrive within {0} ms")]
    RequestTimeout(u64),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// A write under an impersonation that may not write: started read-only, or
    /// the tenant's policy does not (or no longer) allow impersonations to write.
    #[error("this impersonation is read-only: the tenant's policy does not allow it to write")]
    ImpersonationReadOnly,
    /// `write: true` asked of a tenant whose policy forbids write impersonation.
    #[error("this tenant's policy does not allow impersonations that write")]
    ImpersonationWritesNotAllowed,
    /// An operator on a route for tenant content or tenant settings.
    #[error("operators run regions and never read tenant content or change tenants or limits")]
    OperatorForbidden,
    /// A resource that does not exist *for this tenant*; identical for another
    /// tenant's ids. `id`, when set, lets the tenant scope audit cross-tenant probes.
    #[error("{kind} not found")]
    NotFound {
        kind: &'static str,
        id: Option<uuid::Uuid>,
    },
    #[error("no route for this path")]
    RouteNotFound,
    /// A path the app serves, with a method it does not; `allow` lists the path's
    /// methods for the `Allow` header (RFC 9110 §15.5.6).
    #[error("method not allowed on this path")]
    MethodNotAllowed { allow: String },
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },
    /// A residency change and a relocation that cannot both hold: the policy would
    /// forbid a pending or running relocation's target, or it forbids the target
    /// by the time the relocation switches the home region.
    #[error("{0}")]
    ResidencyConflict(String),
    #[error("{detail}")]
    PlanLimit { detail: String },
    /// A setting the tenant's plan or a platform rule does not allow this
    /// caller (retention beyond the plan, audit retention below its floor).
    #[error("{detail}")]
    PolicyRefused { code: ErrorCode, detail: String },
    #[error("tenant is suspended")]
    TenantSuspended,
    /// The tenant is suspended until its erasure starts (`DELETE
    /// /v1/tenants/{id}`); a platform admin may restore it until then.
    #[error(
        "this tenant is suspended pending its erasure, which starts at {0}; a platform admin can restore it until then"
    )]
    TenantPendingErasure(chrono::DateTime<chrono::Utc>),
    /// The tenant was erased: its id stays a tombstone and nothing is served.
    #[error("this tenant was erased")]
    TenantErased,
    #[error(
        "rate limit exceeded ({} bucket: {} requests/s, burst {})",
        .0.scope, .0.per_second, .0.burst
    )]
    RateLimited(crate::limits::rate::RateDenied),
    #[error("too many concurrent requests for this tenant")]
    ConcurrencyLimited,
    /// The tenant's own expensive requests (search) held its share for the whole
    /// queue time (`limits::cost`).
    #[error("this tenant already runs its limit of expensive requests (search) on this node")]
    ExpensiveLimited,
    /// The tenant's costly requests (search, big pages) spent its database time
    /// on this node (`limits::db_time`): refused until the refill pays it back.
    #[error(
        "this tenant's searches and large pages used their database time on this node; retry in {retry_after_s} s"
    )]
    DbTimeSpent { retry_after_s: u64 },
    /// All tenants' costly requests together spent the node's database time
    /// (`limits::db_time`): refused until the refill pays it back.
    #[error(
        "this node's searches and large pages used their database time; retry in {retry_after_s} s"
    )]
    NodeDbTimeSpent { retry_after_s: u64 },
    /// Every expensive-work permit of the node stayed busy for the queue time.
    #[error("this node is running its limit of expensive requests; retry")]
    NodeBusy,
    /// A statement ran past its request class's `statement_timeout` (SQLSTATE 57014).
    #[error("the request took longer than its class's statement timeout; narrow it or retry")]
    StatementTimeout,
    /// A hop marker that does not verify: forged, altered or expired.
    #[error("invalid hop marker")]
    InvalidHopMarker,
    /// A refresh or logout by the session cookie without the session's CSRF
    /// token in `X-Meridian-CSRF` (`sessions::cookie`).
    #[error("a request that uses the session cookie must carry its CSRF token in X-Meridian-CSRF")]
    CsrfFailed,
    #[error("no healthy region that the tenant's residency allows can serve it now")]
    ResidencyUnavailable,
    #[error("the region serving this tenant did not answer")]
    RegionUnreachable,
    /// Storage or AI usage would pass the tenant's cap; nothing was written.
    #[error("{detail}")]
    QuotaExceeded { detail: String },
    /// The tenant's AI tokens for this month are spent (or held); nothing ran.
    #[error("{0}")]
    AiQuotaExceeded(String),
    /// Retries of a serialization conflict ran out; the client may retry.
    #[error("the request conflicted with concurrent writes; retry")]
    RetryExhausted,
    /// The tenant's data keys were destroyed (crypto-shredding, `DELETE
    /// /v1/tenants/{id}/keys`): what they encrypted is gone for good, which 410
    /// says (a retry, another region or a restore of the database cannot help).
    #[error(
        "this tenant's encryption keys were destroyed: its encrypted data can no longer be read or written"
    )]
    TenantKeysDestroyed,
    /// A tenant owner's key rotation sooner than
    /// `encryption.owner_rotation_interval_ms` after the last one (platform
    /// admins are not limited): each rotation re-encrypts all the tenant's data.
    #[error(
        "this tenant's data key was rotated recently; owners may rotate it again in {retry_after_s} s"
    )]
    RotationTooFrequent { retry_after_s: u64 },
    /// The key provider (KMS) could not be reached or throttled the call: the
    /// request may succeed later. Permanent provider failures stay `Internal`.
    #[error("the encryption key service is unavailable; retry later")]
    KeyProviderUnavailable,
    /// A download of an export past its expiry (its file is, or soon will be,
    /// removed by the sweep).
    #[error("this export has expired and its archive was deleted; request a new export")]
    ExportExpired,
    /// A download of an export whose archive was built in another region, before
    /// the tenant moved: it stays in that region's store until it expires.
    #[error(
        "this export's archive was built in region {0} before the tenant moved and stays \
         there until it expires; request a new export"
    )]
    ExportLeftBehind(String),
    /// A `Range` that is malformed or starts past the end of the archive.
    #[error("the requested range is not satisfiable (the archive has {size} bytes)")]
    RangeNotSatisfiable { size: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// A calendar event changed on the server (or here) since the client read
    /// it: the 409 carries both versions, `yours` and `theirs`.
    #[error("the event changed since you read it: both versions are in this answer")]
    EditConflict {
        yours: Box<serde_json::Value>,
        theirs: Box<serde_json::Value>,
    },
    /// A write through to a calendar server that it refused or did not answer.
    #[error("the calendar server: {0}")]
    CalendarServer(String),
    /// Anything unexpected: the cause is logged, the client sees only the request id.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Every stable `code` the API answers, with its status, written once: the
/// contract (`api::contract`) documents an operation's errors from this table,
/// problem bodies carry it, and the README's code table is tested against it
/// (`tests/api/openapi.rs`), so the three cannot drift apart.
macro_rules! error_codes {
    ($($variant:ident = $name:literal => $status:ident,)*) => {
        /// A stable, machine-readable error code (serialised snake_case).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum ErrorCode {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as sent in the problem body's `code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The one HTTP status this code is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    // A 307's problem body (routing::middleware): the tenant is served elsewhere.
    ServedElsewhere = "served_elsewhere" => TEMPORARY_REDIRECT,
    ValidationFailed = "validation_failed" => BAD_REQUEST,
    InvalidJson = "invalid_json" => BAD_REQUEST,
    InvalidBody = "invalid_body" => BAD_REQUEST,
    InvalidId = "invalid_id" => BAD_REQUEST,
    InvalidPath = "invalid_path" => BAD_REQUEST,
    InvalidCursor = "invalid_cursor" => BAD_REQUEST,
    InvalidQuery = "invalid_query" => BAD_REQUEST,
    NonCanonicalPath = "non_canonical_path" => BAD_REQUEST,
    ResidencyViolation = "residency_violation" => BAD_REQUEST,
    WebhookUrlRefused = "webhook_url_refused" => BAD_REQUEST,
    CalendarUrlRefused = "calendar_url_refused" => BAD_REQUEST,
    Unauthenticated = "unauthenticated" => UNAUTHORIZED,
    Forbidden = "forbidden" => FORBIDDEN,
    OperatorForbidden = "operator_forbidden" => FORBIDDEN,
    ImpersonationReadOnly = "impersonation_read_only" => FORBIDDEN,
    ImpersonationWritesNotAllowed = "impersonation_writes_not_allowed" => FORBIDDEN,
    TenantSuspended = "tenant_suspended" => FORBIDDEN,
    TenantPendingErasure = "tenant_pending_erasure" => FORBIDDEN,
    PlanLimitExceeded = "plan_limit_exceeded" => FORBIDDEN,
    QuotaExceeded = "quota_exceeded" => FORBIDDEN,
    AiQuotaExceeded = "ai_quota_exceeded" => FORBIDDEN,
    InvalidHopMarker = "invalid_hop_marker" => FORBIDDEN,
    CsrfFailed = "csrf_failed" => FORBIDDEN,
    AuditRetentionFloor = "audit_retention_floor" => FORBIDDEN,
    // `POST /v1/me/calendars` for a collection no grant gives the caller (V34).
    CalendarNotGranted = "calendar_not_granted" => FORBIDDEN,
    NotFound = "not_found" => NOT_FOUND,
    RouteNotFound = "route_not_found" => NOT_FOUND,
    MethodNotAllowed = "method_not_allowed" => METHOD_NOT_ALLOWED,
    RequestTimeout = "request_timeout" => REQUEST_TIMEOUT,
    Conflict = "conflict" => CONFLICT,
    EmailTaken = "email_taken" => CONFLICT,
    SlugTaken = "slug_taken" => CONFLICT,
    ChannelNameTaken = "channel_name_taken" => CONFLICT,
    LastOwner = "last_owner" => CONFLICT,
    LastPlatformAdmin = "last_platform_admin" => CONFLICT,
    DrainStrandsTenants = "drain_strands_tenants" => CONFLICT,
    RelocationInProgress = "relocation_in_progress" => CONFLICT,
    ErasurePending = "erasure_pending" => CONFLICT,
    ErasureGraceOver = "erasure_grace_over" => CONFLICT,
    NoPendingErasure = "no_pending_erasure" => CONFLICT,
    RelocationStale = "relocation_stale" => CONFLICT,
    ReservationSettled = "reservation_settled" => CONFLICT,
    JobFinished = "job_finished" => CONFLICT,
    ResidencyConflict = "residency_conflict" => CONFLICT,
    AiEngineOutsideResidency = "ai_engine_outside_residency" => CONFLICT,
    AiEngineUnavailable = "ai_engine_unavailable" => CONFLICT,
    TenantKeysDestroyed = "tenant_keys_destroyed" => GONE,
    TenantErased = "tenant_erased" => GONE,
    SearchUnavailableEncrypted = "search_unavailable_encrypted" => CONFLICT,
    RotationInProgress = "rotation_in_progress" => CONFLICT,
    ExportNotReady = "export_not_ready" => CONFLICT,
    ExportExpired = "export_expired" => GONE,
    ExportLeftBehind = "export_left_behind" => GONE,
    CalendarEditConflict = "calendar_edit_conflict" => CONFLICT,
    CalendarGrantExists = "calendar_grant_exists" => CONFLICT,
    // A grant naming a user who is not (or no longer) in the tenant: the same
    // answer for another tenant's user as for an id that exists nowhere.
    CalendarGrantUserUnknown = "calendar_grant_user_unknown" => UNPROCESSABLE_ENTITY,
    ConfirmationMismatch = "confirmation_mismatch" => UNPROCESSABLE_ENTITY,
    PreconditionRequired = "precondition_required" => PRECONDITION_REQUIRED,
    PayloadTooLarge = "payload_too_large" => PAYLOAD_TOO_LARGE,
    MessageTooLarge = "message_too_large" => PAYLOAD_TOO_LARGE,
    UnsupportedMediaType = "unsupported_media_type" => UNSUPPORTED_MEDIA_TYPE,
    RangeNotSatisfiable = "range_not_satisfiable" => RANGE_NOT_SATISFIABLE,
    RetentionExceedsPlan = "retention_exceeds_plan" => UNPROCESSABLE_ENTITY,
    RateLimited = "rate_limited" => TOO_MANY_REQUESTS,
    ConcurrencyLimited = "concurrency_limited" => TOO_MANY_REQUESTS,
    ExpensiveLimited = "expensive_limited" => TOO_MANY_REQUESTS,
    RotationTooFrequent = "rotation_too_frequent" => TOO_MANY_REQUESTS,
    Internal = "internal" => INTERNAL_SERVER_ERROR,
    ResidencyUnavailable = "residency_unavailable" => SERVICE_UNAVAILABLE,
    RegionUnreachable = "region_unreachable" => SERVICE_UNAVAILABLE,
    RetryExhausted = "retry_exhausted" => SERVICE_UNAVAILABLE,
    NodeBusy = "node_busy" => SERVICE_UNAVAILABLE,
    StatementTimeout = "statement_timeout" => SERVICE_UNAVAILABLE,
    Unavailable = "unavailable" => SERVICE_UNAVAILABLE,
    KeyProviderUnavailable = "key_provider_unavailable" => SERVICE_UNAVAILABLE,
    CalendarServerFailed = "calendar_server_failed" => BAD_GATEWAY,
}

impl ErrorCode {
    /// The code named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ApiError {
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::bad_request(ErrorCode::ValidationFailed, detail)
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The variant's stable code; its status comes from `ErrorCode::status`.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::PolicyRefused { code, .. } => *code,
            Self::UnsupportedMediaType(_) => C::UnsupportedMediaType,
            Self::PayloadTooLarge(_) => C::PayloadTooLarge,
            Self::MessageTooLarge { .. } => C::MessageTooLarge,
            Self::RequestTimeout(_) => C::RequestTimeout,
            Self::Unauthenticated(_) => C::Unauthenticated,
            Self::Forbidden(_) => C::Forbidden,
            Self::OperatorForbidden => C::OperatorForbidden,
            Self::ImpersonationReadOnly => C::ImpersonationReadOnly,
            Self::ImpersonationWritesNotAllowed => C::ImpersonationWritesNotAllowed,
            Self::NotFound { .. } => C::NotFound,
            Self::RouteNotFound => C::RouteNotFound,
            Self::MethodNotAllowed { .. } => C::MethodNotAllowed,
            Self::ResidencyConflict(_) => C::ResidencyConflict,
            Self::PlanLimit { .. } => C::PlanLimitExceeded,
            Self::TenantSuspended => C::TenantSuspended,
            Self::TenantPendingErasure(_) => C::TenantPendingErasure,
            Self::TenantErased => C::TenantErased,
            Self::RateLimited(_) => C::RateLimited,
            Self::ConcurrencyLimited => C::ConcurrencyLimited,
            Self::ExpensiveLimited | Self::DbTimeSpent { .. } => C::ExpensiveLimited,
            Self::NodeBusy | Self::NodeDbTimeSpent { .. } => C::NodeBusy,
            Self::StatementTimeout => C::StatementTimeout,
            Self::InvalidHopMarker => C::InvalidHopMarker,
            Self::CsrfFailed => C::CsrfFailed,
            Self::ResidencyUnavailable => C::ResidencyUnavailable,
            Self::RegionUnreachable => C::RegionUnreachable,
            Self::QuotaExceeded { .. } => C::QuotaExceeded,
            Self::AiQuotaExceeded(_) => C::AiQuotaExceeded,
            Self::RetryExhausted => C::RetryExhausted,
            Self::Unavailable(_) => C::Unavailable,
            Self::RotationTooFrequent { .. } => C::RotationTooFrequent,
            Self::KeyProviderUnavailable => C::KeyProviderUnavailable,
            Self::EditConflict { .. } => C::CalendarEditConflict,
            Self::CalendarServer(_) => C::CalendarServerFailed,
            Self::TenantKeysDestroyed => C::TenantKeysDestroyed,
            Self::ExportExpired => C::ExportExpired,
            Self::ExportLeftBehind(_) => C::ExportLeftBehind,
            Self::RangeNotSatisfiable { .. } => C::RangeNotSatisfiable,
            Self::Internal(_) => C::Internal,
        }
    }
}

/// RFC 9457 problem details, as sent on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; stable per `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable error code. Each operation's responses narrow it
    /// to the codes they can carry (`api::contract`).
    #[schema(value_type = String)]
    pub code: ErrorCode,
    /// Also in the `X-Request-Id` header; `null` only if the request got no id.
    #[schema(required = true)]
    pub request_id: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        let code = self.code();
        let status = code.status();
        let request_id = request_id::current();
        let detail = match self {
            Self::Internal(cause) => {
                let id = request_id.as_deref();
                tracing::error!(request_id = id, error = ?cause, "internal error");
                "an internal error occurred; quote the request_id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            type_uri: format!("https://meridian.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code,
            request_id,
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            Self::RetryExhausted
            | Self::Unavailable(_)
            | Self::ConcurrencyLimited
            | Self::ExpensiveLimited
            | Self::NodeBusy
            | Self::StatementTimeout
            | Self::RegionUnreachable => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::ResidencyUnavailable => {
                response.insert_header((header::RETRY_AFTER, "30"));
            }
            // The SDK already retried within `encryption.kms.operation_timeout_ms`.
            Self::KeyProviderUnavailable => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::RotationTooFrequent { retry_after_s }
            | Self::DbTimeSpent { retry_after_s }
            | Self::NodeDbTimeSpent { retry_after_s } => {
                response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            Self::RateLimited(denied) => {
                for pair in crate::limits::headers::rate_limited(denied) {
                    response.insert_header(pair);
                }
            }
            _ => {}
        }
        match self {
            Self::Unauthenticated(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            Self::RangeNotSatisfiable { size } => {
                response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
            }
            _ => {}
        }
        if let Self::EditConflict { yours, theirs } = self {
            // RFC 9457 extension members: the two versions of the event.
            let mut body = serde_json::to_value(&problem).unwrap_or_default();
            body["yours"] = (**yours).clone();
            body["theirs"] = (**theirs).clone();
            return response.json(body);
        }
        response.json(problem)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match err {
            DbError::RetryExhausted => Self::RetryExhausted,
            DbError::StatementTimeout => Self::StatementTimeout,
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable("database unavailable")
            }
            DbError::OutcomeUnknown(cause) => {
                tracing::error!(error = %cause, "transaction outcome unknown (SQLSTATE 40003)");
                Self::Unavailable(concat!(
                    "the database could not confirm whether the change was applied; ",
                    "read before retrying"
                ))
            }
            DbError::UserRefused => Self::Unauthenticated(crate::db::USER_REFUSED),
            DbError::UniqueViolation { constraint } => Self::Conflict {
                code: ErrorCode::Conflict,
                detail: format!(
                    "a resource with the same unique value already exists ({constraint})"
                ),
            },
            DbError::Other(cause) => Self::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire name serde writes is the table's name, for every code.
    #[test]
    fn codes_serialise_as_their_table_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::json!(code.as_str()));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let name = code.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name} is not snake_case"
            );
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    /// The problem body carries the variant's code and the code's status.
    #[test]
    fn problem_bodies_carry_the_code_and_its_status() {
        let denied = crate::limits::rate::RateDenied {
            scope: "tenant",
            per_second: 1,
            burst: 1,
            retry_after: std::time::Duration::from_secs(1),
        };
        let cases = [
            (ApiError::validation("x"), 400, "validation_failed"),
            (ApiError::RequestTimeout(1), 408, "request_timeout"),
            (
                ApiError::MethodNotAllowed {
                    allow: "GET, POST".into(),
                },
                405,
                "method_not_allowed",
            ),
            (
                ApiError::Conflict {
                    code: ErrorCode::LastOwner,
                    detail: "x".into(),
                },
                409,
                "last_owner",
            ),
            (ApiError::RateLimited(denied), 429, "rate_limited"),
            (
                ApiError::AiQuotaExceeded("x".into()),
                403,
                "ai_quota_exceeded",
            ),
            (ApiError::internal(anyhow::anyhow!("x")), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let response = err.error_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            let body = actix_web::body::to_bytes(response.into_body());
            let body = futures_util::FutureExt::now_or_never(body)
                .unwrap()
                .unwrap();
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["code"], code);
            assert_eq!(problem["status"], status);
        }
    }
}
