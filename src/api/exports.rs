//! `/v1/exports`: GDPR exports. Any user may export their own data; owners and
//! compliance officers the whole tenant's or another user's. A job builds the
//! archive (`compliance::export_job`); the download decrypts it while streaming
//! and honours a single HTTP byte range, so a broken download resumes; the list
//! pages the tenant's exports (a user's own, unless owner or compliance). Every
//! download (each range) is audited in the transaction that authorises it.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;

use super::IdPath;
use crate::audit;
use crate::auth::Permission;
use crate::compliance::exports::{self, Export, Stored};
use crate::compliance::sealed::{self, CHUNK, OVERHEAD};
use crate::compliance::{Compliance, export_job};
use crate::error::{ApiError, ErrorCode};
use crate::hooks::Hooks;
use crate::ids::{ExportId, TenantId, UserId};
use crate::jobs::{self, NewJob};
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::store::users;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestExport {
    /// `tenant` (owners, compliance officers) or `user`.
    scope: String,
    /// The user of a `user` export (default: the caller; another user needs
    /// the owner or compliance role).
    user_id: Option<uuid::Uuid>,
}

/// Ask for an export; built by a background job.
#[utoipa::path(tag = "compliance", request_body = RequestExport, security(("bearer" = [])),
    responses((status = 202, body = Export)))]
#[post("/exports")]
pub async fn create(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    body: super::JsonBody<RequestExport>,
) -> Result<HttpResponse, ApiError> {
    let caller = scope.user_id();
    let subject = match (body.scope.as_str(), body.user_id) {
        ("tenant", None) => {
            scope.require(Permission::ManageCompliance)?;
            None
        }
        ("tenant", Some(_)) => {
            return Err(ApiError::validation("a `tenant` export takes no `user_id`"));
        }
        ("user", user) => {
            let user = user.map_or(caller, UserId::from_uuid);
            if user != caller {
                scope.require(Permission::ManageCompliance)?;
            }
            Some(user)
        }
        _ => return Err(ApiError::validation("`scope` must be `tenant` or `user`")),
    };
    let id = ExportId::new_random();
    let export = scope
        .write(async |tx| {
            if let Some(user) = subject {
                users::get(tx, user).await?;
            }
            exports::create(tx, id, caller, subject).await?;
            let mut job = NewJob::new(export_job::KIND, serde_json::json!({ "export_id": id }));
            job.idempotency_key = Some(format!("export:{id}"));
            let job = jobs::enqueue(tx, job).await?;
            exports::set_job(tx, id, job).await?;
            audit::record(
                tx,
                &caller.to_string(),
                "export.requested",
                Some(("export", id.to_string())),
                serde_json::json!({ "scope": body.scope, "user_id": subject }),
            )
            .await?;
            Ok(exports::get(tx, id).await?.export)
        })
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/exports/{id}")))
        .json(export))
}

/// The tenant's exports, newest first: every export for owners and compliance
/// officers, otherwise only those of the caller's own data that the caller
/// asked for (the rule of `visible`).
/// Where the archive is stored and under which key version is not part of it.
#[utoipa::path(tag = "compliance", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Export>)))]
#[get("/exports")]
pub async fn list(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<Export>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    let requester = if scope.role().allows(Permission::ManageCompliance) {
        None
    } else {
        Some(scope.user_id())
    };
    Ok(web::Json(
        scope
            .read(async |tx| Ok(exports::list(tx, limit, after, requester).await?))
            .await?,
    ))
}

/// Whether the caller may see `export`: an owner or compliance officer, or the
/// user whose own data it holds and who asked for it. Judged on the caller's
/// role now: an officer demoted to member loses the tenant and other users'
/// exports it asked for (they hold others' data). Anyone else gets the same 404
/// as for a missing id.
fn visible(scope: &TenantScope, stored: &Stored) -> Result<(), ApiError> {
    let caller = scope.user_id();
    let own_data = stored.export.requested_by == caller && stored.export.user_id == Some(caller);
    if own_data || scope.role().allows(Permission::ManageCompliance) {
        Ok(())
    } else {
        Err(ApiError::NotFound {
            kind: "export",
            id: Some(*stored.export.id.as_uuid()),
        })
    }
}

/// One export: state, size, rows per file, expiry.
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "Export id")),
    security(("bearer" = [])), responses((status = 200, body = Export)))]
#[get("/exports/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<Export>, ApiError> {
    let id = ExportId::parse(&path)?;
    let scope_ref = &*scope;
    let stored = scope
        .read(async |tx| {
            let stored = exports::get(tx, id).await?;
            visible(scope_ref, &stored)?;
            Ok(stored)
        })
        .await?;
    Ok(web::Json(stored.export))
}

/// A satisfiable byte range of an archive of `size` bytes: `None` for the whole
/// archive (no `Range`, another unit, or several ranges, which RFC 9110 lets a
/// server answer with the whole representation), else the inclusive first and
/// last byte. A `bytes` range that is malformed or starts past the end is
/// refused (416).
pub fn parse_range(raw: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(spec) = raw.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let refused = || ApiError::RangeNotSatisfiable { size };
    let (first, last) = spec.split_once('-').ok_or_else(refused)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| refused());
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        (false, true) => (num(first)?, size.saturating_sub(1)),
        (false, false) => {
            let (a, b) = (num(first)?, num(last)?);
            if b < a {
                return Err(refused());
            }
            (a, b.min(size.saturating_sub(1)))
        }
        (true, false) => {
            let n = num(last)?;
            if n == 0 {
                return Err(refused());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (true, true) => return Err(refused()),
    };
    if range.0 >= size {
        return Err(refused());
    }
    Ok(Some(range))
}

