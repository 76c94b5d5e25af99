//! `AwsKmsProvider`: the KEK of a jurisdiction is an AWS KMS key (a multi-Region
//! key with a replica in every region of the jurisdiction, `terraform/`), and a
//! DEK is wrapped with KMS `Encrypt` and unwrapped with `Decrypt`, both in the
//! node's own region. The KEK never leaves KMS.
//!
//! The **encryption context** names the tenant, the jurisdiction and the DEK
//! version. KMS binds the ciphertext to it (as AES-GCM additional data), so a
//! wrapped DEK copied to another tenant's row, claimed for another
//! jurisdiction or version, does not decrypt. The context is not secret: it
//! shows in CloudTrail, which thus says which tenant's key a node unwrapped.
//!
//! Credentials come from the standard AWS chain (environment, profile, web
//! identity, ECS, the instance role through IMDSv2) and are never in settings
//! or logs. The SDK runs on hyper over the project's rustls with ring (its
//! default HTTPS client would build aws-lc). Errors: unreachable, timeout,
//! throttling and KMS-internal errors are `KeyError::Unavailable` (retryable);
//! refusals (access denied, key not found, disabled or pending deletion) are
//! `KeyError::Refused` and a ciphertext that does not open is `KeyError::Unwrap`
//! (permanent). The AWS request id goes to the log; key bytes never do.

use std::collections::HashMap;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::Credentials;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use zeroize::{Zeroize, Zeroizing};

use super::envelope::Dek;
use super::provider::{KeyError, KeyProvider, WrappedDek};
use super::settings::KmsSettings;
use crate::ids::TenantId;

pub struct AwsKmsProvider {
    client: Client,
    /// Jurisdiction → key id, ARN or alias in this node's region.
    keys: std::collections::BTreeMap<String, String>,
    /// Jurisdiction → the replaced key, still tried by `unwrap` (`crypto::kek_rotation`).
    previous_keys: std::collections::BTreeMap<String, String>,
    /// Configured key (id, ARN or alias) → its bare key id, from DescribeKey,
    /// for `is_current` (a stored `kek_id` is the ARN KMS returned).
    resolved: std::sync::Mutex<HashMap<String, String>>,
    /// Named in "unavailable" errors, so an operator sees which endpoint failed.
    endpoint: String,
}

/// The encryption context of a wrapped DEK (see the module doc).
fn context(tenant: TenantId, jurisdiction: &str, version: u32) -> HashMap<String, String> {
    HashMap::from([
        ("meridian:tenant".to_owned(), tenant.to_string()),
        ("meridian:jurisdiction".to_owned(), jurisdiction.to_owned()),
        ("meridian:dek-version".to_owned(), version.to_string()),
    ])
}

impl AwsKmsProvider {
    /// The client for `settings`, with credentials from the standard AWS chain;
    /// it makes no call yet (`check_keys` does).
    pub async fn new(settings: &KmsSettings) -> Self {
        Self::build(settings, None).await
    }

    /// With fixed credentials instead of the chain: a local KMS (tests, dev).
    pub async fn with_credentials(settings: &KmsSettings, credentials: Credentials) -> Self {
        Self::build(settings, Some(credentials)).await
    }

