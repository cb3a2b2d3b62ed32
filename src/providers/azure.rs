//! Azure Key Vault provider. [`AzureFactory`] keeps the default credential, built once at
//! startup, and builds one [`AzureRotator`] per `SecretRotation`. Building a rotator does no
//! IO, but `stage`, `promote`, `read` and `current_version` call the Key Vault REST API.
//!
//! Key Vault has no staging labels: `SetSecret` adds a version that is the latest, and so
//! current, at once. `stage` therefore writes the new version and `promote` only checks that
//! it is still the latest enabled version. Each version that rotor writes carries the tags
//! `rotor.dev/rotation-id` (so that a repeated `stage` finds it instead of writing another)
//! and `rotor.dev/previous-version` (so that `promote` reports the version it replaced, also
//! after a restart). A secret whose latest version is disabled is left as it is: `stage`,
//! `promote` and `current_version` return [`ProviderError::SecretDisabled`] for it.

use std::collections::HashMap;
use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use azure_core::credentials::{Secret as CredentialSecret, TokenCredential};
use azure_core::error::{Error as AzureError, ErrorKind, ErrorResponse};
use azure_core::http::{ClientOptions, StatusCode, Url};
use azure_identity::{ClientSecretCredential, WorkloadIdentityCredential};
use azure_security_keyvault_secrets::models::{Secret, SecretProperties, SetSecretParameters};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use tracing::debug;

use super::{MANAGED_BY_TAG, OWNER_TAG, Owner};
use crate::api::AzureProvider;
use crate::rotation::{
    CallObserver, Credentials, Promoted, ProviderError, RotationId, Rotator, SecretValue, Staged, VersionId,
};

/// Tag on each version rotor writes: the id of the rotation that wrote it.
pub const ROTATION_ID_TAG: &str = "rotor.dev/rotation-id";
/// Tag on each version rotor writes: the version that was the latest before it, if any.
pub const PREVIOUS_VERSION_TAG: &str = "rotor.dev/previous-version";

/// Keys of the credentials Secret that `spec.provider.azure.auth.secretRef` names.
const TENANT_ID_KEY: &str = "AZURE_TENANT_ID";
const CLIENT_ID_KEY: &str = "AZURE_CLIENT_ID";
const CLIENT_SECRET_KEY: &str = "AZURE_CLIENT_SECRET";

/// Key Vault operation names, as the REST API reference names them, for log fields, metrics
/// and error messages.
const GET_SECRET: &str = "GetSecret";
const GET_SECRET_VERSIONS: &str = "GetSecretVersions";
const SET_SECRET: &str = "SetSecret";

/// Error codes (top-level or inner) that mean the secret is disabled.
const DISABLED_CODES: &[&str] = &["SecretDisabled"];
/// Error codes (top-level or inner) that mean the secret name is deleted but not purged.
const DELETED_CODES: &[&str] = &["ObjectIsDeletedButRecoverable", "ObjectIsBeingDeleted"];

/// DNS suffixes of Key Vault and Managed HSM endpoints in the Azure public, China and US
/// Government clouds.
const AZURE_VAULT_SUFFIXES: &[&str] = &[
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".managedhsm.azure.net",
    ".managedhsm.azure.cn",
    ".managedhsm.usgovcloudapi.net",
];

/// Maximum length, in characters, of the error text copied into a [`ProviderError`].
const MAX_MESSAGE_CHARS: usize = 512;

/// Builds [`AzureRotator`]s with a credential from the credentials Secret a spec names, or
/// else with the default credential.
#[derive(Clone, Debug)]
pub struct AzureFactory {
    /// Credential for specs without `auth.secretRef`, or why none could be built.
    default_credential: Result<Arc<dyn TokenCredential>, String>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl AzureFactory {
    /// Builds the Azure Workload Identity credential from `AZURE_CLIENT_ID`,
    /// `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE`. When they are missing, only specs
    /// with `auth.secretRef` work, and the others fail with [`ProviderError::InvalidConfig`].
    pub fn from_env() -> Self {
        let default_credential = match WorkloadIdentityCredential::new(None) {
            Ok(credential) => Ok(credential as Arc<dyn TokenCredential>),
            Err(error) => {
                debug!(error = %error, "Azure Workload Identity is not configured");
                Err(error.to_string())
            }
        };
        Self {
            default_credential,
            observer: None,
        }
    }

    /// Creates a factory whose default credential is `credential`, for tests against an
    /// emulator that accepts any bearer token.
    pub fn with_credential(credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            default_credential: Ok(credential),
            observer: None,
        }
    }

