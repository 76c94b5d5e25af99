//! `/v1/tenants/{id}/keys`: a tenant's data-key versions (no key material),
//! rotation (platform admins, the tenant's owners) and crypto-shredding
//! (platform admins, with a confirmation body). `crypto::rotation` does the
//! work; every change is audited in the tenant's trail (and the platform's, when
//! a platform admin made it). Another tenant's id answers like a missing tenant.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::IdPath;
use crate::audit;
use crate::auth::Role;
use crate::crypto::rotation;
use crate::db::TenantTx;
use crate::error::ApiError;
use crate::ids::{JobId, TenantId};
use crate::scope::{Authenticated, Caller, Guarded, TenantOrPlatformAdmin};
use crate::state::AppState;
use crate::store::tenants;

#[derive(Serialize, ToSchema)]
pub struct KeyVersion {
    pub version: u32,
    /// `active` (seals new data) | `retired` (opens old data) | `destroyed`
    pub state: String,
    /// Whose KEK wraps it (`us`, `eu`, `apac`) and which KEK.
    pub jurisdiction: String,
    pub kek_id: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// Set once no ciphertext under this (retired) version is left.
    pub drained_at: Option<DateTime<Utc>>,
    pub destroyed_at: Option<DateTime<Utc>>,
    /// Ciphertexts the re-encryption job re-sealed under this version.
    pub rewritten: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TenantKeys {
    pub tenant_id: TenantId,
    pub versions: Vec<KeyVersion>,
    /// Stored ciphertexts not yet under the active version (0 when the last
    /// rotation's re-encryption is done).
    pub pending_reencryption: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Rotation {
    pub version: u32,
    /// The re-encryption job (`GET /v1/jobs/{id}` for the tenant's users).
    pub job_id: JobId,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestroyKeys {
    /// The tenant's id again: shredding cannot be undone.
    pub confirm: String,
}

#[derive(Serialize, ToSchema)]
pub struct Destroyed {
    pub destroyed_versions: Vec<u32>,
}

async fn describe(tx: &TenantTx<'_>) -> Result<TenantKeys, ApiError> {
    let rows = tx
        .query(
            "SELECT version, state, jurisdiction, kek_id, created_at, retired_at, drained_at,
                    destroyed_at, rewritten
               FROM tenant_keys WHERE tenant_id = $1 ORDER BY version",
            &[tx.tenant_id().as_uuid()],
        )
        .await?;
    let versions = rows
        .iter()
        .map(|r| KeyVersion {
            version: r.get::<_, i32>("version").unsigned_abs(),
            state: r.get("state"),
            jurisdiction: r.get("jurisdiction"),
            kek_id: r.get("kek_id"),
            created_at: r.get("created_at"),
            retired_at: r.get("retired_at"),
            drained_at: r.get("drained_at"),
            destroyed_at: r.get("destroyed_at"),
            rewritten: r.get("rewritten"),
        })
        .collect();
    let pending = match rotation::active_version(tx).await? {
        Some(active) => rotation::remaining(tx, active).await?,
        None => 0,
    };
    Ok(TenantKeys {
        tenant_id: tx.tenant_id(),
        versions,
        pending_reencryption: pending,
    })
}

/// The tenant's data-key versions and re-encryption progress (platform admins;
/// the tenant's owners and compliance officers). No key material.
#[utoipa::path(tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = TenantKeys)))]
#[get("/tenants/{id}/keys")]
pub async fn get(
    caller: Guarded<Authenticated, Caller>,
    path: IdPath,
) -> Result<web::Json<TenantKeys>, ApiError> {
    let id = TenantId::parse(&path)?;
    let keys = match caller.into_inner() {
        // Operators run regions; a tenant's keys are tenant settings.
        Caller::Platform(scope) if scope.role() == Role::Operator => {
            return Err(ApiError::OperatorForbidden);
        }
        Caller::Platform(scope) => {
            scope
                .read(async |tx| {
                    let tenant = tenants::get(tx, id).await?;
                    let scoped = tx.enter_tenant(id, tenant.home_region.clone()).await?;
                    describe(&scoped).await
                })
                .await?
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            if !matches!(scope.role(), Role::Owner | Role::Compliance) {
                return Err(ApiError::Forbidden(
                    "key versions are shown to owners and compliance officers",
                ));
            }
            scope.read(async |tx| describe(tx).await).await?
        }
        Caller::Tenant(scope) => return Err(scope.not_found("tenant", *id.as_uuid()).await),
    };
    Ok(web::Json(keys))
}

/// Rotation in `tx` (the tenant's): the next version, the job, the audit event;
/// `min_interval` for tenant owners (`rotation::rotate_and_reencrypt`'s guard).
async fn rotate_in(
    state: &AppState,
    tx: &TenantTx<'_>,
    actor: &str,
    min_interval: Option<std::time::Duration>,
) -> Result<Rotation, ApiError> {
    let (version, job_id) =
        rotation::rotate_and_reencrypt(&state.keyring, tx, actor, min_interval).await?;
    Ok(Rotation { version, job_id })
}

/// Rotate the tenant's data key (platform admins, the tenant's owners): a new
/// active version, and a job that re-encrypts every encrypted field under it.
/// Refused while the previous rotation still re-encrypts (409
/// `rotation_in_progress`), and for owners sooner than
/// `encryption.owner_rotation_interval_ms` after the last (429
/// `rotation_too_frequent`, `Retry-After`).
#[utoipa::path(tag = "tenants", params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 202, body = Rotation)))]
#[post("/tenants/{id}/keys/rotate")]
pub async fn rotate(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let id = TenantId::parse(&path)?;
    let rotation = match caller.into_inner() {
        Caller::Platform(scope) => {
            let admin = scope.admin().to_owned();
            scope
                .write(async |tx| {
                    let tenant = tenants::get(tx, id).await?;
                    let scoped = tx.enter_tenant(id, tenant.home_region.clone()).await?;
                    let rotation = rotate_in(&state, &scoped, &admin, None).await?;
                    let details = json!({ "version": rotation.version });
                    audit::record_platform(tx, &admin, "keys_rotated", Some(id), details).await?;
                    Ok(rotation)
                })
                .await?
        }
        Caller::Tenant(scope) if scope.tenant_id() == id => {
            if scope.role() != Role::Owner {
                return Err(ApiError::Forbidden("data keys are rotated by owners"));
            }
            let actor = scope.user_id().to_string();
            let min_interval = state.keyring.owner_rotation_interval();
            scope
                .write(async |tx| rotate_in(&state, tx, &actor, min_interval).await)
                .await?
        }
        Caller::Tenant(scope) => return Err(scope.not_found("tenant", *id.as_uuid()).await),
    };
    Ok(HttpResponse::Accepted().json(rotation))
}

/// Destroy the tenant's data keys (platform admins; crypto-shredding): every
/// encrypted field of the tenant becomes unreadable for good, here, in replicas
/// and in backups taken from now on.
#[utoipa::path(tag = "tenants", request_body = DestroyKeys,
    params(("id" = uuid::Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])), responses((status = 200, body = Destroyed)))]
