//! Where export archives are stored: the export store of the tenant's home
//! region. Today one backend, a directory per node (`exports.dir`; dev and
//! tests, or a region's shared volume), holding `<region>/<tenant>/<export>-<attempt>.zip.sealed`.
//! The production slot is an S3 bucket per region (not built yet, nor its
//! terraform): a second [`Backend`] variant with the same operations (create
//! and commit, open at an offset, remove, remove a tenant's prefix), so the
//! job, the download and the sweep do not change. Until it exists a region's
//! nodes must share `exports.dir` (README "Compliance").

use std::io;
use std::path::{Path, PathBuf};

use crate::ids::{RegionId, TenantId};

#[derive(Clone, Debug)]
pub enum Backend {
    /// A local or shared directory.
    Dir(PathBuf),
}

#[derive(Clone, Debug)]
pub struct ExportStorage {
    backend: Backend,
}

impl ExportStorage {
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }

    /// The object key of an export: region first, so a region's files (a
    /// bucket) hold only the tenants homed there.
    pub fn key(region: &RegionId, tenant: TenantId, export: uuid::Uuid, attempt: i32) -> String {
        format!("{}/{tenant}/{export}-{attempt}.zip.sealed", region.as_str())
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        // Keys are made by `key` only; refuse anything that could leave the root.
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(io::Error::other(format!("bad export object key {key:?}")));
        }
        match &self.backend {
            Backend::Dir(root) => Ok(root.join(key)),
        }
    }

    /// A file to write `key` into: written under a temporary name and moved
    /// into place by [`Upload::commit`], so a crashed job leaves no half
    /// archive under the real key.
    pub fn create(&self, key: &str) -> io::Result<Upload> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = path.with_extension("partial");
        let file = std::fs::File::create(&partial)?;
        Ok(Upload {
            file: io::BufWriter::with_capacity(256 * 1024, file),
            partial,
            path,
        })
    }

    /// The stored object, for reading.
    pub async fn open(&self, key: &str) -> io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.path(key)?).await
    }

    /// Removes the object (and any partial upload); a missing one is no error.
    pub fn remove(&self, key: &str) -> io::Result<()> {
        let path = self.path(key)?;
        for p in [path.with_extension("partial"), path] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes every object of `tenant` in `region` (tenant erasure).
    pub fn remove_tenant(&self, region: &RegionId, tenant: TenantId) -> io::Result<()> {
        let dir = self.path(&format!("{}/{tenant}", region.as_str()))?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether `key` is stored (tests, the sweep's report).
    pub fn exists(&self, key: &str) -> bool {
        self.path(key).is_ok_and(|p| Path::exists(&p))
    }
}

/// An object being written.
pub struct Upload {
    pub file: io::BufWriter<std::fs::File>,
    partial: PathBuf,
    path: PathBuf,
}

impl io::Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Upload {
    /// Flushes, syncs and moves the file under its key.
    pub fn commit(self) -> io::Result<()> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.partial, &self.path)
    }
}
