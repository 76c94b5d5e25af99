//! The AWS KMS key provider against a real local KMS: PyPI `moto[server]`
//! (pinned in `tests/api/pytools.txt`) on a free loopback port, fake
//! credentials, one key per jurisdiction made through the KMS API.
//!
//! moto 5.2 does not enforce a key's state on Encrypt/Decrypt (a disabled key
//! still encrypts there), so the disabled key is checked where moto does model
//! it: `DescribeKey`, which a node runs at start (`AwsKmsProvider::check_keys`).
//! The code→kind table for `DisabledException` itself is a unit test in
//! `crypto::kms`.
//!
//! A node built with `encryption.provider = "aws-kms"` takes its credentials
//! from the AWS chain, i.e. the environment; the test cannot set this
//! process's environment (shared by every test thread), so it runs that part
//! in a child process of this test binary (`aws_kms_node_child`) with its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::free_port;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use meridian::crypto::envelope::Dek;
use meridian::crypto::kms::AwsKmsProvider;
use meridian::crypto::provider::{KeyError, KeyProvider};
use meridian::crypto::settings::{KmsSettings, ProviderKind};
use meridian::ids::TenantId;

/// The secret key handed to moto and to the child node: it must not show in
/// the node's output.
pub(crate) const SECRET: &str = "moto-secret-never-logged-4d1f";

/// `moto_server` (`pytool::bin`).
pub(crate) fn moto_bin() -> Option<PathBuf> {
    crate::pytool::bin("moto[server]", "moto_server", "moto", "KMS provider test")
}

/// A running moto KMS; stopped (by its PID) when dropped.
pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
}

impl Moto {
    pub(crate) fn start(bin: &Path) -> Self {
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        crate::helpers::wait_listening(port, Duration::from_secs(60), "moto_server");
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A plain SDK client on moto, for what the tests do as "the operator".
    fn admin(&self) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials())
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }

    /// One new key per jurisdiction: jurisdiction → ARN.
    pub(crate) async fn keys(&self) -> BTreeMap<String, String> {
        let admin = self.admin();
        let mut keys = BTreeMap::new();
        for jurisdiction in ["us", "eu", "apac"] {
            let made = admin
                .create_key()
                .description(format!("meridian {jurisdiction} KEK"))
                .send()
                .await
                .expect("CreateKey on moto");
            let arn = made.key_metadata().unwrap().arn().unwrap().to_owned();
            keys.insert(jurisdiction.to_owned(), arn);
        }
        keys
    }

    fn settings(&self, keys: BTreeMap<String, String>) -> KmsSettings {
        KmsSettings {
            region: "us-east-1".into(),
            endpoint: Some(self.endpoint.clone()),
            keys,
            previous_keys: BTreeMap::new(),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 2,
            operation_timeout: Duration::from_secs(20),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn credentials() -> Credentials {
    Credentials::new("AKIDMERIDIANTEST", SECRET, None, None, "meridian-tests")
}

/// The key id at the end of a key ARN: moto 5.2's DisableKey answers 500 to an ARN.
fn key_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

fn tenant() -> TenantId {
    TenantId::from_uuid(uuid::Uuid::now_v7())
}

#[actix_web::test]
async fn kms_wrapped_deks_open_only_for_their_tenant_jurisdiction_and_version() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin);
    let keys = moto.keys().await;
    let provider =
        AwsKmsProvider::with_credentials(&moto.settings(keys.clone()), credentials()).await;
    provider.check_keys().await.expect("all keys enabled");

    let owner = tenant();
    let dek = Dek::generate(3).unwrap();
    let wrapped = provider.wrap(owner, "us", &dek).await.unwrap();
    assert_eq!(wrapped.jurisdiction, "us");
    assert_eq!(wrapped.kek_id, keys["us"], "wrapped under the us key");
    assert!(!wrapped.blob.windows(32).any(|w| w == dek.secret_bytes()));

    let opened = provider.unwrap(owner, &wrapped, 3).await.unwrap();
    assert_eq!(opened.secret_bytes(), dek.secret_bytes());
    assert_eq!(opened.version, 3);

    // Copied to another tenant's row: the encryption context differs.
    let stolen = provider.unwrap(tenant(), &wrapped, 3).await.err();
    assert!(matches!(stolen, Some(KeyError::Unwrap)), "{stolen:?}");
    // Claimed as another version of the same tenant.
    let bumped = provider.unwrap(owner, &wrapped, 4).await.err();
    assert!(matches!(bumped, Some(KeyError::Unwrap)), "{bumped:?}");
    // Claimed for the eu jurisdiction: the eu key does not open it (moto says
    // AccessDenied, KMS IncorrectKey); permanent either way.
    let moved = meridian::crypto::provider::WrappedDek {
        jurisdiction: "eu".into(),
        ..wrapped.clone()
    };
    match provider.unwrap(owner, &moved, 3).await {
        Ok(_) => panic!("a us-wrapped DEK opened as eu"),
        Err(err) => assert!(!err.is_retryable(), "{err}"),
    }
    // An eu DEK is wrapped under the eu key, and opens as eu.
    let eu = provider.wrap(owner, "eu", &dek).await.unwrap();
    assert_eq!(eu.kek_id, keys["eu"]);
    assert_eq!(
        provider.unwrap(owner, &eu, 3).await.unwrap().secret_bytes(),
        dek.secret_bytes()
    );
    assert!(matches!(
        provider.wrap(owner, "mars", &dek).await,
        Err(KeyError::UnknownJurisdiction(_))
    ));
}

