//! Field encryption with a tenant's DEK. A ciphertext is
//! `[format 0x01][DEK version, u32 BE][nonce, 12 bytes][AES-256-GCM output]`;
//! the version says which DEK opens it (rotation keeps old versions until
//! re-encryption is done). The additional authenticated data binds it to
//! tenant, table, column and row: copied to another row, column or tenant, it
//! does not open. Nonces are random (96 bits): safe well beyond the number of
//! fields one DEK version encrypts before rotation.

use std::sync::OnceLock;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::ids::TenantId;

const FORMAT: u8 = 1;
const HEADER: usize = 1 + 4 + NONCE_LEN;

/// One version of a tenant's data key.
pub struct Dek {
    pub version: u32,
    key: Zeroizing<[u8; 32]>,
    /// The AES-256-GCM key schedule, expanded at the first seal or open and
    /// kept: a page of sealed messages opens 50 fields with one key, and each
    /// used to expand it again. ring does not wipe a schedule when it drops
    /// (nor did it the per-call ones before); it lives as long as this `Dek`
    /// (the keyring's cache entry).
    aead: OnceLock<LessSafeKey>,
}

/// Where a ciphertext belongs: it opens only there.
pub struct Binding<'a> {
    pub tenant: TenantId,
    pub table: &'a str,
    pub column: &'a str,
    /// The row's id (its UUID text, or the key columns joined).
    pub row: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("not a ciphertext of a known format")]
    Format,
    /// Wrong key, wrong binding (row, column, tenant) or altered bytes: GCM
    /// cannot tell which, and neither does this error.
    #[error("the ciphertext does not open with this key and binding")]
    Open,
    #[error("no system randomness")]
    Randomness,
}

impl Dek {
    pub fn new(version: u32, key: Zeroizing<[u8; 32]>) -> Self {
        Self {
            version,
            key,
            aead: OnceLock::new(),
        }
    }

    /// A new random key.
    pub fn generate(version: u32) -> Result<Self, EnvelopeError> {
        let mut key = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| EnvelopeError::Randomness)?;
        Ok(Self::new(version, key))
    }

    /// The key bytes, for wrapping by a `KeyProvider` only.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    fn aead(&self) -> Result<&LessSafeKey, EnvelopeError> {
        if let Some(aead) = self.aead.get() {
            return Ok(aead);
        }
        // A 32-byte key is always valid for AES-256-GCM; ring still asks.
        let unbound =
            UnboundKey::new(&AES_256_GCM, self.key.as_ref()).map_err(|_| EnvelopeError::Open)?;
        // A racing first use may have set it: either schedule is the same key's.
        Ok(self.aead.get_or_init(|| LessSafeKey::new(unbound)))
    }

    pub fn seal(&self, binding: &Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EnvelopeError::Randomness)?;
        let mut out = Vec::with_capacity(HEADER + plaintext.len() + 16);
        out.push(FORMAT);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(binding, self.version)),
                &mut body,
            )
            .map_err(|_| EnvelopeError::Open)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a ciphertext sealed by this DEK version for this binding.
    pub fn open(
        &self,
        binding: &Binding<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        if version_of(sealed)? != self.version {
            return Err(EnvelopeError::Open);
        }
        let nonce: [u8; NONCE_LEN] = sealed[5..HEADER]
            .try_into()
            .map_err(|_| EnvelopeError::Format)?;
        let mut body = Zeroizing::new(sealed[HEADER..].to_vec());
        let plain_len = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(binding, self.version)),
                &mut body,
            )
            .map_err(|_| EnvelopeError::Open)?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }
}

/// The DEK version a ciphertext names (to pick the key that opens it).
pub fn version_of(sealed: &[u8]) -> Result<u32, EnvelopeError> {
    if sealed.len() < HEADER + 16 || sealed[0] != FORMAT {
        return Err(EnvelopeError::Format);
    }
    let version: [u8; 4] = sealed[1..5].try_into().map_err(|_| EnvelopeError::Format)?;
    Ok(u32::from_be_bytes(version))
}

/// Length-prefixed, so no two bindings encode alike.
fn aad(binding: &Binding<'_>, version: u32) -> Vec<u8> {
    let mut out = b"meridian-field-v1".to_vec();
    out.extend_from_slice(binding.tenant.as_uuid().as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    for part in [binding.table, binding.column, binding.row] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(tenant: TenantId, row: &'a str) -> Binding<'a> {
        Binding {
            tenant,
            table: "webhooks",
            column: "secret",
            row,
        }
    }

    #[test]
    fn a_ciphertext_opens_only_where_it_was_sealed() {
        let dek = Dek::generate(3).unwrap();
        let tenant = TenantId::new_random();
        let sealed = dek.seal(&at(tenant, "row-1"), b"whsec_canary").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"canary"));
        assert_eq!(version_of(&sealed), Ok(3));
        assert_eq!(
            dek.open(&at(tenant, "row-1"), &sealed).unwrap().as_slice(),
            b"whsec_canary"
        );
        // Copied to another row, tenant or column: refused.
        assert_eq!(
            dek.open(&at(tenant, "row-2"), &sealed),
            Err(EnvelopeError::Open)
        );
        let other = TenantId::new_random();
        assert_eq!(
            dek.open(&at(other, "row-1"), &sealed),
            Err(EnvelopeError::Open)
        );
        let column = Binding {
            column: "client_secret",
            ..at(tenant, "row-1")
        };
        assert_eq!(dek.open(&column, &sealed), Err(EnvelopeError::Open));
        // Another key, or one flipped bit: refused.
        let stranger = Dek::new(3, Dek::generate(3).unwrap().key);
        assert_eq!(
            stranger.open(&at(tenant, "row-1"), &sealed),
            Err(EnvelopeError::Open)
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            dek.open(&at(tenant, "row-1"), &altered),
            Err(EnvelopeError::Open)
        );
        assert_eq!(version_of(b"plain text"), Err(EnvelopeError::Format));
        // Two seals of one value differ (random nonces).
        assert_ne!(
            sealed,
            dek.seal(&at(tenant, "row-1"), b"whsec_canary").unwrap()
        );
    }
}