#[delete("/tenants/{id}/keys")]
pub async fn destroy(
    caller: Guarded<TenantOrPlatformAdmin, Caller>,
    state: web::Data<AppState>,
    path: IdPath,
    body: super::JsonBody<DestroyKeys>,
) -> Result<web::Json<Destroyed>, ApiError> {
    let id = TenantId::parse(&path)?;
    let scope = caller
        .into_inner()
        .platform_only(id, "data keys are destroyed by platform admins")
        .await?;
    if body.confirm != id.to_string() {
        return Err(ApiError::validation(
            "`confirm` must repeat the tenant's id: destroying its keys cannot be undone",
        ));
    }
    let admin = scope.admin().to_owned();
    let versions = scope
        .write(async |tx| {
            let tenant = tenants::get(tx, id).await?;
            let scoped = tx.enter_tenant(id, tenant.home_region.clone()).await?;
            let versions = rotation::destroy_tenant_keys(&state.keyring, &scoped).await?;
            let details = json!({ "versions": versions });
            audit::record(
                &scoped,
                &admin,
                "keys_destroyed",
                Some(("tenant", id.to_string())),
                details.clone(),
            )
            .await?;
            audit::record_platform(tx, &admin, "keys_destroyed", Some(id), details).await?;
            Ok(versions)
        })
        .await?;
    // Again after the commit: a read between the first eviction and the commit
    // may have cached a key that was still live then.
    state
        .keyring
        .evict_tenant(id, versions.iter().copied().max().unwrap_or(1));
    Ok(web::Json(Destroyed {
        destroyed_versions: versions,
    }))
}