/// The archive (zip: NDJSON per table + `manifest.json`), whole or one byte range.
#[utoipa::path(tag = "compliance", params(("id" = uuid::Uuid, Path, description = "Export id"),
    ("Range" = Option<String>, Header, description = "One byte range, `bytes=<first>-<last>`, \
        `bytes=<first>-` or `bytes=-<suffix length>`")),
    security(("bearer" = [])), responses(
        (status = 200, description = "The whole archive", content_type = "application/zip", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/zip", body = Vec<u8>)))]
#[get("/exports/{id}/download")]
pub async fn download(
    scope: Guarded<Allow<perm::Read>, TenantScope>,
    hooks: web::Data<Hooks>,
    state: web::Data<crate::state::AppState>,
    req: HttpRequest,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let id = ExportId::parse(&path)?;
    let compliance: &Compliance = &hooks.compliance;
    let range_header = req
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or("bytes=invalid"));
    let scope_ref = &*scope;
    let caller = scope.user_id();
    // Tenant requests are served in the tenant's home region: this node's.
    let region = state.region.as_str();
    let (stored, dek, range) = scope
        .write(async |tx| {
            let stored = exports::get(tx, id).await?;
            visible(scope_ref, &stored)?;
            match stored.export.state.as_str() {
                // Built in the old home region before a relocation: the archive
                // is in that region's store, not this one's.
                "ready" if stored.storage_region.as_deref() != Some(region) => {
                    let built = stored.storage_region.clone().unwrap_or_default();
                    return Err(ApiError::ExportLeftBehind(built));
                }
                "ready" => {}
                "expired" => return Err(ApiError::ExportExpired),
                _ => {
                    return Err(ApiError::Conflict {
                        code: ErrorCode::ExportNotReady,
                        detail: format!("export {id} is {}", stored.export.state),
                    });
                }
            }
            let size = u64::try_from(stored.export.size.unwrap_or(0)).unwrap_or(0);
            let range = parse_range(range_header, size)?;
            let version = stored
                .key_version
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    ApiError::internal(anyhow::anyhow!("export {id}: no key version"))
                })?;
            let dek = compliance
                .keyring
                .version(tx, tx.tenant_id(), version)
                .await?;
            audit::record(
                tx,
                &caller.to_string(),
                "export.downloaded",
                Some(("export", id.to_string())),
                serde_json::json!({ "range": range.map(|(a, b)| format!("{a}-{b}")) }),
            )
            .await?;
            Ok((stored, dek, range))
        })
        .await?;
    let size = u64::try_from(stored.export.size.unwrap_or(0)).unwrap_or(0);
    if stored.chunk_size != Some(CHUNK as i32) {
        return Err(ApiError::internal(anyhow::anyhow!(
            "export {id}: stored with chunk size {:?}, this node reads {CHUNK}",
            stored.chunk_size
        )));
    }
    let key = stored
        .object_key
        .clone()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("export {id}: no object key")))?;
    let (first, last) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { last - first + 1 };
    let start_chunk = first / CHUNK as u64;
    let file = compliance
        .storage
        .open_at(&key, start_chunk * (CHUNK + OVERHEAD) as u64)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("export {id}: opening {key}: {e}")))?;
    let reader = Reader {
        file,
        dek,
        tenant: scope.tenant_id(),
        export: *id.as_uuid(),
        size,
        index: start_chunk,
        skip: (first % CHUNK as u64) as usize,
        remaining: length,
    };
    let body = futures_util::stream::unfold(reader, |mut r| async move {
        match r.next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), r)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(export = %r.export, error = %e, "export download failed");
                r.remaining = 0;
                Some((Err(e), r))
            }
        }
    });
    let mut response = if range.is_some() {
        let mut b = HttpResponse::PartialContent();
        b.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{size}"),
        ));
        b
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_TYPE, "application/zip"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"export-{id}.zip\""),
        ));
    if let Some(sha) = &stored.export.sha256 {
        response.insert_header((header::ETAG, format!("\"{sha}\"")));
    }
    Ok(response.no_chunking(length).streaming(body))
}

/// Reads, opens and trims the sealed chunks of one download.
struct Reader {
    file: crate::compliance::storage::ObjectReader,
    dek: std::sync::Arc<crate::crypto::envelope::Dek>,
    tenant: TenantId,
    export: uuid::Uuid,
    size: u64,
    index: u64,
    skip: usize,
    remaining: u64,
}

impl Reader {
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let plain_len = if self.index == sealed::last_chunk(self.size) {
            (self.size - self.index * CHUNK as u64) as usize
        } else {
            CHUNK
        };
        let mut buf = vec![0u8; plain_len + OVERHEAD];
        self.file.read_exact(&mut buf).await?;
        let plain = sealed::open_chunk(
            &self.dek,
            self.tenant,
            self.export,
            self.index,
            self.size,
            &buf,
        )?;
        let end = plain
            .len()
            .min(self.skip + usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let out = Bytes::copy_from_slice(&plain[self.skip..end]);
        self.remaining -= out.len() as u64;
        self.skip = 0;
        self.index += 1;
        Ok(Some(out))
    }
}
