//! Integration tests of the Azure Key Vault rotator against the in-repository Key Vault
//! emulator (`emulators/azure-key-vault`) that `tests/env/up.sh` starts over HTTPS. Each
//! test works on its own secret, so the tests run in parallel and repeated runs do not
//! collide.
#![cfg(feature = "azure")]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::StatusCode;
use azure_core::time::{Duration as TokenLifetime, OffsetDateTime};
use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientUpdateSecretPropertiesOptions, SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use rotor::api::AzureProvider;
use rotor::providers::azure::{AzureFactory, AzureRotator, PREVIOUS_VERSION_TAG, ROTATION_ID_TAG};
use rotor::providers::{MANAGED_BY_TAG, OWNER_TAG, Owner};
use rotor::rotation::{CallObserver, Credentials, ProviderError, RotationId, Rotator, SecretValue, VersionId};

/// A credential that returns a fixed bearer token without calling Microsoft Entra ID.
/// The emulator accepts any bearer token after its 401 challenge.
#[derive(Debug)]
struct EmulatorCredential;

#[async_trait]
impl TokenCredential for EmulatorCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "rotor-test-token",
            OffsetDateTime::now_utc() + TokenLifetime::hours(1),
        ))
    }
}

/// Records the operation and outcome of every call.
#[derive(Debug, Default)]
struct RecordingObserver {
    calls: Mutex<Vec<(&'static str, &'static str)>>,
}

impl RecordingObserver {
    fn take(&self) -> Vec<(&'static str, &'static str)> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }
}

impl CallObserver for RecordingObserver {
    fn observe(&self, provider: &'static str, operation: &'static str, outcome: &'static str, _duration: Duration) {
        assert_eq!(provider, "azure");
        self.calls.lock().expect("lock").push((operation, outcome));
    }
}

/// One test's secret name, with a Key Vault client for setting up and inspecting the
/// secret directly and a factory for the rotator under test.
struct Fixture {
    client: SecretClient,
    factory: AzureFactory,
    vault_url: String,
    secret_name: String,
}