    /// Reports every Key Vault call of the rotators this factory builds to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Builds the rotator for the secret that `spec` names. `credentials`, when given,
    /// replace the default credential and must contain the keys `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`.
    ///
    /// Returns [`ProviderError::InvalidConfig`] for an empty secret name, a vault URL that is
    /// not an https URL, or a missing default credential, and
    /// [`ProviderError::CredentialsNotFound`] for a missing or empty credentials key.
    pub fn rotator(
        &self,
        spec: &AzureProvider,
        credentials: Option<&Credentials>,
        owner: &Owner,
    ) -> Result<AzureRotator, ProviderError> {
        let invalid = |message: String| ProviderError::InvalidConfig {
            secret: spec.secret_name.clone(),
            message,
        };
        if spec.secret_name.trim().is_empty() {
            return Err(invalid("spec.provider.azure.secretName is empty".to_owned()));
        }
        let vault_url = Url::parse(&spec.vault_url).map_err(|error| {
            invalid(format!(
                "spec.provider.azure.vaultUrl {:?} is invalid: {error}",
                spec.vault_url
            ))
        })?;
        let Some(host) = vault_url.host_str().filter(|_| vault_url.scheme() == "https") else {
            return Err(invalid(format!(
                "spec.provider.azure.vaultUrl {:?} is not an https:// URL with a host",
                spec.vault_url
            )));
        };

        let credential = match credentials {
            Some(credentials) => client_secret_credential(credentials)?,
            // NOTE: a vault on a loopback address cannot be Azure, only an emulator that
            // accepts any bearer token (such as the one in emulators/azure-key-vault), so it
            // gets a fixed token instead of a token request to Entra ID.
            None if is_loopback_host(host) => Arc::new(LoopbackEmulatorCredential),
            None => self.default_credential.clone().map_err(|error| {
                invalid(format!(
                    "Azure Workload Identity is not configured ({error}); set AZURE_CLIENT_ID, \
                     AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE for rotor, or set \
                     spec.provider.azure.auth.secretRef"
                ))
            })?,
        };

        let options = SecretClientOptions {
            client_options: ClientOptions::default(),
            // NOTE: the client checks that the vault host ends with the resource host of the
            // 401 challenge, which fails for emulators on localhost. The check stays on for
            // every Key Vault and Managed HSM host of the Azure clouds and is off elsewhere.
            verify_challenge_resource: Some(is_azure_vault_host(host)),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(vault_url.as_str(), credential, Some(options))
            .map_err(|error| invalid(format!("cannot build a Key Vault client: {error}")))?;

        Ok(AzureRotator {
            client,
            vault_url: spec.vault_url.clone(),
            secret_name: spec.secret_name.clone(),
            owner: owner.clone(),
            observer: self.observer.clone(),
        })
    }
}

/// Returns true for `localhost` and loopback IP addresses.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Issues a fixed bearer token, for Key Vault emulators on a loopback address.
#[derive(Debug)]
struct LoopbackEmulatorCredential;

#[async_trait]
impl TokenCredential for LoopbackEmulatorCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        let expires = azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(azure_core::credentials::AccessToken::new(
            "rotor-loopback-emulator",
            expires,
        ))
    }
}

/// Returns true when `host` is a Key Vault or Managed HSM host of an Azure cloud.
fn is_azure_vault_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    AZURE_VAULT_SUFFIXES.iter().any(|suffix| host.ends_with(suffix))
}

/// Builds a service principal credential from a credentials Secret. An empty value counts
/// as missing.
fn client_secret_credential(credentials: &Credentials) -> Result<Arc<dyn TokenCredential>, ProviderError> {
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
    let tenant_id = required(TENANT_ID_KEY)?;
    let client_id = required(CLIENT_ID_KEY)?;
    let client_secret = required(CLIENT_SECRET_KEY)?;
    let credential = ClientSecretCredential::new(&tenant_id, client_id, CredentialSecret::new(client_secret), None)
        .map_err(|error| ProviderError::CredentialsNotFound {
            name: credentials.source.clone(),
            message: format!("the keys do not form a valid credential: {error}"),
        })?;
    Ok(credential)
}

/// Properties of one version, as a version listing returns them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct VersionInfo {
    id: String,
    /// Creation time in Unix seconds, the resolution Key Vault reports.
    created: Option<i64>,
    enabled: Option<bool>,
    tags: HashMap<String, String>,
}

