//! Integration tests of the Google Cloud Secret Manager rotator against the Secret Manager
//! emulator of the local test environment (`tests/env/up.sh`), which listens on 127.0.0.1
//! without authentication. Each test works on its own secret, so the tests run in parallel
//! and repeated runs do not collide.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use google_cloud_auth::credentials::anonymous;
use google_cloud_gax::error::rpc::Code;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::replication::Automatic;
use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload};
use google_cloud_wkt::FieldMask;
use rotor::api::GcpProvider;
use rotor::providers::Owner;
use rotor::providers::gcp::{GcpFactory, GcpRotator};
use rotor::rotation::{CallObserver, ProviderError, RotationId, Rotator, SecretValue, VersionId};

const PROJECT: &str = "rotor-test";
const PENDING: &str = "pending";
const CURRENT: &str = "current";
const PREVIOUS: &str = "previous";
const ROTATION_ANNOTATION: &str = "rotor.dev_pending-rotation";
const PENDING_AFTER_ANNOTATION: &str = "rotor.dev_pending-after";
const PENDING_VERSION_ANNOTATION: &str = "rotor.dev_pending-version";

/// Records every call that the rotator reports, as `(operation, outcome)`.
#[derive(Debug, Default)]
struct RecordingObserver {
    calls: Mutex<Vec<(&'static str, &'static str)>>,
}

impl CallObserver for RecordingObserver {
    fn observe(&self, provider: &'static str, operation: &'static str, outcome: &'static str, _duration: Duration) {
        assert_eq!(provider, "gcp");
        self.calls.lock().expect("lock").push((operation, outcome));
    }
}

impl RecordingObserver {
    /// Returns the calls recorded so far and clears the record.
    fn take(&self) -> Vec<(&'static str, &'static str)> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }
}

/// One test's secret, with a client for setting up and inspecting it directly and a factory
/// for the rotator under test.
struct Fixture {
    client: SecretManagerService,
    factory: GcpFactory,
    observer: Arc<RecordingObserver>,
    endpoint: String,
    secret_id: String,
}

impl Fixture {
    async fn new(prefix: &str) -> Self {
        let endpoint = support::testenv().gcp_endpoint();
        let client = SecretManagerService::builder()
            .with_endpoint(&endpoint)
            .with_credentials(anonymous::Builder::new().build())
            .build()
            .await
            .expect("builds a Secret Manager client for the emulator");
        let observer = Arc::new(RecordingObserver::default());
        Self {
            client,
            factory: GcpFactory::new().with_observer(observer.clone()),
            observer,
            endpoint,
            secret_id: support::unique_name(prefix),
        }
    }

    fn name(&self) -> String {
        format!("projects/{PROJECT}/secrets/{}", self.secret_id)
    }

    fn spec(&self) -> GcpProvider {
        GcpProvider {
            project: PROJECT.to_owned(),
            secret_id: self.secret_id.clone(),
            endpoint: Some(self.endpoint.clone()),
            auth: None,
        }
    }

    fn rotator(&self) -> GcpRotator {
        self.factory
            .rotator(&self.spec(), None, &owner())
            .expect("builds a rotator")
    }

    /// Creates the secret directly, as if made outside rotor, with one version per value,
    /// and without aliases.
    async fn create_directly(&self, values: &[&str]) {
        self.client
            .create_secret()
            .set_parent(format!("projects/{PROJECT}"))
            .set_secret_id(&self.secret_id)
            .set_secret(Secret::new().set_replication(Replication::new().set_automatic(Automatic::new())))
            .send()
            .await
            .expect("CreateSecret succeeds");
        for value in values {
            self.add_directly(value).await;
        }
    }

    /// Adds a version directly and returns its number.
    async fn add_directly(&self, value: &str) -> String {
        let version = self
            .client
            .add_secret_version()
            .set_parent(self.name())
            .set_payload(SecretPayload::new().set_data(value.as_bytes().to_vec()))
            .send()
            .await
            .expect("AddSecretVersion succeeds");
        version
            .name
            .rsplit_once("/versions/")
            .expect("a version name")
            .1
            .to_owned()
    }

