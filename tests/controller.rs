//! End-to-end tests of the rotation controller against the real API server and moto:
//! first and later rotations, the manual trigger, suspend, adoption of an existing cloud
//! secret, ownership of the target Secret, crash recovery, no-op reconciles and value
//! redaction. Needs `tests/env/up.sh`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManager;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rotor::api::SecretRotation;
use support::harness::{self, FreezeAfter, Instrumented};

const TEST_MANAGER: &str = "rotor-controller-test";

/// One test's world: a namespace, a cloud secret id and clients.
struct Fixture {
    client: Client,
    aws: SecretsManager,
    namespace: String,
    secret_id: String,
}

impl Fixture {
    async fn new(prefix: &str) -> Self {
        let env = support::testenv();
        harness::captured_logs();
        let client = env.kube_client().await;
        harness::install_crd(&client).await;
        let namespace = harness::create_namespace(&client, prefix).await;
        let aws = SecretsManager::new(&env.aws_config().await);
        let secret_id = format!("{namespace}/db");
        Self {
            client,
            aws,
            namespace,
            secret_id,
        }
    }

    fn rotations(&self) -> Api<SecretRotation> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A `SecretRotation` named `db` with the given interval, targeting Secret `db-credentials`.
    fn manifest(&self, interval: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "SecretRotation",
            "metadata": {"name": "db"},
            "spec": {
                "rotationInterval": interval,
                "provider": {"aws": {"region": "us-east-1", "secretId": self.secret_id}},
                "generator": {"password": {"length": 24}},
                "target": {"name": "db-credentials", "key": "password"}
            }
        })
    }

    async fn apply(&self, manifest: &serde_json::Value) -> Result<SecretRotation, kube::Error> {
        let name = manifest["metadata"]["name"].as_str().expect("manifest has a name");
        self.rotations()
            .patch(name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(manifest))
            .await
    }

    async fn get(&self, name: &str) -> SecretRotation {
        self.rotations().get(name).await.expect("reads the SecretRotation")
    }

    /// Waits until `name` is Ready=True with a current version other than `not`.
    async fn wait_rotated(&self, name: &str, not: Option<&str>, timeout: Duration) -> SecretRotation {
        let what = format!("SecretRotation {name} to be Ready with a new version");
        harness::wait_for(timeout, &what, || async {
            let object = self.get(name).await;
            let status = object.status.as_ref()?;
            let version = status.current_version.as_deref()?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (ready && status.rotation.is_none() && Some(version) != not).then_some(object)
        })
        .await
    }

    /// Waits until the Ready condition of `name` has `reason`.
    async fn wait_reason(&self, name: &str, reason: &str) -> SecretRotation {
        let what = format!("SecretRotation {name} to report reason {reason}");
        harness::wait_for(Duration::from_secs(30), &what, || async {
            let object = self.get(name).await;
            let ready = object
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.reason == reason).then_some(object)
        })
        .await
    }

    async fn cloud_value(&self, stage: &str) -> Option<String> {
        let output = self
            .aws
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await
            .ok()?;
        output.secret_string().map(str::to_owned)
    }

    async fn cloud_version_count(&self) -> usize {
        let output = self
            .aws
            .list_secret_version_ids()
            .secret_id(&self.secret_id)
            .include_deprecated(true)
            .send()
            .await
            .expect("lists versions");
        output.versions().len()
    }

    async fn secret_value(&self) -> Option<String> {
        harness::secret_value(&self.client, &self.namespace, "db-credentials", "password").await
    }

    async fn events(&self) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        events.list(&ListParams::default()).await.expect("lists Events").items
    }

    async fn annotate(&self, name: &str, key: &str, value: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        self.rotations()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotates the SecretRotation");
    }
}

