//! AWS Secrets Manager provider. [`AwsFactory`] keeps the SDK configuration loaded once at
//! startup and builds one [`AwsRotator`] per `SecretRotation`. The rotator maps the
//! rotation protocol onto Secrets Manager versions and their staging labels `AWSPENDING`,
//! `AWSCURRENT` and `AWSPREVIOUS`. Building a rotator does no IO, but `stage`, `promote`,
//! `read` and `current_version` call the Secrets Manager API.
//!
//! The rotation id is the `ClientRequestToken` of the write, so the version a rotation
//! writes has the rotation id as its version id, and a repeated write with the same
//! rotation id finds that version instead of adding another.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials as AwsCredentials;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::RequestId;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
use aws_sdk_secretsmanager::operation::describe_secret::{DescribeSecretError, DescribeSecretOutput};
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use aws_sdk_secretsmanager::types::Tag;
use tracing::debug;

use super::{MANAGED_BY_TAG, OWNER_TAG, Owner};
use crate::api::AwsProvider;
use crate::rotation::{
    CallObserver, Credentials, Promoted, ProviderError, RotationId, Rotator, SecretValue, Staged, VersionId,
};

/// Staging label of a version that is written but not yet in use.
const PENDING: &str = "AWSPENDING";
/// Staging label of the version that clients read by default.
const CURRENT: &str = "AWSCURRENT";
/// Staging label that AWS moves to the old current version when `AWSCURRENT` moves.
const PREVIOUS: &str = "AWSPREVIOUS";

/// Keys of the credentials Secret that `spec.provider.aws.auth.secretRef` names.
const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN_KEY: &str = "AWS_SESSION_TOKEN";

/// Provider name that the SDK records for credentials read from a credentials Secret.
const CREDENTIALS_PROVIDER_NAME: &str = "rotor-credentials-secret";

/// Secrets Manager operation names, for log fields and error messages.
const DESCRIBE_SECRET: &str = "DescribeSecret";
const CREATE_SECRET: &str = "CreateSecret";
const PUT_SECRET_VALUE: &str = "PutSecretValue";
const UPDATE_SECRET_VERSION_STAGE: &str = "UpdateSecretVersionStage";
const GET_SECRET_VALUE: &str = "GetSecretValue";

/// Secrets Manager error codes that the rotator handles itself.
const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
const RESOURCE_EXISTS: &str = "ResourceExistsException";
const INVALID_REQUEST: &str = "InvalidRequestException";

/// Error codes meaning that AWS rejected the credentials or denied the call.
const AUTH_ERROR_CODES: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
];
/// Error codes meaning that AWS throttled the call.
const THROTTLING_ERROR_CODES: &[&str] = &["ThrottlingException", "TooManyRequestsException"];

/// Builds [`AwsRotator`]s from the AWS configuration of rotor's environment.
#[derive(Clone, Debug)]
pub struct AwsFactory {
    sdk_config: SdkConfig,
    observer: Option<Arc<dyn CallObserver>>,
}

impl AwsFactory {
    /// Loads the region, the endpoint (`AWS_ENDPOINT_URL`) and the default credential chain,
    /// which covers EKS IRSA and EKS Pod Identity, from the environment.
    pub async fn from_env() -> Self {
        Self::from_config(aws_config::defaults(BehaviorVersion::latest()).load().await)
    }

    /// Creates a factory that starts every client from `sdk_config`, for tests that aim the
    /// SDK at an emulator.
    pub fn from_config(sdk_config: SdkConfig) -> Self {
        Self {
            sdk_config,
            observer: None,
        }
    }

