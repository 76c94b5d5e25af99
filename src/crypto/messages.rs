//! Per-tenant encryption of message bodies and channel summaries (the tenant's
//! policy `encryption: {"messages": true}`, `tenants.encrypt_messages`, V19).
//!
//! **What is sealed.** A message's body (`messages.body_enc`, `body` = '') and a
//! summary's text and chosen sentences, as one JSON document
//! (`channel_summaries.sealed`, `summary` and `sentences` NULL), each with the
//! tenant's active DEK (`crypto::keyring`) and an AAD naming tenant, table,
//! column and row id (`BODY`, `SUMMARY`): copied to another row or tenant, a
//! ciphertext does not open (an error, never another plaintext). Nothing else
//! of an encrypting tenant holds a body: `body_tsv` is generated from `body`, so
//! it is empty (no word reaches `messages_search_idx` nor its pending list); the
//! `message.posted` outbox event (and so its webhook deliveries) carries the
//! message without its body (`body_encrypted: true`: receivers fetch it through
//! the API); summary jobs carry only ids and read bodies through the keyring.
//!
//! **Turning it on.** New posts and summaries are sealed from the commit of the
//! change on; rows written before stay plaintext until the `messages.seal` job
//! (`crypto::seal_messages`), enqueued by the change in its transaction, seals
//! them in batches. From then on they are ordinary sealed rows: rotation
//! re-encrypts them (`rotation::ENCRYPTED` lists both columns), relocation
//! moves them in place (the AAD names no region). Search answers 409
//! `search_unavailable_encrypted` while the policy is on. **Turning it off.** New rows are stored in plaintext again;
//! sealed rows stay sealed (readable as before, still covered by rotation and
//! crypto-shredding): decrypting a tenant's history back into the database is
//! not something a policy switch should do behind a compliance officer's back.
//! Search works again, over the plaintext rows only.
//!
//! **A stale policy cannot land plaintext.** A post decides from the directory
//! cache, which another node's PATCH reaches only at the next refresh. So the
//! post's INSERT re-reads the policy itself, in the same statement: the body it
//! writes is `CASE WHEN <no ciphertext> AND tenants.encrypt_messages THEN NULL
//! ELSE <body> END`, and `body` is NOT NULL, so a plaintext post of a tenant whose
//! committed policy says "encrypt" fails (SQLSTATE 23502, nothing written,
//! nothing charged: the statement is atomic) and the handler redoes it sealed
//! (`PlaintextRefused`). No extra round trip: the guard is one primary-key read
//! in the statement that writes. A post whose transaction begins after the
//! PATCH answered reads the new value and is sealed. One concurrent with the
//! PATCH may read the old value; SERIALIZABLE then orders it before the PATCH,
//! so it is one of the rows written "before", which `messages.seal` seals: each
//! of its batches reads the policy (written by the PATCH) and scans for
//! plaintext rows, so a post that committed after the job's last scan would be
//! ordered before the PATCH and after that scan, which is after the PATCH — a
//! cycle SERIALIZABLE aborts (the post is retried and then sealed).

use serde_json::Value;

use super::envelope::Binding;
use super::keyring::{Keyring, Opener};
use crate::db::TenantTx;
use crate::ids::{MessageId, SummaryId};
use crate::store::error::StoreError;

/// (table, column) in the AAD of a sealed message body (stored in `body_enc`).
pub const BODY: (&str, &str) = ("messages", "body");
/// (table, column) in the AAD of a sealed summary (stored in `sealed`).
pub const SUMMARY: (&str, &str) = ("channel_summaries", "summary");

/// Bytes a sealed field has beyond its plaintext (format, DEK version, nonce,
/// GCM tag: `envelope`), to give a sealed body's plaintext bytes back to the
/// quota when its channel is deleted.
pub const SEALED_OVERHEAD: i32 = 1 + 4 + 12 + 16;

/// The post's INSERT refused plaintext: the tenant's committed policy says
/// encrypt (its cached copy was stale). The handler redoes the post sealed.
#[derive(Debug, thiserror::Error)]
#[error("the tenant's policy now encrypts messages; the post is redone sealed")]
pub struct PlaintextRefused;

impl PlaintextRefused {
    /// Whether `err` is this refusal (carried as an internal error's cause).
    pub fn is(err: &crate::error::ApiError) -> bool {
        matches!(err, crate::error::ApiError::Internal(cause) if cause.is::<PlaintextRefused>())
    }
}

fn binding<'a>(tx: &TenantTx<'_>, at: (&'a str, &'a str), row: &'a str) -> Binding<'a> {
    Binding {
        tenant: tx.tenant_id(),
        table: at.0,
        column: at.1,
        row,
    }
}

