//! The S3 backend of the export store: the region's bucket, through
//! `aws-sdk-s3` on the same rustls (ring) HTTP client as the KMS provider. The
//! client is built on first use (the AWS credential chain loads
//! asynchronously, the node's hooks are built synchronously).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::ObjectReader;

/// `exports.s3.*`: the bucket of this node's region.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Settings {
    /// The region's export bucket (terraform output `export_buckets`).
    pub bucket: String,
    /// The bucket's AWS region (the node's own).
    pub region: String,
    /// Overrides the regional endpoint (a VPC endpoint; a local S3 in tests).
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), for local S3 servers.
    pub force_path_style: bool,
    /// Archives larger than this go up as a multipart upload of such parts
    /// (S3's minimum part is 5 MiB).
    pub part_size_mib: u32,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            region: String::new(),
            endpoint: None,
            force_path_style: false,
            part_size_mib: 64,
        }
    }
}

impl S3Settings {
    pub fn validate(&self) -> Result<(), String> {
        if self.bucket.is_empty() || self.region.is_empty() {
            return Err(
                "exports.store = \"s3\" needs exports.s3.bucket and exports.s3.region".into(),
            );
        }
        if !(5..=1024).contains(&self.part_size_mib) {
            return Err("exports.s3.part_size_mib must be 5..=1024".into());
        }
        Ok(())
    }

    fn part_size(&self) -> u64 {
        u64::from(self.part_size_mib) * 1024 * 1024
    }
}

/// The region's bucket and its lazily built client.
#[derive(Clone)]
pub struct S3Bucket {
    settings: S3Settings,
    /// Fixed credentials instead of the AWS chain (a local S3 in tests).
    credentials: Option<Credentials>,
    client: Arc<OnceCell<Client>>,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Bucket")
            .field("bucket", &self.settings.bucket)
            .field("region", &self.settings.region)
            .finish_non_exhaustive()
    }
}

fn failed<E, R>(op: &str, key: &str, e: SdkError<E, R>) -> io::Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    io::Error::other(format!("S3 {op} {key}: {}", DisplayErrorContext(e)))
}

impl S3Bucket {
    pub fn new(settings: S3Settings, credentials: Option<Credentials>) -> Self {
        Self {
            settings,
            credentials,
            client: Arc::new(OnceCell::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.bucket
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(aws_config::Region::new(self.settings.region.clone()))
                    .http_client(http)
                    .timeout_config(timeouts);
                if let Some(endpoint) = &self.settings.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                if let Some(credentials) = &self.credentials {
                    loader = loader.credentials_provider(credentials.clone());
                }
                let shared = loader.load().await;
                let config = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.settings.force_path_style)
                    .build();
                Client::from_conf(config)
            })
            .await
    }

    pub(super) async fn check(&self) -> io::Result<()> {
        let bucket = &self.settings.bucket;
        self.client()
            .await
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| failed("HeadBucket", bucket, e))?;
        Ok(())
    }

    /// Sends the file at `path` as `key`: one PutObject, or a multipart upload
    /// read part by part from the file (aborted if a part fails).
    pub(super) async fn put_file(&self, key: &str, path: &Path) -> io::Result<()> {
        let size = std::fs::metadata(path)?.len();
        let client = self.client().await;
        let bucket = &self.settings.bucket;
        let part = self.settings.part_size();
        if size <= part {
            let body = ByteStream::from_path(path)
                .await
                .map_err(io::Error::other)?;
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body)
                .send()
                .await
                .map_err(|e| failed("PutObject", key, e))?;
            return Ok(());
        }
        let started = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("CreateMultipartUpload", key, e))?;
        let upload_id = started
            .upload_id()
            .ok_or_else(|| io::Error::other(format!("S3 {key}: no upload id")))?
            .to_owned();
        match self.send_parts(key, path, size, &upload_id).await {
            Ok(parts) => {
                client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| failed("CompleteMultipartUpload", key, e))?;
                Ok(())
            }
            Err(e) => {
                // Best effort: the bucket's lifecycle rule removes what is left.
                let _ = client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        upload_id: &str,
    ) -> io::Result<Vec<CompletedPart>> {
        let client = self.client().await;
        let part = self.settings.part_size();
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let length = part.min(size - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(length))
                .build()
                .await
                .map_err(io::Error::other)?;
            let sent = client
                .upload_part()
                .bucket(&self.settings.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(|e| failed("UploadPart", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(sent.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
            offset += length;
            number += 1;
        }
        Ok(parts)
    }

    /// `key` from byte `offset` on, streamed as it arrives.
    pub(super) async fn get_from(&self, key: &str, offset: u64) -> io::Result<ObjectReader> {
        let mut get = self
            .client()
            .await
            .get_object()
            .bucket(&self.settings.bucket)
            .key(key);
        // No range from 0: an empty object has no byte 0 to start at.
        if offset > 0 {
            get = get.range(format!("bytes={offset}-"));
        }
        let object = get.send().await.map_err(|e| match e.as_service_error() {
            Some(err) if err.is_no_such_key() => io::Error::new(
                io::ErrorKind::NotFound,
                format!("S3 object {key} not found"),
            ),
            _ => failed("GetObject", key, e),
        })?;
        Ok(Box::pin(object.body.into_async_read()))
    }

    pub(super) async fn delete(&self, key: &str) -> io::Result<()> {
        self.client()
            .await
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("DeleteObject", key, e))?;
        Ok(())
    }

    /// Deletes every object under `prefix`, a listed page at a time.
    pub(super) async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        let client = self.client().await;
        loop {
            let listed = client
                .list_objects_v2()
                .bucket(&self.settings.bucket)
                .prefix(prefix)
                .send()
                .await
                .map_err(|e| failed("ListObjectsV2", prefix, e))?;
            let keys: Vec<String> = listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect();
            if keys.is_empty() {
                return Ok(());
            }
            for key in &keys {
                self.delete(key).await?;
            }
        }
    }

    pub(super) async fn exists(&self, key: &str) -> io::Result<bool> {
        let head = self
            .client()
            .await
            .head_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await;
        match head {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(failed("HeadObject", key, e)),
        }
    }
}
