//! The `exports.build` job: streams the tenant's (or one user's) rows into a zip
//! of NDJSON files plus `manifest.json`, sealed chunk by chunk with the
//! tenant's data key into the export store of its home region (the job runs
//! there: jobs are leased in their own region). Memory stays flat: each table is
//! read in keyset batches of `exports.batch_rows` rows, one short read-only
//! transaction per batch, every row written out before the next batch is read;
//! sealed message bodies are opened row by row. An archive is therefore not one
//! snapshot: a row written during the build may or may not be in it (the
//! manifest records when the build started and ended).
//!
//! A second run (lease expired) rebuilds from scratch under the same key and
//! records the result only if the export is still `queued` and it holds the
//! lease; the last attempt marks the export `failed`.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Value, json};
use uuid::Uuid;

use super::ExportSettings;
use super::archive::ZipWriter;
use super::exports::{self, Finished};
use super::sealed::{CHUNK, SealedWriter};
use super::storage::ExportStorage;
use crate::audit;
use crate::crypto::keyring::Keyring;
use crate::crypto::rotation::job_error;
use crate::db::{TenantTx, TxMode};
use crate::error::ApiError;
use crate::ids::{ExportId, MessageId};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::store::error::StoreError;

pub const KIND: &str = "exports.build";

/// One NDJSON file of the archive: its rows as JSON text, in id order. `$1`
/// tenant, `$2` the last id of the previous batch, `$3` the user of a user
/// export (NULL: the whole tenant), `$4` the batch size.
struct Table {
    file: &'static str,
    sql: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        file: "users.ndjson",
        sql: "SELECT id, jsonb_build_object('id', id, 'email', email, 'display_name',
                display_name, 'role', role, 'status', status, 'created_at', created_at,
                'updated_at', updated_at)::text AS line
              FROM users WHERE tenant_id = $1 AND id > $2 AND ($3::uuid IS NULL OR id = $3)
              ORDER BY id LIMIT $4",
    },
    Table {
        file: "channels.ndjson",
        sql: "SELECT id, jsonb_build_object('id', id, 'name', name, 'topic', topic,
                'created_by', created_by, 'created_at', created_at)::text AS line
              FROM channels WHERE tenant_id = $1 AND id > $2
                AND ($3::uuid IS NULL OR created_by = $3)
              ORDER BY id LIMIT $4",
    },
    Table {
        file: "messages.ndjson",
        sql: "SELECT id, channel_id, author_id, body, body_enc, created_at
              FROM messages WHERE tenant_id = $1 AND id > $2
                AND ($3::uuid IS NULL OR author_id = $3)
              ORDER BY id LIMIT $4",
    },
    Table {
        file: "audit_events.ndjson",
        sql: "SELECT id, jsonb_build_object('id', id, 'actor', actor, 'action', action,
                'target_kind', target_kind, 'target_id', target_id, 'details', details,
                'created_at', created_at)::text AS line
              FROM audit_events WHERE tenant_id = $1 AND id > $2
                AND ($3::uuid IS NULL OR actor = $3::uuid::text
                     OR (target_kind = 'user' AND target_id = $3::uuid::text))
              ORDER BY id LIMIT $4",
    },
];

/// One batch of `table`: (last id, NDJSON text of the rows).
async fn batch(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    table: &Table,
    after: Uuid,
    subject: Option<Uuid>,
    limit: i64,
) -> Result<(Option<Uuid>, usize, String), StoreError> {
    let rows = tx
        .query(
            table.sql,
            &[tx.tenant_id().as_uuid(), &after, &subject, &limit],
        )
        .await?;
    let mut out = String::new();
    for row in &rows {
        if table.file == "messages.ndjson" {
            let id: Uuid = row.get("id");
            let sealed: Option<Vec<u8>> = row.get("body_enc");
            let body = match sealed {
                Some(sealed) => {
                    crate::crypto::messages::open_body(
                        keyring,
                        tx,
                        MessageId::from_uuid(id),
                        &sealed,
                    )
                    .await?
                }
                None => row.get("body"),
            };
            let created: chrono::DateTime<chrono::Utc> = row.get("created_at");
            let line = json!({
                "id": id,
                "channel_id": row.get::<_, Uuid>("channel_id"),
                "author_id": row.get::<_, Uuid>("author_id"),
                "body": body,
                "created_at": created,
            });
            out.push_str(&line.to_string());
        } else {
            out.push_str(row.get::<_, &str>("line"));
        }
        out.push('\n');
    }
    Ok((rows.last().map(|r| r.get("id")), rows.len(), out))
}

pub struct BuildExport {
    pub keyring: Arc<Keyring>,
    pub storage: ExportStorage,
    pub settings: ExportSettings,
}

fn io_error(e: std::io::Error) -> JobError {
    JobError::Retry(format!("export store: {e}"))
}

