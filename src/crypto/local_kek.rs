//! `LocalFileProvider`: KEKs in a local JSON file (0600), for dev and tests.
//! Never for production: the KEK sits next to the data it protects.
//!
//! **Versions.** Each jurisdiction has one *current* KEK (`keys`, the file's
//! original shape, so a file written before KEK versions is read as it is and
//! upgraded in place by the first rotation) and its earlier ones (`previous`,
//! oldest first). `wrap` uses the current one; `unwrap` uses whichever KEK the
//! row's `kek_id` names, so DEKs wrapped before a rotation still open.
//! `LocalFileProvider::rotate` (`meridian keys rotate-kek`) appends a new
//! version and keeps the old one; `meridian keys rewrap` then moves every DEK
//! onto it (`crypto::kek_rotation`). An old KEK is never removed by the code:
//! backups may hold DEKs wrapped under it.
//!
//! **A running node sees a rotation without restarting.** It loaded the file at
//! start; a DEK rewrapped by the CLI names a KEK it does not know, so `unwrap`
//! re-reads the file once on an unknown `kek_id`, and `wrap`/`is_current`
//! re-read it when its modification time changed (a stat per new DEK version,
//! which is rare), so new DEKs go under the new KEK too.
//!
//! The wrapping reuses the field envelope: the binding names the tenant, the
//! jurisdiction and the KEK id with the DEK version, so a wrapped DEK copied to
//! another tenant, jurisdiction or version does not unwrap.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::envelope::{Binding, Dek};
use super::provider::{KeyError, KeyProvider, WrappedDek};
use crate::ids::TenantId;

#[derive(Serialize, Deserialize)]
struct KekEntry {
    id: String,
    /// Base64 of 32 random bytes.
    key: String,
    /// 1 for the jurisdiction's first KEK (and for entries written before
    /// versions existed), +1 per rotation.
    #[serde(default = "first_version")]
    version: u32,
}

fn first_version() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Default)]
struct KekFile {
    /// Jurisdiction → its current KEK.
    keys: BTreeMap<String, KekEntry>,
    /// Jurisdiction → its earlier KEKs, oldest first: they only unwrap.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    previous: BTreeMap<String, Vec<KekEntry>>,
}

/// The file as the provider holds it.
struct Loaded {
    /// Jurisdiction → id of its current KEK.
    current: BTreeMap<String, String>,
    /// KEK id → (jurisdiction, key).
    keks: HashMap<String, (String, Arc<Dek>)>,
    modified: Option<SystemTime>,
}

/// KEKs from a local file (see the module doc).
pub struct LocalFileProvider {
    path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
}

/// What `LocalFileProvider::rotate` did to a jurisdiction's KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRotated {
    pub jurisdiction: String,
    pub previous_id: String,
    pub current_id: String,
    pub version: u32,
}

fn kek_binding<'a>(tenant: TenantId, jurisdiction: &'a str, row: &'a str) -> Binding<'a> {
    Binding {
        tenant,
        table: "kek",
        column: jurisdiction,
        row,
    }
}

fn file_error(path: &Path) -> impl Fn(String) -> KeyError + '_ {
    move |reason| KeyError::File {
        path: path.to_owned(),
        reason,
    }
}

fn read_file(path: &Path) -> Result<Option<KekFile>, KeyError> {
    let fail = file_error(path);
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(e.to_string())),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn new_entry(jurisdiction: &str, version: u32) -> Result<KekEntry, KeyError> {
    let key = Dek::generate(1)?;
    Ok(KekEntry {
        id: format!(
            "local-{jurisdiction}-v{version}-{}",
            uuid::Uuid::now_v7().simple()
        ),
        key: STANDARD.encode(key.secret_bytes()),
        version,
    })
}

fn decode(path: &Path, file: KekFile) -> Result<Loaded, KeyError> {
    let fail = file_error(path);
    let mut loaded = Loaded {
        current: BTreeMap::new(),
        keks: HashMap::new(),
        modified: modified(path),
    };
    let previous = file
        .previous
        .into_iter()
        .flat_map(|(j, entries)| entries.into_iter().map(move |e| (j.clone(), e)));
    for (jurisdiction, entry) in file.keys.into_iter().chain(previous) {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(&entry.key)
                .map_err(|e| fail(e.to_string()))?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| fail(format!("KEK `{}` is not 32 bytes", entry.id)))?;
        loaded
            .current
            .entry(jurisdiction.clone())
            .or_insert(entry.id.clone());
        let key = Arc::new(Dek::new(1, Zeroizing::new(key)));
        if loaded
            .keks
            .insert(entry.id.clone(), (jurisdiction, key))
            .is_some()
        {
            return Err(fail(format!("KEK id `{}` appears twice", entry.id)));
        }
    }
    Ok(loaded)
}

