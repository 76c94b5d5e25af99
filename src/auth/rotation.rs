//! Edits of the key set file for rotation (`meridian keys …`): list, add, promote,
//! retire, export the public half.
//!
//! Every change is checked by loading the result the way a node does
//! (`KeySet::load`) before it replaces the file, and the file is replaced
//! atomically (a temp file in the same directory, mode 0600, fsync, rename), so a
//! node reads either the old or the new set, never half. Running nodes poll the
//! file and put a changed set in force within `auth.keys_poll_interval_ms`
//! (`auth::reload`): a change needs no restart.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::keys::{KeyEntry, KeyFile, KeySet, unix_now};

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("key file {path}: {message}")]
    File { path: String, message: String },
    #[error("no key `{kid}` in {path} (it has: {known}); see `meridian keys list`")]
    UnknownKid {
        kid: String,
        path: String,
        known: String,
    },
    #[error("key `{kid}` already exists in {path}; choose another --kid")]
    DuplicateKid { kid: String, path: String },
    #[error("kid `{0}` is not allowed: use 1-64 characters from letters, digits, `-`, `_` and `.`")]
    BadKid(String),
    #[error(
        "`{0}` is the signing key and cannot be retired; \
         promote another key first (`meridian keys promote <kid>`)"
    )]
    RetireSigning(String),
    #[error(
        "key `{kid}` has no private key in {path}, so it cannot sign; \
         promote it in the issuer's key file, which holds the private key"
    )]
    NoPrivateKey { kid: String, path: String },
}

/// What `list` shows of a key: never the private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub signing: bool,
    pub has_private_key: bool,
    pub public_key: String,
}

fn file_error(path: &Path, message: impl ToString) -> RotationError {
    RotationError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn read(path: &Path) -> Result<KeyFile, RotationError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_error(path, e))
}