impl VersionInfo {
    fn from_properties(properties: SecretProperties) -> Option<Self> {
        let id = properties.resource_id().ok()?.version?;
        let attributes = properties.attributes.unwrap_or_default();
        Some(Self {
            id,
            created: attributes.created.map(|created| created.unix_timestamp()),
            enabled: attributes.enabled,
            tags: properties.tags.unwrap_or_default(),
        })
    }
}

/// The latest version as far as a version listing can tell.
#[derive(Debug, PartialEq, Eq)]
enum ListedLatest<'a> {
    /// The secret has no versions.
    None,
    /// The one version with the newest creation time.
    Version(&'a VersionInfo),
    /// Several versions share the newest creation second, or one lacks a creation time.
    Ambiguous,
}

/// Picks the latest version from a listing by creation time.
fn listed_latest(versions: &[VersionInfo]) -> ListedLatest<'_> {
    if versions.iter().any(|version| version.created.is_none()) {
        return ListedLatest::Ambiguous;
    }
    let Some(newest) = versions.iter().filter_map(|version| version.created).max() else {
        return ListedLatest::None;
    };
    let mut at_newest = versions.iter().filter(|version| version.created == Some(newest));
    match (at_newest.next(), at_newest.next()) {
        (Some(version), None) => ListedLatest::Version(version),
        _ => ListedLatest::Ambiguous,
    }
}

/// Returns the version that `rotation` wrote, if the listing has one.
fn rotation_version<'a>(versions: &'a [VersionInfo], rotation: &RotationId) -> Option<&'a VersionInfo> {
    versions
        .iter()
        .find(|version| version.tags.get(ROTATION_ID_TAG).map(String::as_str) == Some(rotation.as_str()))
}

/// Tags of a version that `rotation` writes for `owner`, replacing `previous`.
fn version_tags(rotation: &RotationId, owner: &Owner, previous: Option<&str>) -> HashMap<String, String> {
    let mut tags = HashMap::from([
        (ROTATION_ID_TAG.to_owned(), rotation.as_str().to_owned()),
        (MANAGED_BY_TAG.to_owned(), "rotor".to_owned()),
        (OWNER_TAG.to_owned(), format!("{}/{}", owner.namespace, owner.name)),
    ]);
    if let Some(previous) = previous {
        tags.insert(PREVIOUS_VERSION_TAG.to_owned(), previous.to_owned());
    }
    tags
}

/// A [`Rotator`] for one Azure Key Vault secret.
pub struct AzureRotator {
    client: SecretClient,
    vault_url: String,
    secret_name: String,
    owner: Owner,
    observer: Option<Arc<dyn CallObserver>>,
}

impl fmt::Debug for AzureRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureRotator")
            .field("vault_url", &self.vault_url)
            .field("secret_name", &self.secret_name)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Rotator for AzureRotator {
    fn provider(&self) -> &'static str {
        "azure"
    }

    fn secret_name(&self) -> String {
        self.secret_name.clone()
    }

    async fn stage(&self, rotation: &RotationId, value: &SecretValue) -> Result<Staged, ProviderError> {
        let versions = self.list_versions().await?;
        if let Some(existing) = rotation_version(&versions, rotation) {
            return Ok(Staged {
                version: VersionId::new(existing.id.as_str()),
                written: false,
            });
        }

        let previous = match listed_latest(&versions) {
            ListedLatest::None => None,
            ListedLatest::Version(latest) => {
                if latest.enabled == Some(false) {
                    return Err(self.disabled_error(format!("the latest version {} is disabled", latest.id)));
                }
                Some(latest.id.clone())
            }
            // Creation times have one-second resolution, so only Key Vault can tell.
            ListedLatest::Ambiguous => match self.get(None).await? {
                Some(latest) => Some(self.version_of(&latest)?.to_string()),
                None => return Err(self.hidden_latest_error(versions.len())),
            },
        };

        let written = self.set(rotation, value, previous.as_deref()).await?;
        Ok(Staged {
            version: self.version_of(&written)?,
            written: true,
        })
    }

    async fn promote(&self, version: &VersionId) -> Result<Promoted, ProviderError> {
        let Some(latest) = self.latest().await? else {
            return Err(self.version_not_found(version));
        };
        let latest_id = self.version_of(&latest)?;
        if latest_id == *version {
            if latest.attributes.as_ref().and_then(|attributes| attributes.enabled) == Some(false) {
                return Err(self.disabled_error(format!("version {version} is disabled")));
            }
            let previous = latest
                .tags
                .as_ref()
                .and_then(|tags| tags.get(PREVIOUS_VERSION_TAG))
                .map(|previous| VersionId::new(previous.as_str()));
            return Ok(Promoted { previous });
        }

        // Key Vault makes only the newest version current, so a version that another writer
        // superseded cannot become current again without a new write.
        match self.get(Some(version)).await? {
            None => Err(self.version_not_found(version)),
            Some(_) => Err(ProviderError::Cloud {
                secret: self.secret_name.clone(),
                message: format!(
                    "version {version} is no longer the latest: version {latest_id} was set after it, \
                     and Key Vault cannot make an older version current"
                ),
            }),
        }
    }

    async fn read(&self, version: &VersionId) -> Result<SecretValue, ProviderError> {
        // NOTE: Key Vault returns 403 with inner code SecretDisabled for a disabled version,
        // which maps to SecretDisabled. The lowkey-vault emulator reportedly returns 404
        // instead, which maps to VersionNotFound; only the 403 path is tested.
        let secret = self
            .get(Some(version))
            .await?
            .ok_or_else(|| self.version_not_found(version))?;
        match secret.value {
            Some(value) => Ok(SecretValue::new(value)),
            None => Err(ProviderError::Cloud {
                secret: self.secret_name.clone(),
                message: format!("{GET_SECRET} returned version {version} without a value"),
            }),
        }
    }

    async fn current_version(&self) -> Result<Option<VersionId>, ProviderError> {
        match self.latest().await? {
            Some(latest) => Ok(Some(self.version_of(&latest)?)),
            None => Ok(None),
        }
    }
}

