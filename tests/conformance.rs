//! One conformance suite for every cloud provider: the same end-to-end cases run against
//! AWS (moto), Google Secret Manager and Azure Key Vault (the in-repository emulators) and
//! the in-memory store, through the real controller and API server. A
//! provider joins by implementing [`Cloud`] and adding one `conformance!` line at the end
//! of this file. Needs `tests/env/up.sh`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client as SecretsManager;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration as TokenLifetime, OffsetDateTime};
use azure_security_keyvault_secrets::models::{
    Secret as AzureSecret, SecretAttributes, SecretClientGetSecretOptions, SecretClientUpdateSecretPropertiesOptions,
    SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use rotor::api::SecretRotation;
use rotor::providers::RotatorFactory;
use rotor::providers::azure::PREVIOUS_VERSION_TAG;
use rotor::rotation::memory::MemoryStore;
use support::harness::{self, FreezeAfter, Instrumented};

/// What the suite needs to know about one provider's cloud secret.
#[async_trait]
trait Cloud: Send + Sync {
    /// `spec.provider` for the cloud secret of this fixture.
    fn provider_spec(&self) -> serde_json::Value;

    /// The rotator factory the controller uses for this provider.
    fn rotators(&self) -> Arc<dyn RotatorFactory>;

    /// Creates the cloud secret outside rotor with one current value.
    async fn create_existing(&self, value: &str);

    /// The current value, or `None` when the secret does not exist.
    async fn current_value(&self) -> Option<String>;

    /// The value that was current before the last promotion.
    async fn previous_value(&self) -> Option<String>;

    /// Number of versions the secret has.
    async fn version_count(&self) -> usize;

    /// Makes the secret unusable in the provider's way (disabled or scheduled for
    /// deletion), and returns the Ready reason rotor must then report.
    async fn break_secret(&self) -> &'static str;
}

/// AWS Secrets Manager on moto.
struct Aws {
    client: SecretsManager,
    secret_id: String,
    rotators: Arc<dyn RotatorFactory>,
}

impl Aws {
    async fn new(secret_id: String) -> Self {
        let env = support::testenv();
        Self {
            client: SecretsManager::new(&env.aws_config().await),
            secret_id,
            rotators: harness::cloud_providers().await,
        }
    }

    async fn value_at(&self, stage: &str) -> Option<String> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await
            .ok()?;
        output.secret_string().map(str::to_owned)
    }
}

#[async_trait]
impl Cloud for Aws {
    fn provider_spec(&self) -> serde_json::Value {
        serde_json::json!({"aws": {"region": "us-east-1", "secretId": self.secret_id}})
    }

    fn rotators(&self) -> Arc<dyn RotatorFactory> {
        self.rotators.clone()
    }

    async fn create_existing(&self, value: &str) {
        self.client
            .create_secret()
            .name(&self.secret_id)
            .secret_string(value)
            .send()
            .await
            .expect("creates the secret");
    }

    async fn current_value(&self) -> Option<String> {
        self.value_at("AWSCURRENT").await
    }

    async fn previous_value(&self) -> Option<String> {
        self.value_at("AWSPREVIOUS").await
    }

    async fn version_count(&self) -> usize {
        match self
            .client
            .list_secret_version_ids()
            .secret_id(&self.secret_id)
            .include_deprecated(true)
            .send()
            .await
        {
            Ok(output) => output.versions().len(),
            Err(_) => 0,
        }
    }

    async fn break_secret(&self) -> &'static str {
        self.client
            .delete_secret()
            .secret_id(&self.secret_id)
            .recovery_window_in_days(7)
            .send()
            .await
            .expect("schedules the secret for deletion");
        "CloudSecretDeleted"
    }
}

/// The in-memory store, with the AWS spec shape.
struct Memory {
    store: MemoryStore,
    secret_id: String,
}

#[async_trait]
impl Cloud for Memory {
    fn provider_spec(&self) -> serde_json::Value {
        serde_json::json!({"aws": {"region": "memory", "secretId": self.secret_id}})
    }

    fn rotators(&self) -> Arc<dyn RotatorFactory> {
        Arc::new(self.store.clone())
    }

    async fn create_existing(&self, value: &str) {
        self.store.insert(&self.secret_id, "existing-version", value);
    }