fn reconcile_count(metrics: &rotor::metrics::Metrics) -> u64 {
    let text = metrics.encode().expect("encodes metrics");
    text.lines()
        .filter(|line| line.starts_with("rotor_reconciles_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn first_rotation_creates_cloud_and_kube_secret() {
    let fx = Fixture::new("ctl-first").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");

    let object = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let status = object.status.expect("status");
    let cloud = fx
        .cloud_value("AWSCURRENT")
        .await
        .expect("the cloud secret has AWSCURRENT");
    let kube = fx.secret_value().await.expect("the Secret has the key");
    assert_eq!(cloud, kube);
    assert_eq!(kube.chars().count(), 24);
    assert_eq!(status.provider.as_deref(), Some("aws"));
    assert!(status.next_rotation_time.is_some());
    assert!(status.last_rotation_time.is_some());
    assert_eq!(status.observed_generation, object.metadata.generation);

    let secret = fx.secrets().get("db-credentials").await.expect("reads the Secret");
    let annotations = secret.annotations();
    assert_eq!(annotations.get("rotor.dev/provider").map(String::as_str), Some("aws"));
    assert_eq!(annotations.get("rotor.dev/version"), status.current_version.as_ref());
    assert!(annotations.contains_key("rotor.dev/rotated-at"));
    assert_eq!(
        secret.labels().get("app.kubernetes.io/managed-by").map(String::as_str),
        Some("rotor")
    );
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(Some(&owners[0].uid), object.metadata.uid.as_ref());

    let tags = fx
        .aws
        .describe_secret()
        .secret_id(&fx.secret_id)
        .send()
        .await
        .expect("describes")
        .tags()
        .to_vec();
    let owner_tag = tags
        .iter()
        .find(|tag| tag.key() == Some("rotor.dev/owner"))
        .and_then(|tag| tag.value());
    assert_eq!(owner_tag, Some(format!("{}/db", fx.namespace).as_str()));

    let events = fx.events().await;
    let rotated: Vec<&Event> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Rotated"))
        .collect();
    assert_eq!(rotated.len(), 1, "one Rotated Event per rotation");
    for event in &events {
        assert!(
            !event.note.clone().unwrap_or_default().contains(&kube),
            "an Event contains the value"
        );
    }
    let status_json = serde_json::to_string(&fx.get("db").await.status).expect("serializes status");
    assert!(!status_json.contains(&kube), "the status contains the value");
    harness::assert_not_logged(&[kube]);
    controller.stop().await;
}

#[tokio::test]
async fn one_minute_interval_rotates_again() {
    let fx = Fixture::new("ctl-interval").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("1m")).await.expect("applies the SecretRotation");

    let first = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let first_version = first
        .status
        .as_ref()
        .and_then(|s| s.current_version.clone())
        .expect("version");
    let first_value = fx.secret_value().await.expect("first value");

    let second = fx
        .wait_rotated("db", Some(&first_version), Duration::from_secs(100))
        .await;
    let status = second.status.expect("status");
    let second_value = fx.secret_value().await.expect("second value");
    assert_ne!(first_value, second_value);
    assert_eq!(status.previous_version.as_deref(), Some(first_version.as_str()));
    assert_eq!(
        fx.cloud_value("AWSPREVIOUS").await.as_deref(),
        Some(first_value.as_str())
    );
    assert_eq!(
        fx.cloud_value("AWSCURRENT").await.as_deref(),
        Some(second_value.as_str())
    );
    assert_eq!(fx.cloud_value("AWSPENDING").await, None);
    harness::assert_not_logged(&[first_value, second_value]);
    controller.stop().await;
}

#[tokio::test]
async fn manual_trigger_rotates_once_per_value() {
    let fx = Fixture::new("ctl-manual").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    let first = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let first_version = first.status.and_then(|s| s.current_version).expect("version");

    fx.annotate("db", "rotor.dev/rotate-requested-at", "2026-12-04T10:00:00Z")
        .await;
    let second = fx
        .wait_rotated("db", Some(&first_version), Duration::from_secs(30))
        .await;
    let second_status = second.status.expect("status");
    let second_version = second_status.current_version.clone().expect("version");
    assert_eq!(
        second_status.last_rotate_request.as_deref(),
        Some("2026-12-04T10:00:00Z")
    );
    let rotating = second_status
        .conditions
        .iter()
        .find(|c| c.type_ == "Rotating")
        .expect("Rotating condition");
    assert_eq!(rotating.status, "False");

    // The same value again, via an unrelated change that triggers a reconcile, rotates nothing.
    fx.annotate("db", "example.com/unrelated", "1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unchanged = fx.get("db").await.status.and_then(|s| s.current_version);
    assert_eq!(unchanged.as_deref(), Some(second_version.as_str()));
    assert_eq!(fx.cloud_version_count().await, 2);

    fx.annotate("db", "rotor.dev/rotate-requested-at", "2026-12-04T11:00:00Z")
        .await;
    fx.wait_rotated("db", Some(&second_version), Duration::from_secs(30))
        .await;
    assert_eq!(fx.cloud_version_count().await, 3);
    controller.stop().await;
}

#[tokio::test]
async fn suspend_stops_rotations() {
    let fx = Fixture::new("ctl-suspend").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    let first = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let version = first.status.and_then(|s| s.current_version).expect("version");

    let mut manifest = fx.manifest("24h");
    manifest["spec"]["suspend"] = serde_json::json!(true);
    fx.apply(&manifest).await.expect("suspends");
    let suspended = fx.wait_reason("db", "Suspended").await;
    let ready = suspended
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
    assert_eq!(ready.map(|c| c.status).as_deref(), Some("True"));

    fx.annotate("db", "rotor.dev/rotate-requested-at", "2026-12-04T10:00:00Z")
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = fx.get("db").await.status.and_then(|s| s.current_version);
    assert_eq!(after.as_deref(), Some(version.as_str()), "a suspended object rotated");
    assert_eq!(fx.cloud_version_count().await, 1);

    // Resuming carries out the pending manual request.
    fx.apply(&fx.manifest("24h")).await.expect("resumes");
    fx.wait_rotated("db", Some(&version), Duration::from_secs(30)).await;
    controller.stop().await;
}

#[tokio::test]
async fn existing_cloud_secret_keeps_old_value() {
    let fx = Fixture::new("ctl-adopt").await;
    fx.aws
        .create_secret()
        .name(&fx.secret_id)
        .secret_string("value-made-outside-rotor")
        .send()
        .await
        .expect("creates the cloud secret");
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");

    fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let current = fx.cloud_value("AWSCURRENT").await.expect("AWSCURRENT");
    assert_ne!(current, "value-made-outside-rotor");
    assert_eq!(
        fx.cloud_value("AWSPREVIOUS").await.as_deref(),
        Some("value-made-outside-rotor")
    );
    assert_eq!(fx.secret_value().await, Some(current));
    controller.stop().await;
}

#[tokio::test]
async fn foreign_secret_is_left_untouched() {
    let fx = Fixture::new("ctl-foreign").await;
    let foreign: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db-credentials"},
        "stringData": {"password": "owned-by-someone-else", "other": "keep"}
    }))
    .expect("valid Secret");
    let created = fx
        .secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .expect("creates the foreign Secret");
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");

    let object = fx.wait_reason("db", "TargetNotOwned").await;
    let ready = object
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
    let message = ready.expect("Ready condition").message;
    assert!(
        message.contains(&format!("{}/db-credentials", fx.namespace)),
        "message: {message}"
    );
    assert!(
        message.contains("creationPolicy"),
        "message does not say what to do: {message}"
    );

    let after = fx.secrets().get("db-credentials").await.expect("reads the Secret");
    assert_eq!(
        after.resource_version(),
        created.resource_version(),
        "the foreign Secret was written"
    );
    assert_eq!(
        fx.cloud_version_count_or_zero().await,
        0,
        "the cloud was written before the ownership check"
    );

    let warnings: Vec<Event> = fx
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("TargetNotOwned"))
        .collect();
    assert!(!warnings.is_empty(), "no TargetNotOwned Event");
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    controller.stop().await;
}