#[async_trait::async_trait(?Send)]
impl JobHandler for BuildExport {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: &JobContext, payload: &Value) -> Result<Value, JobError> {
        let id = payload["export_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(ExportId::from_uuid)
            .ok_or_else(|| JobError::Permanent("payload has no export_id".into()))?;
        let outcome = self.build(ctx, id).await;
        if let Err(err) = &outcome {
            let last = matches!(err, JobError::Permanent(_)) || ctx.attempt >= ctx.max_attempts;
            if last {
                let why = match err {
                    JobError::Permanent(m) | JobError::Retry(m) => m.clone(),
                };
                tracing::warn!(export = %id, error = %why, "export failed");
                let _ = ctx
                    .tenant_tx(TxMode::ReadWrite, async |tx| {
                        Ok(exports::mark_failed(tx, id, "the export could not be built").await?)
                    })
                    .await;
            }
        }
        outcome
    }
}

impl BuildExport {
    async fn build(&self, ctx: &JobContext, id: ExportId) -> Result<Value, JobError> {
        let keyring = &self.keyring;
        let (export, dek) = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                let export = exports::get(tx, id).await?;
                let dek = keyring.active(tx, tx.tenant_id()).await?;
                Ok((export, dek))
            })
            .await
            .map_err(job_error)?;
        if export.export.state != "queued" {
            return Ok(json!({ "state": export.export.state }));
        }
        let tenant = ctx
            .tenant
            .ok_or_else(|| JobError::Permanent("no tenant".into()))?;
        let subject = export.export.user_id.map(|u| *u.as_uuid());
        let key_version = i32::try_from(dek.version).unwrap_or(i32::MAX);
        // One object per attempt: a stale run (its lease expired) never writes
        // into the file a newer run records.
        let key = ExportStorage::key(&ctx.region, tenant, *id.as_uuid(), ctx.attempt);
        let upload = self.storage.create(&key).map_err(io_error)?;
        let mut zip = ZipWriter::new(SealedWriter::new(upload, dek, tenant, *id.as_uuid()));
        let started = chrono::Utc::now();
        let limit = i64::from(self.settings.batch_rows);
        for table in TABLES {
            zip.start(table.file).map_err(io_error)?;
            let mut after = Uuid::nil();
            loop {
                let (last, n, text) = ctx
                    .tenant_tx(TxMode::ReadOnly, async |tx| {
                        Ok(batch(keyring, tx, table, after, subject, limit).await?)
                    })
                    .await
                    .map_err(job_error)?;
                zip.write(text.as_bytes()).map_err(io_error)?;
                match last {
                    Some(last) if n as i64 == limit => after = last,
                    _ => break,
                }
            }
        }
        let files: Vec<Value> = zip
            .entries()
            .map_err(io_error)?
            .iter()
            .map(
                |e| json!({ "name": e.name, "rows": e.lines, "bytes": e.size, "sha256": e.sha256 }),
            )
            .collect();
        let counts: Value = files
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap_or_default().to_owned(),
                    f["rows"].clone(),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let manifest = json!({
            "format": "meridian-export/1",
            "export_id": id,
            "tenant_id": tenant,
            "scope": export.export.scope,
            "user_id": subject,
            "started_at": started,
            "finished_at": chrono::Utc::now(),
            "files": files,
        });
        zip.start("manifest.json").map_err(io_error)?;
        let mut text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        text.push(b'\n');
        zip.write(&text).map_err(io_error)?;
        let sealed = zip.finish().map_err(io_error)?;
        let (mut upload, size, sha256) = sealed.finish().map_err(io_error)?;
        upload.flush().map_err(io_error)?;
        upload.commit().await.map_err(io_error)?;
        let finished = Finished {
            storage_region: ctx.region.as_str(),
            object_key: &key,
            key_version,
            chunk_size: CHUNK as i32,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: &sha256,
            counts: counts.clone(),
            ttl_secs: self.settings.ttl.as_secs_f64(),
        };
        let requester = export.export.requested_by;
        let recorded = ctx
            .tenant_tx(TxMode::ReadWrite, async |tx| {
                if !ctx.holds_lease(tx).await? {
                    return Ok(Some(false));
                }
                // A relocation that switched the tenant's home while this run
                // built the archive: the archive is in a store the new home's
                // nodes cannot reach. Read in this transaction, so the switch
                // (which withdraws ready archives outside the new home) either
                // sees this export ready or this read sees the switch.
                if !exports::tenant_lives_in(tx, &ctx.region).await? {
                    return Ok(None);
                }
                let done = exports::mark_ready(tx, id, &finished).await?;
                if done {
                    audit::record(
                        tx,
                        &requester.to_string(),
                        "export.ready",
                        Some(("export", id.to_string())),
                        json!({ "counts": counts, "size": size, "sha256": sha256 }),
                    )
                    .await?;
                }
                Ok::<_, ApiError>(Some(done))
            })
            .await
            .map_err(job_error)?;
        let Some(recorded) = recorded else {
            self.storage
                .remove(&key)
                .await
                .map_err(|e| JobError::Retry(format!("export store: {e}")))?;
            return Err(JobError::Retry(
                "the tenant was relocated while its export was built; it is built again in its \
                    new home region"
                    .into(),
            ));
        };
        if !recorded {
            return Err(JobError::Retry(
                "lost the lease before recording the export".into(),
            ));
        }
        Ok(json!({ "export_id": id, "size": size, "counts": counts }))
    }
}