    /// Reports every AWS call of the rotators this factory builds to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Builds the rotator for the secret that `spec` names. `credentials`, when given,
    /// replace the default credential chain and must contain the keys `AWS_ACCESS_KEY_ID`
    /// and `AWS_SECRET_ACCESS_KEY`, and may contain `AWS_SESSION_TOKEN`.
    ///
    /// Returns [`ProviderError::InvalidConfig`] for an empty region or an endpoint that is
    /// not an http(s) URL, and [`ProviderError::CredentialsNotFound`] for a missing or empty
    /// credentials key.
    pub fn rotator(
        &self,
        spec: &AwsProvider,
        credentials: Option<&Credentials>,
        owner: &Owner,
    ) -> Result<AwsRotator, ProviderError> {
        let invalid = |message: String| ProviderError::InvalidConfig {
            secret: spec.secret_id.clone(),
            message,
        };
        if spec.secret_id.trim().is_empty() {
            return Err(invalid("spec.provider.aws.secretId is empty".to_owned()));
        }
        if spec.region.trim().is_empty() {
            return Err(invalid("spec.provider.aws.region is empty".to_owned()));
        }

        let mut config =
            aws_sdk_secretsmanager::config::Builder::from(&self.sdk_config).region(Region::new(spec.region.clone()));
        if let Some(endpoint) = &spec.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(format!(
                    "spec.provider.aws.endpoint {endpoint:?} is not an http:// or https:// URL"
                )));
            }
            config = config.endpoint_url(endpoint.clone());
        }
        if let Some(credentials) = credentials {
            config = config.credentials_provider(static_credentials(credentials)?);
        }

        Ok(AwsRotator {
            client: Client::from_conf(config.build()),
            secret_id: spec.secret_id.clone(),
            owner: owner.clone(),
            staged_labels: Arc::default(),
            observer: self.observer.clone(),
        })
    }
}

/// Reads static AWS credentials from a credentials Secret. An empty value counts as missing,
/// and an empty session token as absent.
fn static_credentials(credentials: &Credentials) -> Result<AwsCredentials, ProviderError> {
    let required = |key: &str| -> Result<String, ProviderError> {
        let value = credentials.require(key)?.expose();
        if value.is_empty() {
            return Err(ProviderError::CredentialsNotFound {
                name: credentials.source.clone(),
                message: format!("key {key} is empty"),
            });
        }
        Ok(value.to_owned())
    };
    let access_key_id = required(ACCESS_KEY_ID_KEY)?;
    let secret_access_key = required(SECRET_ACCESS_KEY_KEY)?;
    let session_token = credentials
        .data
        .get(SESSION_TOKEN_KEY)
        .map(|token| token.expose().to_owned())
        .filter(|token| !token.is_empty());
    Ok(AwsCredentials::new(
        access_key_id,
        secret_access_key,
        session_token,
        None,
        CREDENTIALS_PROVIDER_NAME,
    ))
}

/// Version id to its staging labels, as `DescribeSecret` returns them.
type VersionLabels = HashMap<String, Vec<String>>;

/// A [`Rotator`] for one AWS Secrets Manager secret.
#[derive(Clone)]
pub struct AwsRotator {
    client: Client,
    secret_id: String,
    owner: Owner,
    /// Version labels as the last `stage` of this rotator left them, for `promote`.
    staged_labels: Arc<Mutex<Option<VersionLabels>>>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl fmt::Debug for AwsRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsRotator")
            .field("secret_id", &self.secret_id)
            .field("region", &self.client.config().region())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Rotator for AwsRotator {
    fn provider(&self) -> &'static str {
        "aws"
    }

    fn secret_name(&self) -> String {
        self.secret_id.clone()
    }

    async fn stage(&self, rotation: &RotationId, value: &SecretValue) -> Result<Staged, ProviderError> {
        let description = match self.describe().await {
            Ok(description) => description,
            Err(error) if has_code(&error, RESOURCE_NOT_FOUND) => match self.create(rotation, value).await {
                Ok(()) => {
                    let stages = HashMap::from([(rotation.as_str().to_owned(), vec![CURRENT.to_owned()])]);
                    self.remember_staged_labels(stages);
                    return Ok(Staged {
                        version: VersionId::new(rotation.as_str()),
                        written: true,
                    });
                }
                Err(error) if has_code(&error, RESOURCE_EXISTS) => {
                    debug!(
                        operation = CREATE_SECRET,
                        secret = %self.secret_id,
                        rotation = %rotation,
                        "the secret was created since DescribeSecret; describing it again"
                    );
                    self.describe()
                        .await
                        .map_err(|error| self.provider_error(DESCRIBE_SECRET, None, &error))?
                }
                Err(error) => return Err(self.provider_error(CREATE_SECRET, None, &error)),
            },
            Err(error) => return Err(self.provider_error(DESCRIBE_SECRET, None, &error)),
        };
        self.stage_existing(&description, rotation, value).await
    }

