//! Integration tests of the AWS Secrets Manager rotator against the moto server of the local
//! test environment (`tests/env/up.sh`). Each test works on its own secret, so the tests run
//! in parallel and repeated runs do not collide.

mod support;

use std::collections::{BTreeMap, HashMap};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use rotor::api::AwsProvider;
use rotor::providers::aws::{AwsFactory, AwsRotator};
use rotor::providers::{MANAGED_BY_TAG, OWNER_TAG, Owner};
use rotor::rotation::{Credentials, ProviderError, RotationId, Rotator, SecretValue, VersionId};

const REGION: &str = "us-east-1";
const PENDING: &str = "AWSPENDING";
const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

/// One test's secret id, with an SDK client for setting up and inspecting the secret
/// directly and a factory for the rotator under test.
struct Fixture {
    client: Client,
    factory: AwsFactory,
    secret_id: String,
}

impl Fixture {
    async fn new(prefix: &str) -> Self {
        let config = support::testenv().aws_config().await;
        Self {
            client: Client::new(&config),
            factory: AwsFactory::from_config(config),
            secret_id: support::unique_name(prefix),
        }
    }

    fn spec(&self) -> AwsProvider {
        AwsProvider {
            region: REGION.to_owned(),
            secret_id: self.secret_id.clone(),
            endpoint: None,
            auth: None,
        }
    }

    fn rotator(&self) -> AwsRotator {
        self.factory
            .rotator(&self.spec(), None, &owner())
            .expect("builds a rotator")
    }

    /// Creates the secret with the SDK, as if made outside rotor, and returns the id of its
    /// first version.
    async fn create_directly(&self, value: &str) -> VersionId {
        let version = RotationId::generate();
        self.client
            .create_secret()
            .name(&self.secret_id)
            .secret_string(value)
            .client_request_token(version.as_str())
            .send()
            .await
            .expect("CreateSecret succeeds");
        VersionId::new(version.as_str())
    }

    /// Value of the version that carries `stage`, or `None` when no version carries it.
    async fn value_at(&self, stage: &str) -> Option<String> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await;
        match result {
            Ok(output) => Some(
                output
                    .secret_string()
                    .expect("the version has a SecretString")
                    .to_owned(),
            ),
            Err(error) if error.code() == Some("ResourceNotFoundException") => None,
            Err(error) => panic!("GetSecretValue with stage {stage} failed: {error:?}"),
        }
    }

    /// Staging labels of each version that has any.
    async fn stages(&self) -> HashMap<String, Vec<String>> {
        let output = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .expect("DescribeSecret succeeds");
        output.version_ids_to_stages().cloned().unwrap_or_default()
    }

    /// Ids of the versions that carry `stage`.
    async fn holders(&self, stage: &str) -> Vec<String> {
        let stages = self.stages().await;
        let mut holders: Vec<String> = stages
            .into_iter()
            .filter(|(_, labels)| labels.iter().any(|label| label == stage))
            .map(|(version, _)| version)
            .collect();
        holders.sort();
        holders
    }

    /// Number of versions, including those without a staging label.
    async fn version_count(&self) -> usize {
        let output = self
            .client
            .list_secret_version_ids()
            .secret_id(&self.secret_id)
            .include_deprecated(true)
            .max_results(100)
            .send()
            .await
            .expect("ListSecretVersionIds succeeds");
        // moto 5.2 returns an empty NextToken and all versions in one page.
        let next_token = output.next_token().filter(|token| !token.is_empty());
        assert!(next_token.is_none(), "the test secret has more than 100 versions");
        output.versions().len()
    }
}

fn owner() -> Owner {
    Owner {
        namespace: "team-a".to_owned(),
        name: "db-password".to_owned(),
    }
}

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.to_owned())
}

#[tokio::test]
async fn first_stage_creates_secret() {
    let fixture = Fixture::new("rotor-first-stage").await;
    let rotator = fixture.rotator();
    let id = RotationId::generate();

    let staged = rotator.stage(&id, &value("one")).await.expect("stages");

    assert!(staged.written);
    assert_eq!(staged.version.as_str(), id.as_str());
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
    assert_eq!(fixture.holders(CURRENT).await, vec![id.to_string()]);
    assert_eq!(fixture.holders(PENDING).await, Vec::<String>::new());
    assert_eq!(fixture.version_count().await, 1);

    let description = fixture
        .client
        .describe_secret()
        .secret_id(&fixture.secret_id)
        .send()
        .await
        .expect("DescribeSecret succeeds");
    let tags: BTreeMap<&str, &str> = description
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?, tag.value()?)))
        .collect();
    assert_eq!(tags.get(MANAGED_BY_TAG), Some(&"rotor"));
    assert_eq!(tags.get(OWNER_TAG), Some(&"team-a/db-password"));
}