    async fn build(settings: &KmsSettings, credentials: Option<Credentials>) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(settings.attempt_timeout)
            .operation_attempt_timeout(settings.attempt_timeout)
            .operation_timeout(settings.operation_timeout)
            .build();
        let retry = RetryConfig::standard()
            .with_max_attempts(settings.max_attempts)
            .with_initial_backoff(std::time::Duration::from_millis(100));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(retry);
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let config = loader.load().await;
        Self {
            client: Client::new(&config),
            keys: settings.keys.clone(),
            previous_keys: settings.previous_keys.clone(),
            resolved: std::sync::Mutex::new(HashMap::new()),
            endpoint: settings
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("kms.{}.amazonaws.com", settings.region)),
        }
    }

    fn key_of(&self, jurisdiction: &str) -> Result<&str, KeyError> {
        self.keys
            .get(jurisdiction)
            .map(String::as_str)
            .ok_or_else(|| KeyError::UnknownJurisdiction(jurisdiction.to_owned()))
    }

    /// `key`'s bare key id (the last part of its ARN), asked of KMS once.
    async fn key_id_of(&self, jurisdiction: &str, key: &str) -> Result<String, KeyError> {
        let known = self
            .resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned();
        if let Some(id) = known {
            return Ok(id);
        }
        let out = self
            .client
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| self.classify("DescribeKey", jurisdiction, e))?;
        let id = out
            .key_metadata()
            .map(|m| m.key_id().to_owned())
            .ok_or_else(|| KeyError::Unavailable("KMS DescribeKey returned no key".into()))?;
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), id.clone());
        Ok(id)
    }

    async fn decrypt(
        &self,
        key: &str,
        tenant: TenantId,
        wrapped: &WrappedDek,
        version: u32,
    ) -> Result<Dek, KeyError> {
        let jurisdiction = wrapped.jurisdiction.as_str();
        let out = self
            .client
            .decrypt()
            .key_id(key)
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .set_encryption_context(Some(context(tenant, jurisdiction, version)))
            .send()
            .await
            .map_err(|e| self.classify("Decrypt", jurisdiction, e))?;
        let mut plain = out.plaintext.map(Blob::into_inner).unwrap_or_default();
        let mut key = Zeroizing::new([0u8; 32]);
        let fits = plain.len() == key.len();
        if fits {
            key.copy_from_slice(&plain);
        }
        plain.zeroize();
        if !fits {
            return Err(KeyError::Unwrap);
        }
        Ok(Dek::new(version, key))
    }

    /// At start: each jurisdiction's key exists, is enabled and may be described
    /// by this node. A refusal is a start error (misconfigured key or policy);
    /// an unreachable KMS is only logged, so a KMS outage does not also keep
    /// nodes from restarting.
    pub async fn check_keys(&self) -> Result<(), KeyError> {
        for (jurisdiction, key) in &self.keys {
            let described = self.client.describe_key().key_id(key).send().await;
            let state = match described {
                Ok(out) => out.key_metadata().and_then(|m| m.key_state()).cloned(),
                Err(err) => match self.classify("DescribeKey", jurisdiction, err) {
                    KeyError::Unavailable(why) => {
                        tracing::warn!(%jurisdiction, %why, "KMS key not checked at start");
                        continue;
                    }
                    refused => return Err(refused),
                },
            };
            if state != Some(aws_sdk_kms::types::KeyState::Enabled) {
                return Err(KeyError::Refused(format!(
                    "the KMS key of jurisdiction `{jurisdiction}` is {}",
                    state.as_ref().map_or("in an unknown state", |s| s.as_str())
                )));
            }
        }
        Ok(())
    }

    /// Maps an SDK error to a `KeyError` kind and logs it with the request id.
    fn classify<E, R>(&self, operation: &str, jurisdiction: &str, err: SdkError<E, R>) -> KeyError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
        SdkError<E, R>: RequestId,
    {
        let request_id = err.request_id().unwrap_or("-").to_owned();
        let (code, message) = match &err {
            SdkError::ServiceError(service) => (
                service.err().code().unwrap_or("Unknown").to_owned(),
                service.err().message().unwrap_or_default().to_owned(),
            ),
            SdkError::TimeoutError(_) => ("Timeout".to_owned(), String::new()),
            SdkError::DispatchFailure(failure) => {
                let why = if failure.is_timeout() {
                    "timeout"
                } else if failure.is_io() {
                    "connection failed"
                } else {
                    "request not sent"
                };
                ("Unreachable".to_owned(), why.to_owned())
            }
            SdkError::ResponseError(_) => ("BadResponse".to_owned(), String::new()),
            _ => ("Construction".to_owned(), format!("{err}")),
        };
        tracing::warn!(
            operation,
            %jurisdiction,
            aws_request_id = %request_id,
            code = %code,
            message = %message,
            "KMS call failed"
        );
        let what = format!("KMS {operation} for `{jurisdiction}`: {code} {message}");
        match kind_of(&code) {
            Kind::Unreachable => KeyError::Unavailable(format!(
                "KMS at {} unreachable ({operation} for `{jurisdiction}`): {code} {message}",
                self.endpoint
            )),
            Kind::Transient => KeyError::Unavailable(what),
            Kind::Unwrap => KeyError::Unwrap,
            Kind::Refused => KeyError::Refused(what),
        }
    }
}