impl AzureRotator {
    /// Gets the latest version, or `None` when the secret does not exist.
    ///
    /// NOTE: Key Vault returns 403 `SecretDisabled` when the latest version is disabled, but
    /// the lowkey-vault emulator reportedly returns 404 as for a missing secret. A 404 is
    /// therefore followed by a version listing, and a secret that has versions is reported
    /// as disabled. Only the 403 path is tested.
    async fn latest(&self) -> Result<Option<Secret>, ProviderError> {
        if let Some(latest) = self.get(None).await? {
            return Ok(Some(latest));
        }
        let versions = self.list_versions().await?;
        if versions.is_empty() {
            return Ok(None);
        }
        Err(self.hidden_latest_error(versions.len()))
    }

    /// Gets `version`, or the latest version when `None`. Returns `None` on HTTP 404.
    async fn get(&self, version: Option<&VersionId>) -> Result<Option<Secret>, ProviderError> {
        let version_name = version.map_or("latest", VersionId::as_str);
        debug!(operation = GET_SECRET, secret = %self.secret_name, version = version_name, "calling Azure Key Vault");
        let options = version.map(
            |version| azure_security_keyvault_secrets::models::SecretClientGetSecretOptions {
                secret_version: Some(version.to_string()),
                ..Default::default()
            },
        );
        let call = async { self.client.get_secret(&self.secret_name, options).await?.into_model() };
        match self.timed(GET_SECRET, call).await {
            Ok(secret) => Ok(Some(secret)),
            Err(error) if status_of(&error) == Some(StatusCode::NotFound) => Ok(None),
            Err(error) => Err(self.provider_error(GET_SECRET, version, &error)),
        }
    }

    /// Lists every version of the secret, following next links; empty when the secret does
    /// not exist. Reports the whole listing to the observer as one call.
    async fn list_versions(&self) -> Result<Vec<VersionInfo>, ProviderError> {
        debug!(operation = GET_SECRET_VERSIONS, secret = %self.secret_name, "calling Azure Key Vault");
        let call = async {
            self.client
                .list_secret_properties_versions(&self.secret_name, None)?
                .try_collect::<Vec<SecretProperties>>()
                .await
        };
        match self.timed(GET_SECRET_VERSIONS, call).await {
            Ok(properties) => Ok(properties
                .into_iter()
                .filter_map(VersionInfo::from_properties)
                .collect()),
            Err(error) if status_of(&error) == Some(StatusCode::NotFound) => Ok(Vec::new()),
            Err(error) => Err(self.provider_error(GET_SECRET_VERSIONS, None, &error)),
        }
    }