#[tokio::test]
async fn first_stage_twice_writes_once() {
    let fixture = Fixture::new("rotor-first-stage-twice").await;
    let rotator = fixture.rotator();
    let id = RotationId::generate();

    rotator.stage(&id, &value("one")).await.expect("stages");
    let again = rotator.stage(&id, &value("other")).await.expect("stages again");

    assert!(!again.written);
    assert_eq!(again.version.as_str(), id.as_str());
    assert_eq!(fixture.version_count().await, 1);
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
}

#[tokio::test]
async fn stage_and_promote_keep_previous() {
    let fixture = Fixture::new("rotor-promote").await;
    let old = fixture.create_directly("zero").await;
    let rotator = fixture.rotator();
    let id = RotationId::generate();

    let staged = rotator.stage(&id, &value("one")).await.expect("stages");
    assert!(staged.written);
    assert_eq!(fixture.value_at(PENDING).await.as_deref(), Some("one"));
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("zero"));

    let promoted = rotator.promote(&staged.version).await.expect("promotes");
    assert_eq!(promoted.previous, Some(old.clone()));
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
    assert_eq!(fixture.value_at(PREVIOUS).await.as_deref(), Some("zero"));
    assert_eq!(fixture.value_at(PENDING).await, None);
    assert_eq!(fixture.holders(CURRENT).await, vec![id.to_string()]);
    assert_eq!(fixture.holders(PREVIOUS).await, vec![old.to_string()]);
    assert_eq!(fixture.holders(PENDING).await, Vec::<String>::new());
}

#[tokio::test]
async fn second_rotation_moves_previous() {
    let fixture = Fixture::new("rotor-second-rotation").await;
    let rotator = fixture.rotator();
    let first = RotationId::generate();
    let second = RotationId::generate();

    rotator
        .stage(&first, &value("one"))
        .await
        .expect("stages the first value");
    let staged = rotator
        .stage(&second, &value("two"))
        .await
        .expect("stages the second value");
    let promoted = rotator.promote(&staged.version).await.expect("promotes");

    assert_eq!(promoted.previous, Some(VersionId::new(first.as_str())));
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("two"));
    assert_eq!(fixture.value_at(PREVIOUS).await.as_deref(), Some("one"));
    assert_eq!(fixture.holders(PENDING).await, Vec::<String>::new());
    assert_eq!(fixture.version_count().await, 2);
}

#[tokio::test]
async fn repeated_stage_writes_once() {
    let fixture = Fixture::new("rotor-stage-twice").await;
    fixture.create_directly("zero").await;
    let rotator = fixture.rotator();
    let id = RotationId::generate();

    let first = rotator.stage(&id, &value("one")).await.expect("stages");
    let again = rotator.stage(&id, &value("other")).await.expect("stages again");

    assert!(first.written);
    assert!(!again.written);
    assert_eq!(again.version, first.version);
    assert_eq!(fixture.version_count().await, 2);
    assert_eq!(fixture.value_at(PENDING).await.as_deref(), Some("one"));
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("zero"));
}

#[tokio::test]
async fn repeated_promote_is_harmless() {
    let fixture = Fixture::new("rotor-promote-twice").await;
    let old = fixture.create_directly("zero").await;
    let rotator = fixture.rotator();
    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");

    let first = rotator.promote(&staged.version).await.expect("promotes");
    let again = rotator.promote(&staged.version).await.expect("promotes again");

    assert_eq!(first.previous, Some(old.clone()));
    assert_eq!(again.previous, Some(old.clone()));
    assert_eq!(fixture.holders(CURRENT).await, vec![staged.version.to_string()]);
    assert_eq!(fixture.holders(PREVIOUS).await, vec![old.to_string()]);
    assert_eq!(fixture.holders(PENDING).await, Vec::<String>::new());
    assert_eq!(fixture.version_count().await, 2);
}

