//! Requests made under an impersonation (a token with `act`, issue 14 part 4) are
//! recorded in the tenant's own audit trail, where its owners and compliance
//! officers read them (`GET /v1/audit`):
//!
//! - every such request, whatever its answer, as `impersonated_request` (method,
//!   matched route, path, status), written by `audit_impersonated` after the
//!   handler and **before the response is sent**, in a transaction of its own:
//!   a read's transaction is read-only and already committed (and a refused
//!   request ran none), and the status is only known once the handler answered.
//!   If that write fails, the client gets an opaque 500 instead of the answer: a
//!   read is never served unaudited.
//! - every write transaction under one, as `impersonated_write`, inside that
//!   transaction (`record_write`, called by `TenantScope`): the change and its
//!   event commit together, so a write is audited even if the request's own
//!   event then fails (and the client gets the 500).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use serde_json::json;

use super::Impersonating;
use super::extract::Resolved;
use crate::audit;
use crate::db::{TenantTx, TxMode};
use crate::error::ApiError;
use crate::state::AppState;

/// `impersonated_write`, in the writing transaction.
pub(super) async fn record_write(tx: &TenantTx<'_>, imp: &Impersonating) -> Result<(), ApiError> {
    let details = json!({
        "impersonation_id": imp.id,
        "method": imp.method,
        "route": imp.route,
    });
    let target = Some(("impersonation", imp.id.to_string()));
    audit::record(tx, &imp.actor, "impersonated_write", target, details).await?;
    Ok(())
}

/// Middleware, inside routing (it runs where the request is served, never on a
/// node that forwarded it) and outside `confirm_user` (so it records the final
/// status): `impersonated_request` for every request whose verified token is an
/// impersonation's.
pub async fn audit_impersonated(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Routing verified the token and looked its tenant up (`scope::tenant_of`).
    let resolved = req.extensions().get::<Resolved>().cloned();
    let response = next.call(req).await?.map_into_boxed_body();
    let Some(Resolved { claims, tenant }) = resolved else {
        return Ok(response);
    };
    let Some((imp, actor)) = claims.impersonation() else {
        return Ok(response);
    };
    let Some(state) = response
        .request()
        .app_data::<web::Data<AppState>>()
        .cloned()
    else {
        return Ok(response);
    };
    let request = response.request();
    let details = json!({
        "impersonation_id": imp,
        "method": request.method().as_str(),
        "route": request.match_pattern(),
        "path": request.path(),
        "status": response.status().as_u16(),
    });
    // No token check in this transaction: it records the request, whatever the
    // impersonation's state (a revoked one's refused attempts are evidence too).
    let recorded = state
        .db
        .0
        .tenant_tx(
            tenant.id,
            &tenant.home_region,
            None,
            TxMode::ReadWrite,
            async |tx| {
                let target = Some(("impersonation", imp.to_string()));
                let details = details.clone();
                audit::record(tx, actor, "impersonated_request", target, details).await?;
                Ok(())
            },
        )
        .await;
    match recorded {
        Ok(()) => Ok(response),
        // Fails closed: an answer is not sent without its audit event.
        Err(err) => {
            tracing::error!(error = %err, impersonation = %imp, "impersonated request not audited");
            let (request, _) = response.into_parts();
            let refused = ApiError::internal(anyhow::anyhow!("impersonated request not audited"));
            Ok(ServiceResponse::new(request, refused.error_response()))
        }
    }
}
