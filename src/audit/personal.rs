//! Personal details in audit events: a key per data subject (`subject_keys`,
//! V33), so that erasing one user erases what the trail says about them while
//! the chain, which hashes the ciphertext, still verifies.
//!
//! **Keys.** A subject (the user an event's details are about) gets a random
//! 256-bit key the first time an event carries their details, stored sealed
//! with the tenant's keyring (bound to tenant, `subject_keys`, `key_sealed` and
//! the subject id, so a DEK rotation re-encrypts it: `rotation::ENCRYPTED`).
//! User erasure deletes the row in its final transaction; tenant erasure deletes
//! every row and destroys the tenant's keys that wrap them.
//!
//! **Formats of `audit_events.sealed`.** The first byte says which key opens it:
//! - `0x01`: the tenant's keyring (`crypto::envelope`: version, nonce, AES-256-GCM),
//!   what events written before V33 carry; still opened, never written.
//! - `0x02`: the subject's key: `[0x02][subject id, 16 bytes][nonce, 12][AES-256-GCM
//!   output]`, the additional data binding tenant, subject, table, column and
//!   row (the event id). The subject id is in the clear, as the trail's rule is
//!   (actors and subjects by id), so a page knows which keys to read.
//!
//! Platform events about a tenant seal with the tenant's keyring (`0x01`, bound
//! to `platform_audit_events`): tenant erasure destroys those keys.

use std::collections::HashMap;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::envelope::{Binding, EnvelopeError};
use crate::crypto::keyring::{Keyring, KeyringError};
use crate::db::TenantTx;
use crate::ids::TenantId;
use crate::store::error::StoreError;

/// `sealed` under the tenant's keyring (`crypto::envelope`'s format byte).
pub const TENANT_FORMAT: u8 = 1;
/// `sealed` under the subject's key.
pub const SUBJECT_FORMAT: u8 = 2;
const HEADER: usize = 1 + 16 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Creates the subject's key unless a row exists (a racing creator's insert
/// conflicts: 40001 under SERIALIZABLE, and the retried transaction reads the
/// winner's row). `RETURNING` says whether this transaction's key is the one.
pub const INSERT_KEY_SQL: &str = "INSERT INTO subject_keys (tenant_id, subject_id, home_region, \
    key_sealed) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, subject_id) DO NOTHING \
    RETURNING subject_id";

/// One subject's key (the primary key).
pub const KEY_SQL: &str =
    "SELECT key_sealed FROM subject_keys WHERE tenant_id = $1 AND subject_id = $2";

/// The keys of a page's subjects, in one statement (the primary key).
pub const PAGE_KEYS_SQL: &str = "SELECT subject_id, key_sealed FROM subject_keys \
    WHERE tenant_id = $1 AND subject_id = ANY($2)";

/// User erasure's final transaction: the subject's key goes, and with it what
/// the trail holds about them.
pub const DELETE_KEY_SQL: &str =
    "DELETE FROM subject_keys WHERE tenant_id = $1 AND subject_id = $2";

fn key_binding(tenant: TenantId, subject: &str) -> Binding<'_> {
    Binding {
        tenant,
        table: "subject_keys",
        column: "key_sealed",
        row: subject,
    }
}

fn keyring_error(err: KeyringError) -> StoreError {
    match err {
        KeyringError::Destroyed => StoreError::KeysDestroyed,
        other => other.into(),
    }
}

/// The subject's key, created in `tx` if it has none (see `INSERT_KEY_SQL`).
pub async fn subject_key(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    subject: Uuid,
) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let tenant = tx.tenant_id();
    let row = subject.to_string();
    let mut key = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(key.as_mut())
        .map_err(|_| StoreError::internal(EnvelopeError::Randomness))?;
    let sealed = keyring
        .seal(tx, tenant, &key_binding(tenant, &row), key.as_ref())
        .await
        .map_err(keyring_error)?;
    let inserted = tx
        .query_opt(
            INSERT_KEY_SQL,
            &[
                tenant.as_uuid(),
                &subject,
                &tx.home_region().as_str(),
                &sealed,
            ],
        )
        .await?;
    if inserted.is_some() {
        return Ok(key);
    }
    let stored: Vec<u8> = tx
        .query_one(KEY_SQL, &[tenant.as_uuid(), &subject])
        .await?
        .get(0);
    unwrap_key(tx, keyring, &row, &stored).await
}

async fn unwrap_key(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    subject: &str,
    stored: &[u8],
) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let tenant = tx.tenant_id();
    let plain = keyring
        .open(tx, &key_binding(tenant, subject), stored)
        .await
        .map_err(keyring_error)?;
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != key.len() {
        return Err(StoreError::internal(anyhow::anyhow!(
            "subject key of {subject} is {} bytes",
            plain.len()
        )));
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

/// Length-prefixed, so no two bindings encode alike.
fn aad(binding: &Binding<'_>, subject: Uuid) -> Vec<u8> {
    let mut out = b"meridian-personal-v2".to_vec();
    out.extend_from_slice(binding.tenant.as_uuid().as_bytes());
    out.extend_from_slice(subject.as_bytes());
    for part in [binding.table, binding.column, binding.row] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, EnvelopeError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| EnvelopeError::Open)?;
    Ok(LessSafeKey::new(unbound))
}

/// Seals `plaintext` for `binding` with `subject`'s key (format `0x02`).
pub fn seal_for_subject(
    key: &[u8; 32],
    subject: Uuid,
    binding: &Binding<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| EnvelopeError::Randomness)?;
    let mut out = Vec::with_capacity(HEADER + plaintext.len() + TAG_LEN);
    out.push(SUBJECT_FORMAT);
    out.extend_from_slice(subject.as_bytes());
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    aead(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(binding, subject)),
            &mut body,
        )
        .map_err(|_| EnvelopeError::Open)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The subject a `0x02` ciphertext names; `None` for another format.