#[tokio::test]
async fn merge_policy_keeps_other_keys() {
    let fx = Fixture::new("ctl-merge").await;
    let existing: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db-credentials"},
        "stringData": {"username": "orders", "password": "old"}
    }))
    .expect("valid Secret");
    fx.secrets()
        .create(&PostParams::default(), &existing)
        .await
        .expect("creates the Secret");
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    let mut manifest = fx.manifest("24h");
    manifest["spec"]["target"]["creationPolicy"] = serde_json::json!("Merge");
    fx.apply(&manifest).await.expect("applies the SecretRotation");

    fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let value = fx.secret_value().await.expect("password");
    assert_ne!(value, "old");
    assert_eq!(fx.cloud_value("AWSCURRENT").await, Some(value));
    let username = harness::secret_value(&fx.client, &fx.namespace, "db-credentials", "username").await;
    assert_eq!(username.as_deref(), Some("orders"));
    controller.stop().await;
}

#[tokio::test]
async fn invalid_generator_reports_invalid_spec() {
    let fx = Fixture::new("ctl-invalid").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    let mut manifest = fx.manifest("24h");
    manifest["spec"]["generator"]["password"] = serde_json::json!({
        "length": 16, "uppercase": false, "lowercase": false, "symbols": false, "excludeCharacters": "0123456789"
    });
    fx.apply(&manifest).await.expect("admission accepts the spec");

    let object = fx.wait_reason("db", "InvalidSpec").await;
    let message = object
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("excludeCharacters"), "message: {message}");
    assert!(message.contains(&format!("{}/db", fx.namespace)), "message: {message}");
    assert_eq!(fx.cloud_version_count_or_zero().await, 0);
    assert!(fx.secrets().get_opt("db-credentials").await.expect("reads").is_none());
    controller.stop().await;
}