/// A replaced KMS key (`crypto::kek_rotation`): with the old key in
/// `previous_keys`, DEKs wrapped under it still open, `is_current` says they
/// need a rewrap, and a rewrap (`wrap` again) puts them under the new key.
#[actix_web::test]
async fn a_replaced_kms_key_still_unwraps_and_rewraps_under_the_new_one() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin);
    let old = moto.keys().await;
    let new = moto.keys().await;
    let before = AwsKmsProvider::with_credentials(&moto.settings(old.clone()), credentials()).await;
    let owner = tenant();
    let dek = Dek::generate(2).unwrap();
    let under_old = before.wrap(owner, "us", &dek).await.unwrap();
    assert!(before.is_current("us", &under_old.kek_id).await.unwrap());

    // The operator sets the new key, the old one as previous.
    let mut settings = moto.settings(new.clone());
    settings.previous_keys = BTreeMap::from([("us".to_owned(), key_id(&old["us"]).to_owned())]);
    let after = AwsKmsProvider::with_credentials(&settings, credentials()).await;
    assert!(!after.is_current("us", &under_old.kek_id).await.unwrap());
    let opened = after.unwrap(owner, &under_old, 2).await.unwrap();
    assert_eq!(opened.secret_bytes(), dek.secret_bytes());
    let rewrapped = after.wrap(owner, "us", &opened).await.unwrap();
    assert_eq!(rewrapped.kek_id, new["us"]);
    assert!(after.is_current("us", &rewrapped.kek_id).await.unwrap());
    // Without the previous key, the old wrapping does not open: the setting is
    // what keeps it readable until the rewrap is done.
    let forgot = AwsKmsProvider::with_credentials(&moto.settings(new.clone()), credentials()).await;
    assert!(forgot.unwrap(owner, &under_old, 2).await.is_err());
    assert_eq!(
        forgot
            .unwrap(owner, &rewrapped, 2)
            .await
            .unwrap()
            .secret_bytes(),
        dek.secret_bytes()
    );
}