    async fn secret(&self) -> Secret {
        self.client
            .get_secret()
            .set_name(self.name())
            .send()
            .await
            .expect("GetSecret succeeds")
    }

    async fn aliases(&self) -> HashMap<String, i64> {
        self.secret().await.version_aliases
    }

    /// Sets the aliases and annotations directly, without an etag.
    async fn update_directly(&self, aliases: &[(&str, i64)], annotations: &[(&str, &str)]) {
        self.client
            .update_secret()
            .set_secret(
                Secret::new()
                    .set_name(self.name())
                    .set_version_aliases(aliases.iter().copied())
                    .set_annotations(annotations.iter().copied()),
            )
            .set_update_mask(FieldMask::default().set_paths(["version_aliases", "annotations"]))
            .send()
            .await
            .expect("UpdateSecret succeeds");
    }

    /// Value of version `version`, which may be a number or an alias, or `None` when it
    /// does not exist.
    async fn value_at(&self, version: &str) -> Option<String> {
        let result = self
            .client
            .access_secret_version()
            .set_name(format!("{}/versions/{version}", self.name()))
            .send()
            .await;
        match result {
            Ok(response) => {
                let data = response.payload.expect("a payload").data;
                Some(String::from_utf8(data.to_vec()).expect("a UTF-8 value"))
            }
            Err(error) if error.status().is_some_and(|status| status.code == Code::NotFound) => None,
            Err(error) => panic!("AccessSecretVersion of {version} failed: {error:?}"),
        }
    }