#[tokio::test]
async fn failing_object_backs_off() {
    let fx = Fixture::new("ctl-backoff").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    let mut manifest = fx.manifest("24h");
    manifest["spec"]["generator"]["password"] = serde_json::json!({
        "length": 16, "uppercase": false, "lowercase": false, "symbols": false, "excludeCharacters": "0123456789"
    });
    fx.apply(&manifest).await.expect("admission accepts the spec");
    let failed = fx.wait_reason("db", "InvalidSpec").await;
    assert_eq!(failed.status.map(|s| s.failure_count), Some(1));

    // The first retry is due 5 s after the failure; nothing may happen before it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = fx.get("db").await;
    assert_eq!(
        later.status.map(|s| s.failure_count),
        Some(1),
        "retried before the backoff expired"
    );
    let warnings = fx
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("InvalidSpec"))
        .count();
    assert_eq!(warnings, 1);

    // Fixing the spec ends the backoff at once.
    fx.apply(&fx.manifest("24h")).await.expect("fixes the spec");
    let fixed = fx.wait_rotated("db", None, Duration::from_secs(4)).await;
    assert_eq!(fixed.status.map(|s| s.failure_count), Some(0));
    controller.stop().await;
}

#[tokio::test]
async fn admission_rejects_invalid_specs() {
    let fx = Fixture::new("ctl-admission").await;
    // (case, JSON pointer to replace, new value, field the message must name)
    let cases = [
        ("no provider", "/spec/provider", serde_json::json!({}), "spec.provider"),
        (
            "interval below a minute",
            "/spec/rotationInterval",
            serde_json::json!("30s"),
            "spec.rotationInterval",
        ),
        (
            "interval not a duration",
            "/spec/rotationInterval",
            serde_json::json!("daily"),
            "spec.rotationInterval",
        ),
        (
            "password too short",
            "/spec/generator/password/length",
            serde_json::json!(7),
            "spec.generator.password.length",
        ),
        (
            "password too long",
            "/spec/generator/password/length",
            serde_json::json!(1025),
            "spec.generator.password.length",
        ),
        (
            "target name invalid",
            "/spec/target/name",
            serde_json::json!("Not_A_Name"),
            "spec.target.name",
        ),
        (
            "no generator",
            "/spec/generator",
            serde_json::json!({}),
            "spec.generator",
        ),
    ];
    for (case, pointer, value, field) in cases {
        let mut manifest = fx.manifest("24h");
        *manifest
            .pointer_mut(pointer)
            .expect("the pointer exists in the manifest") = value;
        let error = fx.apply(&manifest).await.expect_err(case);
        let kube::Error::Api(status) = error else {
            panic!("{case}: expected an API error, got {error}")
        };
        assert_eq!(status.code, 422, "{case}");
        assert!(
            status.message.contains(field),
            "{case}: message {:?} does not name {field}",
            status.message
        );
    }
}

#[tokio::test]
async fn crash_after_stage_resumes_once() {
    crash_and_resume("ctl-crash-stage", FreezeAfter::Stage).await;
}

#[tokio::test]
async fn crash_after_promote_resumes_once() {
    crash_and_resume("ctl-crash-promote", FreezeAfter::Promote).await;
}