#[actix_web::test]
async fn kms_refusals_are_permanent_errors() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin);
    let keys = moto.keys().await;
    moto.admin()
        .disable_key()
        .key_id(key_id(&keys["eu"]))
        .send()
        .await
        .unwrap();
    let provider =
        AwsKmsProvider::with_credentials(&moto.settings(keys.clone()), credentials()).await;
    let err = provider
        .check_keys()
        .await
        .expect_err("the eu key is disabled");
    assert!(matches!(err, KeyError::Refused(_)), "{err:?}");
    assert!(!err.is_retryable());
    let message = err.to_string();
    assert!(
        message.contains("`eu`") && message.contains("Disabled"),
        "{message}"
    );

    // A key that does not exist (deleted, or a wrong ARN): NotFound, permanent.
    let mut wrong = keys.clone();
    wrong.insert(
        "us".into(),
        "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000".into(),
    );
    let provider = AwsKmsProvider::with_credentials(&moto.settings(wrong), credentials()).await;
    let err = provider
        .wrap(tenant(), "us", &Dek::generate(1).unwrap())
        .await
        .expect_err("no such key");
    assert!(matches!(err, KeyError::Refused(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("NotFoundException"), "{err}");
}

#[actix_web::test]
async fn kms_down_is_a_retryable_error_naming_the_endpoint() {
    let Some(bin) = moto_bin() else { return };
    let mut moto = Moto::start(&bin);
    let keys = moto.keys().await;
    let provider = AwsKmsProvider::with_credentials(&moto.settings(keys), credentials()).await;
    let owner = tenant();
    let wrapped = provider
        .wrap(owner, "apac", &Dek::generate(1).unwrap())
        .await
        .unwrap();
    moto.stop();
    let Err(err) = provider.unwrap(owner, &wrapped, 1).await else {
        panic!("unwrapped with KMS down")
    };
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    let message = err.to_string();
    assert!(
        message.contains(&moto.endpoint) && message.contains("unreachable"),
        "{message}"
    );
}

/// A node with `encryption.provider = "aws-kms"` boots and serves, and one
/// whose key is disabled (child process: see the module doc), missing or
/// misnamed does not start.
#[actix_web::test]
async fn a_node_with_the_aws_kms_provider_boots_and_checks_its_keys() {
    let Some(bin) = moto_bin() else { return };
    let moto = Moto::start(&bin);
    let keys = moto.keys().await;
    run_child_with_aws_env(
        "kms::aws_kms_node_child",
        &[
            ("MERIDIAN_TEST_KMS_ENDPOINT", moto.endpoint.as_str()),
            (
                "MERIDIAN_TEST_KMS_KEYS",
                &serde_json::to_string(&keys).unwrap(),
            ),
        ],
    );

    // Before any call: no key for the node's own jurisdiction (us-east1: us),
    // or a key for a jurisdiction no region file names (a typo).
    let db = crate::helpers::fresh_database().await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.encryption.provider = ProviderKind::AwsKms;
    settings.encryption.kms = moto.settings(keys);
    let mut without_us = settings.clone();
    without_us.encryption.kms.keys.remove("us");
    let refused = match meridian::Application::build(without_us).await {
        Ok(_) => panic!("started without a key for its jurisdiction"),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        refused.contains("`us`") && refused.contains("MERIDIAN_ENCRYPTION__KMS__KEYS__US"),
        "{refused}"
    );
    let mut typo = settings;
    typo.encryption
        .kms
        .keys
        .insert("europe".into(), "arn:aws:kms:eu-west-1:1:key/x".into());
    let refused = match meridian::Application::build(typo).await {
        Ok(_) => panic!("started with a key for an unknown jurisdiction"),
        Err(err) => format!("{err:#}"),
    };
    assert!(refused.contains("encryption.kms.keys.europe"), "{refused}");
}

/// Runs the ignored test `name` of this binary in a child process whose
/// environment holds moto's AWS credentials (and `env`), and checks it passed
/// without printing the secret key.
pub(crate) fn run_child_with_aws_env(name: &str, env: &[(&str, &str)]) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--ignored", "--nocapture"])
        .env("AWS_ACCESS_KEY_ID", "AKIDMERIDIANTEST")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        // Never the instance metadata service from a test.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(!text.contains(SECRET), "the secret key was printed: {text}");
}

/// Run only by the test above, with AWS credentials in its environment.
#[actix_web::test]
#[ignore = "run by a_node_with_the_aws_kms_provider_boots_and_checks_its_keys"]
async fn aws_kms_node_child() {
    let endpoint = std::env::var("MERIDIAN_TEST_KMS_ENDPOINT").expect("run by the parent test");
    let keys: BTreeMap<String, String> =
        serde_json::from_str(&std::env::var("MERIDIAN_TEST_KMS_KEYS").unwrap()).unwrap();
    let kms = KmsSettings {
        region: "us-east-1".into(),
        endpoint: Some(endpoint),
        keys: keys.clone(),
        previous_keys: BTreeMap::new(),
        attempt_timeout: Duration::from_secs(5),
        max_attempts: 2,
        operation_timeout: Duration::from_secs(20),
    };
    let db = crate::helpers::fresh_database().await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.encryption.provider = ProviderKind::AwsKms;
    settings.encryption.kms = kms.clone();
    let app = crate::helpers::spawn_app_with(settings.clone()).await;
    let tenant = app.provision("kms-node").await;
    let me = app
        .get(&format!("/v1/tenants/{}", tenant.id), &tenant.owner_token)
        .await;
    assert_eq!(me.status, 200, "{:?}", me.body);

    // The eu key disabled: the node refuses to start, naming it.
    let admin = aws_sdk_kms::Client::new(
        &aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(kms.endpoint.as_deref().unwrap())
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .load()
            .await,
    );
    admin
        .disable_key()
        .key_id(key_id(&keys["eu"]))
        .send()
        .await
        .unwrap();
    let refused = match meridian::Application::build(settings).await {
        Ok(_) => panic!("started with a disabled eu key"),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        refused.contains("KMS key") && refused.contains("`eu`") && refused.contains("Disabled"),
        "{refused}"
    );
}
