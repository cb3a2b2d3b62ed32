//! Condition types and reasons of `SecretRotation` status, defined in one place. A reason
//! string is also the Kubernetes Event reason and the `reason` metric label. No IO.

use std::fmt;

/// `status.conditions[].type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// The Secret contains the current value and the schedule is healthy.
    Ready,
    /// A rotation is in flight.
    Rotating,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Rotating => "Rotating",
        }
    }
}

/// `status.conditions[].status` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// Every condition and Event reason rotor writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    // Ready=True.
    /// The Secret contains the current cloud version.
    Rotated,
    /// Ready=True while `suspend` is set.
    Suspended,
    /// The Secret was written again from the current version, without a rotation.
    Published,

    // Rotating=True: why a rotation started or continues.
    Initial,
    Scheduled,
    ManuallyTriggered,
    SpecChanged,
    Resuming,
    /// Rotating=False: no rotation is in flight.
    Idle,

    // Ready=False.
    /// The spec is invalid in a way admission could not detect.
    InvalidSpec,
    /// The cloud rejected rotor's credentials or denied the call.
    AuthFailed,
    /// The referenced credentials Secret is missing or incomplete.
    CredentialsNotFound,
    /// The cloud throttled the call.
    Throttled,
    /// The cloud secret is disabled.
    CloudSecretDisabled,
    /// The cloud secret is deleted or scheduled for deletion.
    CloudSecretDeleted,
    /// A cloud version that rotor recorded no longer exists.
    CloudVersionNotFound,
    /// Any other cloud error, such as a network failure or a 5xx response.
    CloudError,
    /// The target Secret exists and rotor did not create it.
    TargetNotOwned,
    /// Another `SecretRotation` claims the same target or cloud secret.
    Conflict,
    /// The Kubernetes API rejected a write of the target Secret.
    SecretWriteFailed,
    /// rotor's service account may not read or write a Secret it needs.
    Forbidden,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "Rotated",
            Self::Suspended => "Suspended",
            Self::Published => "Published",
            Self::Initial => "Initial",
            Self::Scheduled => "Scheduled",
            Self::ManuallyTriggered => "ManuallyTriggered",
            Self::SpecChanged => "SpecChanged",
            Self::Resuming => "Resuming",
            Self::Idle => "Idle",
            Self::InvalidSpec => "InvalidSpec",
            Self::AuthFailed => "AuthFailed",
            Self::CredentialsNotFound => "CredentialsNotFound",
            Self::Throttled => "Throttled",
            Self::CloudSecretDisabled => "CloudSecretDisabled",
            Self::CloudSecretDeleted => "CloudSecretDeleted",
            Self::CloudVersionNotFound => "CloudVersionNotFound",
            Self::CloudError => "CloudError",
            Self::TargetNotOwned => "TargetNotOwned",
            Self::Conflict => "Conflict",
            Self::SecretWriteFailed => "SecretWriteFailed",
            Self::Forbidden => "Forbidden",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