/// Freezes the first controller after `step` of the second rotation, kills it, starts a
/// fresh one, and checks that exactly one new version was written and published.
async fn crash_and_resume(prefix: &str, step: FreezeAfter) {
    let fx = Fixture::new(prefix).await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    let first = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let first_version = first.status.and_then(|s| s.current_version).expect("version");
    controller.stop().await;

    let freezing = Instrumented::new(harness::cloud_providers().await).freeze_after(step);
    let crashing = harness::start_controller(&fx.client, &fx.namespace, Arc::new(freezing.clone())).await;
    fx.annotate("db", "rotor.dev/rotate-requested-at", "crash-test").await;
    harness::wait_for(
        Duration::from_secs(30),
        "the rotation to reach the frozen step",
        || async { freezing.frozen.load(std::sync::atomic::Ordering::SeqCst).then_some(()) },
    )
    .await;
    crashing.kill().await;
    let in_flight = fx
        .get("db")
        .await
        .status
        .and_then(|s| s.rotation)
        .expect("a rotation is in flight");
    assert_eq!(fx.cloud_version_count().await, 2);

    let resumed = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    let done = fx
        .wait_rotated("db", Some(&first_version), Duration::from_secs(30))
        .await;
    let status = done.status.expect("status");
    assert_eq!(
        status.current_version.as_deref(),
        Some(in_flight.id.as_str()),
        "a different rotation finished"
    );
    assert_eq!(status.previous_version.as_deref(), Some(first_version.as_str()));
    assert_eq!(
        fx.cloud_version_count().await,
        2,
        "the resumed rotation wrote a second version"
    );
    let cloud = fx.cloud_value("AWSCURRENT").await.expect("AWSCURRENT");
    assert_eq!(fx.secret_value().await, Some(cloud.clone()));
    let rotated = fx
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Rotated"))
        .count();
    assert_eq!(rotated, 2);
    harness::assert_not_logged(&[cloud]);
    resumed.stop().await;
}

#[tokio::test]
async fn idle_reconcile_writes_nothing() {
    let fx = Fixture::new("ctl-idle").await;
    let counting = Instrumented::new(harness::cloud_providers().await);
    let controller = harness::start_controller(&fx.client, &fx.namespace, Arc::new(counting.clone())).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    // Let the reconciles that rotor's own writes trigger settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let calls_before = counting.call_count();
    let secret_before = fx.secrets().get("db-credentials").await.expect("reads the Secret");
    let reconciles_before = reconcile_count(&controller.metrics);
    fx.annotate("db", "example.com/touched", "1").await;
    let touched = fx.get("db").await;
    harness::wait_for(Duration::from_secs(15), "a reconcile after the touch", || async {
        (reconcile_count(&controller.metrics) > reconciles_before).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert_eq!(
        counting.call_count(),
        calls_before,
        "an idle reconcile called the cloud"
    );
    let secret_after = fx.secrets().get("db-credentials").await.expect("reads the Secret");
    assert_eq!(
        secret_after.resource_version(),
        secret_before.resource_version(),
        "the Secret was written"
    );
    let object_after = fx.get("db").await;
    assert_eq!(
        object_after.resource_version(),
        touched.resource_version(),
        "the status was written"
    );
    controller.stop().await;
}

#[tokio::test]
async fn deleted_secret_is_restored() {
    let fx = Fixture::new("ctl-restore").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    let object = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let version = object.status.and_then(|s| s.current_version).expect("version");
    let value = fx.secret_value().await.expect("value");

    fx.secrets()
        .delete("db-credentials", &Default::default())
        .await
        .expect("deletes the Secret");
    let restored = harness::wait_for(Duration::from_secs(30), "the Secret to be written again", || async {
        fx.secret_value().await
    })
    .await;
    assert_eq!(restored, value);
    let after = fx.get("db").await.status.and_then(|s| s.current_version);
    assert_eq!(
        after.as_deref(),
        Some(version.as_str()),
        "restoring the Secret rotated the value"
    );
    controller.stop().await;
}

impl Fixture {
    async fn cloud_version_count_or_zero(&self) -> usize {
        match self
            .aws
            .list_secret_version_ids()
            .secret_id(&self.secret_id)
            .send()
            .await
        {
            Ok(output) => output.versions().len(),
            Err(_) => 0,
        }
    }
}

/// AWS calls logged for `secret_id` so far, by operation.
fn aws_calls(secret_id: &str) -> Vec<String> {
    let logs = harness::captured_logs();
    let text = String::from_utf8_lossy(&logs.lock().expect("lock")).into_owned();
    let field = format!("secret={secret_id}");
    text.lines()
        .filter(|line| line.contains("calling AWS"))
        .filter(|line| line.split_whitespace().any(|word| word == field))
        .filter_map(|line| {
            let word = line.split_whitespace().find(|word| word.starts_with("operation="))?;
            Some(word.trim_start_matches("operation=").trim_matches('"').to_owned())
        })
        .collect()
}

#[tokio::test]
async fn rotation_makes_minimal_aws_calls() {
    let fx = Fixture::new("ctl-calls").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    let first = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let first_version = first.status.and_then(|s| s.current_version).expect("version");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first_calls = aws_calls(&fx.secret_id);
    assert_eq!(first_calls, ["DescribeSecret", "CreateSecret"], "first rotation");

    fx.annotate("db", "rotor.dev/rotate-requested-at", "calls").await;
    fx.wait_rotated("db", Some(&first_version), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all_calls = aws_calls(&fx.secret_id);
    let second_calls = &all_calls[first_calls.len()..];
    assert_eq!(
        second_calls,
        [
            "DescribeSecret",
            "PutSecretValue",
            "UpdateSecretVersionStage",
            "UpdateSecretVersionStage"
        ],
        "later rotation"
    );
    controller.stop().await;
}

#[tokio::test]
async fn deleted_cloud_secret_keeps_last_secret() {
    let fx = Fixture::new("ctl-cloud-deleted").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let value = fx.secret_value().await.expect("value");

    fx.aws
        .delete_secret()
        .secret_id(&fx.secret_id)
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("schedules the cloud secret for deletion");
    fx.annotate("db", "rotor.dev/rotate-requested-at", "after-delete").await;

    let failed = fx.wait_reason("db", "CloudSecretDeleted").await;
    let ready = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
    let ready = ready.expect("Ready condition");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains(&format!("SecretRotation {}/db", fx.namespace)),
        "{}",
        ready.message
    );
    assert!(ready.message.contains(&fx.secret_id), "{}", ready.message);
    assert!(ready.message.contains("restore the cloud secret"), "{}", ready.message);
    assert_eq!(fx.secret_value().await, Some(value), "the last good Secret changed");
    let warning = fx
        .events()
        .await
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("CloudSecretDeleted"));
    assert_eq!(warning.and_then(|e| e.type_).as_deref(), Some("Warning"));
    controller.stop().await;
}

#[tokio::test]
async fn missing_credentials_secret_is_reported() {
    let fx = Fixture::new("ctl-credentials").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    let mut manifest = fx.manifest("24h");
    manifest["spec"]["provider"]["aws"]["auth"] = serde_json::json!({"secretRef": {"name": "aws-credentials"}});
    fx.apply(&manifest).await.expect("applies the SecretRotation");

    let failed = fx.wait_reason("db", "CredentialsNotFound").await;
    let message = failed
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains(&format!("{}/aws-credentials", fx.namespace)),
        "{message}"
    );

    // Creating the Secret and requesting a rotation ends the backoff and succeeds.
    let credentials: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "aws-credentials"},
        "stringData": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    }))
    .expect("valid Secret");
    fx.secrets()
        .create(&PostParams::default(), &credentials)
        .await
        .expect("creates the credentials");
    fx.annotate("db", "rotor.dev/rotate-requested-at", "credentials-added")
        .await;
    fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    assert!(fx.secret_value().await.is_some());
    controller.stop().await;
}

