//! Ed25519 signatures on evidence handed to auditors: audit checkpoints, erasure
//! receipts, residency reports. The node signs with one key (`signing.key_file`)
//! and knows the public keys it trusts (its own plus `signing.trusted_keys`:
//! other regions' keys and retired ones), which `GET /v1/signing-keys` publishes,
//! so anyone can verify a document offline with the public key alone.
//!
//! Every signature covers a purpose label before the message
//! (`meridian/<purpose>/v1` and a zero byte), so a signature made for one kind of
//! document can never be presented as another (a receipt as a checkpoint, say).
//! ring's Ed25519 is used (already in the tree for jsonwebtoken and rustls); the
//! private key lives only in ring's key pair and the 0600 key file, never in a
//! log, a `Debug` output or the database.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

/// What a signature is for; part of the signed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    AuditCheckpoint,
    ErasureReceipt,
    ResidencyReport,
    ExportManifest,
}

impl Purpose {
    pub fn label(self) -> &'static str {
        match self {
            Self::AuditCheckpoint => "audit-checkpoint",
            Self::ErasureReceipt => "erasure-receipt",
            Self::ResidencyReport => "residency-report",
            Self::ExportManifest => "export-manifest",
        }
    }
}

/// `signing.*` settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SigningSettings {
    /// The node's Ed25519 key (JSON: key id + PKCS#8, base64), created 0600 on
    /// first start when missing. In production every node of a region gets the
    /// region's key from the secret store, as it gets its TLS certificates.
    pub key_file: PathBuf,
    /// Public keys this node also accepts when verifying: other regions' keys and
    /// retired keys whose signatures must keep verifying.
    pub trusted_keys: Vec<PublicKey>,
}

impl Default for SigningSettings {
    fn default() -> Self {
        Self {
            key_file: "signing-key.json".into(),
            trusted_keys: Vec::new(),
        }
    }
}

impl SigningSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.key_file.as_os_str().is_empty() {
            return Err("signing.key_file must be set".into());
        }
        for key in &self.trusted_keys {
            key.decode()
                .map_err(|e| format!("signing.trusted_keys `{}`: {e}", key.key_id))?;
        }
        Ok(())
    }
}

/// A public key as published and as configured in `signing.trusted_keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublicKey {
    /// `ed25519-` and the first 16 hex digits of the SHA-256 of the key.
    pub key_id: String,
    /// Always `Ed25519`.
    #[serde(default = "ed25519")]
    pub algorithm: String,
    /// The raw 32-byte public key, base64url without padding.
    pub public_key: String,
}

fn ed25519() -> String {
    "Ed25519".into()
}

impl PublicKey {
    fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            key_id: key_id(bytes),
            algorithm: ed25519(),
            public_key: B64.encode(bytes),
        }
    }

    /// The raw key, checked to be 32 bytes and to match its id.
    pub fn decode(&self) -> Result<Vec<u8>, String> {
        let bytes = B64
            .decode(&self.public_key)
            .map_err(|e| format!("public_key is not base64url: {e}"))?;
        if bytes.len() != 32 {
            return Err("public_key is not 32 bytes".into());
        }
        if key_id(&bytes) != self.key_id {
            return Err("key_id does not match the public key".into());
        }
        Ok(bytes)
    }
}

/// The key id of a raw Ed25519 public key.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("ed25519-{hex}")
}

/// A signature with the id of the key that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Signature {
    pub key_id: String,
    /// 64 bytes, base64url without padding.
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    #[error("the signature is not valid base64url")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    key_id: String,
    pkcs8: String,
}

/// The node's signing key and the public keys it trusts.
pub struct Signer {
    pair: Ed25519KeyPair,
    own: PublicKey,
    trusted: Vec<PublicKey>,
}

impl Signer {
    /// Loads `settings.key_file`, creating it first if it does not exist.
    pub fn load(settings: &SigningSettings) -> Result<Self, String> {
        ensure_key_file(&settings.key_file)?;
        let path = &settings.key_file;
        let fail = |reason: String| format!("signing key file {}: {reason}", path.display());
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?);
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let pkcs8 = Zeroizing::new(B64.decode(&file.pkcs8).map_err(|e| fail(e.to_string()))?);
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| fail(format!("not an Ed25519 PKCS#8 key ({e})")))?;
        let own = PublicKey::from_bytes(pair.public_key().as_ref());
        if own.key_id != file.key_id {
            return Err(fail("key_id does not match the key".into()));
        }
        let trusted = settings
            .trusted_keys
            .iter()
            .filter(|k| k.key_id != own.key_id)
            .cloned()
            .collect();
        Ok(Self { pair, own, trusted })
    }

    pub fn key_id(&self) -> &str {
        &self.own.key_id
    }

    /// This node's raw public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Every key a document this deployment signed may carry: own first.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        std::iter::once(self.own.clone())
            .chain(self.trusted.iter().cloned())
            .collect()
    }

    pub fn sign(&self, purpose: Purpose, message: &[u8]) -> Signature {
        let signed = self.pair.sign(&labelled(purpose, message));
        Signature {
            key_id: self.own.key_id.clone(),
            signature: B64.encode(signed.as_ref()),
        }
    }

    /// Verifies with whichever known key the signature names.
    pub fn verify(
        &self,
        purpose: Purpose,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), VerifyError> {
        let key = self
            .public_keys()
            .into_iter()
            .find(|k| k.key_id == signature.key_id)
            .ok_or_else(|| VerifyError::UnknownKey(signature.key_id.clone()))?;
        let bytes = key.decode().map_err(|_| VerifyError::Malformed)?;
        verify(&bytes, purpose, message, &signature.signature)
    }
}