    async fn promote(&self, version: &VersionId) -> Result<Promoted, ProviderError> {
        // Right after stage, the labels it saw (updated by its own write) save a
        // DescribeSecret. When they turn out stale, the promotion is retried from a fresh one.
        if let Some(stages) = self.take_staged_labels() {
            match self.promote_with(version, &stages, None).await {
                Err(ProviderError::Cloud { .. } | ProviderError::VersionNotFound { .. }) => {
                    debug!(secret = %self.secret_id, version = %version, "labels from stage were stale; describing again");
                }
                result => return result,
            }
        }
        let description = self
            .describe()
            .await
            .map_err(|error| self.provider_error(DESCRIBE_SECRET, Some(version), &error))?;
        let empty = HashMap::new();
        let stages = description.version_ids_to_stages().unwrap_or(&empty);
        self.promote_with(version, stages, Some(&description)).await
    }

    async fn read(&self, version: &VersionId) -> Result<SecretValue, ProviderError> {
        debug!(operation = GET_SECRET_VALUE, secret = %self.secret_id, version = %version, "calling AWS");
        let call = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_id(version.as_str())
            .send();
        let output = self
            .timed(GET_SECRET_VALUE, call)
            .await
            .map_err(|error| self.provider_error(GET_SECRET_VALUE, Some(version), &error))?;

        match output.secret_string() {
            Some(value) => Ok(SecretValue::new(value.to_owned())),
            None => {
                let content = if output.secret_binary().is_some() {
                    "a binary value (SecretBinary)"
                } else {
                    "no value"
                };
                Err(ProviderError::Cloud {
                    secret: self.secret_id.clone(),
                    message: format!(
                        "version {version} contains {content} instead of a SecretString; rotor reads and writes only SecretString values"
                    ),
                })
            }
        }
    }

    async fn current_version(&self) -> Result<Option<VersionId>, ProviderError> {
        match self.describe().await {
            Ok(description) => Ok(description
                .version_ids_to_stages()
                .and_then(|stages| label_holder(stages, CURRENT))),
            Err(error) if has_code(&error, RESOURCE_NOT_FOUND) => Ok(None),
            Err(error) => Err(self.provider_error(DESCRIBE_SECRET, None, &error)),
        }
    }
}

impl AwsRotator {
    /// Moves `AWSCURRENT` to `version` given the secret's labels. `description`, when
    /// given, is checked for a pending deletion before any write.
    async fn promote_with(
        &self,
        version: &VersionId,
        stages: &HashMap<String, Vec<String>>,
        description: Option<&DescribeSecretOutput>,
    ) -> Result<Promoted, ProviderError> {
        // NOTE: DescribeSecret lists only versions that carry a staging label, so a version
        // that lost all its labels is reported as not found although AWS still keeps it.
        let Some(labels) = stages.get(version.as_str()) else {
            return Err(self.version_not_found(version));
        };
        let pending = labels.iter().any(|label| label == PENDING);
        let reject_deleted = || description.map_or(Ok(()), |description| self.reject_deleted(description));

        if labels.iter().any(|label| label == CURRENT) {
            if pending {
                reject_deleted()?;
                self.remove_label(PENDING, version).await?;
            }
            return Ok(Promoted {
                previous: label_holder(stages, PREVIOUS),
            });
        }

        reject_deleted()?;
        let previous = label_holder(stages, CURRENT);
        // AWS moves AWSPREVIOUS to the version that loses AWSCURRENT in the same call.
        self.move_current(version, previous.as_ref()).await?;
        if pending {
            self.remove_label(PENDING, version).await?;
        }
        Ok(Promoted { previous })
    }