#[tokio::test]
async fn promote_unknown_version_fails() {
    let fixture = Fixture::new("rotor-promote-unknown").await;
    fixture.create_directly("zero").await;
    let rotator = fixture.rotator();
    let unknown = VersionId::new(RotationId::generate().as_str());

    let error = rotator.promote(&unknown).await.expect_err("rejects the version");

    assert!(matches!(error, ProviderError::VersionNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn read_returns_staged_value() {
    let fixture = Fixture::new("rotor-read").await;
    let old = fixture.create_directly("zero").await;
    let rotator = fixture.rotator();
    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");

    let staged_value = rotator.read(&staged.version).await.expect("reads the staged version");
    let old_value = rotator.read(&old).await.expect("reads the first version");

    assert_eq!(staged_value.expose(), "one");
    assert_eq!(old_value.expose(), "zero");
}

#[tokio::test]
async fn read_unknown_version_fails() {
    let fixture = Fixture::new("rotor-read-unknown").await;
    fixture.create_directly("zero").await;
    let rotator = fixture.rotator();
    let unknown = VersionId::new(RotationId::generate().as_str());

    let error = rotator.read(&unknown).await.expect_err("rejects the version");

    assert!(matches!(error, ProviderError::VersionNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn read_binary_secret_fails() {
    let fixture = Fixture::new("rotor-read-binary").await;
    let version = RotationId::generate();
    fixture
        .client
        .create_secret()
        .name(&fixture.secret_id)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(b"binary".to_vec()))
        .client_request_token(version.as_str())
        .send()
        .await
        .expect("CreateSecret succeeds");
    let rotator = fixture.rotator();

    let error = rotator
        .read(&VersionId::new(version.as_str()))
        .await
        .expect_err("rejects the binary value");

    let ProviderError::Cloud { message, .. } = error else {
        panic!("{error:?}");
    };
    assert!(message.contains("SecretBinary"), "{message}");
}

#[tokio::test]
async fn current_version_matches() {
    let fixture = Fixture::new("rotor-current").await;
    let rotator = fixture.rotator();
    assert_eq!(
        rotator.current_version().await.expect("describes the missing secret"),
        None
    );

    let old = fixture.create_directly("zero").await;
    assert_eq!(rotator.current_version().await.expect("describes"), Some(old));

    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    rotator.promote(&staged.version).await.expect("promotes");
    assert_eq!(
        rotator.current_version().await.expect("describes"),
        Some(staged.version)
    );
}

#[tokio::test]
async fn deleted_secret_rejects_stage() {
    let fixture = Fixture::new("rotor-deleted").await;
    fixture.create_directly("zero").await;
    fixture
        .client
        .delete_secret()
        .secret_id(&fixture.secret_id)
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("DeleteSecret succeeds");
    let rotator = fixture.rotator();

    let error = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect_err("rejects the stage");

    assert!(matches!(error, ProviderError::SecretDeleted { .. }), "{error:?}");
}

#[tokio::test]
async fn deleted_secret_rejects_read_and_promote() {
    let fixture = Fixture::new("rotor-deleted-promote").await;
    let old = fixture.create_directly("zero").await;
    let rotator = fixture.rotator();
    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    fixture
        .client
        .delete_secret()
        .secret_id(&fixture.secret_id)
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("DeleteSecret succeeds");

    // A fresh rotator describes the secret before promoting. The rotator that staged
    // reuses the labels it saw and relies on AWS rejecting the write to a deleted secret,
    // which moto 5.2 does not do.
    let rotator = fixture.rotator();
    let read = rotator.read(&old).await.expect_err("rejects the read");
    let promote = rotator.promote(&staged.version).await.expect_err("rejects the promote");

    assert!(matches!(read, ProviderError::SecretDeleted { .. }), "{read:?}");
    assert!(matches!(promote, ProviderError::SecretDeleted { .. }), "{promote:?}");
    assert_eq!(fixture.holders(CURRENT).await, vec![old.to_string()]);
}

fn credentials(pairs: &[(&str, &str)]) -> Credentials {
    Credentials {
        source: "team-a/aws-credentials".to_owned(),
        data: pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), SecretValue::new((*value).to_owned())))
            .collect(),
    }
}

/// Builds an SDK config aimed at moto without any credentials provider, so that a call
/// succeeds only with the credentials that the rotator adds.
fn config_without_credentials() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(support::testenv().aws_endpoint)
        .build()
}

#[tokio::test]
async fn credentials_secret_is_used() {
    let fixture = Fixture::new("rotor-credentials").await;
    let factory = AwsFactory::from_config(config_without_credentials());
    let credentials = credentials(&[
        ("AWS_ACCESS_KEY_ID", "AKIDROTORTEST"),
        ("AWS_SECRET_ACCESS_KEY", "rotor-test-secret-key"),
        ("AWS_SESSION_TOKEN", "rotor-test-session-token"),
    ]);

    let without = factory
        .rotator(&fixture.spec(), None, &owner())
        .expect("builds a rotator");
    let unsigned = without.current_version().await;
    assert!(
        matches!(unsigned, Err(ProviderError::Cloud { .. })),
        "a call without credentials returned {unsigned:?}"
    );

    let with = factory
        .rotator(&fixture.spec(), Some(&credentials), &owner())
        .expect("builds a rotator");
    let staged = with
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages with the credentials");
    assert!(staged.written);
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
}

#[tokio::test]
async fn credentials_missing_secret_key_fails() {
    let fixture = Fixture::new("rotor-credentials-missing").await;
    let credentials = credentials(&[("AWS_ACCESS_KEY_ID", "AKIDROTORTEST")]);

    let error = fixture
        .factory
        .rotator(&fixture.spec(), Some(&credentials), &owner())
        .expect_err("rejects");

    let ProviderError::CredentialsNotFound { name, message } = error else {
        panic!("{error:?}");
    };
    assert_eq!(name, "team-a/aws-credentials");
    assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "{message}");
}
