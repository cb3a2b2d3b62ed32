//! The validate and plan steps of reconcile: pure functions of the spec, the status, the
//! observed target and the time, deciding what the apply step does. No IO.

use std::time::Duration;

use jiff::Timestamp;

use super::schedule;
use crate::api::{InFlightRotation, RotationStep, RotationTrigger, SecretRotationSpec, SecretRotationStatus};
use crate::rotation::{RotationId, generator};

/// A spec problem that admission could not reject.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("spec.rotationInterval {value:?} is invalid: {message}; use a duration such as 24h")]
    Interval { value: String, message: String },

    #[error("spec.rotationInterval {value:?} is shorter than the minimum of 1m")]
    IntervalTooShort { value: String },

    #[error(transparent)]
    Generator(#[from] generator::GeneratorError),
}

/// The settings the plan needs, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validated {
    pub interval: Duration,
}

/// Shortest `rotationInterval` accepted, matching the CRD's CEL rule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Runs the validate step: checks what the CRD schema cannot.
pub fn validate(spec: &SecretRotationSpec) -> Result<Validated, ValidationError> {
    let parsed: kube::core::Duration =
        spec.rotation_interval
            .parse()
            .map_err(|error: kube::core::duration::ParseError| ValidationError::Interval {
                value: spec.rotation_interval.clone(),
                message: error.to_string(),
            })?;
    if parsed.is_negative() || Duration::from(parsed) < MIN_INTERVAL {
        return Err(ValidationError::IntervalTooShort {
            value: spec.rotation_interval.clone(),
        });
    }
    generator::validate(&spec.generator)?;
    Ok(Validated {
        interval: parsed.into(),
    })
}

/// Observations of one reconcile, the input of [`plan`].
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    pub spec: &'a SecretRotationSpec,
    pub status: &'a SecretRotationStatus,
    pub generation: Option<i64>,
    pub uid: &'a str,
    /// Value of the `rotor.dev/rotate-requested-at` annotation.
    pub rotate_request: Option<&'a str>,
    /// True when the cached metadata of the target Secret shows the current version.
    pub target_in_sync: bool,
}

/// The decision of the plan step.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a new rotation, or continue the one in flight.
    Rotate { rotation: InFlightRotation, resumed: bool },
    /// Write the target Secret from the current cloud version, without rotating.
    Publish,
    /// `suspend` is set: write nothing but the status.
    Suspend,
    /// A failing object waits for its backoff to expire.
    BackOff { until: Timestamp },
    /// Nothing to do; the next rotation is due at `until`.
    Wait { until: Timestamp },
}

impl Action {
    /// True when the action writes to the cloud or to Kubernetes, so that reconcile must
    /// plan again from a fresh read instead of the watch cache.
    pub fn writes(&self) -> bool {
        matches!(self, Self::Rotate { .. } | Self::Publish)
    }
}

/// Runs the plan step: decides what the apply step does.
pub fn plan(observed: &Observed<'_>, validated: Validated, now: Timestamp) -> Action {
    let status = observed.status;

    if let Some(rotation) = &status.rotation {
        if let Some(until) = backing_off(observed, now) {
            return Action::BackOff { until };
        }
        return Action::Rotate {
            rotation: rotation.clone(),
            resumed: true,
        };
    }

    if observed.spec.is_suspended() {
        return Action::Suspend;
    }

    if let Some(until) = backing_off(observed, now) {
        return Action::BackOff { until };
    }

    if let Some(trigger) = rotation_trigger(observed, validated, now) {
        let rotate_request = match trigger {
            RotationTrigger::ManuallyTriggered => observed.rotate_request.map(str::to_owned),
            _ => None,
        };
        let rotation = InFlightRotation {
            id: RotationId::generate().to_string(),
            step: RotationStep::Stage,
            trigger,
            started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            rotate_request,
            version: None,
            previous_version: None,
        };
        return Action::Rotate {
            rotation,
            resumed: false,
        };
    }

    let spec_changed = observed.generation.is_some() && observed.generation != status.observed_generation;
    if !observed.target_in_sync || spec_changed {
        return Action::Publish;
    }

    Action::Wait {
        until: next_rotation(observed, validated).unwrap_or(now),
    }
}