impl LocalFileProvider {
    /// Loads `path`, first adding a KEK for each of `jurisdictions` it lacks.
    pub fn ensure(path: &Path, jurisdictions: &[&str]) -> Result<Self, KeyError> {
        let mut file = read_file(path)?.unwrap_or_default();
        let mut added = false;
        for jurisdiction in jurisdictions {
            if !file.keys.contains_key(*jurisdiction) {
                file.keys
                    .insert((*jurisdiction).to_owned(), new_entry(jurisdiction, 1)?);
                added = true;
            }
        }
        if added {
            write_private(path, &file).map_err(file_error(path))?;
        }
        Ok(Self {
            path: path.to_owned(),
            loaded: RwLock::new(Arc::new(decode(path, file)?)),
        })
    }

    /// Appends a new KEK version for `jurisdiction` to the file at `path` and
    /// makes it current; the previous one stays, to unwrap until rewrapped.
    pub fn rotate(path: &Path, jurisdiction: &str) -> Result<KekRotated, KeyError> {
        let fail = file_error(path);
        let mut file = read_file(path)?.ok_or_else(|| fail("no such file".into()))?;
        let old = file
            .keys
            .remove(jurisdiction)
            .ok_or_else(|| KeyError::UnknownJurisdiction(jurisdiction.to_owned()))?;
        let older = file.previous.entry(jurisdiction.to_owned()).or_default();
        let version = older
            .iter()
            .map(|e| e.version)
            .chain([old.version])
            .max()
            .unwrap_or(1)
            + 1;
        let new = new_entry(jurisdiction, version)?;
        let rotated = KekRotated {
            jurisdiction: jurisdiction.to_owned(),
            previous_id: old.id.clone(),
            current_id: new.id.clone(),
            version,
        };
        older.push(old);
        file.keys.insert(jurisdiction.to_owned(), new);
        write_private(path, &file).map_err(fail)?;
        Ok(rotated)
    }

    fn snapshot(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the file (module doc); on failure keeps what it had.
    fn reload(&self) -> Arc<Loaded> {
        let fresh = read_file(&self.path).and_then(|file| {
            let file = file.ok_or_else(|| file_error(&self.path)("the file is gone".into()))?;
            decode(&self.path, file)
        });
        match fresh {
            Ok(loaded) => {
                let loaded = Arc::new(loaded);
                *self
                    .loaded
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded.clone();
                loaded
            }
            Err(err) => {
                tracing::warn!(error = %err, "KEK file not reloaded; keeping the KEKs loaded before");
                self.snapshot()
            }
        }
    }

    /// The KEKs, re-read first if the file changed since they were loaded.
    fn current(&self) -> Arc<Loaded> {
        let loaded = self.snapshot();
        if modified(&self.path) == loaded.modified {
            loaded
        } else {
            self.reload()
        }
    }
}

fn write_private(path: &Path, file: &KekFile) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_string_pretty(file).map_err(|e| e.to_string())?;
    let temp = path.with_extension("tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| e.to_string())?;
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    out.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&temp, path).map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl KeyProvider for LocalFileProvider {
    async fn wrap(
        &self,
        tenant: TenantId,
        jurisdiction: &str,
        dek: &Dek,
    ) -> Result<WrappedDek, KeyError> {
        let loaded = self.current();
        let (kek_id, kek) = loaded
            .current
            .get(jurisdiction)
            .and_then(|id| Some((id, &loaded.keks.get(id)?.1)))
            .ok_or_else(|| KeyError::UnknownJurisdiction(jurisdiction.to_owned()))?;
        let row = format!("{kek_id}/{}", dek.version);
        let blob = kek.seal(&kek_binding(tenant, jurisdiction, &row), dek.secret_bytes())?;
        Ok(WrappedDek {
            jurisdiction: jurisdiction.to_owned(),
            kek_id: kek_id.clone(),
            blob,
        })
    }

    async fn unwrap(
        &self,
        tenant: TenantId,
        wrapped: &WrappedDek,
        version: u32,
    ) -> Result<Dek, KeyError> {
        let find = |loaded: &Loaded| {
            loaded
                .keks
                .get(&wrapped.kek_id)
                .filter(|(jurisdiction, _)| *jurisdiction == wrapped.jurisdiction)
                .map(|(_, kek)| kek.clone())
        };
        let kek = match find(&self.snapshot()) {
            Some(kek) => kek,
            // Rewrapped by the CLI under a KEK this node has not loaded yet.
            None => {
                find(&self.reload()).ok_or_else(|| KeyError::UnknownKek(wrapped.kek_id.clone()))?
            }
        };
        let row = format!("{}/{version}", wrapped.kek_id);
        let plain = kek
            .open(
                &kek_binding(tenant, &wrapped.jurisdiction, &row),
                &wrapped.blob,
            )
            .map_err(|_| KeyError::Unwrap)?;
        let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyError::Unwrap)?;
        Ok(Dek::new(version, Zeroizing::new(key)))
    }

