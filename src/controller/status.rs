//! The status step's pure half: builds the next `SecretRotationStatus` for each outcome,
//! with `metav1.Condition`-shaped conditions. The controller applies the result with
//! server-side apply. No IO.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ConditionStatus, ConditionType, InFlightRotation, Reason, RotationStep, SecretRotationStatus};

/// Sets the condition `type_`, keeping its `lastTransitionTime` when its status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let existing = conditions.iter().position(|c| c.type_ == type_.as_str());
    let last_transition_time = existing
        .map(|index| &conditions[index])
        .filter(|c| c.status == status.as_str())
        .map_or(Time(now), |c| c.last_transition_time.clone());
    let condition = Condition {
        type_: type_.as_str().to_owned(),
        status: status.as_str().to_owned(),
        reason: reason.as_str().to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(index) => conditions[index] = condition,
        None => conditions.push(condition),
    }
}

/// Returns the condition of `type_`, if set.
pub fn condition(status: &SecretRotationStatus, type_: ConditionType) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Shared inputs of the status builders.
#[derive(Clone, Debug)]
pub struct StatusContext {
    pub generation: Option<i64>,
    pub provider: &'static str,
    /// `namespace/name` of the target Secret.
    pub target: String,
    /// Name of the cloud secret.
    pub cloud_secret: String,
    pub now: Timestamp,
}

fn base(previous: &SecretRotationStatus, ctx: &StatusContext) -> SecretRotationStatus {
    SecretRotationStatus {
        observed_generation: ctx.generation,
        provider: Some(ctx.provider.to_owned()),
        ..previous.clone()
    }
}

/// Builds the status of a rotation that started or moved to `rotation.step`.
pub fn rotating(
    previous: &SecretRotationStatus,
    rotation: &InFlightRotation,
    resumed: bool,
    ctx: &StatusContext,
) -> SecretRotationStatus {
    let mut status = base(previous, ctx);
    status.rotation = Some(rotation.clone());
    let reason = if resumed {
        Reason::Resuming
    } else {
        rotation.trigger.reason()
    };
    let step = match rotation.step {
        RotationStep::Stage => "staging a new version of",
        RotationStep::Promote => "promoting the new version of",
        RotationStep::Publish => "writing the Secret for",
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Rotating,
        ConditionStatus::True,
        reason,
        format!(
            "rotation {} is {step} {} {}",
            rotation.id, ctx.provider, ctx.cloud_secret
        ),
        ctx.generation,
        ctx.now,
    );
    status
}

/// Result of a finished rotation or publish.
#[derive(Clone, Debug)]
pub struct Success {
    pub current_version: String,
    pub previous_version: Option<String>,
    pub last_rotation_time: Timestamp,
    pub next_rotation_time: Timestamp,
    pub source_hash: String,
    /// The manual request the rotation handled, if any.
    pub rotate_request: Option<String>,
    /// resourceVersion of the target Secret after the write or check.
    pub target_resource_version: Option<String>,
}

/// Builds the status after the Secret received the current version: Ready=True, backoff reset.
pub fn succeeded(previous: &SecretRotationStatus, success: &Success, ctx: &StatusContext) -> SecretRotationStatus {
    let mut status = base(previous, ctx);
    status.rotation = None;
    status.current_version = Some(success.current_version.clone());
    status.previous_version = success.previous_version.clone();
    status.last_rotation_time = Some(Time(success.last_rotation_time));
    status.next_rotation_time = Some(Time(success.next_rotation_time));
    status.source_hash = Some(success.source_hash.clone());
    status.target_resource_version = success.target_resource_version.clone();
    if success.rotate_request.is_some() {
        status.last_rotate_request = success.rotate_request.clone();
    }
    status.failure_count = 0;
    status.last_failure_time = None;
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        ConditionStatus::True,
        Reason::Rotated,
        format!(
            "Secret {} holds version {} of {} secret {}; next rotation at {}",
            ctx.target, success.current_version, ctx.provider, ctx.cloud_secret, success.next_rotation_time
        ),
        ctx.generation,
        ctx.now,
    );
    set_idle(&mut status, ctx);
    status
}

/// `suspend` is set.
pub fn suspended(previous: &SecretRotationStatus, ctx: &StatusContext) -> SecretRotationStatus {
    let mut status = base(previous, ctx);
    status.next_rotation_time = None;
    let (ready, message) = match &status.current_version {
        Some(version) => (
            ConditionStatus::True,
            format!(
                "rotation is suspended; Secret {} keeps version {version}; set spec.suspend to false to resume",
                ctx.target
            ),
        ),
        None => (
            ConditionStatus::False,
            format!(
                "rotation is suspended before the first rotation, so Secret {} is not written; set spec.suspend to false to resume",
                ctx.target
            ),
        ),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        ready,
        Reason::Suspended,
        message,
        ctx.generation,
        ctx.now,
    );
    set_idle(&mut status, ctx);
    status
}

