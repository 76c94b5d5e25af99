//! `StoreError`: what a store function fails with, in the store's terms. The API
//! layer converts it (`From<StoreError> for ApiError`); the store never picks an
//! HTTP status.
//!
//! SQLSTATE classification stays in `db` (`DbError`): the transaction layer's
//! statements fail with `DbError`, which passes through as `Db`, and `taken`
//! names which unique value a unique violation was. Domain checks a store
//! function runs have their own variants (`Placement` for residency); nothing
//! here carries an HTTP error.

use uuid::Uuid;

use crate::db::DbError;
use crate::error::{ApiError, ErrorCode};
use crate::tenancy::residency::PlacementError;

/// A unique value that is already taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unique {
    TenantSlug,
    UserEmail,
    ChannelName,
    /// A platform user's (issuer, subject).
    PlatformIdentity,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row for the transaction's tenant: identical for another tenant's
    /// id, which the tenant scope audits as a probe when `id` is set.
    #[error("{kind} not found")]
    NotFound {
        kind: &'static str,
        id: Option<Uuid>,
    },
    #[error("{detail}")]
    Taken { unique: Unique, detail: String },
    /// The change would leave the tenant without an active owner.
    #[error("the tenant must keep at least one active owner")]
    LastOwner,
    /// The change would leave the platform without an active platform admin.
    #[error("the platform must keep at least one active platform admin")]
    LastPlatformAdmin,
    /// The caller's role may not make this change (owners and compliance
    /// officers are made and unmade by owners only).
    #[error("your role does not allow this action")]
    NotAllowed,
    /// The relocation and the residency change cannot both hold.
    #[error("{0}")]
    ResidencyConflict(String),
    /// The job has finished (succeeded, failed, dead or cancelled) and can no
    /// longer be cancelled.
    #[error("{0}")]
    JobFinished(String),
    /// A state the change cannot be made in, with its stable code (the
    /// tenant erasure's `erasure_pending`, `erasure_grace_over`, …).
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },
    /// The tenant's plan allows no more of this (users).
    #[error("{detail}")]
    PlanLimit { detail: String },
    /// Storage would pass the tenant's cap; the caller commits the refusal.
    #[error("{detail}")]
    QuotaExceeded { detail: String },
    /// The database failed (classified by SQLSTATE in `db`): unavailable,
    /// retries exhausted, a statement timeout, an unexpected error.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The home region, relocation target or residency policy is refused.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// The tenant's data keys were destroyed (`crypto::keyring`).
    #[error("the tenant's encryption keys were destroyed")]
    KeysDestroyed,
    /// The key provider could not be reached (`KeyError::Unavailable`); logged.
    #[error("the encryption key service is unavailable")]
    KeyProviderUnavailable,
    /// A row the store cannot read (a bug or a hand-edited row); logged, opaque.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl StoreError {
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    pub fn not_found(kind: &'static str, id: impl Into<Uuid>) -> Self {
        Self::NotFound {
            kind,
            id: Some(id.into()),
        }
    }
}

/// Names the unique value of a conflict the transaction layer classified
/// (SQLSTATE 23505, `DbError::UniqueViolation`); other errors pass unchanged.
pub fn taken(
    unique: Unique,
    detail: impl FnOnce() -> String,
) -> impl FnOnce(DbError) -> StoreError {
    move |err| match err {
        DbError::UniqueViolation { .. } => StoreError::Taken {
            unique,
            detail: detail(),
        },
        other => StoreError::Db(other),
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let conflict = |code, detail| ApiError::Conflict { code, detail };
        match err {
            StoreError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            StoreError::Taken { unique, detail } => conflict(
                match unique {
                    Unique::TenantSlug => ErrorCode::SlugTaken,
                    Unique::UserEmail => ErrorCode::EmailTaken,
                    Unique::ChannelName => ErrorCode::ChannelNameTaken,
                    Unique::PlatformIdentity => ErrorCode::Conflict,
                },
                detail,
            ),
            StoreError::LastOwner => {
                conflict(ErrorCode::LastOwner, StoreError::LastOwner.to_string())
            }
            StoreError::LastPlatformAdmin => conflict(
                ErrorCode::LastPlatformAdmin,
                StoreError::LastPlatformAdmin.to_string(),
            ),
            StoreError::NotAllowed => ApiError::Forbidden("your role does not allow this action"),
            StoreError::ResidencyConflict(detail) => ApiError::ResidencyConflict(detail),
            StoreError::JobFinished(detail) => conflict(ErrorCode::JobFinished, detail),
            StoreError::Conflict { code, detail } => conflict(code, detail),
            StoreError::PlanLimit { detail } => ApiError::PlanLimit { detail },
            StoreError::QuotaExceeded { detail } => ApiError::QuotaExceeded { detail },
            StoreError::KeysDestroyed => ApiError::TenantKeysDestroyed,
            StoreError::KeyProviderUnavailable => ApiError::KeyProviderUnavailable,
            StoreError::Db(err) => err.into(),
            StoreError::Placement(err) => err.into(),
            StoreError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}