    async fn is_current(&self, jurisdiction: &str, kek_id: &str) -> Result<bool, KeyError> {
        let loaded = self.current();
        let current = loaded
            .current
            .get(jurisdiction)
            .ok_or_else(|| KeyError::UnknownJurisdiction(jurisdiction.to_owned()))?;
        Ok(current == kek_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (PathBuf, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("meridian-kek-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keks.json");
        (dir, path)
    }

    #[tokio::test]
    async fn local_keks_wrap_and_unwrap_and_persist() {
        let (dir, path) = scratch();
        let provider = LocalFileProvider::ensure(&path, &["eu", "us"]).unwrap();
        let mode = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let dek = Dek::generate(7).unwrap();
        let tenant = TenantId::from_uuid(uuid::Uuid::now_v7());
        let wrapped = provider.wrap(tenant, "eu", &dek).await.unwrap();
        assert!(!wrapped.blob.windows(32).any(|w| w == dek.secret_bytes()));
        // Reloaded from the file: the same KEKs open it.
        let again = LocalFileProvider::ensure(&path, &["eu"]).unwrap();
        let opened = again.unwrap(tenant, &wrapped, 7).await.unwrap();
        assert_eq!(opened.secret_bytes(), dek.secret_bytes());
        assert_eq!(opened.version, 7);
        // Claimed for another jurisdiction: no.
        let moved = WrappedDek {
            jurisdiction: "us".into(),
            ..wrapped.clone()
        };
        assert!(again.unwrap(tenant, &moved, 7).await.is_err());
        // Another tenant's row, or another version: no.
        let other = TenantId::from_uuid(uuid::Uuid::now_v7());
        assert!(matches!(
            again.unwrap(other, &wrapped, 7).await,
            Err(KeyError::Unwrap)
        ));
        assert!(matches!(
            again.unwrap(tenant, &wrapped, 8).await,
            Err(KeyError::Unwrap)
        ));
        assert!(matches!(
            provider.wrap(tenant, "apac", &dek).await,
            Err(KeyError::UnknownJurisdiction(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_rotated_kek_wraps_new_deks_and_old_ones_still_unwrap() {
        let (dir, path) = scratch();
        // A file as written before KEK versions: no `version`, no `previous`.
        let old_key = STANDARD.encode([9u8; 32]);
        std::fs::write(
            &path,
            format!(r#"{{"keys":{{"eu":{{"id":"local-eu-old","key":"{old_key}"}}}}}}"#),
        )
        .unwrap();
        let running = LocalFileProvider::ensure(&path, &["eu"]).unwrap();
        let tenant = TenantId::from_uuid(uuid::Uuid::now_v7());
        let dek = Dek::generate(3).unwrap();
        let before = running.wrap(tenant, "eu", &dek).await.unwrap();
        assert_eq!(before.kek_id, "local-eu-old");
        assert!(running.is_current("eu", "local-eu-old").await.unwrap());

        let rotated = LocalFileProvider::rotate(&path, "eu").unwrap();
        assert_eq!(rotated.previous_id, "local-eu-old");
        assert_eq!(rotated.version, 2);
        // Upgraded in place: the old KEK is kept under `previous`.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&old_key) && text.contains(&rotated.current_id));

        // A fresh provider (the CLI) wraps under the new KEK, and it opens.
        let cli = LocalFileProvider::ensure(&path, &["eu"]).unwrap();
        let after = cli.wrap(tenant, "eu", &dek).await.unwrap();
        assert_eq!(after.kek_id, rotated.current_id);
        assert!(!cli.is_current("eu", "local-eu-old").await.unwrap());
        for wrapped in [&before, &after] {
            let opened = cli.unwrap(tenant, wrapped, 3).await.unwrap();
            assert_eq!(opened.secret_bytes(), dek.secret_bytes());
        }
        // The node loaded before the rotation opens what the CLI rewrapped
        // (re-reads the file on the unknown id) and wraps under the new KEK.
        let opened = running.unwrap(tenant, &after, 3).await.unwrap();
        assert_eq!(opened.secret_bytes(), dek.secret_bytes());
        assert_eq!(
            running.wrap(tenant, "eu", &dek).await.unwrap().kek_id,
            rotated.current_id
        );
        // A second rotation: version 3, both older ones kept.
        let third = LocalFileProvider::rotate(&path, "eu").unwrap();
        assert_eq!(third.version, 3);
        let reread = LocalFileProvider::ensure(&path, &["eu"]).unwrap();
        assert!(reread.unwrap(tenant, &before, 3).await.is_ok());
        assert!(reread.unwrap(tenant, &after, 3).await.is_ok());
        assert!(matches!(
            LocalFileProvider::rotate(&path, "apac"),
            Err(KeyError::UnknownJurisdiction(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
