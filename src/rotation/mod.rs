//! The `Rotator` trait, the only view the controller has of a cloud secret store, with the
//! value and id types it passes around. Implementations live in `crate::providers`; an
//! in-memory one for tests lives in `memory`. No IO here.

pub mod generator;
pub mod memory;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::api::Reason;

/// A secret value. `Debug` prints `<redacted>` and there is no `Display`, so a value cannot
/// reach a log line, an Event or an error message by formatting.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// Returns the value itself, for writing to a cloud API or a Kubernetes Secret only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Id of one rotation, fixed before the first cloud write and stored in status. Providers
/// use it as the idempotency key of the write (the AWS `ClientRequestToken`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RotationId(String);

impl RotationId {
    /// Generates a random rotation id: a UUID, which fits AWS's 32–64 character token limit.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for RotationId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl fmt::Display for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Id of one version of a cloud secret, as the cloud names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VersionId(String);

impl VersionId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of [`Rotator::stage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    /// The pending version that carries the rotation id.
    pub version: VersionId,
    /// False when the version existed already because an earlier attempt of the same
    /// rotation wrote it; the value passed to `stage` was then not used.
    pub written: bool,
}

/// Result of [`Rotator::promote`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promoted {
    /// The version that was current before, now previous; `None` for a new cloud secret.
    pub previous: Option<VersionId>,
}

/// A cloud secret store holding one secret, seen through the rotation protocol: a new
/// value is staged as a pending version, then promoted to current, and the old current
/// version stays readable as previous.
///
/// Every method is idempotent for the same arguments, because a controller that restarts
/// repeats the step it was in.
#[async_trait]
pub trait Rotator: Send + Sync {
    /// Provider name: `aws`, `azure`, `gcp` or `memory`.
    fn provider(&self) -> &'static str;

    /// Human-readable name of the cloud secret for messages, such as the AWS secret id.
    fn secret_name(&self) -> String;

    /// Writes `value` as a new pending version tagged with `rotation`, creating the cloud
    /// secret when it does not exist. When a version tagged with `rotation` exists already,
    /// returns it and writes nothing.
    async fn stage(&self, rotation: &RotationId, value: &SecretValue) -> Result<Staged, ProviderError>;

    /// Makes `version` current; the version current before becomes previous. Does nothing
    /// but report when `version` is current already.
    async fn promote(&self, version: &VersionId) -> Result<Promoted, ProviderError>;

    /// Reads the value of `version`.
    async fn read(&self, version: &VersionId) -> Result<SecretValue, ProviderError>;

    /// Returns the current version, or `None` when the cloud secret does not exist.
    async fn current_version(&self) -> Result<Option<VersionId>, ProviderError>;
}

/// Errors of cloud secret stores. Messages name the cloud secret and never a value.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the cloud denied the call or rejected the credentials for {secret}: {message}")]
    AuthFailed { secret: String, message: String },

    #[error("the credentials Secret {name} is missing or incomplete: {message}")]
    CredentialsNotFound { name: String, message: String },

    #[error("the cloud throttled the call for {secret}: {message}")]
    Throttled { secret: String, message: String },

    #[error("the cloud secret {secret} is disabled: {message}")]
    SecretDisabled { secret: String, message: String },

    #[error("the cloud secret {secret} is deleted or scheduled for deletion: {message}")]
    SecretDeleted { secret: String, message: String },

    #[error("version {version} of the cloud secret {secret} does not exist")]
    VersionNotFound { secret: String, version: String },

    #[error("invalid provider settings for {secret}: {message}")]
    InvalidConfig { secret: String, message: String },

    #[error("the call for {secret} failed: {message}")]
    Cloud { secret: String, message: String },
}

impl ProviderError {
    /// Static reason for conditions, Events and metric labels.
    pub fn reason(&self) -> Reason {
        match self {
            Self::AuthFailed { .. } => Reason::AuthFailed,
            Self::CredentialsNotFound { .. } => Reason::CredentialsNotFound,
            Self::Throttled { .. } => Reason::Throttled,
            Self::SecretDisabled { .. } => Reason::CloudSecretDisabled,
            Self::SecretDeleted { .. } => Reason::CloudSecretDeleted,
            Self::VersionNotFound { .. } => Reason::CloudVersionNotFound,
            Self::InvalidConfig { .. } => Reason::InvalidSpec,
            Self::Cloud { .. } => Reason::CloudError,
        }
    }

    /// Returns what the user can do about the error, for condition messages.
    pub fn remedy(&self) -> &'static str {
        match self {
            Self::AuthFailed { .. } => "grant rotor's identity access to the secret or fix the credentials Secret",
            Self::CredentialsNotFound { .. } => "create the credentials Secret with the keys the provider needs",
            Self::Throttled { .. } => "rotor retries with backoff; lower the number of rotations if this persists",
            Self::SecretDisabled { .. } => "enable the cloud secret or point the SecretRotation at another one",
            Self::SecretDeleted { .. } => {
                "restore the cloud secret, or delete it fully so that rotor creates a new one"
            }
            Self::VersionNotFound { .. } => {
                "request a rotation with the rotor.dev/rotate-requested-at annotation to write a new version"
            }
            Self::InvalidConfig { .. } => "fix spec.provider",
            Self::Cloud { .. } => "rotor retries with backoff; check the endpoint and the cloud's status",
        }
    }
}

/// Receives one record per call to a cloud API, for metrics.
pub trait CallObserver: Send + Sync + fmt::Debug {
    /// Records a call of `operation` that ended with `outcome` (`success` or a failure
    /// reason) after `duration`.
    fn observe(&self, provider: &'static str, operation: &'static str, outcome: &'static str, duration: Duration);
}

/// Static credentials read from a Kubernetes Secret named in `spec.provider.*.auth`.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `namespace/name` of the Secret, for messages.
    pub source: String,
    /// The Secret's data, each value redacted in `Debug`.
    pub data: std::collections::BTreeMap<String, SecretValue>,
}

impl Credentials {
    /// Returns the value of `key`, or a [`ProviderError::CredentialsNotFound`] naming the key.
    pub fn require(&self, key: &str) -> Result<&SecretValue, ProviderError> {
        self.data.get(key).ok_or_else(|| ProviderError::CredentialsNotFound {
            name: self.source.clone(),
            message: format!("key {key} is missing"),
        })
    }
}
