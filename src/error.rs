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
    BadRequest { code: &'static str, detail: String },
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
    /// A resource that does not exist *for this tenant*; identical for another
    /// tenant's ids. `id`, when set, lets the tenant scope audit cross-tenant probes.
    #[error("{kind} not found")]
    NotFound {
        kind: &'static str,
        id: Option<uuid::Uuid>,
    },
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// A residency change and a relocation that cannot both hold: the policy would
    /// forbid a pending or running relocation's target, or it forbids the target
    /// by the time the relocation switches the home region.
    #[error("{0}")]
    ResidencyConflict(String),
    #[error("{detail}")]
    PlanLimit { detail: String },
    #[error("tenant is suspended")]
    TenantSuspended,
    #[error("rate limit exceeded ({} bucket: {} requests/s, burst {})", .0.scope, .0.per_second, .0.burst)]
    RateLimited(crate::limits::rate::RateDenied),
    #[error("too many concurrent requests for this tenant")]
    ConcurrencyLimited,
    /// A hop marker that does not verify: forged, altered or expired.
    #[error("invalid hop marker")]
    InvalidHopMarker,
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
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// Anything unexpected: the cause is logged, the client sees only the request id.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Every stable `code` the API answers, with its status: the contract
/// (`api::contract`) documents an operation's errors from this table, the README
/// lists every code in it (both tested), and a unit test below fails when code
/// in `src/` answers a code that is not here.
pub const CODES: &[(&str, StatusCode)] = &[
    ("validation_failed", StatusCode::BAD_REQUEST),
    ("invalid_json", StatusCode::BAD_REQUEST),
    ("invalid_body", StatusCode::BAD_REQUEST),
    ("invalid_id", StatusCode::BAD_REQUEST),
    ("invalid_path", StatusCode::BAD_REQUEST),
    ("invalid_cursor", StatusCode::BAD_REQUEST),
    ("invalid_query", StatusCode::BAD_REQUEST),
    ("non_canonical_path", StatusCode::BAD_REQUEST),
    ("residency_violation", StatusCode::BAD_REQUEST),
    ("webhook_url_refused", StatusCode::BAD_REQUEST),
    ("unauthenticated", StatusCode::UNAUTHORIZED),
    ("forbidden", StatusCode::FORBIDDEN),
    ("tenant_suspended", StatusCode::FORBIDDEN),
    ("plan_limit_exceeded", StatusCode::FORBIDDEN),
    ("quota_exceeded", StatusCode::FORBIDDEN),
    ("ai_quota_exceeded", StatusCode::FORBIDDEN),
    ("invalid_hop_marker", StatusCode::FORBIDDEN),
    ("not_found", StatusCode::NOT_FOUND),
    ("route_not_found", StatusCode::NOT_FOUND),
    ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
    ("request_timeout", StatusCode::REQUEST_TIMEOUT),
    ("conflict", StatusCode::CONFLICT),
    ("email_taken", StatusCode::CONFLICT),
    ("slug_taken", StatusCode::CONFLICT),
    ("channel_name_taken", StatusCode::CONFLICT),
    ("last_owner", StatusCode::CONFLICT),
    ("drain_strands_tenants", StatusCode::CONFLICT),
    ("relocation_in_progress", StatusCode::CONFLICT),
    ("relocation_stale", StatusCode::CONFLICT),
    ("reservation_settled", StatusCode::CONFLICT),
    ("job_finished", StatusCode::CONFLICT),
    ("residency_conflict", StatusCode::CONFLICT),
    ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
    ("message_too_large", StatusCode::PAYLOAD_TOO_LARGE),
    ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
    ("concurrency_limited", StatusCode::TOO_MANY_REQUESTS),
    ("internal", StatusCode::INTERNAL_SERVER_ERROR),
    ("residency_unavailable", StatusCode::SERVICE_UNAVAILABLE),
    ("region_unreachable", StatusCode::SERVICE_UNAVAILABLE),
    ("retry_exhausted", StatusCode::SERVICE_UNAVAILABLE),
    ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
];

/// The status `code` is answered with, if it is a code of `CODES`.
pub fn status_of(code: &str) -> Option<StatusCode> {
    CODES.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::bad_request("validation_failed", detail)
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The single table of stable codes and their HTTP statuses.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            Self::BadRequest { code, .. } => (code, StatusCode::BAD_REQUEST),
            Self::UnsupportedMediaType(_) => {
                ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            Self::PayloadTooLarge(_) => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            Self::MessageTooLarge { .. } => ("message_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            Self::RequestTimeout(_) => ("request_timeout", StatusCode::REQUEST_TIMEOUT),
            Self::Unauthenticated(_) => ("unauthenticated", StatusCode::UNAUTHORIZED),
            Self::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            Self::NotFound { .. } => ("not_found", StatusCode::NOT_FOUND),
            Self::RouteNotFound => ("route_not_found", StatusCode::NOT_FOUND),
            Self::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            Self::Conflict { code, .. } => (code, StatusCode::CONFLICT),
            Self::ResidencyConflict(_) => ("residency_conflict", StatusCode::CONFLICT),
            Self::PlanLimit { .. } => ("plan_limit_exceeded", StatusCode::FORBIDDEN),
            Self::TenantSuspended => ("tenant_suspended", StatusCode::FORBIDDEN),
            Self::RateLimited(_) => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            Self::ConcurrencyLimited => ("concurrency_limited", StatusCode::TOO_MANY_REQUESTS),
            Self::InvalidHopMarker => ("invalid_hop_marker", StatusCode::FORBIDDEN),
            Self::ResidencyUnavailable => {
                ("residency_unavailable", StatusCode::SERVICE_UNAVAILABLE)
            }
            Self::RegionUnreachable => ("region_unreachable", StatusCode::SERVICE_UNAVAILABLE),
            Self::QuotaExceeded { .. } => ("quota_exceeded", StatusCode::FORBIDDEN),
            Self::AiQuotaExceeded(_) => ("ai_quota_exceeded", StatusCode::FORBIDDEN),
            Self::RetryExhausted => ("retry_exhausted", StatusCode::SERVICE_UNAVAILABLE),
            Self::Unavailable(_) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            Self::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
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
    /// Stable machine-readable error code.
    pub code: String,
    /// Also in the `X-Request-Id` header; `null` only if the request got no id.
    #[schema(required = true)]
    pub request_id: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code_and_status().1
    }

    fn error_response(&self) -> HttpResponse {
        let (code, status) = self.code_and_status();
        let request_id = request_id::current();
        let detail = match self {
            Self::Internal(cause) => {
                tracing::error!(request_id = request_id.as_deref(), error = ?cause, "internal error");
                "an internal error occurred; quote the request_id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            type_uri: format!("https://meridian.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            request_id,
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            Self::RetryExhausted
            | Self::Unavailable(_)
            | Self::ConcurrencyLimited
            | Self::RegionUnreachable => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::ResidencyUnavailable => {
                response.insert_header((header::RETRY_AFTER, "30"));
            }
            Self::RateLimited(denied) => {
                // IETF httpapi RateLimit headers: quota q over window w seconds.
                let retry = denied.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let window = (f64::from(denied.burst) / f64::from(denied.per_second.max(1)))
                    .ceil()
                    .max(1.0) as u64;
                response.insert_header((header::RETRY_AFTER, retry.to_string()));
                response.insert_header((
                    "RateLimit-Policy",
                    format!("\"{}\";q={};w={window}", denied.scope, denied.burst),
                ));
                response
                    .insert_header(("RateLimit", format!("\"{}\";r=0;t={retry}", denied.scope)));
            }
            _ => {}
        }
        if matches!(self, Self::Unauthenticated(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(problem)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match err {
            DbError::RetryExhausted => Self::RetryExhausted,
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable("database unavailable")
            }
            DbError::OutcomeUnknown(cause) => {
                tracing::error!(error = %cause, "transaction outcome unknown (SQLSTATE 40003)");
                Self::Unavailable(
                    "the database could not confirm whether the change was applied; read before retrying",
                )
            }
            DbError::UniqueViolation { constraint } => Self::Conflict {
                code: "conflict",
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

    /// Every fixed-code variant answers a code of `CODES` with that code's status.
    #[test]
    fn every_variant_answers_a_listed_code() {
        let denied = crate::limits::rate::RateDenied {
            scope: "tenant",
            per_second: 1,
            burst: 1,
            retry_after: std::time::Duration::from_secs(1),
        };
        let variants = [
            ApiError::validation("x"),
            ApiError::UnsupportedMediaType("x".into()),
            ApiError::PayloadTooLarge("x".into()),
            ApiError::MessageTooLarge { limit: 1 },
            ApiError::RequestTimeout(1),
            ApiError::Unauthenticated("x"),
            ApiError::Forbidden("x"),
            ApiError::NotFound {
                kind: "x",
                id: None,
            },
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed,
            ApiError::ResidencyConflict("x".into()),
            ApiError::PlanLimit { detail: "x".into() },
            ApiError::TenantSuspended,
            ApiError::RateLimited(denied),
            ApiError::ConcurrencyLimited,
            ApiError::InvalidHopMarker,
            ApiError::ResidencyUnavailable,
            ApiError::RegionUnreachable,
            ApiError::QuotaExceeded { detail: "x".into() },
            ApiError::AiQuotaExceeded("x".into()),
            ApiError::RetryExhausted,
            ApiError::Unavailable("x"),
            ApiError::internal(anyhow::anyhow!("x")),
        ];
        for err in variants {
            let (code, status) = err.code_and_status();
            assert_eq!(status_of(code), Some(status), "{code}");
        }
    }

    /// Codes chosen at the call site (a literal given to `bad_request`, or as a
    /// `Conflict`'s `code`) are found in the source and must be in `CODES` with the variant's status, so
    /// a new code cannot be answered without being documented.
    #[test]
    fn every_code_named_in_the_source_is_listed() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut found = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (marker, status) in [
                ("bad_request(\"", StatusCode::BAD_REQUEST),
                ("code: \"", StatusCode::CONFLICT),
            ] {
                for (at, _) in text.match_indices(marker) {
                    let rest = &text[at + marker.len()..];
                    let code = &rest[..rest.find('"').unwrap()];
                    assert_eq!(
                        status_of(code),
                        Some(status),
                        "{}: code `{code}` is not in error::CODES with status {status}",
                        file.display()
                    );
                    found += 1;
                }
            }
        }
        assert!(
            found >= 10,
            "only {found} codes found: did the pattern change?"
        );
    }
}
