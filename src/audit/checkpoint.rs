//! Signed checkpoints: (trail, seq, hash at seq) signed with the platform's
//! Ed25519 key (`crypto::signing`), stored with the key id. Taken periodically
//! (the `audit_checkpoints` job), at every export, and as the anchor retention
//! leaves behind. Anyone holding the public key can check that a trail had this
//! head at this seq: a rewritten chain needs a forged signature.
//!
//! The signed message (docs/audit-format.md): `meridian-audit-checkpoint-v1\0`,
//! then the trail name, seq (i64, big-endian), hash, signed_at (UTC microseconds,
//! i64 big-endian) and key id, each variable field as a u32 big-endian length and
//! its bytes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::chain;
use super::trail::Source;
use crate::crypto::signing::{Purpose, Signature, Signer, VerifyError};
use crate::db::{PlatformTx, TenantTx};
use crate::error::ApiError;
use crate::ids::RegionId;
use crate::store::error::StoreError;

const TAG: &[u8] = b"meridian-audit-checkpoint-v1\0";

#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub kind: String,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    /// base64url, as `crypto::signing` writes it.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckpointCheck {
    pub seq: i64,
    /// `periodic`, `export` or `anchor`.
    pub kind: String,
    pub key_id: String,
    pub signed_at: DateTime<Utc>,
    /// The signature verifies under the key `key_id` (false for an unknown key).
    pub signature_valid: bool,
    /// The chain, recomputed, has the checkpoint's hash at its seq.
    pub matches_chain: bool,
}

/// Checks a signature: `None` when the key id is unknown.
pub type SignatureCheck<'a> = &'a dyn Fn(&str, &[u8], &str) -> Option<bool>;

/// The bytes a checkpoint's signature covers.
pub fn message(
    trail: &str,
    seq: i64,
    hash: &[u8],
    signed_at: DateTime<Utc>,
    key_id: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(TAG);
    let mut field = |bytes: &[u8]| {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(trail.as_bytes());
    field(&seq.to_be_bytes());
    field(hash);
    field(&signed_at.timestamp_micros().to_be_bytes());
    field(key_id.as_bytes());
    out
}

impl Checkpoint {
    pub fn message(&self, trail: &str) -> Vec<u8> {
        message(trail, self.seq, &self.hash, self.signed_at, &self.key_id)
    }

    pub fn signature_valid(&self, trail: &str, check: SignatureCheck<'_>) -> bool {
        check(&self.key_id, &self.message(trail), &self.signature).unwrap_or(false)
    }
}

pub const COLUMNS: &str = "seq, hash, kind, signed_at, key_id, signature";

pub fn from_row(row: &tokio_postgres::Row) -> Checkpoint {
    Checkpoint {
        seq: row.get("seq"),
        hash: row.get("hash"),
        kind: row.get("kind"),
        signed_at: row.get("signed_at"),
        key_id: row.get("key_id"),
        signature: row.get("signature"),
    }
}

/// The trail's checkpoint with the highest seq.
pub async fn latest(source: &Source<'_>) -> Result<Option<Checkpoint>, ApiError> {
    let sql = source.sql();
    let rows = source
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {} WHERE {} = {} ORDER BY seq DESC LIMIT 1",
                sql.checkpoints, sql.key_column, sql.key_cast
            ),
            &[&source.key()],
        )
        .await?;
    Ok(rows.first().map(from_row))
}

/// The trail's checkpoint at `seq`.
pub async fn at(source: &Source<'_>, seq: i64) -> Result<Option<Checkpoint>, ApiError> {
    let sql = source.sql();
    let rows = source
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {} WHERE {} = {} AND seq = $2",
                sql.checkpoints, sql.key_column, sql.key_cast
            ),
            &[&source.key(), &seq],
        )
        .await?;
    Ok(rows.first().map(from_row))
}

/// The trail's checkpoints with seq in `from..=to`, in seq order.
pub async fn between(source: &Source<'_>, from: i64, to: i64) -> Result<Vec<Checkpoint>, ApiError> {
    let sql = source.sql();
    let rows = source
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {} WHERE {} = {} AND seq BETWEEN $2 AND $3 ORDER BY seq",
                sql.checkpoints, sql.key_column, sql.key_cast
            ),
            &[&source.key(), &from, &to],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// What verification says about `checkpoint`, given the recomputed hash at its
/// seq (`None`: the walk did not reach it).
pub fn check(
    checkpoint: &Checkpoint,
    trail: &str,
    hash_at_seq: Option<&[u8]>,
    signature: SignatureCheck<'_>,
) -> CheckpointCheck {
    CheckpointCheck {
        seq: checkpoint.seq,
        kind: checkpoint.kind.clone(),
        key_id: checkpoint.key_id.clone(),
        signed_at: checkpoint.signed_at,
        signature_valid: checkpoint.signature_valid(trail, signature),
        matches_chain: hash_at_seq.is_some_and(|h| h == checkpoint.hash.as_slice()),
    }
}