    async fn current_value(&self) -> Option<String> {
        self.store
            .value_at(&self.secret_id, "AWSCURRENT")
            .map(|value| value.expose().to_owned())
    }

    async fn previous_value(&self) -> Option<String> {
        self.store
            .value_at(&self.secret_id, "AWSPREVIOUS")
            .map(|value| value.expose().to_owned())
    }

    async fn version_count(&self) -> usize {
        self.store.version_count(&self.secret_id)
    }

    async fn break_secret(&self) -> &'static str {
        self.store.set_disabled(&self.secret_id, true);
        "CloudSecretDisabled"
    }
}

/// Google Secret Manager on the in-repository emulator.
struct Gcp {
    client: SecretManagerService,
    endpoint: String,
    secret_id: String,
    rotators: Arc<dyn RotatorFactory>,
}

const GCP_PROJECT: &str = "rotor-conformance";

impl Gcp {
    async fn new(secret_id: String) -> Self {
        let endpoint = support::testenv().gcp_endpoint();
        let client = SecretManagerService::builder()
            .with_endpoint(&endpoint)
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
            .build()
            .await
            .expect("builds a Secret Manager client for the emulator");
        Self {
            client,
            endpoint,
            secret_id,
            rotators: harness::cloud_providers().await,
        }
    }

    fn name(&self) -> String {
        format!("projects/{GCP_PROJECT}/secrets/{}", self.secret_id)
    }

    async fn value_at(&self, version: &str) -> Option<String> {
        let response = self
            .client
            .access_secret_version()
            .set_name(format!("{}/versions/{version}", self.name()))
            .send()
            .await;
        let data = response.ok()?.payload?.data;
        Some(String::from_utf8(data.to_vec()).expect("a UTF-8 value"))
    }
}

#[async_trait]
impl Cloud for Gcp {
    fn provider_spec(&self) -> serde_json::Value {
        serde_json::json!({"gcp": {"project": GCP_PROJECT, "secretId": self.secret_id, "endpoint": self.endpoint}})
    }

    fn rotators(&self) -> Arc<dyn RotatorFactory> {
        self.rotators.clone()
    }

    async fn create_existing(&self, value: &str) {
        use google_cloud_secretmanager_v1::model::replication::Automatic;
        use google_cloud_secretmanager_v1::model::{Replication, Secret as GcpSecret, SecretPayload};
        self.client
            .create_secret()
            .set_parent(format!("projects/{GCP_PROJECT}"))
            .set_secret_id(&self.secret_id)
            .set_secret(GcpSecret::new().set_replication(Replication::new().set_automatic(Automatic::new())))
            .send()
            .await
            .expect("creates the secret");
        self.client
            .add_secret_version()
            .set_parent(self.name())
            .set_payload(SecretPayload::new().set_data(value.as_bytes().to_vec()))
            .send()
            .await
            .expect("adds a version");
    }

    async fn current_value(&self) -> Option<String> {
        self.value_at("current").await
    }

    async fn previous_value(&self) -> Option<String> {
        self.value_at("previous").await
    }

    async fn version_count(&self) -> usize {
        match self.client.list_secret_versions().set_parent(self.name()).send().await {
            Ok(response) => response.versions.len(),
            Err(_) => 0,
        }
    }

    async fn break_secret(&self) -> &'static str {
        // The emulator's test hook replaces an IAM policy that denies rotor.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connects to the emulator");
        let request = format!(
            "POST /emulator/deny/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.name()
        );
        stream.write_all(request.as_bytes()).await.expect("sends the request");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads the response");
        assert!(response.starts_with("HTTP/1.1 200"), "the deny hook failed: {response}");
        "AuthFailed"
    }
}

/// A credential that returns a fixed bearer token without calling Microsoft Entra ID, for
/// the suite's own Key Vault client. The emulator accepts any bearer token after its 401
/// challenge.
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
            "rotor-conformance-token",
            OffsetDateTime::now_utc() + TokenLifetime::hours(1),
        ))
    }
}

/// Azure Key Vault on the in-repository emulator, over HTTPS.
struct Azure {
    client: SecretClient,
    vault_url: String,
    secret_name: String,
    rotators: Arc<dyn RotatorFactory>,
}