/// The post's sealed body was sealed with a DEK version its INSERT found no
/// longer active (this node's assumption, `Keyring::seal_assuming`, was stale:
/// a rotation or a destroy happened). The handler redoes the post with
/// `Sealing::fresh`, which reads the active version in its transaction.
#[derive(Debug, thiserror::Error)]
#[error("the DEK version the post assumed is no longer active; the post is redone")]
pub struct KeyVersionStale;

impl KeyVersionStale {
    /// Whether `err` is this refusal (carried as an internal error's cause).
    pub fn is(err: &crate::error::ApiError) -> bool {
        matches!(err, crate::error::ApiError::Internal(cause) if cause.is::<KeyVersionStale>())
    }
}

/// How a post seals its body.
#[derive(Clone, Copy)]
pub struct Sealing<'a> {
    pub keyring: &'a Keyring,
    /// Read the active version in the transaction (`Keyring::seal`) rather than
    /// use this node's assumption (`Keyring::seal_assuming`, checked by the
    /// INSERT): after a `KeyVersionStale`.
    pub fresh: bool,
}

/// Seals a post's body for the row `id`: the ciphertext and the DEK version
/// the INSERT must find still active.
pub async fn seal_post_body(
    sealing: Sealing<'_>,
    tx: &TenantTx<'_>,
    id: MessageId,
    body: &str,
) -> Result<(Vec<u8>, u32), StoreError> {
    let row = id.to_string();
    let at = binding(tx, BODY, &row);
    if sealing.fresh {
        let sealed = sealing
            .keyring
            .seal(tx, tx.tenant_id(), &at, body.as_bytes())
            .await?;
        let version = super::envelope::version_of(&sealed).map_err(StoreError::internal)?;
        return Ok((sealed, version));
    }
    Ok(sealing
        .keyring
        .seal_assuming(tx, tx.tenant_id(), &at, body.as_bytes())
        .await?)
}

/// Seals a message body for the row `id` (in the transaction that writes it).
pub async fn seal_body(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    id: MessageId,
    body: &str,
) -> Result<Vec<u8>, StoreError> {
    let row = id.to_string();
    Ok(keyring
        .seal(
            tx,
            tx.tenant_id(),
            &binding(tx, BODY, &row),
            body.as_bytes(),
        )
        .await?)
}

/// Opens the sealed body of message `id`.
pub async fn open_body(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    id: MessageId,
    sealed: &[u8],
) -> Result<String, StoreError> {
    open_body_with(&mut keyring.opener(), tx, id, sealed).await
}

/// Opens the sealed body of message `id` with `opener` (a page's bodies share
/// one: `Keyring::opener`).
pub async fn open_body_with(
    opener: &mut Opener<'_>,
    tx: &TenantTx<'_>,
    id: MessageId,
    sealed: &[u8],
) -> Result<String, StoreError> {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let row = id.as_uuid().hyphenated().encode_lower(&mut text);
    let mut plain = opener.open(tx, &binding(tx, BODY, row), sealed).await?;
    // The plaintext becomes the answer's body anyway: moved, not copied.
    String::from_utf8(std::mem::take(&mut *plain)).map_err(|_| {
        StoreError::internal(anyhow::anyhow!("message {id}: sealed body is not UTF-8"))
    })
}

/// Seals a summary's text and sentences for the row `id`.
pub async fn seal_summary(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    id: SummaryId,
    text: &str,
    sentences: &Value,
) -> Result<Vec<u8>, StoreError> {
    let row = id.to_string();
    let doc = serde_json::to_vec(&serde_json::json!({ "summary": text, "sentences": sentences }))
        .map_err(StoreError::internal)?;
    let doc = zeroize::Zeroizing::new(doc);
    Ok(keyring
        .seal(tx, tx.tenant_id(), &binding(tx, SUMMARY, &row), &doc)
        .await?)
}

/// Opens a sealed summary: its text and sentences.
pub async fn open_summary(
    keyring: &Keyring,
    tx: &TenantTx<'_>,
    id: SummaryId,
    sealed: &[u8],
) -> Result<(String, Value), StoreError> {
    let row = id.to_string();
    let plain = keyring
        .open(tx, &binding(tx, SUMMARY, &row), sealed)
        .await?;
    let mut doc: Value = serde_json::from_slice(&plain).map_err(|_| {
        StoreError::internal(anyhow::anyhow!("summary {id}: sealed document is not JSON"))
    })?;
    let text = doc["summary"].as_str().unwrap_or_default().to_owned();
    Ok((text, doc["sentences"].take()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::envelope::Dek;
    use crate::ids::TenantId;

    #[test]
    fn the_overhead_is_the_envelopes() {
        let dek = Dek::generate(1).unwrap();
        let at = Binding {
            tenant: TenantId::new_random(),
            table: BODY.0,
            column: BODY.1,
            row: "r",
        };
        for plain in [&b""[..], b"hello", &[7u8; 1000]] {
            let sealed = dek.seal(&at, plain).unwrap();
            assert_eq!(sealed.len() - plain.len(), SEALED_OVERHEAD as usize);
        }
    }
}
