//! Key rotation without restart: the node watches its key set file and puts a
//! changed set in force (`TokenVerifier::replace_keys`) within one poll.
//!
//! Polling the file's content (a SHA-256 of its bytes, every
//! `auth.keys_poll_interval_ms`) rather than filesystem events works the same on
//! every platform and for every way the file is replaced: `meridian keys …`
//! renames a temp file over it, a configuration manager may rewrite it in place,
//! a Kubernetes secret volume swaps a symlink. The file is a few hundred bytes.
//!
//! A file that does not load (half-written by hand, invalid JSON, no keys) keeps
//! the set in force: the node goes on verifying with what it had and logs why,
//! once per distinct content, naming the file and the error but never quoting it.

use std::path::{Path, PathBuf};

use ring::digest::{Digest, SHA256, digest};

use super::keys::{KeySet, TokenVerifier};

/// What one look at the file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// Same content as last time (or as the set in force).
    Unchanged,
    /// A new set is in force.
    Replaced,
    /// The new content does not load; the previous set stays in force.
    Refused,
}

/// The watched file and the content last seen there.
pub struct KeyWatch {
    path: PathBuf,
    seen: Option<Digest>,
}

impl KeyWatch {
    /// Starts from the file as it is now, which the node loaded at start.
    pub fn new(path: &Path) -> Self {
        let seen = std::fs::read(path)
            .ok()
            .map(|bytes| digest(&SHA256, &bytes));
        Self {
            path: path.to_owned(),
            seen,
        }
    }

    /// Reads the file once; a changed content that loads replaces `verifier`'s keys.
    pub fn poll(&mut self, verifier: &TokenVerifier) -> Reload {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) => {
                // Mid-swap by a tool that deletes then writes, or a volume being
                // remounted: the next poll sees the result. Logged once.
                if self.seen.take().is_some() {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %err,
                        "key set file unreadable; keeping the keys in force"
                    );
                }
                return Reload::Refused;
            }
        };
        let fingerprint = digest(&SHA256, &bytes);
        if self
            .seen
            .as_ref()
            .is_some_and(|seen| seen.as_ref() == fingerprint.as_ref())
        {
            return Reload::Unchanged;
        }
        self.seen = Some(fingerprint);
        match KeySet::parse(&self.path, &bytes) {
            Ok(keys) => {
                verifier.replace_keys(keys);
                let (kids, signing) = verifier.kids();
                tracing::info!(
                    path = %self.path.display(),
                    ?kids,
                    ?signing,
                    "key set reloaded"
                );
                Reload::Replaced
            }
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "changed key set file does not load; keeping the keys in force"
                );
                Reload::Refused
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::TokenError;
    use crate::auth::{Role, rotation};
    use crate::config::AuthSettings;

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn setup() -> (TempDir, PathBuf, TokenVerifier) {
        let dir = std::env::temp_dir().join(format!("meridian-reload-{}", uuid::Uuid::new_v4()));
        let path = dir.join("keys.json");
        KeySet::ensure_file(&path).unwrap();
        let verifier =
            TokenVerifier::new(KeySet::load(&path).unwrap(), &AuthSettings::default_local());
        (TempDir(dir), path, verifier)
    }

    fn token_from(path: &Path) -> String {
        TokenVerifier::new(KeySet::load(path).unwrap(), &AuthSettings::default_local())
            .issue("ops".into(), None, Role::PlatformAdmin, 600)
            .unwrap()
    }

    #[test]
    fn added_promoted_and_retired_keys_take_effect_on_the_next_poll() {
        let (_dir, path, verifier) = setup();
        let mut watch = KeyWatch::new(&path);
        assert_eq!(watch.poll(&verifier), Reload::Unchanged);
        let old_token = token_from(&path);
        verifier.verify(&old_token).expect("old key verifies");

        let new_kid = rotation::add(&path, None).unwrap();
        let old_kid = rotation::promote(&path, &new_kid).unwrap().unwrap();
        let new_token = token_from(&path);
        assert!(matches!(
            verifier.verify(&new_token),
            Err(TokenError::UnknownKey)
        ));
        assert_eq!(watch.poll(&verifier), Reload::Replaced);
        verifier.verify(&new_token).expect("new key verifies");
        assert_eq!(verifier.kids().1.as_deref(), Some(new_kid.as_str()));
        // The node's own signatures use the promoted key.
        let issued = verifier
            .issue("ops".into(), None, Role::PlatformAdmin, 60)
            .unwrap();
        let header = jsonwebtoken::decode_header(&issued).unwrap();
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));

        rotation::retire(&path, &old_kid).unwrap();
        assert_eq!(watch.poll(&verifier), Reload::Replaced);
        // Verified (and cached) before the retirement, refused after it.
        assert!(matches!(
            verifier.verify(&old_token),
            Err(TokenError::UnknownKey)
        ));
        verifier.verify(&new_token).expect("kept key verifies");
    }

    #[test]
    fn a_broken_file_keeps_the_keys_in_force() {
        let (_dir, path, verifier) = setup();
        let mut watch = KeyWatch::new(&path);
        let token = token_from(&path);
        let good = std::fs::read(&path).unwrap();
        for broken in [
            &b"{\"signing_kid\": \"k1\", \"keys\": [{\"kid\": \"k1\""[..],
            br#"{"signing_kid": null, "keys": []}"#,
            br#"{"keys": [{"kid": "x", "public_key": "%%%"}]}"#,
        ] {
            std::fs::write(&path, broken).unwrap();
            assert_eq!(watch.poll(&verifier), Reload::Refused);
            assert_eq!(watch.poll(&verifier), Reload::Unchanged, "logged once");
            verifier.verify(&token).expect("old set still in force");
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(watch.poll(&verifier), Reload::Refused);
        verifier.verify(&token).expect("old set still in force");
        std::fs::write(&path, &good).unwrap();
        assert_eq!(watch.poll(&verifier), Reload::Replaced);
        verifier.verify(&token).expect("same keys again");
    }

    #[test]
    fn load_errors_do_not_quote_the_file() {
        let (_dir, path, _) = setup();
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        let text = format!(r#"{{"signing_kid": "k", "keys": "{secret}"}}"#);
        let err = KeySet::parse(&path, text.as_bytes()).err().unwrap();
        assert!(!err.to_string().contains(secret), "{err}");
    }
}