pub fn subject_of(sealed: &[u8]) -> Option<Uuid> {
    if sealed.len() < HEADER + TAG_LEN || sealed[0] != SUBJECT_FORMAT {
        return None;
    }
    Uuid::from_slice(&sealed[1..17]).ok()
}

/// Opens a `0x02` ciphertext with its subject's key.
pub fn open_for_subject(
    key: &[u8; 32],
    binding: &Binding<'_>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let subject = subject_of(sealed).ok_or(EnvelopeError::Format)?;
    let nonce: [u8; NONCE_LEN] = sealed[17..HEADER]
        .try_into()
        .map_err(|_| EnvelopeError::Format)?;
    let mut body = Zeroizing::new(sealed[HEADER..].to_vec());
    let len = aead(key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(binding, subject)),
            &mut body,
        )
        .map_err(|_| EnvelopeError::Open)?
        .len();
    body.truncate(len);
    Ok(body)
}

/// Seals an event's personal details with the subject's key (created if need
/// be), bound to `table`.`sealed` of `event`.
pub async fn seal(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    subject: Uuid,
    table: &str,
    event: &str,
    personal: &Value,
) -> Result<Vec<u8>, StoreError> {
    let key = subject_key(tx, keyring, subject).await?;
    let binding = Binding {
        tenant: tx.tenant_id(),
        table,
        column: "sealed",
        row: event,
    };
    let plaintext = Zeroizing::new(serde_json::to_vec(personal).map_err(StoreError::internal)?);
    seal_for_subject(&key, subject, &binding, &plaintext).map_err(StoreError::internal)
}

/// What a listing shows of one event's sealed details.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    Personal(Value),
    /// The subject's key, or the tenant's keys, are gone.
    Erased,
}

/// Opens the sealed details of a page of one tenant's events, reading each
/// subject's key at most once (one statement for the page) and each DEK
/// version through one `Opener`. `events` are (event id, ciphertext).
pub async fn open_page(
    tx: &TenantTx<'_>,
    keyring: &Keyring,
    table: &str,
    events: &[(String, &[u8])],
) -> Result<Vec<Opened>, StoreError> {
    let tenant = tx.tenant_id();
    let mut subjects: Vec<Uuid> = events.iter().filter_map(|(_, s)| subject_of(s)).collect();
    subjects.sort_unstable();
    subjects.dedup();
    let mut keys: HashMap<Uuid, Option<Zeroizing<[u8; 32]>>> = HashMap::new();
    if !subjects.is_empty() {
        let rows = tx
            .query(PAGE_KEYS_SQL, &[tenant.as_uuid(), &subjects])
            .await?;
        for row in rows {
            let subject: Uuid = row.get(0);
            let stored: Vec<u8> = row.get(1);
            let key = match unwrap_key(tx, keyring, &subject.to_string(), &stored).await {
                Ok(key) => Some(key),
                Err(StoreError::KeysDestroyed) => None,
                Err(other) => return Err(other),
            };
            keys.insert(subject, key);
        }
    }
    let mut opener = keyring.opener();
    let mut out = Vec::with_capacity(events.len());
    for (event, sealed) in events {
        let binding = Binding {
            tenant,
            table,
            column: "sealed",
            row: event,
        };
        let plain = match sealed.first() {
            Some(&SUBJECT_FORMAT) => {
                let subject = subject_of(sealed).ok_or_else(|| {
                    StoreError::internal(anyhow::anyhow!("event {event}: sealed is malformed"))
                })?;
                match keys.get(&subject) {
                    Some(Some(key)) => Some(
                        open_for_subject(key, &binding, sealed).map_err(StoreError::internal)?,
                    ),
                    _ => None,
                }
            }
            _ => match opener.open(tx, &binding, sealed).await {
                Ok(plain) => Some(plain),
                Err(KeyringError::Destroyed) => None,
                Err(other) => return Err(other.into()),
            },
        };
        out.push(match plain {
            Some(plain) => {
                Opened::Personal(serde_json::from_slice(&plain).map_err(StoreError::internal)?)
            }
            None => Opened::Erased,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_ciphertext_opens_only_with_its_key_and_binding() {
        let (tenant, subject) = (TenantId::new_random(), Uuid::new_v4());
        let key = [7u8; 32];
        let at = |row| Binding {
            tenant,
            table: "audit_events",
            column: "sealed",
            row,
        };
        let sealed = seal_for_subject(&key, subject, &at("e1"), b"{\"email\":\"x\"}").unwrap();
        assert_eq!(sealed[0], SUBJECT_FORMAT);
        assert_eq!(subject_of(&sealed), Some(subject));
        assert_eq!(
            open_for_subject(&key, &at("e1"), &sealed)
                .unwrap()
                .as_slice(),
            b"{\"email\":\"x\"}"
        );
        assert_eq!(
            open_for_subject(&key, &at("e2"), &sealed),
            Err(EnvelopeError::Open)
        );
        assert_eq!(
            open_for_subject(&[8u8; 32], &at("e1"), &sealed),
            Err(EnvelopeError::Open)
        );
        // Another subject's id written into the header: the AAD no longer matches.
        let mut moved = sealed.clone();
        moved[1..17].copy_from_slice(Uuid::new_v4().as_bytes());
        assert_eq!(
            open_for_subject(&key, &at("e1"), &moved),
            Err(EnvelopeError::Open)
        );
        // A keyring ciphertext (format 1) names no subject.
        let mut v1 = sealed.clone();
        v1[0] = TENANT_FORMAT;
        assert_eq!(subject_of(&v1), None);
    }
}
