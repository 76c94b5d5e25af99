//! The offline verifier of an export (`meridian audit verify-file`): reads the
//! NDJSON line by line (flat memory), recomputes every link from the header's
//! `prev_hash`, and checks each checkpoint's signature with the given public key
//! and that the recomputed chain has its hash at its seq. Events after the last
//! checkpoint in the file are linked but signed by nothing: reported as such.

use std::io::BufRead;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::chain::{self, Content};
use super::checkpoint::{self, Checkpoint};
use super::verify::{Stored, Verification, Walk};
use crate::crypto::signing::{self, Purpose};

/// What verifying a file found.
#[derive(Debug, Serialize)]
pub struct FileReport {
    #[serde(flatten)]
    pub chain: Verification,
    /// Checkpoints whose signature verified and whose hash the chain has.
    pub checkpoints_valid: usize,
    pub checkpoints_invalid: Vec<i64>,
    /// Events after the last valid checkpoint (linked, but signed by nothing).
    pub unsigned_tail: i64,
}

impl FileReport {
    /// Intact, every checkpoint valid, and at least one of them.
    pub fn trustworthy(&self) -> bool {
        self.chain.intact && self.checkpoints_invalid.is_empty() && self.checkpoints_valid > 0
    }
}

/// Verifies an export read from `input` against the raw Ed25519 `public_key`.
pub fn verify(input: impl BufRead, public_key: &[u8]) -> anyhow::Result<FileReport> {
    let mut walk: Option<Walk> = None;
    let mut pending: Vec<Checkpoint> = Vec::new();
    let mut hashes_at: std::collections::BTreeMap<i64, Vec<u8>> = Default::default();
    let (mut valid, mut invalid, mut last_valid) = (0, Vec::new(), None::<i64>);
    let mut trail = String::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("line {}: not JSON: {e}", n + 1))?;
        match v["type"].as_str() {
            Some("header") => {
                anyhow::ensure!(
                    v["format"] == super::export::FORMAT,
                    "line {}: unknown format {}",
                    n + 1,
                    v["format"]
                );
                trail = text(&v, "trail")?.to_owned();
                let mut w = Walk::new(trail.clone());
                if let (Some(first), Some(prev)) =
                    (v["first_seq"].as_i64(), v["prev_hash"].as_str())
                {
                    w.prev = chain::unhex(prev)
                        .ok_or_else(|| anyhow::anyhow!("prev_hash is not hex"))?;
                    w.first_seq = first;
                    w.next_seq = first;
                    // An anchor checkpoint in the file signs this hash.
                    hashes_at.insert(first - 1, w.prev.clone());
                }
                walk = Some(w);
            }
            Some("event") => {
                let w = walk
                    .as_mut()
                    .ok_or_else(|| anyhow::anyhow!("an event before the header"))?;
                let stored = stored(&v).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
                w.step(&stored, None);
                if w.broken.is_none() {
                    hashes_at.insert(w.next_seq - 1, w.prev.clone());
                }
            }
            Some("checkpoint") => {
                pending.push(checkpoint(&v).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?)
            }
            other => anyhow::bail!("line {}: unknown line type {other:?}", n + 1),
        }
    }
    let walk = walk.ok_or_else(|| anyhow::anyhow!("no header line"))?;
    for c in &pending {
        let signature_ok = signing::verify(
            public_key,
            Purpose::AuditCheckpoint,
            &c.message(&trail),
            &c.signature,
        )
        .is_ok();
        let matches = hashes_at.get(&c.seq).is_some_and(|h| *h == c.hash);
        if signature_ok && matches {
            valid += 1;
            last_valid = Some(last_valid.map_or(c.seq, |s: i64| s.max(c.seq)));
        } else {
            invalid.push(c.seq);
        }
    }
    let last_seq = walk.next_seq - 1;
    let unsigned_tail = last_seq - last_valid.unwrap_or(walk.first_seq - 1);
    let latest = pending.iter().max_by_key(|c| c.seq).map(|c| {
        let check = |_: &str, m: &[u8], s: &str| {
            Some(signing::verify(public_key, Purpose::AuditCheckpoint, m, s).is_ok())
        };
        checkpoint::check(c, &trail, hashes_at.get(&c.seq).map(Vec::as_slice), &check)
    });
    Ok(FileReport {
        chain: walk.report(latest),
        checkpoints_valid: valid,
        checkpoints_invalid: invalid,
        unsigned_tail: unsigned_tail.max(0),
    })
}

/// A raw Ed25519 public key from its base64url text (as `GET /v1/signing-keys`
/// lists it; padding tolerated).
pub fn decode_public_key(text: &str) -> anyhow::Result<Vec<u8>> {
    let key = B64.decode(text.trim().trim_end_matches('='))?;
    anyhow::ensure!(key.len() == 32, "an Ed25519 public key is 32 bytes");
    Ok(key)
}

fn text<'a>(v: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    v[field]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("`{field}` is missing or not a string"))
}

fn opt_text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v[field].as_str()
}

fn stored(v: &Value) -> anyhow::Result<Stored> {
    let id: uuid::Uuid = text(v, "id")?.parse()?;
    let at: DateTime<Utc> = text(v, "created_at")?.parse()?;
    let tenant = opt_text(v, "tenant_id").map(str::parse).transpose()?;
    let sealed = opt_text(v, "sealed").map(|s| B64.decode(s)).transpose()?;
    let canonical = chain::canonical(&Content {
        id,
        created_at: at,
        actor: text(v, "actor")?,
        action: text(v, "action")?,
        tenant,
        target_kind: opt_text(v, "target_kind"),
        target_id: opt_text(v, "target_id"),
        details: &v["details"],
        sealed: sealed.as_deref(),
    });
    Ok(Stored {
        seq: v["seq"].as_i64(),
        hash: opt_text(v, "hash").and_then(chain::unhex),
        canonical,
    })
}

fn checkpoint(v: &Value) -> anyhow::Result<Checkpoint> {
    Ok(Checkpoint {
        seq: v["seq"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("checkpoint without seq"))?,
        hash: chain::unhex(text(v, "hash")?).ok_or_else(|| anyhow::anyhow!("hash is not hex"))?,
        kind: text(v, "kind")?.to_owned(),
        signed_at: text(v, "signed_at")?.parse()?,
        key_id: text(v, "key_id")?.to_owned(),
        signature: text(v, "signature")?.to_owned(),
    })
}