impl Azure {
    async fn new(secret_name: String) -> Self {
        let vault_url = support::testenv().azure_vault_url();
        let options = SecretClientOptions {
            verify_challenge_resource: Some(false),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(&vault_url, Arc::new(EmulatorCredential), Some(options))
            .expect("builds a Key Vault client for the emulator");
        // The real factory gives a vault on a loopback address a fixed token, so the
        // controller reaches the emulator the way `rotor run` does.
        Self {
            client,
            vault_url,
            secret_name,
            rotators: harness::cloud_providers().await,
        }
    }

    /// The version `version` names, or the latest version when `None`; `None` when the
    /// request fails.
    async fn secret(&self, version: Option<String>) -> Option<AzureSecret> {
        let options = version.map(|version| SecretClientGetSecretOptions {
            secret_version: Some(version),
            ..SecretClientGetSecretOptions::default()
        });
        let response = self.client.get_secret(&self.secret_name, options).await.ok()?;
        Some(response.into_model().expect("parses the secret"))
    }
}

#[async_trait]
impl Cloud for Azure {
    fn provider_spec(&self) -> serde_json::Value {
        serde_json::json!({"azure": {"vaultUrl": self.vault_url, "secretName": self.secret_name}})
    }

    fn rotators(&self) -> Arc<dyn RotatorFactory> {
        self.rotators.clone()
    }

    async fn create_existing(&self, value: &str) {
        let parameters = SetSecretParameters {
            value: Some(value.to_owned()),
            ..SetSecretParameters::default()
        };
        self.client
            .set_secret(&self.secret_name, parameters.try_into().expect("serializes"), None)
            .await
            .expect("sets the secret");
    }

    async fn current_value(&self) -> Option<String> {
        self.secret(None).await?.value
    }

    /// Key Vault has no previous label, so this follows the previous-version tag that rotor
    /// writes on each version.
    async fn previous_value(&self) -> Option<String> {
        let latest = self.secret(None).await?;
        let previous = latest.tags?.get(PREVIOUS_VERSION_TAG)?.clone();
        self.secret(Some(previous)).await?.value
    }

    async fn version_count(&self) -> usize {
        let Ok(pager) = self.client.list_secret_properties_versions(&self.secret_name, None) else {
            return 0;
        };
        pager.try_collect::<Vec<_>>().await.map_or(0, |versions| versions.len())
    }

    async fn break_secret(&self) -> &'static str {
        let latest = self.secret(None).await.expect("reads the latest version");
        let version = latest.resource_id().expect("has an id").version.expect("has a version");
        let parameters = UpdateSecretPropertiesParameters {
            secret_attributes: Some(SecretAttributes {
                enabled: Some(false),
                ..SecretAttributes::default()
            }),
            ..UpdateSecretPropertiesParameters::default()
        };
        let options = SecretClientUpdateSecretPropertiesOptions {
            secret_version: Some(version),
            ..SecretClientUpdateSecretPropertiesOptions::default()
        };
        self.client
            .update_secret_properties(
                &self.secret_name,
                parameters.try_into().expect("serializes"),
                Some(options),
            )
            .await
            .expect("disables the latest version");
        "CloudSecretDisabled"
    }
}

/// One case's world: a namespace with a `SecretRotation` named `db` for the cloud secret.
struct Case<C: Cloud> {
    client: Client,
    namespace: String,
    cloud: C,
}

impl<C: Cloud> Case<C> {
    async fn new<F>(prefix: &str, cloud: impl FnOnce(String) -> F) -> Self
    where
        F: std::future::Future<Output = C>,
    {
        let env = support::testenv();
        harness::captured_logs();
        let client = env.kube_client().await;
        harness::install_crd(&client).await;
        let namespace = harness::create_namespace(&client, prefix).await;
        let cloud = cloud(format!("{namespace}-db")).await;
        Self {
            client,
            namespace,
            cloud,
        }
    }

