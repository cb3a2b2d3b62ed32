//! Prometheus metrics (prefix `rotor_`) and their registry, encoded in the text format on
//! `/metrics`. Counter and histogram labels are bounded: provider, operation, outcome and
//! static reasons, never an object name. Only the per-object gauges carry `namespace` and
//! `name`. They are computed at scrape time from the controller's cache, so a deleted
//! object's series disappear with it. No IO.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::SecretRotation;

/// Cache of `SecretRotation` objects as the controller watches them.
pub type RotationStore = Store<DeserializeGuard<SecretRotation>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    provider: &'static str,
    /// `success`, or the failure reason.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloudCallLabels {
    provider: &'static str,
    operation: &'static str,
    /// `success`, or the provider error's reason.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloudDurationLabels {
    provider: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// rotor's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_failures: Family<ReasonLabels, Counter>,
    reconcile_duration: Histogram,
    rotations: Family<RotationLabels, Counter>,
    cloud_calls: Family<CloudCallLabels, Counter>,
    cloud_duration: Family<CloudDurationLabels, Histogram>,
    leader: Gauge<i64, AtomicI64>,
    objects: Arc<ObjectGauges>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rotor");

        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of SecretRotation objects by result: success (finished, including failures reported in status) or error (a Kubernetes API error, retried)",
            reconciles.clone(),
        );
        let reconcile_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reconcile_failures",
            "Failures reported in SecretRotation status, by reason",
            reconcile_failures.clone(),
        );
        let reconcile_duration = Histogram::new([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]);
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            reconcile_duration.clone(),
        );

        let rotations = Family::<RotationLabels, Counter>::default();
        registry.register(
            "rotations",
            "Rotation attempts by provider and result (success or a failure reason)",
            rotations.clone(),
        );

        let cloud_calls = Family::<CloudCallLabels, Counter>::default();
        registry.register(
            "cloud_operations",
            "Calls to cloud secret stores by provider, operation and outcome (success or a failure reason)",
            cloud_calls.clone(),
        );
        let cloud_duration = Family::<CloudDurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        registry.register(
            "cloud_operation_duration_seconds",
            "Duration of calls to cloud secret stores by provider and operation",
            cloud_duration.clone(),
        );

        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "leader",
            "1 on the replica that holds the leader Lease and reconciles, else 0",
            leader.clone(),
        );

        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Version of the running rotor binary; the value is always 1",
            build,
        );

        let objects = Arc::new(ObjectGauges::default());
        registry.register_collector(Box::new(objects.clone()));

        Self {
            registry,
            reconciles,
            reconcile_failures,
            reconcile_duration,
            rotations,
            cloud_calls,
            cloud_duration,
            leader,
            objects,
        }
    }

    pub fn observe_reconcile(&self, duration: Duration, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.reconciles.get_or_create(&ResultLabels { result }).inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// Counts a failure that reconcile reported in status, by its static reason.
    pub fn reconcile_failure(&self, reason: &'static str) {
        self.reconcile_failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a rotation attempt that finished with `result`: `success` or a failure reason.
    pub fn rotation(&self, provider: &'static str, result: &'static str) {
        self.rotations.get_or_create(&RotationLabels { provider, result }).inc();
    }

    /// Records one call to a cloud API.
    pub fn cloud_call(
        &self,
        provider: &'static str,
        operation: &'static str,
        outcome: &'static str,
        duration: Duration,
    ) {
        self.cloud_calls
            .get_or_create(&CloudCallLabels {
                provider,
                operation,
                outcome,
            })
            .inc();
        self.cloud_duration
            .get_or_create(&CloudDurationLabels { provider, operation })
            .observe(duration.as_secs_f64());
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Adds a controller's object cache to the per-object gauges.
    pub fn track(&self, store: RotationStore) {
        self.objects.lock().push(store);
    }

    /// Removes every tracked cache, when the controller stops.
    pub fn untrack_all(&self) {
        self.objects.lock().clear();
    }

    /// Encodes the registry in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl crate::rotation::CallObserver for Metrics {
    fn observe(&self, provider: &'static str, operation: &'static str, outcome: &'static str, duration: Duration) {
        self.cloud_call(provider, operation, outcome, duration);
    }
}

/// Per-object gauges, read from the controller's caches at scrape time.
#[derive(Debug, Default)]
struct ObjectGauges {
    stores: Mutex<Vec<RotationStore>>,
}

impl ObjectGauges {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RotationStore>> {
        self.stores.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One object's values for the per-object gauges.
struct ObjectSample {
    labels: ObjectLabels,
    ready: Option<i64>,
    last_rotation: Option<f64>,
    next_rotation: Option<f64>,
}

impl ObjectGauges {
    fn samples(&self) -> Vec<ObjectSample> {
        let stores = self.lock().clone();
        let mut samples = Vec::new();
        for object in stores.iter().flat_map(Store::state) {
            let Ok(rotation) = &object.0 else { continue };
            let labels = ObjectLabels {
                namespace: rotation.metadata.namespace.clone().unwrap_or_default(),
                name: rotation.metadata.name.clone().unwrap_or_default(),
            };
            let status = rotation.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| i64::from(c.status == "True"));
            let seconds =
                |time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| time.0.as_millisecond() as f64 / 1000.0;
            samples.push(ObjectSample {
                labels,
                ready,
                last_rotation: status.and_then(|s| s.last_rotation_time.as_ref()).map(seconds),
                next_rotation: status.and_then(|s| s.next_rotation_time.as_ref()).map(seconds),
            });
        }
        samples
    }
}

impl Collector for ObjectGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples = self.samples();

        let mut ready = encoder.encode_descriptor(
            "secretrotation_ready",
            "1 when the SecretRotation's Ready condition is True, 0 when it is False or Unknown",
            None,
            MetricType::Gauge,
        )?;
        for sample in &samples {
            if let Some(value) = sample.ready {
                ConstGauge::new(value).encode(ready.encode_family(&sample.labels)?)?;
            }
        }

        let mut last = encoder.encode_descriptor(
            "secretrotation_last_rotation_timestamp_seconds",
            "Unix time of the SecretRotation's last finished rotation",
            None,
            MetricType::Gauge,
        )?;
        for sample in &samples {
            if let Some(value) = sample.last_rotation {
                ConstGauge::new(value).encode(last.encode_family(&sample.labels)?)?;
            }
        }

        let mut next = encoder.encode_descriptor(
            "secretrotation_next_rotation_timestamp_seconds",
            "Unix time when the SecretRotation's next scheduled rotation is due",
            None,
            MetricType::Gauge,
        )?;
        for sample in &samples {
            if let Some(value) = sample.next_rotation {
                ConstGauge::new(value).encode(next.encode_family(&sample.labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_rotation_counter_has_labels() {
        let metrics = Metrics::new();
        metrics.rotation("aws", "success");
        metrics.rotation("aws", "success");
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains(r#"rotor_rotations_total{provider="aws",result="success"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn cloud_call_counts_outcome() {
        let metrics = Metrics::new();
        metrics.cloud_call("aws", "PutSecretValue", "success", Duration::from_millis(20));
        metrics.cloud_call("aws", "PutSecretValue", "Throttled", Duration::from_millis(5));
        let text = metrics.encode().expect("encodes");
        let success = r#"rotor_cloud_operations_total{provider="aws",operation="PutSecretValue",outcome="success"} 1"#;
        assert!(text.contains(success), "{text}");
        let throttled =
            r#"rotor_cloud_operations_total{provider="aws",operation="PutSecretValue",outcome="Throttled"} 1"#;
        assert!(text.contains(throttled), "{text}");
        let count = r#"rotor_cloud_operation_duration_seconds_count{provider="aws",operation="PutSecretValue"} 2"#;
        assert!(text.contains(count), "{text}");
    }

    #[test]
    fn leader_and_build_info_are_exported() {
        let metrics = Metrics::new();
        metrics.set_leader(true);
        let text = metrics.encode().expect("encodes");
        assert!(text.contains("rotor_leader 1"), "{text}");
        assert!(
            text.contains(&format!(
                r#"rotor_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }
}