    fn take_staged_labels(&self) -> Option<VersionLabels> {
        self.staged_labels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    fn remember_staged_labels(&self, stages: VersionLabels) {
        *self
            .staged_labels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(stages);
    }

    /// Writes `value` as a new `AWSPENDING` version of an existing secret, unless a version
    /// with the rotation id exists already.
    async fn stage_existing(
        &self,
        description: &DescribeSecretOutput,
        rotation: &RotationId,
        value: &SecretValue,
    ) -> Result<Staged, ProviderError> {
        let version = VersionId::new(rotation.as_str());
        let exists = description
            .version_ids_to_stages()
            .is_some_and(|stages| stages.contains_key(rotation.as_str()));
        if exists {
            return Ok(Staged {
                version,
                written: false,
            });
        }
        self.reject_deleted(description)?;

        match self.put_pending(rotation, value).await {
            Ok(()) => {
                let mut stages = description.version_ids_to_stages().cloned().unwrap_or_default();
                for labels in stages.values_mut() {
                    labels.retain(|label| label != PENDING);
                }
                stages.insert(rotation.as_str().to_owned(), vec![PENDING.to_owned()]);
                self.remember_staged_labels(stages);
                Ok(Staged { version, written: true })
            }
            // PutSecretValue fails when the token is the id of an existing version with other
            // data (moto 5.2 returns ResourceExistsException). DescribeSecret did not list that
            // version because it has no staging label, but it is this rotation's version.
            Err(error) if has_code(&error, RESOURCE_EXISTS) => {
                debug!(
                    operation = PUT_SECRET_VALUE,
                    secret = %self.secret_id,
                    rotation = %rotation,
                    error = %error_message(PUT_SECRET_VALUE, &error),
                    "a version with the rotation id exists already; keeping it"
                );
                Ok(Staged {
                    version,
                    written: false,
                })
            }
            Err(error) => Err(self.provider_error(PUT_SECRET_VALUE, None, &error)),
        }
    }

    async fn describe(&self) -> Result<DescribeSecretOutput, SdkError<DescribeSecretError, HttpResponse>> {
        debug!(operation = DESCRIBE_SECRET, secret = %self.secret_id, "calling AWS");
        self.timed(
            DESCRIBE_SECRET,
            self.client.describe_secret().secret_id(&self.secret_id).send(),
        )
        .await
    }

    /// Creates the secret with `value` as its first version, which AWS labels `AWSCURRENT`,
    /// tagged as managed by rotor for the owning `SecretRotation`.
    async fn create(
        &self,
        rotation: &RotationId,
        value: &SecretValue,
    ) -> Result<(), SdkError<CreateSecretError, HttpResponse>> {
        debug!(operation = CREATE_SECRET, secret = %self.secret_id, rotation = %rotation, "calling AWS");
        let owner = format!("{}/{}", self.owner.namespace, self.owner.name);
        let call = self
            .client
            .create_secret()
            .name(&self.secret_id)
            .secret_string(value.expose())
            .client_request_token(rotation.as_str())
            .tags(Tag::builder().key(MANAGED_BY_TAG).value("rotor").build())
            .tags(Tag::builder().key(OWNER_TAG).value(owner).build())
            .send();
        self.timed(CREATE_SECRET, call).await?;
        Ok(())
    }

    async fn put_pending(
        &self,
        rotation: &RotationId,
        value: &SecretValue,
    ) -> Result<(), SdkError<PutSecretValueError, HttpResponse>> {
        debug!(operation = PUT_SECRET_VALUE, secret = %self.secret_id, rotation = %rotation, "calling AWS");
        let call = self
            .client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(value.expose())
            .client_request_token(rotation.as_str())
            .version_stages(PENDING)
            .send();
        self.timed(PUT_SECRET_VALUE, call).await?;
        Ok(())
    }

    /// Moves `AWSCURRENT` from `current` to `version`.
    async fn move_current(&self, version: &VersionId, current: Option<&VersionId>) -> Result<(), ProviderError> {
        debug!(
            operation = UPDATE_SECRET_VERSION_STAGE,
            secret = %self.secret_id,
            stage = CURRENT,
            version = %version,
            "calling AWS"
        );
        let call = self
            .client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(CURRENT)
            .move_to_version_id(version.as_str())
            .set_remove_from_version_id(current.map(|current| current.as_str().to_owned()))
            .send();
        self.timed(UPDATE_SECRET_VERSION_STAGE, call)
            .await
            .map_err(|error| self.provider_error(UPDATE_SECRET_VERSION_STAGE, Some(version), &error))?;
        Ok(())
    }

    /// Removes the staging label `stage` from `version`.
    async fn remove_label(&self, stage: &str, version: &VersionId) -> Result<(), ProviderError> {
        debug!(
            operation = UPDATE_SECRET_VERSION_STAGE,
            secret = %self.secret_id,
            stage,
            version = %version,
            "calling AWS"
        );
        let call = self
            .client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .remove_from_version_id(version.as_str())
            .send();
        self.timed(UPDATE_SECRET_VERSION_STAGE, call)
            .await
            .map_err(|error| self.provider_error(UPDATE_SECRET_VERSION_STAGE, Some(version), &error))?;
        Ok(())
    }

    /// Returns [`ProviderError::SecretDeleted`] when the secret is scheduled for deletion.
    fn reject_deleted(&self, description: &DescribeSecretOutput) -> Result<(), ProviderError> {
        match description.deleted_date() {
            Some(date) => Err(ProviderError::SecretDeleted {
                secret: self.secret_id.clone(),
                message: format!("DescribeSecret reports the deletion date {date}"),
            }),
            None => Ok(()),
        }
    }

    fn version_not_found(&self, version: &VersionId) -> ProviderError {
        ProviderError::VersionNotFound {
            secret: self.secret_id.clone(),
            version: version.to_string(),
        }
    }

    /// Awaits one AWS call and reports its outcome and duration to the observer.
    async fn timed<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        let started = Instant::now();
        let result = call.await;
        if let Some(observer) = &self.observer {
            // A missing secret is an expected response before the first rotation, so it gets
            // its own outcome instead of counting as a cloud error.
            let outcome = match &result {
                Ok(_) => "success",
                Err(error) if has_code(error, RESOURCE_NOT_FOUND) => "NotFound",
                Err(error) => self.provider_error(operation, None, error).reason().as_str(),
            };
            observer.observe("aws", operation, outcome, started.elapsed());
        }
        result
    }