#[tokio::test]
async fn edited_secret_value_is_restored() {
    let fx = Fixture::new("ctl-edited").await;
    let controller = harness::start_controller(&fx.client, &fx.namespace, harness::cloud_providers().await).await;
    fx.apply(&fx.manifest("24h")).await.expect("applies the SecretRotation");
    let object = fx.wait_rotated("db", None, Duration::from_secs(30)).await;
    let version = object.status.and_then(|s| s.current_version).expect("version");
    let value = fx.secret_value().await.expect("value");

    // As `kubectl patch secret db-credentials --type merge` does.
    let patch = serde_json::json!({"data": {"password": "ZWRpdGVk"}});
    fx.secrets()
        .patch("db-credentials", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("edits the Secret");
    let restored = harness::wait_for(Duration::from_secs(30), "the edited value to be restored", || async {
        fx.secret_value().await.filter(|current| current != "edited")
    })
    .await;
    assert_eq!(restored, value);
    let after = fx.get("db").await.status.and_then(|s| s.current_version);
    assert_eq!(
        after.as_deref(),
        Some(version.as_str()),
        "restoring the value rotated it"
    );
    let published = fx
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Published"))
        .count();
    assert_eq!(published, 1);

    // A change by another writer to a key rotor does not own leaves the value alone.
    let other = serde_json::json!({"metadata": {"labels": {"team": "shop"}}});
    fx.secrets()
        .patch("db-credentials", &PatchParams::default(), &Patch::Merge(&other))
        .await
        .expect("labels the Secret");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let published = fx
        .events()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Published"))
        .count();
    assert_eq!(published, 1, "a label change made rotor write the Secret again");
    controller.stop().await;
}
