//! Every answer given to a tenant token is given to a user who is still active
//! with the token's role. Transactions check the user in their prologue (no extra
//! round trip); answers that ran none — a 403 from a role check, a 400 from a
//! body, `/v1/regions` — are confirmed here, after the handler, and replaced by
//! 401 when the user was disabled, deleted or given another role. So the check
//! cannot be forgotten by a handler: it runs for every tenant scope that was made.

use std::cell::Cell;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};

use crate::db::{TokenCheck, TxMode};
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::state::AppState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    /// A transaction's prologue found the user active with the token's role.
    Confirmed,
    /// Refused by a limit before any work: answered without a database check.
    Waived,
}

/// Kept in the request's extensions by the extractor that made the tenant scope.
pub(crate) struct UserCheck {
    tenant: TenantId,
    home_region: RegionId,
    /// The token's user and role, or its impersonation.
    token: TokenCheck,
    status: Cell<Status>,
}

impl UserCheck {
    pub(crate) fn new(tenant: TenantId, home_region: RegionId, token: TokenCheck) -> Rc<Self> {
        Rc::new(Self {
            tenant,
            home_region,
            token,
            status: Cell::new(Status::Pending),
        })
    }

    pub(crate) fn confirm(&self) {
        self.status.set(Status::Confirmed);
    }

    pub(crate) fn waive(&self) {
        if self.status.get() == Status::Pending {
            self.status.set(Status::Waived);
        }
    }

    /// Whether a tenant transaction's result shows that its prologue (with the
    /// user check) succeeded: it answered, or its body failed on its own terms.
    pub(crate) fn prologue_passed<T>(result: &Result<T, ApiError>) -> bool {
        match result {
            Ok(_) => true,
            Err(
                ApiError::Unauthenticated(_)
                | ApiError::Internal(_)
                | ApiError::Unavailable(_)
                | ApiError::RetryExhausted
                | ApiError::ConcurrencyLimited
                | ApiError::ExpensiveLimited
                | ApiError::DbTimeSpent { .. }
                | ApiError::NodeDbTimeSpent { .. }
                | ApiError::NodeBusy
                // The prologue may be what ran out of time.
                | ApiError::StatementTimeout,
            ) => false,
            Err(_) => true,
        }
    }
}

/// Middleware, inside routing (it runs where the handler ran): confirms the
/// user of a tenant scope whose request ran no transaction.
pub async fn confirm_user(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?.map_into_boxed_body();
    let check = response
        .request()
        .extensions()
        .get::<Rc<UserCheck>>()
        .filter(|check| check.status.get() == Status::Pending)
        .cloned();
    let state = response
        .request()
        .app_data::<web::Data<AppState>>()
        .cloned();
    let (Some(check), Some(state)) = (check, state) else {
        return Ok(response);
    };
    let confirmed = state
        .db
        .0
        .tenant_tx(
            check.tenant,
            &check.home_region,
            Some(check.token),
            TxMode::ReadOnly,
            async |_| Ok(()),
        )
        .await;
    match confirmed {
        Ok(()) => {
            check.confirm();
            Ok(response)
        }
        // Fails closed: an answer is not sent to a user that could not be confirmed.
        Err(err) => {
            let (request, _) = response.into_parts();
            Ok(ServiceResponse::new(request, err.error_response()))
        }
    }
}