    fn provider_error<E>(
        &self,
        operation: &str,
        version: Option<&VersionId>,
        error: &SdkError<E, HttpResponse>,
    ) -> ProviderError
    where
        E: ProvideErrorMetadata + Error + 'static,
    {
        provider_error(&self.secret_id, operation, version, error)
    }
}

/// Returns the version that carries the staging label `stage`.
fn label_holder(stages: &HashMap<String, Vec<String>>, stage: &str) -> Option<VersionId> {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|label| label == stage))
        .map(|(version, _)| VersionId::new(version.as_str()))
}

fn has_code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>, code: &str) -> bool {
    error.code() == Some(code)
}

/// Maps an SDK error of `operation` on `secret` to a [`ProviderError`] by the service error
/// code and the HTTP status. `version` is the version the call addressed, if any, so that
/// `ResourceNotFoundException` becomes [`ProviderError::VersionNotFound`].
fn provider_error<E>(
    secret: &str,
    operation: &str,
    version: Option<&VersionId>,
    error: &SdkError<E, HttpResponse>,
) -> ProviderError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let code = error.code().unwrap_or_default();
    let status = error.raw_response().map(|response| response.status().as_u16());
    let secret = secret.to_owned();

    if AUTH_ERROR_CODES.contains(&code) || matches!(status, Some(401 | 403)) {
        return ProviderError::AuthFailed {
            secret,
            message: error_message(operation, error),
        };
    }
    if THROTTLING_ERROR_CODES.contains(&code) || status == Some(429) {
        return ProviderError::Throttled {
            secret,
            message: error_message(operation, error),
        };
    }
    if code == INVALID_REQUEST && error.message().is_some_and(is_deletion_message) {
        return ProviderError::SecretDeleted {
            secret,
            message: error_message(operation, error),
        };
    }
    if code == RESOURCE_NOT_FOUND
        && let Some(version) = version
    {
        return ProviderError::VersionNotFound {
            secret,
            version: version.to_string(),
        };
    }
    ProviderError::Cloud {
        secret,
        message: error_message(operation, error),
    }
}

