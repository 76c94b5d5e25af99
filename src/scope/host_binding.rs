//! The tenant-subdomain check (`routing::host`): a `/v1` request sent to
//! `{slug}.<api_domain>` is served only for that tenant's tokens.
//!
//! - the token's tenant has the slug: served as usual (no database work);
//! - another tenant's token: 404 (`tenant not found`, the same answer as an
//!   unknown slug) and a `cross_tenant_denied` event in the **named** tenant's
//!   audit trail, where its owner and compliance officers see it;
//! - an unknown slug with a tenant token: the same 404;
//! - a platform token (admin or operator): 404. Platform routes and tenant
//!   administration are used on the API's own name, so a tenant host never
//!   carries platform power; nothing is looked up or audited;
//! - no valid token: the extractor answers 401 as everywhere (no lookup, so
//!   anonymous requests cost the database nothing here).
//!
//! The named tenant is looked up by slug in the database only when another
//! tenant's token is refused (after that tenant's rate check), and the audit
//! event is written before the 404 is answered; a slug is a public DNS name, so
//! that answering time may tell a known slug from an unknown one is no leak
//! beyond the name itself.

use actix_web::{HttpMessage, HttpRequest};

use super::extract::Resolved;
use crate::audit;
use crate::db::TxMode;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::state::AppState;
use crate::store::tenants;
use crate::tenancy::TenantRecord;

fn not_found() -> ApiError {
    ApiError::NotFound {
        kind: "tenant",
        id: None,
    }
}

/// Refuses `req` (sent to `host`, which names `slug`) unless its token is the
/// named tenant's. `tenant` is the token's tenant as routing resolved it.
pub async fn check_host(
    req: &HttpRequest,
    state: &AppState,
    host: &str,
    slug: &str,
    tenant: Option<&TenantRecord>,
) -> Result<(), ApiError> {
    if tenant.is_some_and(|t| t.slug == slug) {
        return Ok(());
    }
    let Some(actor) = tenant else {
        if super::extract::carries_platform_token(req, state) {
            return Err(not_found());
        }
        // No valid tenant token: the extractor answers 401 (and counts the
        // client against the anonymous limit) without any database work here.
        return Ok(());
    };
    let user = req
        .extensions()
        .get::<Resolved>()
        .map(|r| r.claims.sub.clone())
        .unwrap_or_default();
    // The lookup and the audit write cost the database: a tenant over its rate
    // gets its 429 first, as it would on its own host.
    if let Ok(id) = uuid::Uuid::parse_str(&user) {
        state.limits.check_rate(actor, UserId::from_uuid(id))?;
    }
    let named = state
        .db
        .0
        .platform_tx(TxMode::ReadOnly, async |tx| {
            Ok(tenants::list(tx, 1, None, Some(slug)).await?)
        })
        .await?
        .items
        .into_iter()
        .next();
    if let Some(named) = named {
        record_denial(state, &named, actor, &user, host).await;
    }
    Err(not_found())
}

/// `cross_tenant_denied` in the named tenant's trail. A failed write is logged
/// (the refusal stands either way).
async fn record_denial(
    state: &AppState,
    named: &TenantRecord,
    actor: &TenantRecord,
    user: &str,
    host: &str,
) {
    let details = serde_json::json!({
        "reason": "host",
        "host": host,
        "actor_tenant_id": actor.id,
        "actor_user_id": user,
        "region": state.region,
    });
    let written = state
        .db
        .0
        .tenant_tx(
            named.id,
            &named.home_region,
            None,
            TxMode::ReadWrite,
            async |tx| {
                let target = Some(("tenant", named.id.to_string()));
                let details = details.clone();
                Ok::<_, ApiError>(
                    audit::record(tx, user, "cross_tenant_denied", target, details).await?,
                )
            },
        )
        .await;
    tracing::warn!(
        tenant_id = %actor.id,
        named_tenant = %named.id,
        "cross-tenant access denied: another tenant's host"
    );
    if let Err(err) = written {
        tracing::error!(named_tenant = %named.id, error = %err, "auditing a host denial failed");
    }
}