    async fn version_count(&self) -> usize {
        let response = self
            .client
            .list_secret_versions()
            .set_parent(self.name())
            .send()
            .await
            .expect("ListSecretVersions succeeds");
        assert!(
            response.next_page_token.is_empty(),
            "the test secret has more than one page of versions"
        );
        response.versions.len()
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

fn version(number: &str) -> VersionId {
    VersionId::new(number)
}

#[tokio::test]
async fn first_stage_creates_secret() {
    let fixture = Fixture::new("rotor-first").await;
    let rotator = fixture.rotator();
    assert_eq!(rotator.current_version().await.expect("current version"), None);

    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");

    assert!(staged.written);
    assert_eq!(staged.version, version("1"));
    let secret = fixture.secret().await;
    assert_eq!(secret.version_aliases, HashMap::from([(CURRENT.to_owned(), 1)]));
    assert_eq!(secret.labels.get("managed-by").map(String::as_str), Some("rotor"));
    assert_eq!(
        secret.annotations.get("rotor.dev_owner").map(String::as_str),
        Some("team-a/db-password")
    );
    assert!(
        secret
            .replication
            .and_then(|replication| replication.automatic().cloned())
            .is_some()
    );
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
    assert_eq!(
        rotator.current_version().await.expect("current version"),
        Some(version("1"))
    );
    assert_eq!(rotator.read(&version("1")).await.expect("reads"), value("one"));

    let promoted = rotator.promote(&staged.version).await.expect("promotes");
    assert_eq!(promoted.previous, None);
    assert_eq!(fixture.aliases().await, HashMap::from([(CURRENT.to_owned(), 1)]));
}

#[tokio::test]
async fn stage_and_promote_keep_previous() {
    let fixture = Fixture::new("rotor-promote").await;
    let rotator = fixture.rotator();
    rotator
        .stage(&RotationId::generate(), &value("zero"))
        .await
        .expect("first stage");

    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    assert!(staged.written);
    assert_eq!(staged.version, version("2"));
    assert_eq!(fixture.value_at(PENDING).await.as_deref(), Some("one"));
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("zero"));
    assert_eq!(
        rotator.current_version().await.expect("current version"),
        Some(version("1"))
    );

    let promoted = rotator.promote(&staged.version).await.expect("promotes");

    assert_eq!(promoted.previous, Some(version("1")));
    let aliases = fixture.aliases().await;
    assert_eq!(aliases.get(CURRENT), Some(&2));
    assert_eq!(aliases.get(PREVIOUS), Some(&1));
    assert_eq!(aliases.get(PENDING), None);
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
    assert_eq!(fixture.value_at(PREVIOUS).await.as_deref(), Some("zero"));
    assert_eq!(
        rotator.read(&version("1")).await.expect("reads previous"),
        value("zero")
    );
    assert_eq!(
        rotator.current_version().await.expect("current version"),
        Some(version("2"))
    );
}

#[tokio::test]
async fn promote_by_fresh_rotator() {
    let fixture = Fixture::new("rotor-fresh").await;
    fixture.create_directly(&["zero"]).await;
    fixture.update_directly(&[(CURRENT, 1)], &[]).await;
    let staged = fixture
        .rotator()
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");

    // A restarted controller promotes with a new rotator, which reads the secret first.
    let promoted = fixture.rotator().promote(&staged.version).await.expect("promotes");

    assert_eq!(promoted.previous, Some(version("1")));
    assert_eq!(
        fixture.aliases().await,
        HashMap::from([(CURRENT.to_owned(), 2), (PREVIOUS.to_owned(), 1)])
    );
}

#[tokio::test]
async fn repeated_stage_writes_once() {
    let fixture = Fixture::new("rotor-repeat").await;
    fixture.create_directly(&["zero"]).await;
    fixture.update_directly(&[(CURRENT, 1)], &[]).await;
    let rotator = fixture.rotator();
    let rotation = RotationId::generate();

    let first = rotator.stage(&rotation, &value("one")).await.expect("stages");
    let again = fixture
        .rotator()
        .stage(&rotation, &value("other"))
        .await
        .expect("stages again");

    assert!(first.written);
    assert!(!again.written);
    assert_eq!(again.version, first.version);
    assert_eq!(fixture.version_count().await, 2);
    assert_eq!(fixture.value_at(PENDING).await.as_deref(), Some("one"));
}

#[tokio::test]
async fn repeated_first_stage_writes_once() {
    let fixture = Fixture::new("rotor-repeat-first").await;
    let rotation = RotationId::generate();

    let first = fixture.rotator().stage(&rotation, &value("one")).await.expect("stages");
    let again = fixture
        .rotator()
        .stage(&rotation, &value("other"))
        .await
        .expect("stages again");

    assert!(!again.written);
    assert_eq!(again.version, first.version);
    assert_eq!(fixture.version_count().await, 1);
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
}

#[tokio::test]
async fn resumed_stage_adopts_unrecorded_version() {
    let fixture = Fixture::new("rotor-resume").await;
    fixture.create_directly(&["zero"]).await;
    let rotation = RotationId::generate();
    // A stage that claimed the secret and added version 2, then stopped before recording it.
    fixture
        .update_directly(
            &[(CURRENT, 1)],
            &[
                (ROTATION_ANNOTATION, rotation.as_str()),
                (PENDING_AFTER_ANNOTATION, "1"),
            ],
        )
        .await;
    fixture.add_directly("one").await;

    let staged = fixture
        .rotator()
        .stage(&rotation, &value("other"))
        .await
        .expect("stages");

    assert!(!staged.written);
    assert_eq!(staged.version, version("2"));
    assert_eq!(fixture.version_count().await, 2);
    let secret = fixture.secret().await;
    assert_eq!(secret.version_aliases.get(PENDING), Some(&2));
    assert_eq!(
        secret.annotations.get(PENDING_VERSION_ANNOTATION).map(String::as_str),
        Some("2")
    );
    assert_eq!(fixture.value_at(PENDING).await.as_deref(), Some("one"));
}

#[tokio::test]
async fn resumed_stage_adds_missing_version() {
    let fixture = Fixture::new("rotor-resume-add").await;
    fixture.create_directly(&["zero"]).await;
    let rotation = RotationId::generate();
    // A stage that claimed the secret and stopped before AddSecretVersion.
    fixture
        .update_directly(
            &[(CURRENT, 1)],
            &[
                (ROTATION_ANNOTATION, rotation.as_str()),
                (PENDING_AFTER_ANNOTATION, "1"),
            ],
        )
        .await;

    let staged = fixture.rotator().stage(&rotation, &value("one")).await.expect("stages");

    assert!(staged.written);
    assert_eq!(staged.version, version("2"));
    assert_eq!(fixture.version_count().await, 2);
    assert_eq!(fixture.value_at(PENDING).await.as_deref(), Some("one"));
}

#[tokio::test]
async fn promote_twice_is_harmless() {
    let fixture = Fixture::new("rotor-promote-twice").await;
    fixture.create_directly(&["zero"]).await;
    fixture.update_directly(&[(CURRENT, 1)], &[]).await;
    let rotator = fixture.rotator();
    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    let first = rotator.promote(&staged.version).await.expect("promotes");
    let etag = fixture.secret().await.etag;

    let second = rotator.promote(&staged.version).await.expect("promotes again");

    assert_eq!(second.previous, first.previous);
    assert_eq!(second.previous, Some(version("1")));
    let secret = fixture.secret().await;
    assert_eq!(secret.etag, etag, "the second promotion changed the secret");
    assert_eq!(
        secret.version_aliases,
        HashMap::from([(CURRENT.to_owned(), 2), (PREVIOUS.to_owned(), 1)])
    );
}

#[tokio::test]
async fn adopted_secret_without_aliases() {
    let fixture = Fixture::new("rotor-adopted").await;
    fixture.create_directly(&["zero", "one"]).await;
    let rotator = fixture.rotator();
    assert_eq!(
        rotator.current_version().await.expect("current version"),
        Some(version("2"))
    );

    let staged = rotator
        .stage(&RotationId::generate(), &value("two"))
        .await
        .expect("stages");
    assert_eq!(staged.version, version("3"));
    assert_eq!(
        rotator.current_version().await.expect("current version"),
        Some(version("2")),
        "the pending version was reported as current"
    );

    let promoted = rotator.promote(&staged.version).await.expect("promotes");

    assert_eq!(promoted.previous, Some(version("2")));
    assert_eq!(
        fixture.aliases().await,
        HashMap::from([(CURRENT.to_owned(), 3), (PREVIOUS.to_owned(), 2)])
    );
}

#[tokio::test]
async fn disabled_and_destroyed_versions_differ() {
    let fixture = Fixture::new("rotor-states").await;
    fixture.create_directly(&["zero", "one"]).await;
    fixture
        .client
        .disable_secret_version()
        .set_name(format!("{}/versions/2", fixture.name()))
        .send()
        .await
        .expect("disables version 2");
    fixture
        .client
        .destroy_secret_version()
        .set_name(format!("{}/versions/1", fixture.name()))
        .send()
        .await
        .expect("destroys version 1");
    let rotator = fixture.rotator();

    let disabled = rotator
        .read(&version("2"))
        .await
        .expect_err("reading a disabled version");
    let destroyed = rotator
        .read(&version("1"))
        .await
        .expect_err("reading a destroyed version");

    assert!(matches!(disabled, ProviderError::SecretDisabled { .. }), "{disabled:?}");
    assert!(
        matches!(destroyed, ProviderError::SecretDeleted { .. }),
        "{destroyed:?}"
    );
    let promoted = rotator
        .promote(&version("2"))
        .await
        .expect_err("promoting a disabled version");
    assert!(matches!(promoted, ProviderError::SecretDisabled { .. }), "{promoted:?}");
    assert_eq!(
        rotator.current_version().await.expect("current version"),
        None,
        "no version is enabled"
    );
}

#[tokio::test]
async fn missing_secret_read_is_version_not_found() {
    let fixture = Fixture::new("rotor-missing").await;
    let rotator = fixture.rotator();

    let error = rotator.read(&version("1")).await.expect_err("reading a missing secret");

    let ProviderError::VersionNotFound { secret, version } = error else {
        panic!("{error:?}");
    };
    assert_eq!(secret, fixture.name());
    assert_eq!(version, "1");
    let error = rotator.promote(&VersionId::new("1")).await.expect_err("promoting");
    assert!(matches!(error, ProviderError::VersionNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn missing_version_read_is_version_not_found() {
    let fixture = Fixture::new("rotor-missing-version").await;
    fixture.create_directly(&["zero"]).await;
    let rotator = fixture.rotator();

    for id in ["7", "latest", "a4b1c2d3-aws-version-id"] {
        let error = rotator.read(&version(id)).await.expect_err("reading a missing version");
        assert!(
            matches!(error, ProviderError::VersionNotFound { .. }),
            "{id}: {error:?}"
        );
    }
}

#[tokio::test]
async fn etag_conflict_is_retried() {
    let fixture = Fixture::new("rotor-conflict").await;
    fixture.create_directly(&["zero"]).await;
    fixture.update_directly(&[(CURRENT, 1)], &[("team", "payments")]).await;
    let rotator = fixture.rotator();
    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    // Another writer changes the secret after stage, so the etag that stage saw is stale.
    fixture
        .client
        .update_secret()
        .set_secret(Secret::new().set_name(fixture.name()).set_labels([("team", "search")]))
        .set_update_mask(FieldMask::default().set_paths(["labels"]))
        .send()
        .await
        .expect("UpdateSecret succeeds");
    fixture.observer.take();

    let promoted = rotator.promote(&staged.version).await.expect("promotes");

    assert_eq!(promoted.previous, Some(version("1")));
    let calls = fixture.observer.take();
    assert_eq!(
        calls,
        vec![
            ("UpdateSecret", "CloudError"),
            ("GetSecret", "success"),
            ("UpdateSecret", "success"),
        ]
    );
    let secret = fixture.secret().await;
    assert_eq!(secret.labels.get("team").map(String::as_str), Some("search"));
    assert_eq!(
        secret.version_aliases,
        HashMap::from([(CURRENT.to_owned(), 2), (PREVIOUS.to_owned(), 1)])
    );
}

#[tokio::test]
async fn calls_per_rotation() {
    let fixture = Fixture::new("rotor-calls").await;
    let rotator = fixture.rotator();

    let first = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");
    rotator.promote(&first.version).await.expect("promotes");
    assert_eq!(
        fixture.observer.take(),
        vec![
            ("GetSecret", "NotFound"),
            ("CreateSecret", "success"),
            ("AddSecretVersion", "success"),
            ("UpdateSecret", "success"),
        ]
    );

    let second = rotator
        .stage(&RotationId::generate(), &value("two"))
        .await
        .expect("stages");
    rotator.promote(&second.version).await.expect("promotes");
    assert_eq!(
        fixture.observer.take(),
        vec![
            ("GetSecret", "success"),
            ("GetSecretVersion", "success"),
            ("UpdateSecret", "success"),
            ("AddSecretVersion", "success"),
            ("UpdateSecret", "success"),
            ("UpdateSecret", "success"),
        ]
    );
}

#[tokio::test]
async fn injected_credentials_are_used() {
    let fixture = Fixture::new("rotor-injected").await;
    let factory = GcpFactory::new().with_credentials(anonymous::Builder::new().build());
    let rotator = factory
        .rotator(&fixture.spec(), None, &owner())
        .expect("builds a rotator");

    let staged = rotator
        .stage(&RotationId::generate(), &value("one"))
        .await
        .expect("stages");

    assert!(staged.written);
    assert_eq!(fixture.value_at(CURRENT).await.as_deref(), Some("one"));
}

#[tokio::test]
async fn values_stay_out_of_logs() {
    let logs = support::harness::captured_logs();
    let fixture = Fixture::new("rotor-logs").await;
    let rotator = fixture.rotator();
    let first = "gcp-first-value-3b9d7f";
    let second = "gcp-second-value-8e2a1c";

    rotator
        .stage(&RotationId::generate(), &value(first))
        .await
        .expect("stages");
    let staged = rotator
        .stage(&RotationId::generate(), &value(second))
        .await
        .expect("stages");
    rotator.promote(&staged.version).await.expect("promotes");
    assert_eq!(rotator.read(&staged.version).await.expect("reads"), value(second));

    let text = String::from_utf8_lossy(&logs.lock().expect("lock")).into_owned();
    assert!(
        text.contains("AddSecretVersion"),
        "the calls were not logged at debug level"
    );
    support::harness::assert_not_logged(&[first.to_owned(), second.to_owned()]);
}