/// Returns the trigger of a rotation that is due now, if one is.
fn rotation_trigger(observed: &Observed<'_>, validated: Validated, now: Timestamp) -> Option<RotationTrigger> {
    let status = observed.status;
    if status.current_version.is_none() || status.last_rotation_time.is_none() {
        return Some(RotationTrigger::Initial);
    }
    if status.source_hash.as_deref() != Some(source_hash(observed.spec).as_str()) {
        return Some(RotationTrigger::SpecChanged);
    }
    if let Some(request) = observed.rotate_request
        && status.last_rotate_request.as_deref() != Some(request)
    {
        return Some(RotationTrigger::ManuallyTriggered);
    }
    match next_rotation(observed, validated) {
        Some(due) if due <= now => Some(RotationTrigger::Scheduled),
        _ => None,
    }
}

/// When the next scheduled rotation is due, from the last rotation time in status.
pub fn next_rotation(observed: &Observed<'_>, validated: Validated) -> Option<Timestamp> {
    let last = observed.status.last_rotation_time.as_ref()?.0;
    Some(schedule::next_rotation(last, validated.interval, observed.uid))
}

/// Returns the end of the current backoff, if the object failed recently. A spec change or a new
/// `rotor.dev/rotate-requested-at` value ends the backoff at once, so that a user who fixed
/// the cause does not wait for it.
pub fn backing_off(observed: &Observed<'_>, now: Timestamp) -> Option<Timestamp> {
    let status = observed.status;
    let last_failure = status.last_failure_time.as_ref()?.0;
    if observed.generation.is_some() && observed.generation != status.observed_generation {
        return None;
    }
    let handled = [
        status.last_rotate_request.as_deref(),
        status
            .rotation
            .as_ref()
            .and_then(|rotation| rotation.rotate_request.as_deref()),
    ];
    if observed
        .rotate_request
        .is_some_and(|request| !handled.contains(&Some(request)))
    {
        return None;
    }
    let until = schedule::retry_at(last_failure, status.failure_count);
    (until > now).then_some(until)
}