/// Returns true when an `InvalidRequestException` message is about a secret scheduled for
/// deletion.
///
/// moto 5.2 writes "marked for deletion" (UpdateSecret) and "marked deleted" (GetSecretValue,
/// RotateSecret, DeleteSecret). NOTE: the wording of the live AWS service was not checked
/// here, and "scheduled for deletion" is matched as a likely variant of it.
fn is_deletion_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["marked for deletion", "marked deleted", "scheduled for deletion"]
        .iter()
        .any(|phrase| message.contains(phrase))
}

/// Describes an SDK error for a [`ProviderError`] message.
///
/// `DisplayErrorContext` ends with the error's `Debug` output, which for service and
/// response errors includes the raw HTTP response. A `GetSecretValue` response body
/// contains the secret value, so those two kinds are described by code, message, status and
/// request id, or by their `Display` chain, instead.
fn error_message<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let status = error.raw_response().map_or_else(
        || "no HTTP status".to_owned(),
        |response| format!("HTTP {}", response.status().as_u16()),
    );
    let request_id = error
        .request_id()
        .map(|id| format!(", request id {id}"))
        .unwrap_or_default();

    match error {
        SdkError::ServiceError(context) => match error.code() {
            Some(code) => {
                let message = error.message().unwrap_or("no message");
                format!("{operation} returned {code}: {message} ({status}{request_id})")
            }
            None => {
                let chain = display_chain(context.err());
                format!("{operation} returned an error without a code: {chain} ({status}{request_id})")
            }
        },
        SdkError::ResponseError(_) => {
            let chain = display_chain(error);
            format!("{operation} returned a response that the SDK could not parse: {chain} ({status}{request_id})")
        }
        _ => format!("{operation} failed: {}", DisplayErrorContext(error)),
    }
}