/// Verifies `signature` (base64url) over `message` with a raw public key: what an
/// offline verifier does.
pub fn verify(
    public_key: &[u8],
    purpose: Purpose,
    message: &[u8],
    signature: &str,
) -> Result<(), VerifyError> {
    let raw = B64.decode(signature).map_err(|_| VerifyError::Malformed)?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&labelled(purpose, message), &raw)
        .map_err(|_| VerifyError::Mismatch)
}

/// The bytes a JSON document is signed as: compact, object keys sorted
/// (bytewise) at every level, so any verifier that parses the document and
/// writes it back this way gets the same bytes, whatever the key order it was
/// served in. Documents meant for signing hold strings, integers, booleans and
/// nulls, never floats.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical_json(value, &mut out);
    out
}

/// `canonical_json`, appended to `out` (the audit chain hashes it in place).
pub fn write_canonical_json(value: &serde_json::Value, out: &mut Vec<u8>) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(&serde_json::Value::String(key.clone()), out);
                out.push(b':');
                write_canonical_json(value, out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own compact form (escaping, integers); writing
        // into a Vec cannot fail.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn labelled(purpose: Purpose, message: &[u8]) -> Vec<u8> {
    let label = format!("meridian/{}/v1\0", purpose.label());
    let mut out = Vec::with_capacity(label.len() + message.len());
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(message);
    out
}

/// Creates a key file at `path` unless one exists (created exclusively, so two
/// nodes or tests starting at once keep one key).
pub fn ensure_key_file(path: &Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let fail = |reason: String| format!("signing key file {}: {reason}", path.display());
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| fail(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| fail(e.to_string()))?;
    let file = KeyFile {
        key_id: key_id(pair.public_key().as_ref()),
        pkcs8: B64.encode(pkcs8.as_ref()),
    };
    let json =
        Zeroizing::new(serde_json::to_string_pretty(&file).map_err(|e| fail(e.to_string()))?);
    match crate::auth::keys::write_private(path, json.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "meridian-signing-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn signer(dir: &Path, trusted: Vec<PublicKey>) -> Signer {
        Signer::load(&SigningSettings {
            key_file: dir.join("signing-key.json"),
            trusted_keys: trusted,
        })
        .unwrap()
    }

    #[test]
    fn a_signature_verifies_only_for_its_message_purpose_and_key() {
        let dir = TempDir::new();
        let signer = signer(dir.path(), vec![]);
        let sig = signer.sign(Purpose::ErasureReceipt, b"receipt 1");
        assert_eq!(sig.key_id, signer.key_id());
        assert_eq!(
            signer.verify(Purpose::ErasureReceipt, b"receipt 1", &sig),
            Ok(())
        );
        assert_eq!(
            signer.verify(Purpose::ErasureReceipt, b"receipt 2", &sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            signer.verify(Purpose::AuditCheckpoint, b"receipt 1", &sig),
            Err(VerifyError::Mismatch)
        );
        let other = Signature {
            key_id: "ed25519-0000000000000000".into(),
            ..sig.clone()
        };
        assert!(matches!(
            signer.verify(Purpose::ErasureReceipt, b"receipt 1", &other),
            Err(VerifyError::UnknownKey(_))
        ));
        // Offline: the published public key alone.
        let published = &signer.public_keys()[0];
        let raw = published.decode().unwrap();
        assert_eq!(
            verify(&raw, Purpose::ErasureReceipt, b"receipt 1", &sig.signature),
            Ok(())
        );
    }

    #[test]
    fn the_key_file_is_private_stable_and_trusted_keys_verify() {
        let dir = TempDir::new();
        let first = signer(dir.path(), vec![]);
        let mode = std::fs::metadata(dir.path().join("signing-key.json")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let again = signer(dir.path(), vec![]);
        assert_eq!(first.key_id(), again.key_id());

        // A second region's node trusts the first's key.
        let other_dir = TempDir::new();
        let second = signer(other_dir.path(), first.public_keys());
        assert_ne!(second.key_id(), first.key_id());
        let sig = first.sign(Purpose::AuditCheckpoint, b"head");
        assert_eq!(
            second.verify(Purpose::AuditCheckpoint, b"head", &sig),
            Ok(())
        );
        assert_eq!(second.public_keys().len(), 2);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level_and_is_compact() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"y": "\u00e9", "x": null}], "a": true}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":true,"b":[1,{"x":null,"y":"é"}]}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"a":true,"b":[1,{"x":null,"y":"é"}]}"#
        );
    }

    #[test]
    fn a_trusted_key_whose_id_does_not_match_is_refused() {
        let dir = TempDir::new();
        let mut key = signer(dir.path(), vec![]).public_keys().remove(0);
        key.key_id = "ed25519-ffffffffffffffff".into();
        let settings = SigningSettings {
            key_file: dir.path().join("other.json"),
            trusted_keys: vec![key],
        };
        assert!(settings.validate().unwrap_err().contains("does not match"));
    }
}
