//! Where export archives are stored: the export store of the tenant's home
//! region, `<region>/<tenant>/<export>-<attempt>.zip.sealed` under one of two
//! backends with the same operations (create and commit, open at an offset,
//! remove, remove a tenant's prefix), so the job, the download and the sweep do
//! not know which:
//!
//! - **`dir`** (`exports.dir`): a directory per node (dev, tests) or a volume the
//!   region's nodes share. An upload is written under a temporary name and
//!   renamed into place on commit.
//! - **`s3`** (`exports.store = "s3"`, `exports.s3.*`): the region's bucket
//!   (terraform makes one per region, `terraform/exports.tf`). An upload is
//!   spooled to a file under `exports.dir` (so memory stays flat whatever the
//!   archive's size) and sent on commit: one `PutObject` up to
//!   `exports.s3.part_size_mib`, a multipart upload above it, read from the file
//!   part by part. A download is a ranged `GetObject` streamed as it arrives.
//!   Credentials come from the standard AWS chain (the node's instance role).
//!
//! Either way a crashed job leaves no object under the real key: the S3 object
//! appears only when its upload completes (a failed multipart upload is
//! aborted; the bucket's lifecycle rule also clears incomplete ones).

mod s3;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncSeekExt};

use crate::ids::{RegionId, TenantId};
pub use s3::{S3Bucket, S3Settings};

#[derive(Clone, Debug)]
pub enum Backend {
    /// A local or shared directory.
    Dir(PathBuf),
    /// The region's bucket; uploads spooled under the directory.
    S3 { bucket: S3Bucket, spool: PathBuf },
}

#[derive(Clone, Debug)]
pub struct ExportStorage {
    backend: Backend,
}

/// A stored object, read from some offset on.
pub type ObjectReader = Pin<Box<dyn AsyncRead>>;

impl ExportStorage {
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }

    /// The object key of an export: region first, so a region's files (a
    /// bucket) hold only the tenants homed there.
    pub fn key(region: &RegionId, tenant: TenantId, export: uuid::Uuid, attempt: i32) -> String {
        format!("{}/{tenant}/{export}-{attempt}.zip.sealed", region.as_str())
    }

    /// Keys are made by `key` only; refuse anything that could leave the root
    /// (or name another prefix in a bucket).
    fn checked(key: &str) -> io::Result<&str> {
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(io::Error::other(format!("bad export object key {key:?}")));
        }
        Ok(key)
    }

    /// Where an upload of `key` is written before its commit.
    fn local_path(root: &Path, key: &str) -> io::Result<PathBuf> {
        Ok(root.join(Self::checked(key)?))
    }

    /// A file to write `key` into, moved or sent to its place by
    /// [`Upload::commit`].
    pub fn create(&self, key: &str) -> io::Result<Upload> {
        let (partial, target) = match &self.backend {
            Backend::Dir(root) => {
                let path = Self::local_path(root, key)?;
                (path.with_extension("partial"), Target::Dir(path))
            }
            Backend::S3 { bucket, spool } => {
                let key = Self::checked(key)?.to_owned();
                let name = format!("{}.partial", key.replace('/', "_"));
                let target = Target::S3 {
                    bucket: bucket.clone(),
                    key,
                };
                (spool.join(".spool").join(name), target)
            }
        };
        if let Some(dir) = partial.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(&partial)?;
        Ok(Upload {
            file: io::BufWriter::with_capacity(256 * 1024, file),
            partial,
            target,
        })
    }

    /// The stored object from byte `offset` on.
    pub async fn open_at(&self, key: &str, offset: u64) -> io::Result<ObjectReader> {
        match &self.backend {
            Backend::Dir(root) => {
                let mut file = tokio::fs::File::open(Self::local_path(root, key)?).await?;
                file.seek(io::SeekFrom::Start(offset)).await?;
                Ok(Box::pin(file))
            }
            Backend::S3 { bucket, .. } => bucket.get_from(Self::checked(key)?, offset).await,
        }
    }

    /// Removes the object (and any partial upload); a missing one is no error.
    pub async fn remove(&self, key: &str) -> io::Result<()> {
        match &self.backend {
            Backend::Dir(root) => {
                let path = Self::local_path(root, key)?;
                for p in [path.with_extension("partial"), path] {
                    remove_file(&p)?;
                }
                Ok(())
            }
            Backend::S3 { bucket, .. } => bucket.delete(Self::checked(key)?).await,
        }
    }

    /// Removes every object of `tenant` in `region` (tenant erasure).
    pub async fn remove_tenant(&self, region: &RegionId, tenant: TenantId) -> io::Result<()> {
        let prefix = format!("{}/{tenant}", region.as_str());
        match &self.backend {
            Backend::Dir(root) => match std::fs::remove_dir_all(Self::local_path(root, &prefix)?) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Backend::S3 { bucket, .. } => {
                bucket
                    .delete_prefix(&format!("{}/", Self::checked(&prefix)?))
                    .await
            }
        }
    }

    /// Whether `key` is stored (tests, the sweep's report).
    pub async fn exists(&self, key: &str) -> io::Result<bool> {
        match &self.backend {
            Backend::Dir(root) => Ok(Self::local_path(root, key)?.exists()),
            Backend::S3 { bucket, .. } => bucket.exists(Self::checked(key)?).await,
        }
    }

    /// Checks the store can be reached (at start: logged, not fatal).
    pub async fn check(&self) -> io::Result<()> {
        match &self.backend {
            Backend::Dir(_) => Ok(()),
            Backend::S3 { bucket, .. } => bucket.check().await,
        }
    }
}

fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Where a committed upload goes.
enum Target {
    Dir(PathBuf),
    S3 { bucket: S3Bucket, key: String },
}

/// An object being written (to a local file until its commit).
pub struct Upload {
    pub file: io::BufWriter<std::fs::File>,
    partial: PathBuf,
    target: Target,
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
    /// Flushes the file and puts it under its key: renamed (after an fsync)
    /// into the directory, or sent to the bucket and the spool file removed
    /// (also when the upload fails: the job's next attempt writes anew).
    pub async fn commit(self) -> io::Result<()> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        match self.target {
            Target::Dir(path) => {
                file.sync_all()?;
                std::fs::rename(&self.partial, &path)
            }
            Target::S3 { bucket, key } => {
                drop(file);
                let sent = bucket.put_file(&key, &self.partial).await;
                remove_file(&self.partial)?;
                sent
            }
        }
    }
}