    /// Sets `value` as a new version tagged for `rotation`, which makes it the latest.
    async fn set(
        &self,
        rotation: &RotationId,
        value: &SecretValue,
        previous: Option<&str>,
    ) -> Result<Secret, ProviderError> {
        debug!(operation = SET_SECRET, secret = %self.secret_name, rotation = %rotation, "calling Azure Key Vault");
        let parameters = SetSecretParameters {
            value: Some(value.expose().to_owned()),
            tags: Some(version_tags(rotation, &self.owner, previous)),
            ..Default::default()
        };
        let call = async {
            self.client
                .set_secret(&self.secret_name, parameters.try_into()?, None)
                .await?
                .into_model()
        };
        self.timed(SET_SECRET, call)
            .await
            .map_err(|error| self.provider_error(SET_SECRET, None, &error))
    }

    /// Awaits one Key Vault call and reports its outcome and duration to the observer.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, AzureError>>,
    ) -> Result<T, AzureError> {
        let started = Instant::now();
        let result = call.await;
        if let Some(observer) = &self.observer {
            // A missing secret is an expected response before the first rotation, so it gets
            // its own outcome instead of counting as a cloud error.
            let outcome = match &result {
                Ok(_) => "success",
                Err(error) if status_of(error) == Some(StatusCode::NotFound) => "NotFound",
                Err(error) => self.provider_error(operation, None, error).reason().as_str(),
            };
            observer.observe("azure", operation, outcome, started.elapsed());
        }
        result
    }

    /// The version id in the `id` URL of `secret`.
    fn version_of(&self, secret: &Secret) -> Result<VersionId, ProviderError> {
        secret
            .resource_id()
            .ok()
            .and_then(|id| id.version)
            .map(VersionId::new)
            .ok_or_else(|| ProviderError::Cloud {
                secret: self.secret_name.clone(),
                message: format!("Key Vault returned a secret without a version id: {:?}", secret.id),
            })
    }

    fn disabled_error(&self, message: String) -> ProviderError {
        ProviderError::SecretDisabled {
            secret: self.secret_name.clone(),
            message,
        }
    }

    /// The error for a latest version that `GetSecret` does not return although a listing
    /// shows `count` versions.
    fn hidden_latest_error(&self, count: usize) -> ProviderError {
        self.disabled_error(format!(
            "{GET_SECRET} returned 404 for the latest version although {GET_SECRET_VERSIONS} lists {count} \
             version(s), so the latest version is disabled"
        ))
    }

    fn version_not_found(&self, version: &VersionId) -> ProviderError {
        ProviderError::VersionNotFound {
            secret: self.secret_name.clone(),
            version: version.to_string(),
        }
    }

    fn provider_error(&self, operation: &str, version: Option<&VersionId>, error: &AzureError) -> ProviderError {
        provider_error(&self.secret_name, operation, version, error)
    }
}

fn status_of(error: &AzureError) -> Option<StatusCode> {
    match error.kind() {
        ErrorKind::HttpResponse { status, .. } => Some(*status),
        _ => None,
    }
}

/// Returns the top-level and the innermost error code of an HTTP error, such as
/// `Forbidden` and `SecretDisabled`.
fn error_codes(error: &AzureError) -> (Option<String>, Option<String>) {
    let ErrorKind::HttpResponse {
        error_code,
        raw_response,
        ..
    } = error.kind()
    else {
        return (None, None);
    };
    let detail = raw_response
        .as_ref()
        .and_then(|response| serde_json::from_slice::<ErrorResponse>(response.body()).ok())
        .and_then(|response| response.error);
    let top = error_code
        .clone()
        .or_else(|| detail.as_ref().and_then(|detail| detail.code.clone()));
    let mut inner = detail.and_then(|detail| detail.inner_error);
    let mut innermost = None;
    while let Some(error) = inner {
        innermost = error.code.or(innermost);
        inner = error.inner_error.map(|boxed| *boxed);
    }
    (top, innermost)
}

/// Maps an error of `operation` on `secret` to a [`ProviderError`] by the error codes and
/// the HTTP status. `version` is the version the call addressed, if any, so that HTTP 404
/// becomes [`ProviderError::VersionNotFound`].
fn provider_error(secret: &str, operation: &str, version: Option<&VersionId>, error: &AzureError) -> ProviderError {
    let secret = secret.to_owned();
    let message = error_message(operation, error);
    let (top, inner) = error_codes(error);
    let has_code = |codes: &[&str]| {
        [&top, &inner]
            .into_iter()
            .flatten()
            .any(|code| codes.contains(&code.as_str()))
    };

    if has_code(DISABLED_CODES) {
        return ProviderError::SecretDisabled { secret, message };
    }
    if has_code(DELETED_CODES) {
        return ProviderError::SecretDeleted { secret, message };
    }
    match (error.kind(), status_of(error).map(u16::from)) {
        (ErrorKind::Credential, _) | (_, Some(401 | 403)) => ProviderError::AuthFailed { secret, message },
        (_, Some(429)) => ProviderError::Throttled { secret, message },
        (_, Some(404)) if version.is_some() => ProviderError::VersionNotFound {
            secret,
            version: version.map(VersionId::to_string).unwrap_or_default(),
        },
        _ => ProviderError::Cloud { secret, message },
    }
}