    fn rotations(&self) -> Api<SecretRotation> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn apply(&self, interval: &str) {
        let manifest = serde_json::json!({
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "SecretRotation",
            "metadata": {"name": "db"},
            "spec": {
                "rotationInterval": interval,
                "provider": self.cloud.provider_spec(),
                "generator": {"password": {"length": 24}},
                "target": {"name": "db-credentials"}
            }
        });
        self.rotations()
            .patch(
                "db",
                &PatchParams::apply("rotor-conformance").force(),
                &Patch::Apply(&manifest),
            )
            .await
            .expect("applies the SecretRotation");
    }

    async fn request_rotation(&self, value: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {"rotor.dev/rotate-requested-at": value}}});
        self.rotations()
            .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotates");
    }

    async fn version(&self) -> Option<String> {
        self.rotations().get("db").await.ok()?.status?.current_version
    }

    /// Waits until `db` is Ready with a current version other than `not`; returns it.
    async fn wait_rotated(&self, not: Option<&str>, timeout: Duration) -> String {
        harness::wait_for(timeout, "a Ready SecretRotation with a new version", || async {
            let status = self.rotations().get("db").await.ok()?.status?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let version = status.current_version?;
            (ready && status.rotation.is_none() && Some(version.as_str()) != not).then_some(version)
        })
        .await
    }

    async fn wait_reason(&self, reason: &str) -> String {
        harness::wait_for(Duration::from_secs(30), &format!("Ready reason {reason}"), || async {
            let status = self.rotations().get("db").await.ok()?.status?;
            let ready = status.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            (ready.reason == reason && ready.status == "False").then_some(ready.message)
        })
        .await
    }

    async fn secret_value(&self) -> Option<String> {
        harness::secret_value(&self.client, &self.namespace, "db-credentials", "password").await
    }

    async fn rotated_events(&self) -> usize {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = events.list(&ListParams::default()).await.expect("lists Events");
        list.items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Rotated"))
            .count()
    }
}

async fn first_rotation_creates_secret<C: Cloud>(case: Case<C>) {
    let controller = harness::start_controller(&case.client, &case.namespace, case.cloud.rotators()).await;
    case.apply("24h").await;
    case.wait_rotated(None, Duration::from_secs(30)).await;
    let value = case.secret_value().await.expect("the Secret has the key");
    assert_eq!(case.cloud.current_value().await, Some(value.clone()));
    assert_eq!(case.cloud.version_count().await, 1);
    harness::assert_not_logged(&[value]);
    controller.stop().await;
}

async fn manual_rotation_keeps_previous<C: Cloud>(case: Case<C>) {
    let controller = harness::start_controller(&case.client, &case.namespace, case.cloud.rotators()).await;
    case.apply("24h").await;
    let first = case.wait_rotated(None, Duration::from_secs(30)).await;
    let first_value = case.secret_value().await.expect("first value");

    case.request_rotation("conformance-1").await;
    case.wait_rotated(Some(&first), Duration::from_secs(30)).await;
    let second_value = case.secret_value().await.expect("second value");
    assert_ne!(first_value, second_value);
    assert_eq!(case.cloud.current_value().await, Some(second_value.clone()));
    assert_eq!(case.cloud.previous_value().await, Some(first_value.clone()));
    assert_eq!(case.cloud.version_count().await, 2);
    harness::assert_not_logged(&[first_value, second_value]);
    controller.stop().await;
}

async fn scheduled_rotation_runs<C: Cloud>(case: Case<C>) {
    let controller = harness::start_controller(&case.client, &case.namespace, case.cloud.rotators()).await;
    case.apply("1m").await;
    let first = case.wait_rotated(None, Duration::from_secs(30)).await;
    case.wait_rotated(Some(&first), Duration::from_secs(100)).await;
    assert_eq!(case.cloud.version_count().await, 2);
    assert_eq!(case.cloud.current_value().await, case.secret_value().await);
    controller.stop().await;
}

async fn existing_secret_is_adopted<C: Cloud>(case: Case<C>) {
    case.cloud.create_existing("value-made-outside-rotor").await;
    let controller = harness::start_controller(&case.client, &case.namespace, case.cloud.rotators()).await;
    case.apply("24h").await;
    case.wait_rotated(None, Duration::from_secs(30)).await;
    let value = case.secret_value().await.expect("value");
    assert_ne!(value, "value-made-outside-rotor");
    assert_eq!(case.cloud.current_value().await, Some(value));
    assert_eq!(
        case.cloud.previous_value().await.as_deref(),
        Some("value-made-outside-rotor")
    );
    controller.stop().await;
}