fn find<'a>(file: &'a KeyFile, path: &Path, kid: &str) -> Result<&'a KeyEntry, RotationError> {
    file.keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| RotationError::UnknownKid {
            kid: kid.to_owned(),
            path: path.display().to_string(),
            known: file
                .keys
                .iter()
                .map(|k| k.kid.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

pub fn list(path: &Path) -> Result<Vec<KeyInfo>, RotationError> {
    let file = read(path)?;
    Ok(file
        .keys
        .iter()
        .map(|k| KeyInfo {
            kid: k.kid.clone(),
            signing: file.signing_kid.as_deref() == Some(k.kid.as_str()),
            has_private_key: k.private_key_pkcs8.is_some(),
            public_key: k.public_key.clone(),
        })
        .collect())
}

/// Adds a new Ed25519 key for verification only; returns its kid (`k<unix
/// seconds>` unless given).
pub fn add(path: &Path, kid: Option<&str>) -> Result<String, RotationError> {
    let mut file = read(path)?;
    let kid = match kid {
        Some(kid) => {
            let valid = (1..=64).contains(&kid.len())
                && kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(RotationError::BadKid(kid.to_owned()));
            }
            if file.keys.iter().any(|k| k.kid == kid) {
                return Err(RotationError::DuplicateKid {
                    kid: kid.to_owned(),
                    path: path.display().to_string(),
                });
            }
            kid.to_owned()
        }
        None => {
            // Two adds in one second must still get distinct kids.
            let base = format!("k{}", unix_now());
            let taken = |kid: &str| file.keys.iter().any(|k| k.kid == kid);
            (1..)
                .map(|n| match n {
                    1 => base.clone(),
                    n => format!("{base}-{n}"),
                })
                .find(|kid| !taken(kid))
                .unwrap_or(base)
        }
    };
    file.keys
        .push(KeyEntry::generate(kid.clone()).map_err(|e| file_error(path, e))?);
    replace(path, &file)?;
    Ok(kid)
}

/// Makes `kid` the signing key; returns the previous one (kept for verification).
pub fn promote(path: &Path, kid: &str) -> Result<Option<String>, RotationError> {
    let mut file = read(path)?;
    if find(&file, path, kid)?.private_key_pkcs8.is_none() {
        return Err(RotationError::NoPrivateKey {
            kid: kid.to_owned(),
            path: path.display().to_string(),
        });
    }
    let previous = file.signing_kid.replace(kid.to_owned());
    replace(path, &file)?;
    Ok(previous.filter(|p| p != kid))
}

/// Removes a key that no longer signs: tokens it signed stop verifying.
pub fn retire(path: &Path, kid: &str) -> Result<(), RotationError> {
    let mut file = read(path)?;
    find(&file, path, kid)?;
    if file.signing_kid.as_deref() == Some(kid) {
        return Err(RotationError::RetireSigning(kid.to_owned()));
    }
    file.keys.retain(|k| k.kid != kid);
    replace(path, &file)
}

/// The key set without private keys (and without a signing key), as JSON, for
/// nodes that only verify.
pub fn export_public(path: &Path) -> Result<String, RotationError> {
    let mut file = read(path)?;
    file.signing_kid = None;
    for key in &mut file.keys {
        key.private_key_pkcs8 = None;
    }
    serde_json::to_string_pretty(&file).map_err(|e| file_error(path, e))
}

/// Writes `text` to `path` atomically with mode 0600, after checking that it
/// loads as a key set.
pub fn write_key_file(path: &Path, text: &str) -> Result<(), RotationError> {
    let temp = temp_path(path);
    let written = write_synced(&temp, text.as_bytes())
        .map_err(|e| file_error(&temp, e))
        .and_then(|()| {
            KeySet::load(&temp)
                .map(drop)
                .map_err(|e| file_error(path, format!("refusing to write an invalid set: {e}")))
        })
        .and_then(|()| std::fs::rename(&temp, path).map_err(|e| file_error(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
        return written;
    }
    // The rename is durable once the directory entry is.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_error(path, e))?;
    }
    Ok(())
}

fn replace(path: &Path, file: &KeyFile) -> Result<(), RotationError> {
    let text = serde_json::to_string_pretty(file).map_err(|e| file_error(path, e))?;
    write_key_file(path, &text)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "keys.json".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::auth::{Role, TokenVerifier};
    use crate::config::AuthSettings;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("meridian-keys-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn keys(&self) -> PathBuf {
            self.0.join("keys.json")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A verifier over the file as a node would load it at start.
    fn node(path: &Path) -> TokenVerifier {
        TokenVerifier::new(KeySet::load(path).unwrap(), &AuthSettings::default_local())
    }

    fn admin_token(path: &Path) -> String {
        node(path)
            .issue("ops".into(), None, Role::PlatformAdmin, 600)
            .unwrap()
    }

    fn signing(path: &Path) -> String {
        list(path)
            .unwrap()
            .into_iter()
            .find(|k| k.signing)
            .unwrap()
            .kid
    }

    fn kid_of(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }

    #[test]
    fn add_promote_retire_keeps_old_tokens_valid_until_retire() {
        let dir = TempDir::new();
        let path = dir.keys();
        KeySet::ensure_file(&path).unwrap();
        let old_kid = signing(&path);
        let before = admin_token(&path);

        let new_kid = add(&path, None).unwrap();
        assert_ne!(new_kid, old_kid);
        assert_eq!(signing(&path), old_kid, "add must not change the signer");
        assert_eq!(kid_of(&admin_token(&path)), old_kid);

        assert_eq!(promote(&path, &new_kid).unwrap(), Some(old_kid.clone()));
        let after = admin_token(&path);
        assert_eq!(kid_of(&after), new_kid);
        let verifier = node(&path);
        verifier
            .verify(&before)
            .expect("old token, old key present");
        verifier.verify(&after).expect("new token");

        retire(&path, &old_kid).unwrap();
        let verifier = node(&path);
        assert!(matches!(
            verifier.verify(&before),
            Err(crate::auth::keys::TokenError::UnknownKey)
        ));
        verifier.verify(&after).expect("new token after retire");
        let kids: Vec<_> = list(&path).unwrap().into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, vec![new_kid]);
    }

    #[test]
    fn list_shows_roles_and_no_private_key() {
        let dir = TempDir::new();
        let path = dir.keys();
        KeySet::ensure_file(&path).unwrap();
        let added = add(&path, Some("next")).unwrap();
        let keys = list(&path).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[0].signing && keys[0].has_private_key);
        assert_eq!(keys[1].kid, added);
        assert!(!keys[1].signing && keys[1].has_private_key);
        assert!(matches!(
            add(&path, Some("next")),
            Err(RotationError::DuplicateKid { .. })
        ));
        assert!(matches!(
            add(&path, Some("no spaces")),
            Err(RotationError::BadKid(_))
        ));
    }

    #[test]
    fn two_adds_in_one_second_get_distinct_kids() {
        let dir = TempDir::new();
        let path = dir.keys();
        KeySet::ensure_file(&path).unwrap();
        let a = add(&path, None).unwrap();
        let b = add(&path, None).unwrap();
        assert_ne!(a, b);
        assert_eq!(list(&path).unwrap().len(), 3);
    }

    #[test]
    fn retire_refuses_the_signing_key_and_unknown_kids() {
        let dir = TempDir::new();
        let path = dir.keys();
        KeySet::ensure_file(&path).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        let signer = signing(&path);
        assert!(matches!(
            retire(&path, &signer),
            Err(RotationError::RetireSigning(_))
        ));
        assert!(matches!(
            retire(&path, "nope"),
            Err(RotationError::UnknownKid { .. })
        ));
        assert!(matches!(
            promote(&path, "nope"),
            Err(RotationError::UnknownKid { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn export_public_verifies_but_cannot_sign_or_be_promoted() {
        let dir = TempDir::new();
        let path = dir.keys();
        KeySet::ensure_file(&path).unwrap();
        let token = admin_token(&path);
        let public = dir.0.join("public.json");
        write_key_file(&public, &export_public(&path).unwrap()).unwrap();
        let text = std::fs::read_to_string(&public).unwrap();
        assert!(!text.contains("private_key"), "{text}");
        node(&public)
            .verify(&token)
            .expect("verifies with public keys");
        let err = node(&public).issue("x".into(), None, Role::PlatformAdmin, 60);
        assert!(matches!(
            err,
            Err(crate::auth::keys::KeyError::NoSigningKey)
        ));
        let kid = list(&public).unwrap()[0].kid.clone();
        assert!(matches!(
            promote(&public, &kid),
            Err(RotationError::NoPrivateKey { .. })
        ));
    }

    #[test]
    fn writes_are_atomic_with_mode_0600_and_leave_no_temp_files() {
        let dir = TempDir::new();
        let path = dir.keys();
        KeySet::ensure_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let kid = add(&path, None).unwrap();
        promote(&path, &kid).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["keys.json".to_owned()]);

        // An invalid set is refused and the file is left as it was.
        let before = std::fs::read_to_string(&path).unwrap();
        let err = write_key_file(&path, r#"{"signing_kid": null, "keys": []}"#);
        assert!(matches!(err, Err(RotationError::File { .. })), "{err:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
    }
}