/// Returns a fingerprint of the settings that determine which cloud secret is rotated and
/// how its values are made. Credentials, endpoint and target are left out because changing
/// them does not call for a new value.
pub fn source_hash(spec: &SecretRotationSpec) -> String {
    let mut input = spec.provider.identity().join("\0");
    input.push('\0');
    input.push_str(&serde_json::to_string(&spec.generator).unwrap_or_default());
    format!("{:016x}", schedule::fnv1a(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn spec() -> SecretRotationSpec {
        serde_json::from_value(serde_json::json!({
            "rotationInterval": "24h",
            "provider": {"aws": {"region": "us-east-1", "secretId": "shop/orders-db"}},
            "generator": {"password": {"length": 32}},
            "target": {"name": "orders-db-credentials"}
        }))
        .expect("valid spec")
    }

    fn time(text: &str) -> Timestamp {
        text.parse().expect("valid timestamp")
    }

    /// Status after a rotation at 2026-01-01T00:00:00Z of `spec`.
    fn rotated_status(spec: &SecretRotationSpec) -> SecretRotationStatus {
        SecretRotationStatus {
            observed_generation: Some(1),
            current_version: Some("v1".to_owned()),
            last_rotation_time: Some(Time(time("2026-01-01T00:00:00Z"))),
            source_hash: Some(source_hash(spec)),
            ..SecretRotationStatus::default()
        }
    }

    fn observed<'a>(spec: &'a SecretRotationSpec, status: &'a SecretRotationStatus) -> Observed<'a> {
        Observed {
            spec,
            status,
            generation: Some(1),
            uid: "uid-1",
            rotate_request: None,
            target_in_sync: true,
        }
    }

    fn run(observed: &Observed<'_>, now: &str) -> Action {
        let validated = validate(observed.spec).expect("valid spec");
        plan(observed, validated, time(now))
    }

    fn trigger(action: &Action) -> Option<RotationTrigger> {
        match action {
            Action::Rotate {
                rotation,
                resumed: false,
            } => Some(rotation.trigger),
            _ => None,
        }
    }

    #[test]
    fn new_object_rotates_initially() {
        let spec = spec();
        let status = SecretRotationStatus::default();
        let action = run(&observed(&spec, &status), "2026-01-01T00:00:00Z");
        assert_eq!(trigger(&action), Some(RotationTrigger::Initial));
    }

    #[test]
    fn new_rotation_starts_at_stage() {
        let spec = spec();
        let status = SecretRotationStatus::default();
        let Action::Rotate { rotation, .. } = run(&observed(&spec, &status), "2026-01-01T00:00:00Z") else {
            panic!("expected a rotation");
        };
        assert_eq!(rotation.step, RotationStep::Stage);
        assert!(!rotation.id.is_empty());
    }

    #[test]
    fn nothing_due_waits_until_next_rotation() {
        let spec = spec();
        let status = rotated_status(&spec);
        let action = run(&observed(&spec, &status), "2026-01-01T12:00:00Z");
        let expected = schedule::next_rotation(time("2026-01-01T00:00:00Z"), Duration::from_secs(86_400), "uid-1");
        assert_eq!(action, Action::Wait { until: expected });
    }

    #[test]
    fn elapsed_interval_rotates_on_schedule() {
        let spec = spec();
        let status = rotated_status(&spec);
        let action = run(&observed(&spec, &status), "2026-01-02T00:00:00Z");
        assert_eq!(trigger(&action), Some(RotationTrigger::Scheduled));
    }

    #[test]
    fn new_annotation_value_rotates_manually() {
        let spec = spec();
        let status = rotated_status(&spec);
        let mut observed = observed(&spec, &status);
        observed.rotate_request = Some("2026-01-01T06:00:00Z");
        let action = run(&observed, "2026-01-01T06:00:01Z");
        assert_eq!(trigger(&action), Some(RotationTrigger::ManuallyTriggered));
        let Action::Rotate { rotation, .. } = action else {
            panic!("expected a rotation")
        };
        assert_eq!(rotation.rotate_request.as_deref(), Some("2026-01-01T06:00:00Z"));
    }

    #[test]
    fn handled_annotation_value_does_not_rotate() {
        let spec = spec();
        let mut status = rotated_status(&spec);
        status.last_rotate_request = Some("2026-01-01T06:00:00Z".to_owned());
        let mut observed = observed(&spec, &status);
        observed.rotate_request = Some("2026-01-01T06:00:00Z");
        assert!(matches!(run(&observed, "2026-01-01T06:00:01Z"), Action::Wait { .. }));
    }

    #[test]
    fn suspend_stops_manual_and_scheduled_rotation() {
        let mut spec = spec();
        spec.suspend = Some(true);
        let status = rotated_status(&spec);
        let mut observed = observed(&spec, &status);
        observed.rotate_request = Some("now");
        assert_eq!(run(&observed, "2026-03-01T00:00:00Z"), Action::Suspend);
    }

    #[test]
    fn in_flight_rotation_resumes_even_when_suspended() {
        let mut spec = spec();
        spec.suspend = Some(true);
        let mut status = rotated_status(&spec);
        let rotation = InFlightRotation {
            id: "r1".to_owned(),
            step: RotationStep::Promote,
            trigger: RotationTrigger::Scheduled,
            started_at: Time(time("2026-01-02T00:00:00Z")),
            rotate_request: None,
            version: None,
            previous_version: None,
        };
        status.rotation = Some(rotation.clone());
        let action = run(&observed(&spec, &status), "2026-01-02T00:00:05Z");
        assert_eq!(
            action,
            Action::Rotate {
                rotation,
                resumed: true
            }
        );
    }

    #[test]
    fn changed_secret_id_rotates_for_spec_change() {
        let spec = spec();
        let status = rotated_status(&spec);
        let mut changed = spec.clone();
        if let Some(aws) = changed.provider.aws.as_mut() {
            aws.secret_id = "shop/other".to_owned();
        }
        let action = run(&observed(&changed, &status), "2026-01-01T01:00:00Z");
        assert_eq!(trigger(&action), Some(RotationTrigger::SpecChanged));
    }

    #[test]
    fn changed_target_publishes_without_rotating() {
        let spec = spec();
        let status = rotated_status(&spec);
        let mut observed = observed(&spec, &status);
        observed.generation = Some(2);
        assert_eq!(run(&observed, "2026-01-01T01:00:00Z"), Action::Publish);
    }

    #[test]
    fn missing_target_publishes() {
        let spec = spec();
        let status = rotated_status(&spec);
        let mut observed = observed(&spec, &status);
        observed.target_in_sync = false;
        assert_eq!(run(&observed, "2026-01-01T01:00:00Z"), Action::Publish);
    }

    #[test]
    fn recent_failure_backs_off() {
        let spec = spec();
        let status = SecretRotationStatus {
            observed_generation: Some(1),
            failure_count: 3,
            last_failure_time: Some(Time(time("2026-01-01T00:00:00Z"))),
            ..SecretRotationStatus::default()
        };
        let action = run(&observed(&spec, &status), "2026-01-01T00:00:10Z");
        assert_eq!(
            action,
            Action::BackOff {
                until: time("2026-01-01T00:00:20Z")
            }
        );
    }

    #[test]
    fn spec_change_ends_backoff() {
        let spec = spec();
        let status = SecretRotationStatus {
            observed_generation: Some(1),
            failure_count: 3,
            last_failure_time: Some(Time(time("2026-01-01T00:00:00Z"))),
            ..SecretRotationStatus::default()
        };
        let mut observed = observed(&spec, &status);
        observed.generation = Some(2);
        let action = run(&observed, "2026-01-01T00:00:10Z");
        assert_eq!(trigger(&action), Some(RotationTrigger::Initial));
    }

    #[test]
    fn new_rotate_request_ends_backoff() {
        let spec = spec();
        let mut status = rotated_status(&spec);
        status.failure_count = 3;
        status.last_failure_time = Some(Time(time("2026-01-01T12:00:00Z")));
        let mut observed = observed(&spec, &status);
        observed.rotate_request = Some("retry-now");
        let action = run(&observed, "2026-01-01T12:00:10Z");
        assert_eq!(trigger(&action), Some(RotationTrigger::ManuallyTriggered));
    }

    #[test]
    fn expired_backoff_retries() {
        let spec = spec();
        let status = SecretRotationStatus {
            observed_generation: Some(1),
            failure_count: 3,
            last_failure_time: Some(Time(time("2026-01-01T00:00:00Z"))),
            ..SecretRotationStatus::default()
        };
        let action = run(&observed(&spec, &status), "2026-01-01T00:00:21Z");
        assert_eq!(trigger(&action), Some(RotationTrigger::Initial));
    }

    #[test]
    fn interval_below_minute_is_invalid() {
        let mut spec = spec();
        spec.rotation_interval = "30s".to_owned();
        assert_eq!(
            validate(&spec),
            Err(ValidationError::IntervalTooShort {
                value: "30s".to_owned()
            })
        );
    }

    #[test]
    fn unparsable_interval_is_invalid() {
        let mut spec = spec();
        spec.rotation_interval = "one day".to_owned();
        assert!(matches!(validate(&spec), Err(ValidationError::Interval { .. })));
    }
}