/// Hex of a checkpoint's hash, for reports.
pub fn hash_hex(checkpoint: &Checkpoint) -> String {
    chain::hex(&checkpoint.hash)
}

/// Checks checkpoint signatures with the keys `signer` trusts (its own and
/// `signing.trusted_keys`); `None` for a key it does not know.
pub fn checker(signer: &Signer) -> impl Fn(&str, &[u8], &str) -> Option<bool> + '_ {
    move |key_id, message, signature| {
        let signature = Signature {
            key_id: key_id.to_owned(),
            signature: signature.to_owned(),
        };
        match signer.verify(Purpose::AuditCheckpoint, message, &signature) {
            Ok(()) => Some(true),
            Err(VerifyError::UnknownKey(_)) => None,
            Err(_) => Some(false),
        }
    }
}

fn signed(signer: &Signer, trail: &str, seq: i64, hash: Vec<u8>, kind: &str) -> Checkpoint {
    let signed_at = chain::to_micros(Utc::now());
    let key_id = signer.key_id().to_owned();
    let signature = signer
        .sign(
            Purpose::AuditCheckpoint,
            &message(trail, seq, &hash, signed_at, &key_id),
        )
        .signature;
    Checkpoint {
        seq,
        hash,
        kind: kind.to_owned(),
        signed_at,
        key_id,
        signature,
    }
}

/// Unchained events a checkpoint chains first, at most (the sealer's batch).
const CHAIN_FIRST: i64 = 1000;

/// Signs the tenant's current head, in `tx` (`kind`: periodic, export, anchor);
/// `None` for an empty trail. A checkpoint already at that seq is kept (it signs
/// the same hash) and returned.
pub async fn take_tenant(
    tx: &TenantTx<'_>,
    signer: &Signer,
    kind: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let tenant = tx.tenant_id();
    // The events written since the sealer's last pass are chained first, so the
    // checkpoint covers the trail up to this transaction.
    super::seal::seal_trail(tx, CHAIN_FIRST).await?;
    let head = tx
        .query_opt(
            "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1",
            &[tenant.as_uuid()],
        )
        .await?;
    let Some((seq, hash)) = head.map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1))) else {
        return Ok(None);
    };
    if seq == 0 {
        return Ok(None);
    }
    sign_tenant_at(tx, signer, seq, hash, kind).await.map(Some)
}

/// Signs (seq, hash) of the tenant's trail and stores it unless a checkpoint at
/// that seq exists; the stored one.
pub async fn sign_tenant_at(
    tx: &TenantTx<'_>,
    signer: &Signer,
    seq: i64,
    hash: Vec<u8>,
    kind: &str,
) -> Result<Checkpoint, StoreError> {
    let tenant = tx.tenant_id();
    let c = signed(signer, &format!("tenant:{tenant}"), seq, hash, kind);
    tx.execute(
        "INSERT INTO audit_checkpoints (tenant_id, seq, home_region, hash, kind, signed_at, \
            key_id, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, seq) DO NOTHING",
        &[
            tenant.as_uuid(),
            &c.seq,
            &tx.home_region().as_str(),
            &c.hash,
            &c.kind,
            &c.signed_at,
            &c.key_id,
            &c.signature,
        ],
    )
    .await?;
    let row = tx
        .query_one(
            &format!("SELECT {COLUMNS} FROM audit_checkpoints WHERE tenant_id = $1 AND seq = $2"),
            &[tenant.as_uuid(), &c.seq],
        )
        .await?;
    Ok(from_row(&row))
}

/// Signs the head of `region`'s platform trail; `None` for an empty trail.
pub async fn take_platform(
    tx: &PlatformTx<'_>,
    signer: &Signer,
    region: &RegionId,
    kind: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let head = tx
        .query_opt(
            "SELECT seq, hash FROM platform_audit_heads WHERE region = $1",
            &[&region.as_str()],
        )
        .await?;
    let Some((seq, hash)) = head.map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1))) else {
        return Ok(None);
    };
    if seq == 0 {
        return Ok(None);
    }
    let c = signed(
        signer,
        &format!("platform:{}", region.as_str()),
        seq,
        hash,
        kind,
    );
    tx.execute(
        "INSERT INTO platform_audit_checkpoints (region, seq, hash, kind, signed_at, key_id, \
            signature) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (region, seq) DO NOTHING",
        &[
            &region.as_str(),
            &c.seq,
            &c.hash,
            &c.kind,
            &c.signed_at,
            &c.key_id,
            &c.signature,
        ],
    )
    .await?;
    Ok(Some(c))
}