impl Fixture {
    fn new(prefix: &str) -> Self {
        let vault_url = support::testenv().azure_vault_url();
        let options = SecretClientOptions {
            verify_challenge_resource: Some(false),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(&vault_url, Arc::new(EmulatorCredential), Some(options))
            .expect("builds a Key Vault client");
        Self {
            client,
            factory: AzureFactory::with_credential(Arc::new(EmulatorCredential)),
            vault_url,
            secret_name: support::unique_name(prefix),
        }
    }

    fn spec(&self) -> AzureProvider {
        AzureProvider {
            vault_url: self.vault_url.clone(),
            secret_name: self.secret_name.clone(),
            auth: None,
        }
    }

    fn rotator(&self) -> AzureRotator {
        self.factory
            .rotator(&self.spec(), None, &owner())
            .expect("builds a rotator")
    }

    /// Sets a version with the client, as if written outside rotor, and returns its id.
    async fn set_directly(&self, value: &str) -> VersionId {
        let parameters = SetSecretParameters {
            value: Some(value.to_owned()),
            ..SetSecretParameters::default()
        };
        let secret = self
            .client
            .set_secret(&self.secret_name, parameters.try_into().expect("serializes"), None)
            .await
            .expect("SetSecret succeeds")
            .into_model()
            .expect("parses the secret");
        let version = secret.resource_id().expect("has an id").version.expect("has a version");
        VersionId::new(version)
    }

    /// Value of the latest version, or `None` when the secret does not exist.
    async fn latest_value(&self) -> Option<String> {
        match self.client.get_secret(&self.secret_name, None).await {
            Ok(response) => response.into_model().expect("parses the secret").value,
            Err(error) if error.http_status() == Some(StatusCode::NotFound) => None,
            Err(error) => panic!("GetSecret failed: {error}"),
        }
    }

    /// Tags of each version, by version id.
    async fn tags(&self) -> HashMap<String, HashMap<String, String>> {
        let versions: Vec<_> = self
            .client
            .list_secret_properties_versions(&self.secret_name, None)
            .expect("builds the pager")
            .try_collect()
            .await
            .expect("GetSecretVersions succeeds");
        versions
            .into_iter()
            .map(|properties| {
                let version = properties
                    .resource_id()
                    .expect("has an id")
                    .version
                    .expect("has a version");
                (version, properties.tags.unwrap_or_default())
            })
            .collect()
    }

    async fn version_count(&self) -> usize {
        self.tags().await.len()
    }

    async fn disable(&self, version: &VersionId) {
        let parameters = UpdateSecretPropertiesParameters {
            secret_attributes: Some(SecretAttributes {
                enabled: Some(false),
                ..SecretAttributes::default()
            }),
            ..UpdateSecretPropertiesParameters::default()
        };
        let options = SecretClientUpdateSecretPropertiesOptions {
            secret_version: Some(version.to_string()),
            ..Default::default()
        };
        self.client
            .update_secret_properties(
                &self.secret_name,
                parameters.try_into().expect("serializes"),
                Some(options),
            )
            .await
            .expect("UpdateSecret succeeds");
    }

    async fn delete(&self) {
        self.client
            .delete_secret(&self.secret_name, None)
            .await
            .expect("DeleteSecret succeeds");
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
    let fixture = Fixture::new("rotor-first-stage");
    let rotator = fixture.rotator();
    let id = RotationId::generate();

    let staged = rotator.stage(&id, &value("one")).await.expect("stages");

    assert!(staged.written);
    assert_eq!(fixture.latest_value().await.as_deref(), Some("one"));
    let tags = fixture.tags().await;
    assert_eq!(tags.len(), 1);
    let version_tags = &tags[staged.version.as_str()];
    assert_eq!(version_tags.get(ROTATION_ID_TAG).map(String::as_str), Some(id.as_str()));
    assert_eq!(version_tags.get(MANAGED_BY_TAG).map(String::as_str), Some("rotor"));
    assert_eq!(
        version_tags.get(OWNER_TAG).map(String::as_str),
        Some("team-a/db-password")
    );
    assert_eq!(version_tags.get(PREVIOUS_VERSION_TAG), None);
}

#[tokio::test]
async fn stage_keeps_old_version_readable() {
    let fixture = Fixture::new("rotor-stage-existing");
    let old = fixture.set_directly("zero").await;
    let rotator = fixture.rotator();

    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");

    assert!(staged.written);
    assert_ne!(staged.version, old);
    assert_eq!(fixture.latest_value().await.as_deref(), Some("one"));
    assert_eq!(
        rotator.read(&old).await.expect("reads the old version").expose(),
        "zero"
    );
    assert_eq!(
        rotator
            .read(&staged.version)
            .await
            .expect("reads the new version")
            .expose(),
        "one"
    );
    let tags = fixture.tags().await;
    assert_eq!(
        tags[staged.version.as_str()]
            .get(PREVIOUS_VERSION_TAG)
            .map(String::as_str),
        Some(old.as_str())
    );
}

#[tokio::test]
async fn repeated_stage_writes_once() {
    let fixture = Fixture::new("rotor-stage-twice");
    fixture.set_directly("zero").await;
    let rotator = fixture.rotator();
    let id = RotationId::generate();

    let first = rotator.stage(&id, &value("one")).await.expect("stages");
    let again = rotator.stage(&id, &value("other")).await.expect("stages again");

    assert!(first.written);
    assert!(!again.written);
    assert_eq!(again.version, first.version);
    assert_eq!(fixture.version_count().await, 2);
    assert_eq!(fixture.latest_value().await.as_deref(), Some("one"));
}

#[tokio::test]
async fn repeated_stage_after_many_versions() {
    let fixture = Fixture::new("rotor-many-versions");
    let rotator = fixture.rotator();
    let id = RotationId::generate();
    let first = rotator.stage(&id, &value("one")).await.expect("stages");
    for other in ["two", "three", "four"] {
        fixture.set_directly(other).await;
    }

    let again = rotator.stage(&id, &value("other")).await.expect("stages again");

    assert!(!again.written);
    assert_eq!(again.version, first.version);
    assert_eq!(fixture.version_count().await, 4);
}

#[tokio::test]
async fn promote_reports_previous() {
    let fixture = Fixture::new("rotor-promote");
    let old = fixture.set_directly("zero").await;
    let rotator = fixture.rotator();
    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");

    let promoted = rotator.promote(&staged.version).await.expect("promotes");
    // A rotator built after a restart finds the previous version in the tags.
    let resumed = fixture
        .rotator()
        .promote(&staged.version)
        .await
        .expect("promotes again");

    assert_eq!(promoted.previous, Some(old.clone()));
    assert_eq!(resumed.previous, Some(old));
    assert_eq!(
        rotator.current_version().await.expect("reads the current version"),
        Some(staged.version)
    );
}

#[tokio::test]
async fn second_rotation_reports_first() {
    let fixture = Fixture::new("rotor-second-rotation");
    let rotator = fixture.rotator();

    let first = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages the first value");
    let second = rotator
        .stage(&RotationId::generate(), &value("two"))
        .await
        .expect("stages the second value");
    let promoted = rotator.promote(&second.version).await.expect("promotes");

    assert_eq!(promoted.previous, Some(first.version));
    assert_eq!(fixture.latest_value().await.as_deref(), Some("two"));
    assert_eq!(fixture.version_count().await, 2);
}

#[tokio::test]
async fn promote_superseded_version_fails() {
    let fixture = Fixture::new("rotor-promote-superseded");
    let rotator = fixture.rotator();
    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    fixture.set_directly("outside").await;

    let error = rotator.promote(&staged.version).await.expect_err("rejects the promote");

    assert!(matches!(error, ProviderError::Cloud { .. }), "{error:?}");
}

#[tokio::test]
async fn unknown_version_not_found() {
    let fixture = Fixture::new("rotor-unknown-version");
    fixture.set_directly("zero").await;
    let rotator = fixture.rotator();
    let unknown = VersionId::new(uuid::Uuid::new_v4().simple().to_string());

    let read = rotator.read(&unknown).await.expect_err("rejects the read");
    let promote = rotator.promote(&unknown).await.expect_err("rejects the promote");

    assert!(matches!(read, ProviderError::VersionNotFound { .. }), "{read:?}");
    assert!(matches!(promote, ProviderError::VersionNotFound { .. }), "{promote:?}");
}

#[tokio::test]
async fn current_version_matches() {
    let fixture = Fixture::new("rotor-current");
    let rotator = fixture.rotator();
    assert_eq!(rotator.current_version().await.expect("reads the missing secret"), None);

    let old = fixture.set_directly("zero").await;

    assert_eq!(rotator.current_version().await.expect("reads"), Some(old));
}

#[tokio::test]
async fn disabled_secret_rejected() {
    let fixture = Fixture::new("rotor-disabled");
    let old = fixture.set_directly("zero").await;
    fixture.disable(&old).await;
    let rotator = fixture.rotator();

    let stage = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect_err("rejects the stage");
    let current = rotator.current_version().await.expect_err("rejects the read");

    assert!(matches!(stage, ProviderError::SecretDisabled { .. }), "{stage:?}");
    assert!(matches!(current, ProviderError::SecretDisabled { .. }), "{current:?}");
    assert_eq!(fixture.version_count().await, 1);
}

#[tokio::test]
async fn deleted_secret_rejects_stage() {
    let fixture = Fixture::new("rotor-deleted");
    fixture.set_directly("zero").await;
    fixture.delete().await;
    let rotator = fixture.rotator();

    let error = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect_err("rejects the stage");

    assert!(matches!(error, ProviderError::SecretDeleted { .. }), "{error:?}");
}

#[tokio::test]
async fn rotation_calls_are_observed() {
    let fixture = Fixture::new("rotor-observed");
    let observer = Arc::new(RecordingObserver::default());
    let rotator = AzureFactory::with_credential(Arc::new(EmulatorCredential))
        .with_observer(observer.clone())
        .rotator(&fixture.spec(), None, &owner())
        .expect("builds a rotator");

    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    rotator.promote(&staged.version).await.expect("promotes");

    assert_eq!(
        observer.take(),
        vec![
            ("GetSecretVersions", "NotFound"),
            ("SetSecret", "success"),
            ("GetSecret", "success"),
        ]
    );
}

fn credentials(pairs: &[(&str, &str)]) -> Credentials {
    Credentials {
        source: "team-a/azure-credentials".to_owned(),
        data: pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), SecretValue::new((*value).to_owned())))
            .collect(),
    }
}

#[tokio::test]
async fn credentials_missing_key_fails() {
    let fixture = Fixture::new("rotor-credentials-missing");
    let credentials = credentials(&[("AZURE_TENANT_ID", "tenant"), ("AZURE_CLIENT_ID", "client")]);

    let error = fixture
        .factory
        .rotator(&fixture.spec(), Some(&credentials), &owner())
        .expect_err("rejects the credentials");

    let ProviderError::CredentialsNotFound { name, message } = error else {
        panic!("{error:?}");
    };
    assert_eq!(name, "team-a/azure-credentials");
    assert!(message.contains("AZURE_CLIENT_SECRET"), "{message}");
}