/// Builds the status after a failed step: Ready=False with `reason`, failure counted for backoff. An in-flight
/// rotation stays recorded so that the retry resumes it.
pub fn failed(
    previous: &SecretRotationStatus,
    reason: Reason,
    message: String,
    ctx: &StatusContext,
) -> SecretRotationStatus {
    let mut status = base(previous, ctx);
    status.failure_count = previous.failure_count.saturating_add(1);
    status.last_failure_time = Some(Time(ctx.now));
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        ConditionStatus::False,
        reason,
        message,
        ctx.generation,
        ctx.now,
    );
    if status.rotation.is_none() {
        set_idle(&mut status, ctx);
    }
    status
}

fn set_idle(status: &mut SecretRotationStatus, ctx: &StatusContext) {
    set_condition(
        &mut status.conditions,
        ConditionType::Rotating,
        ConditionStatus::False,
        Reason::Idle,
        "no rotation in flight".to_owned(),
        ctx.generation,
        ctx.now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RotationTrigger;

    fn time(text: &str) -> Timestamp {
        text.parse().expect("valid timestamp")
    }

    fn ctx(now: &str) -> StatusContext {
        StatusContext {
            generation: Some(3),
            provider: "aws",
            target: "shop/db".to_owned(),
            cloud_secret: "shop/orders-db".to_owned(),
            now: time(now),
        }
    }

    fn success() -> Success {
        Success {
            current_version: "v2".to_owned(),
            previous_version: Some("v1".to_owned()),
            last_rotation_time: time("2026-01-01T00:00:00Z"),
            next_rotation_time: time("2026-01-02T00:00:00Z"),
            source_hash: "abc".to_owned(),
            rotate_request: None,
            target_resource_version: Some("42".to_owned()),
        }
    }

    #[test]
    fn success_resets_backoff_and_sets_ready() {
        let failing = SecretRotationStatus {
            failure_count: 4,
            last_failure_time: Some(Time(time("2025-12-31T23:00:00Z"))),
            ..Default::default()
        };
        let status = succeeded(&failing, &success(), &ctx("2026-01-01T00:00:00Z"));
        assert_eq!(status.failure_count, 0);
        assert_eq!(status.last_failure_time, None);
        let ready = condition(&status, ConditionType::Ready).expect("Ready condition");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason, "Rotated");
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(status.current_version.as_deref(), Some("v2"));
    }

    #[test]
    fn failure_counts_and_keeps_rotation() {
        let rotation = InFlightRotation {
            id: "r1".to_owned(),
            step: RotationStep::Promote,
            trigger: RotationTrigger::Scheduled,
            started_at: Time(time("2026-01-01T00:00:00Z")),
            rotate_request: None,
            version: None,
            previous_version: None,
        };
        let before = SecretRotationStatus {
            rotation: Some(rotation.clone()),
            failure_count: 1,
            ..Default::default()
        };
        let status = failed(
            &before,
            Reason::Throttled,
            "slow down".to_owned(),
            &ctx("2026-01-01T00:01:00Z"),
        );
        assert_eq!(status.failure_count, 2);
        assert_eq!(status.rotation, Some(rotation));
        let ready = condition(&status, ConditionType::Ready).expect("Ready condition");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "Throttled");
    }

    #[test]
    fn unchanged_condition_keeps_transition_time() {
        let first = succeeded(
            &SecretRotationStatus::default(),
            &success(),
            &ctx("2026-01-01T00:00:00Z"),
        );
        let second = succeeded(&first, &success(), &ctx("2026-01-02T00:00:00Z"));
        let ready = condition(&second, ConditionType::Ready).expect("Ready condition");
        assert_eq!(ready.last_transition_time, Time(time("2026-01-01T00:00:00Z")));
    }

    #[test]
    fn changed_condition_moves_transition_time() {
        let first = succeeded(
            &SecretRotationStatus::default(),
            &success(),
            &ctx("2026-01-01T00:00:00Z"),
        );
        let second = failed(
            &first,
            Reason::AuthFailed,
            "denied".to_owned(),
            &ctx("2026-01-02T00:00:00Z"),
        );
        let ready = condition(&second, ConditionType::Ready).expect("Ready condition");
        assert_eq!(ready.last_transition_time, Time(time("2026-01-02T00:00:00Z")));
    }

    #[test]
    fn suspend_before_first_rotation_is_not_ready() {
        let status = suspended(&SecretRotationStatus::default(), &ctx("2026-01-01T00:00:00Z"));
        let ready = condition(&status, ConditionType::Ready).expect("Ready condition");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "Suspended");
    }
}