async fn crash_resumes_with_one_version<C: Cloud>(case: Case<C>, step: FreezeAfter) {
    let controller = harness::start_controller(&case.client, &case.namespace, case.cloud.rotators()).await;
    case.apply("24h").await;
    let first = case.wait_rotated(None, Duration::from_secs(30)).await;
    controller.stop().await;

    let freezing = Instrumented::new(case.cloud.rotators()).freeze_after(step);
    let crashing = harness::start_controller(&case.client, &case.namespace, Arc::new(freezing.clone())).await;
    case.request_rotation("conformance-crash").await;
    harness::wait_for(
        Duration::from_secs(30),
        "the rotation to reach the frozen step",
        || async { freezing.frozen.load(std::sync::atomic::Ordering::SeqCst).then_some(()) },
    )
    .await;
    crashing.kill().await;

    let resumed = harness::start_controller(&case.client, &case.namespace, case.cloud.rotators()).await;
    case.wait_rotated(Some(&first), Duration::from_secs(30)).await;
    assert_eq!(
        case.cloud.version_count().await,
        2,
        "the resumed rotation wrote another version"
    );
    assert_eq!(case.cloud.current_value().await, case.secret_value().await);
    assert_eq!(case.rotated_events().await, 2);
    resumed.stop().await;
}

async fn broken_secret_keeps_last_value<C: Cloud>(case: Case<C>) {
    let controller = harness::start_controller(&case.client, &case.namespace, case.cloud.rotators()).await;
    case.apply("24h").await;
    let version = case.wait_rotated(None, Duration::from_secs(30)).await;
    let value = case.secret_value().await.expect("value");

    let reason = case.cloud.break_secret().await;
    case.request_rotation("conformance-broken").await;
    let message = case.wait_reason(reason).await;
    assert!(
        message.contains(&format!("SecretRotation {}/db", case.namespace)),
        "{message}"
    );
    assert_eq!(case.secret_value().await, Some(value), "the last good Secret changed");
    assert_eq!(case.version().await, Some(version));
    controller.stop().await;
}

/// Instantiates every common conformance case for one provider, plus the named extra cases
/// the provider supports, as a module of tests.
macro_rules! conformance {
    ($module:ident, $cloud:expr $(, $extra:ident)*) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn first_rotation_creates_secret() {
                super::first_rotation_creates_secret(Case::new(concat!("conf-", stringify!($module)), $cloud).await)
                    .await;
            }

            #[tokio::test]
            async fn manual_rotation_keeps_previous() {
                super::manual_rotation_keeps_previous(Case::new(concat!("conf-", stringify!($module)), $cloud).await)
                    .await;
            }

            #[tokio::test]
            async fn scheduled_rotation_runs() {
                super::scheduled_rotation_runs(Case::new(concat!("conf-", stringify!($module)), $cloud).await).await;
            }

            #[tokio::test]
            async fn existing_secret_is_adopted() {
                super::existing_secret_is_adopted(Case::new(concat!("conf-", stringify!($module)), $cloud).await).await;
            }

            #[tokio::test]
            async fn crash_after_stage_resumes() {
                let case = Case::new(concat!("conf-", stringify!($module)), $cloud).await;
                super::crash_resumes_with_one_version(case, FreezeAfter::Stage).await;
            }

            #[tokio::test]
            async fn crash_after_promote_resumes() {
                let case = Case::new(concat!("conf-", stringify!($module)), $cloud).await;
                super::crash_resumes_with_one_version(case, FreezeAfter::Promote).await;
            }

            $(
                #[tokio::test]
                async fn $extra() {
                    super::$extra(Case::new(concat!("conf-", stringify!($module)), $cloud).await).await;
                }
            )*
        }
    };
}

conformance!(
    memory,
    |secret_id| async move {
        Memory {
            store: MemoryStore::new(),
            secret_id,
        }
    },
    broken_secret_keeps_last_value
);
conformance!(aws, Aws::new, broken_secret_keeps_last_value);
conformance!(gcp, Gcp::new, broken_secret_keeps_last_value);
conformance!(azure, Azure::new, broken_secret_keeps_last_value);