/// Joins the `Display` output of `error` and of its sources with ": ".
fn display_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use aws_sdk_secretsmanager::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;

    use super::*;

    const SECRET: &str = "prod/db";

    fn service_error(code: &str, message: &str, status: u16) -> SdkError<DescribeSecretError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let response = HttpResponse::new(status.try_into().expect("valid HTTP status"), "{}".into());
        SdkError::service_error(DescribeSecretError::generic(meta), response)
    }

    fn map(error: &SdkError<DescribeSecretError, HttpResponse>, version: Option<&VersionId>) -> ProviderError {
        provider_error(SECRET, DESCRIBE_SECRET, version, error)
    }

    #[test]
    fn auth_codes_map_to_auth_failed() {
        for code in AUTH_ERROR_CODES {
            let error = map(&service_error(code, "denied", 400), None);
            assert!(
                matches!(error, ProviderError::AuthFailed { .. }),
                "{code} mapped to {error:?}"
            );
        }
    }

    #[test]
    fn auth_statuses_map_to_auth_failed() {
        for status in [401, 403] {
            let error = map(&service_error("SomeNewException", "denied", status), None);
            assert!(
                matches!(error, ProviderError::AuthFailed { .. }),
                "HTTP {status} mapped to {error:?}"
            );
        }
    }

    #[test]
    fn throttling_maps_to_throttled() {
        for code in THROTTLING_ERROR_CODES {
            let error = map(&service_error(code, "slow down", 400), None);
            assert!(
                matches!(error, ProviderError::Throttled { .. }),
                "{code} mapped to {error:?}"
            );
        }
        let error = map(&service_error("SomeNewException", "slow down", 429), None);
        assert!(
            matches!(error, ProviderError::Throttled { .. }),
            "HTTP 429 mapped to {error:?}"
        );
    }

    #[test]
    fn deletion_message_maps_to_secret_deleted() {
        let messages = [
            "You can't perform this operation on the secret because it was marked for deletion.",
            "You can't create this secret because a secret with this name is already scheduled for deletion.",
            "You tried to perform the operation on a secret that's currently marked deleted.",
        ];
        for message in messages {
            let error = map(&service_error(INVALID_REQUEST, message, 400), None);
            assert!(
                matches!(error, ProviderError::SecretDeleted { .. }),
                "{message:?} mapped to {error:?}"
            );
        }
    }

    #[test]
    fn other_invalid_request_maps_to_cloud() {
        let error = map(
            &service_error(INVALID_REQUEST, "The parameter is not valid.", 400),
            None,
        );
        assert!(matches!(error, ProviderError::Cloud { .. }), "mapped to {error:?}");
    }

    #[test]
    fn missing_version_maps_to_version_not_found() {
        let version = VersionId::new("r1");
        let error = map(&service_error(RESOURCE_NOT_FOUND, "not found", 400), Some(&version));
        let ProviderError::VersionNotFound {
            secret,
            version: missing,
        } = error
        else {
            panic!("mapped to {error:?}");
        };
        assert_eq!(secret, SECRET);
        assert_eq!(missing, "r1");
    }

    #[test]
    fn missing_secret_without_version_maps_to_cloud() {
        let error = map(&service_error(RESOURCE_NOT_FOUND, "not found", 400), None);
        assert!(matches!(error, ProviderError::Cloud { .. }), "mapped to {error:?}");
    }

    #[test]
    fn modeled_not_found_maps_to_version_not_found() {
        let meta = ErrorMetadata::builder()
            .code(RESOURCE_NOT_FOUND)
            .message("not found")
            .build();
        let modeled = ResourceNotFoundException::builder()
            .message("not found")
            .meta(meta)
            .build();
        let response = HttpResponse::new(400.try_into().expect("valid HTTP status"), "{}".into());
        let error: SdkError<DescribeSecretError, HttpResponse> =
            SdkError::service_error(DescribeSecretError::ResourceNotFoundException(modeled), response);
        assert!(has_code(&error, RESOURCE_NOT_FOUND));

        let version = VersionId::new("r1");
        let error = map(&error, Some(&version));
        assert!(
            matches!(error, ProviderError::VersionNotFound { .. }),
            "mapped to {error:?}"
        );
    }

    #[test]
    fn server_error_maps_to_cloud() {
        let error = map(&service_error("InternalServiceError", "try again", 500), None);
        assert!(matches!(error, ProviderError::Cloud { .. }), "mapped to {error:?}");
    }

    #[test]
    fn service_error_message_names_code() {
        let error = map(&service_error("InternalServiceError", "try again", 500), None);
        let ProviderError::Cloud { message, .. } = error else {
            panic!("mapped to {error:?}");
        };
        assert!(message.contains(DESCRIBE_SECRET), "{message}");
        assert!(message.contains("InternalServiceError"), "{message}");
        assert!(message.contains("try again"), "{message}");
        assert!(message.contains("HTTP 500"), "{message}");
    }

    #[test]
    fn response_error_omits_body() {
        let body = r#"{"SecretString":"hunter2"}"#;
        let response = HttpResponse::new(200.try_into().expect("valid HTTP status"), body.into());
        let error: SdkError<DescribeSecretError, HttpResponse> = SdkError::response_error("unexpected token", response);
        let mapped = map(&error, None);
        let ProviderError::Cloud { message, .. } = mapped else {
            panic!("mapped to {mapped:?}");
        };
        assert!(message.contains("unexpected token"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn dispatch_failure_maps_to_cloud() {
        let source = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error: SdkError<DescribeSecretError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(source.into()));
        let mapped = map(&error, None);
        let ProviderError::Cloud { message, .. } = mapped else {
            panic!("mapped to {mapped:?}");
        };
        assert!(message.contains("connection refused"), "{message}");
    }

    #[test]
    fn timeout_maps_to_cloud() {
        let error: SdkError<DescribeSecretError, HttpResponse> = SdkError::timeout_error("operation timed out");
        let mapped = map(&error, Some(&VersionId::new("r1")));
        assert!(matches!(mapped, ProviderError::Cloud { .. }), "mapped to {mapped:?}");
    }

    fn credentials(pairs: &[(&str, &str)]) -> Credentials {
        Credentials {
            source: "team-a/aws-credentials".to_owned(),
            data: pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), SecretValue::new((*value).to_owned())))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn factory() -> AwsFactory {
        AwsFactory::from_config(SdkConfig::builder().behavior_version(BehaviorVersion::latest()).build())
    }

    fn spec() -> AwsProvider {
        AwsProvider {
            region: "eu-west-1".to_owned(),
            secret_id: SECRET.to_owned(),
            endpoint: None,
            auth: None,
        }
    }

    fn owner() -> Owner {
        Owner {
            namespace: "team-a".to_owned(),
            name: "db".to_owned(),
        }
    }

    #[test]
    fn rotator_uses_spec_region() {
        let rotator = factory().rotator(&spec(), None, &owner()).expect("builds a rotator");
        assert_eq!(rotator.client.config().region(), Some(&Region::new("eu-west-1")));
        assert_eq!(rotator.secret_name(), SECRET);
        assert_eq!(rotator.provider(), "aws");
    }

    #[test]
    fn rotator_rejects_empty_region() {
        let spec = AwsProvider {
            region: " ".to_owned(),
            ..spec()
        };
        let error = factory()
            .rotator(&spec, None, &owner())
            .expect_err("rejects the region");
        assert!(matches!(error, ProviderError::InvalidConfig { .. }), "{error:?}");
    }

    #[test]
    fn rotator_rejects_endpoint_without_scheme() {
        let spec = AwsProvider {
            endpoint: Some("localhost:5000".to_owned()),
            ..spec()
        };
        let error = factory()
            .rotator(&spec, None, &owner())
            .expect_err("rejects the endpoint");
        assert!(matches!(error, ProviderError::InvalidConfig { .. }), "{error:?}");
    }

    #[test]
    fn credentials_missing_secret_key() {
        let credentials = credentials(&[(ACCESS_KEY_ID_KEY, "AKIDEXAMPLE")]);
        let error = factory()
            .rotator(&spec(), Some(&credentials), &owner())
            .expect_err("rejects the credentials");
        let ProviderError::CredentialsNotFound { name, message } = error else {
            panic!("{error:?}");
        };
        assert_eq!(name, "team-a/aws-credentials");
        assert!(message.contains(SECRET_ACCESS_KEY_KEY), "{message}");
    }

    #[test]
    fn credentials_empty_key_rejected() {
        let credentials = credentials(&[(ACCESS_KEY_ID_KEY, ""), (SECRET_ACCESS_KEY_KEY, "secret")]);
        let error = static_credentials(&credentials).expect_err("rejects the credentials");
        let ProviderError::CredentialsNotFound { message, .. } = error else {
            panic!("{error:?}");
        };
        assert!(message.contains(ACCESS_KEY_ID_KEY), "{message}");
    }

    #[test]
    fn credentials_with_session_token() {
        let credentials = credentials(&[
            (ACCESS_KEY_ID_KEY, "AKIDEXAMPLE"),
            (SECRET_ACCESS_KEY_KEY, "secret"),
            (SESSION_TOKEN_KEY, "token"),
        ]);
        let aws = static_credentials(&credentials).expect("reads the credentials");
        assert_eq!(aws.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(aws.secret_access_key(), "secret");
        assert_eq!(aws.session_token(), Some("token"));
    }

    #[test]
    fn credentials_empty_session_token_ignored() {
        let credentials = credentials(&[
            (ACCESS_KEY_ID_KEY, "AKIDEXAMPLE"),
            (SECRET_ACCESS_KEY_KEY, "secret"),
            (SESSION_TOKEN_KEY, ""),
        ]);
        let aws = static_credentials(&credentials).expect("reads the credentials");
        assert_eq!(aws.session_token(), None);
    }

    #[test]
    fn label_holder_finds_label() {
        let stages = HashMap::from([
            ("v1".to_owned(), vec![PREVIOUS.to_owned()]),
            ("v2".to_owned(), vec![CURRENT.to_owned(), PENDING.to_owned()]),
        ]);
        assert_eq!(label_holder(&stages, CURRENT), Some(VersionId::new("v2")));
        assert_eq!(label_holder(&stages, PREVIOUS), Some(VersionId::new("v1")));
        assert_eq!(label_holder(&stages, "AWSOTHER"), None);
    }
}
