//! Prometheus metrics (prefix `rotor_`) and their registry, encoded in the text format on
//! `/metrics`. Labels are bounded: provider, operation, result and static reasons only,
//! never an object name. No IO.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
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
}

/// rotor's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    rotations: Family<RotationLabels, Counter>,
    cloud_calls: Family<CloudCallLabels, Counter>,
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
            "Reconciles of SecretRotation objects by result",
            reconciles.clone(),
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
            "Rotator operations by provider and operation",
            cloud_calls.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            rotations,
            cloud_calls,
        }
    }

    pub fn observe_reconcile(&self, duration: Duration, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.reconciles.get_or_create(&ResultLabels { result }).inc();
        self.reconcile_duration.observe(duration.as_secs_f64());
    }

    pub fn rotation(&self, provider: &'static str, result: &'static str) {
        self.rotations.get_or_create(&RotationLabels { provider, result }).inc();
    }

    pub fn cloud_call(&self, provider: &'static str, operation: &'static str) {
        self.cloud_calls
            .get_or_create(&CloudCallLabels { provider, operation })
            .inc();
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
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
}