/// What an error code means for the caller.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// No answer (connection, timeout, unparseable response): retryable.
    Unreachable,
    /// KMS answered that it cannot serve now: retryable.
    Transient,
    /// The ciphertext does not open with this key and context: permanent.
    Unwrap,
    /// Access denied, not found, disabled, pending deletion, invalid input…:
    /// permanent. Unknown codes land here: retrying an unknown refusal would
    /// only hide it.
    Refused,
}

fn kind_of(code: &str) -> Kind {
    match code {
        "Timeout" | "Unreachable" | "BadResponse" => Kind::Unreachable,
        "ThrottlingException"
        | "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "ServiceUnavailable"
        | "InternalFailure" => Kind::Transient,
        "InvalidCiphertextException" | "IncorrectKeyException" => Kind::Unwrap,
        _ => Kind::Refused,
    }
}

#[async_trait::async_trait]
impl KeyProvider for AwsKmsProvider {
    async fn wrap(
        &self,
        tenant: TenantId,
        jurisdiction: &str,
        dek: &Dek,
    ) -> Result<WrappedDek, KeyError> {
        let key = self.key_of(jurisdiction)?;
        // The SDK takes an owned buffer and drops it unwiped after sending; the
        // copy lives only for the call.
        let out = self
            .client
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(dek.secret_bytes().to_vec()))
            .set_encryption_context(Some(context(tenant, jurisdiction, dek.version)))
            .send()
            .await
            .map_err(|e| self.classify("Encrypt", jurisdiction, e))?;
        let blob = out
            .ciphertext_blob()
            .ok_or_else(|| KeyError::Unavailable("KMS Encrypt returned no ciphertext".into()))?;
        Ok(WrappedDek {
            jurisdiction: jurisdiction.to_owned(),
            // The ARN KMS used: the key (and its region) this DEK was wrapped under.
            kek_id: out.key_id().unwrap_or(key).to_owned(),
            blob: blob.as_ref().to_vec(),
        })
    }

    async fn unwrap(
        &self,
        tenant: TenantId,
        wrapped: &WrappedDek,
        version: u32,
    ) -> Result<Dek, KeyError> {
        let jurisdiction = wrapped.jurisdiction.as_str();
        // The key this node has for the claimed jurisdiction, not the stored
        // ARN: after a failover the stored ARN names another region's replica,
        // which the same multi-Region key opens here; and a DEK of another
        // jurisdiction's key fails (IncorrectKeyException). While a replaced
        // key's DEKs are being rewrapped, the replaced key opens those.
        let key = self.key_of(jurisdiction)?;
        // (KMS answers IncorrectKeyException for a DEK under another key; moto,
        // AccessDenied: any permanent failure tries the replaced key.)
        match self.decrypt(key, tenant, wrapped, version).await {
            Err(err) if !err.is_retryable() => match self.previous_keys.get(jurisdiction) {
                Some(previous) => self
                    .decrypt(previous, tenant, wrapped, version)
                    .await
                    .map_err(|_| err),
                None => Err(err),
            },
            other => other,
        }
    }

    async fn is_current(&self, jurisdiction: &str, kek_id: &str) -> Result<bool, KeyError> {
        let key = self.key_of(jurisdiction)?;
        let current = self.key_id_of(jurisdiction, key).await?;
        // Compared by key id, not ARN: a multi-Region key's replicas share it.
        Ok(kek_id.rsplit('/').next() == Some(current.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_error_codes_map_to_retryable_or_permanent() {
        for code in [
            "Unreachable",
            "Timeout",
            "ThrottlingException",
            "KMSInternalException",
        ] {
            assert!(matches!(kind_of(code), Kind::Unreachable | Kind::Transient));
        }
        for code in [
            "AccessDeniedException",
            "NotFoundException",
            "DisabledException",
            "KMSInvalidStateException",
            "SomethingNew",
        ] {
            assert_eq!(kind_of(code), Kind::Refused, "{code}");
        }
        assert_eq!(kind_of("InvalidCiphertextException"), Kind::Unwrap);
        assert_eq!(kind_of("IncorrectKeyException"), Kind::Unwrap);
    }
}