/// Describes an Azure error for a [`ProviderError`] message: the operation, the HTTP status
/// and error codes, and the error's `Display` chain, cut at [`MAX_MESSAGE_CHARS`].
///
/// The error's `Debug` output contains the raw response, and a `GetSecret` or `SetSecret`
/// response body contains the secret value, so `Debug` is never used.
fn error_message(operation: &str, error: &AzureError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        text = text.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }

    match error.kind() {
        ErrorKind::HttpResponse { status, .. } => {
            let codes = match error_codes(error) {
                (Some(top), Some(inner)) => format!(" {top}/{inner}"),
                (Some(code), None) | (None, Some(code)) => format!(" {code}"),
                (None, None) => String::new(),
            };
            format!("{operation} returned HTTP {}{codes}: {text}", u16::from(*status))
        }
        kind => format!("{operation} failed ({kind}): {text}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use azure_core::http::RawResponse;
    use azure_core::http::headers::Headers;

    use super::*;

    const SECRET: &str = "db-password";

    fn http_error(status: u16, code: Option<&str>, body: &str) -> AzureError {
        let raw = RawResponse::from_bytes(StatusCode::from(status), Headers::new(), body.as_bytes().to_vec());
        AzureError::with_message(
            ErrorKind::HttpResponse {
                status: StatusCode::from(status),
                error_code: code.map(str::to_owned),
                raw_response: Some(Box::new(raw)),
            },
            "the service message",
        )
    }

    fn map(error: &AzureError, version: Option<&VersionId>) -> ProviderError {
        provider_error(SECRET, GET_SECRET, version, error)
    }

    #[test]
    fn disabled_secret_maps_to_secret_disabled() {
        // Key Vault's response to a GET on a disabled secret: 403 with the inner code.
        let body = r#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        let error = map(&http_error(403, Some("Forbidden"), body), None);
        let ProviderError::SecretDisabled { message, .. } = error else {
            panic!("mapped to {error:?}");
        };
        assert!(message.contains("Forbidden/SecretDisabled"), "{message}");
    }

    #[test]
    fn deleted_name_maps_to_secret_deleted() {
        let body = r#"{"error":{"code":"Conflict","message":"Secret db-password is currently in a deleted but recoverable state.","innererror":{"code":"ObjectIsDeletedButRecoverable"}}}"#;
        let error = map(&http_error(409, Some("Conflict"), body), None);
        assert!(
            matches!(error, ProviderError::SecretDeleted { .. }),
            "mapped to {error:?}"
        );
    }

    #[test]
    fn deleted_code_without_inner_maps_to_secret_deleted() {
        let error = map(&http_error(409, Some("ObjectIsBeingDeleted"), ""), None);
        assert!(
            matches!(error, ProviderError::SecretDeleted { .. }),
            "mapped to {error:?}"
        );
    }

    #[test]
    fn auth_statuses_map_to_auth_failed() {
        for status in [401, 403] {
            let body = r#"{"error":{"code":"Forbidden","message":"denied"}}"#;
            let error = map(&http_error(status, None, body), None);
            assert!(
                matches!(error, ProviderError::AuthFailed { .. }),
                "HTTP {status} mapped to {error:?}"
            );
        }
    }

    #[test]
    fn credential_error_maps_to_auth_failed() {
        let error = AzureError::with_message(ErrorKind::Credential, "the token request failed");
        let mapped = map(&error, None);
        assert!(
            matches!(mapped, ProviderError::AuthFailed { .. }),
            "mapped to {mapped:?}"
        );
    }

    #[test]
    fn throttling_maps_to_throttled() {
        let body = r#"{"error":{"code":"Throttled","message":"too many requests"}}"#;
        let error = map(&http_error(429, None, body), None);
        assert!(matches!(error, ProviderError::Throttled { .. }), "mapped to {error:?}");
    }

    #[test]
    fn missing_version_maps_to_version_not_found() {
        let body = r#"{"error":{"code":"SecretNotFound","message":"not found"}}"#;
        let version = VersionId::new("0123abcd");
        let error = map(&http_error(404, None, body), Some(&version));
        let ProviderError::VersionNotFound {
            secret,
            version: missing,
        } = error
        else {
            panic!("mapped to {error:?}");
        };
        assert_eq!(secret, SECRET);
        assert_eq!(missing, "0123abcd");
    }

    #[test]
    fn missing_secret_without_version_maps_to_cloud() {
        let error = map(&http_error(404, Some("SecretNotFound"), ""), None);
        assert!(matches!(error, ProviderError::Cloud { .. }), "mapped to {error:?}");
    }

    #[test]
    fn server_error_message_names_status_and_code() {
        let body = r#"{"error":{"code":"InternalError","message":"try again"}}"#;
        let error = map(&http_error(500, Some("InternalError"), body), None);
        let ProviderError::Cloud { message, .. } = error else {
            panic!("mapped to {error:?}");
        };
        assert!(message.contains(GET_SECRET), "{message}");
        assert!(message.contains("HTTP 500"), "{message}");
        assert!(message.contains("InternalError"), "{message}");
        assert!(message.contains("the service message"), "{message}");
    }

    #[test]
    fn error_message_omits_response_body() {
        let body = r#"{"value":"hunter2","id":"https://v.vault.azure.net/secrets/db/1"}"#;
        let error = map(&http_error(500, None, body), None);
        let ProviderError::Cloud { message, .. } = error else {
            panic!("mapped to {error:?}");
        };
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn connection_error_maps_to_cloud() {
        let error = AzureError::with_message(ErrorKind::Connection, "connection refused");
        let mapped = map(&error, Some(&VersionId::new("1")));
        let ProviderError::Cloud { message, .. } = mapped else {
            panic!("mapped to {mapped:?}");
        };
        assert!(message.contains("connection refused"), "{message}");
    }

    #[test]
    fn long_message_is_cut() {
        let error = AzureError::with_message(ErrorKind::Other, "x".repeat(2000));
        let message = error_message(SET_SECRET, &error);
        assert!(
            message.chars().count() < MAX_MESSAGE_CHARS + 64,
            "{} characters",
            message.len()
        );
    }

    fn version(id: &str, created: Option<i64>, tags: &[(&str, &str)]) -> VersionInfo {
        VersionInfo {
            id: id.to_owned(),
            created,
            enabled: Some(true),
            tags: tags
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    fn owner() -> Owner {
        Owner {
            namespace: "team-a".to_owned(),
            name: "db".to_owned(),
        }
    }

    #[test]
    fn version_tags_name_rotation_and_owner() {
        let rotation = RotationId::from("r1".to_owned());
        let tags = version_tags(&rotation, &owner(), Some("v0"));
        let expected = BTreeMap::from([
            (ROTATION_ID_TAG, "r1"),
            (MANAGED_BY_TAG, "rotor"),
            (OWNER_TAG, "team-a/db"),
            (PREVIOUS_VERSION_TAG, "v0"),
        ]);
        let actual: BTreeMap<&str, &str> = tags.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn version_tags_of_first_version_have_no_previous() {
        let tags = version_tags(&RotationId::from("r1".to_owned()), &owner(), None);
        assert!(!tags.contains_key(PREVIOUS_VERSION_TAG), "{tags:?}");
        assert_eq!(tags.len(), 3);
    }

    #[test]
    fn rotation_version_finds_tagged_version() {
        let versions = [
            version("v0", Some(10), &[]),
            version("v1", Some(20), &[(ROTATION_ID_TAG, "r1")]),
            version("v2", Some(30), &[(ROTATION_ID_TAG, "r2")]),
        ];
        let found = rotation_version(&versions, &RotationId::from("r1".to_owned()));
        assert_eq!(found.map(|version| version.id.as_str()), Some("v1"));
        assert_eq!(rotation_version(&versions, &RotationId::from("r3".to_owned())), None);
    }

    #[test]
    fn listed_latest_picks_newest() {
        let versions = [version("v0", Some(10), &[]), version("v1", Some(20), &[])];
        assert_eq!(listed_latest(&versions), ListedLatest::Version(&versions[1]));
        assert_eq!(listed_latest(&[]), ListedLatest::None);
    }

    #[test]
    fn listed_latest_ambiguous_on_tie() {
        let versions = [
            version("v0", Some(10), &[]),
            version("v1", Some(20), &[]),
            version("v2", Some(20), &[]),
        ];
        assert_eq!(listed_latest(&versions), ListedLatest::Ambiguous);
    }

    #[test]
    fn listed_latest_ambiguous_without_created() {
        let versions = [version("v0", Some(10), &[]), version("v1", None, &[])];
        assert_eq!(listed_latest(&versions), ListedLatest::Ambiguous);
    }

    #[test]
    fn azure_hosts_keep_challenge_check() {
        for host in [
            "my-vault.vault.azure.net",
            "MY-VAULT.VAULT.AZURE.NET",
            "hsm.managedhsm.azure.net",
            "v.vault.azure.cn",
            "v.vault.usgovcloudapi.net",
        ] {
            assert!(is_azure_vault_host(host), "{host}");
        }
        for host in [
            "localhost",
            "127.0.0.1",
            "vault.azure.net.example.com",
            "evilvault.azure.net",
        ] {
            assert!(!is_azure_vault_host(host), "{host}");
        }
    }

    fn credentials(pairs: &[(&str, &str)]) -> Credentials {
        Credentials {
            source: "team-a/azure-credentials".to_owned(),
            data: pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), SecretValue::new((*value).to_owned())))
                .collect(),
        }
    }

    fn spec() -> AzureProvider {
        AzureProvider {
            vault_url: "https://my-vault.vault.azure.net".to_owned(),
            secret_name: SECRET.to_owned(),
            auth: None,
        }
    }

    fn factory_without_default() -> AzureFactory {
        AzureFactory {
            default_credential: Err("AZURE_TENANT_ID is not set".to_owned()),
            observer: None,
        }
    }

    #[test]
    fn credentials_missing_client_secret() {
        let credentials = credentials(&[(TENANT_ID_KEY, "tenant"), (CLIENT_ID_KEY, "client")]);
        let error = factory_without_default()
            .rotator(&spec(), Some(&credentials), &owner())
            .expect_err("rejects the credentials");
        let ProviderError::CredentialsNotFound { name, message } = error else {
            panic!("{error:?}");
        };
        assert_eq!(name, "team-a/azure-credentials");
        assert!(message.contains(CLIENT_SECRET_KEY), "{message}");
    }

    #[test]
    fn credentials_empty_key_rejected() {
        let credentials = credentials(&[
            (TENANT_ID_KEY, ""),
            (CLIENT_ID_KEY, "client"),
            (CLIENT_SECRET_KEY, "secret"),
        ]);
        let error = client_secret_credential(&credentials).expect_err("rejects the credentials");
        let ProviderError::CredentialsNotFound { message, .. } = error else {
            panic!("{error:?}");
        };
        assert!(message.contains(TENANT_ID_KEY), "{message}");
    }

    #[test]
    fn credentials_secret_builds_rotator() {
        let credentials = credentials(&[
            (TENANT_ID_KEY, "00000000-0000-0000-0000-000000000000"),
            (CLIENT_ID_KEY, "client"),
            (CLIENT_SECRET_KEY, "secret"),
        ]);
        let rotator = factory_without_default()
            .rotator(&spec(), Some(&credentials), &owner())
            .expect("builds a rotator");
        assert_eq!(rotator.provider(), "azure");
        assert_eq!(rotator.secret_name(), SECRET);
    }

    #[test]
    fn missing_default_credential_is_invalid_config() {
        let error = factory_without_default()
            .rotator(&spec(), None, &owner())
            .expect_err("rejects the spec");
        let ProviderError::InvalidConfig { message, .. } = error else {
            panic!("{error:?}");
        };
        assert!(message.contains("AZURE_FEDERATED_TOKEN_FILE"), "{message}");
        assert!(message.contains("auth.secretRef"), "{message}");
    }

    #[test]
    fn rotator_rejects_http_vault_url() {
        let spec = AzureProvider {
            vault_url: "http://localhost:8443".to_owned(),
            ..spec()
        };
        let credentials = credentials(&[
            (TENANT_ID_KEY, "tenant"),
            (CLIENT_ID_KEY, "client"),
            (CLIENT_SECRET_KEY, "secret"),
        ]);
        let error = factory_without_default()
            .rotator(&spec, Some(&credentials), &owner())
            .expect_err("rejects the URL");
        assert!(matches!(error, ProviderError::InvalidConfig { .. }), "{error:?}");
    }
}
