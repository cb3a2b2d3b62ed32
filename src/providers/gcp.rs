//! Google Cloud Secret Manager provider. [`GcpFactory`] builds one [`GcpRotator`] per
//! `SecretRotation`, and the rotator maps the rotation protocol onto the versions of one
//! global secret, `projects/PROJECT/secrets/SECRET_ID`. Building a rotator does no IO, but
//! `stage`, `promote`, `read` and `current_version` call the Secret Manager API, and the
//! first call of a rotator builds (or reuses) the API client.
//!
//! Secret Manager numbers versions 1, 2, 3… and gives them no labels or request tokens, so
//! the rotation state lives on the secret, which has version aliases, annotations and an
//! etag:
//!
//! - The aliases `current`, `previous` and `pending` play the parts of AWS's staging labels.
//!   Applications that read the alias `current` follow each promotion, and the first
//!   version of a new secret is `current` at once.
//! - Before adding a version, `stage` claims the secret: one `UpdateSecret`, guarded by the
//!   etag, writes the annotations `rotor.dev_pending-rotation=<rotation id>` and
//!   `rotor.dev_pending-after=<newest version number, 0 for none>`. After
//!   `AddSecretVersion`, a second `UpdateSecret` points `pending` at the new version and
//!   records it as `rotor.dev_pending-version=<n>`.
//! - A repeated `stage` with the same rotation id returns the recorded version. When it
//!   finds the claim but no recorded version, the earlier attempt stopped between the claim
//!   and the record. Because Secret Manager numbers versions consecutively, the earlier
//!   attempt's version, if it was added, is number `pending-after + 1`, and one
//!   `GetSecretVersion` shows whether it exists, without relying on clocks.
//! - `promote` moves `current` and `previous` and removes `pending` in one `UpdateSecret`
//!   guarded by the etag, so readers never see a half-made promotion.
//!
//! Annotation keys use `rotor.dev_` and not `rotor.dev/` because Secret Manager allows only
//! letters, digits, `-`, `_` and `.` in them. Label keys must start with a lowercase letter
//! and contain only lowercase letters, digits, `_` and `-`, so rotor labels the secrets it
//! creates `managed-by=rotor` instead of using the Kubernetes label key.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use google_cloud_auth::credentials::{Credentials as AuthCredentials, anonymous, service_account};
use google_cloud_gax::error::rpc::Code;
use google_cloud_secretmanager_v1::Error as GcpError;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::replication::Automatic;
use google_cloud_secretmanager_v1::model::secret_version::State;
use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload, SecretVersion};
use google_cloud_wkt::FieldMask;
use tokio::sync::OnceCell;
use tracing::debug;

use super::Owner;
use crate::api::GcpProvider;
use crate::rotation::{
    CallObserver, Credentials, Promoted, ProviderError, RotationId, Rotator, SecretValue, Staged, VersionId,
};

/// Version alias of a version that is written but not yet in use.
const PENDING: &str = "pending";
/// Version alias of the version that applications read.
const CURRENT: &str = "current";
/// Version alias of the version that was current before the last promotion.
const PREVIOUS: &str = "previous";

/// Annotation with the id of the rotation that claimed the secret last.
const ROTATION_ANNOTATION: &str = "rotor.dev_pending-rotation";
/// Annotation with the newest version number when the rotation claimed the secret.
const PENDING_AFTER_ANNOTATION: &str = "rotor.dev_pending-after";
/// Annotation with the version number that the claiming rotation added.
const PENDING_VERSION_ANNOTATION: &str = "rotor.dev_pending-version";
/// Annotation naming the owning `SecretRotation` as `namespace/name`.
const OWNER_ANNOTATION: &str = "rotor.dev_owner";
/// Label marking secrets that rotor created, with the value [`MANAGED_BY_VALUE`].
const MANAGED_BY_LABEL: &str = "managed-by";
const MANAGED_BY_VALUE: &str = "rotor";

/// Key of the credentials Secret that `spec.provider.gcp.auth.secretRef` names.
const CREDENTIALS_KEY: &str = "credentials.json";

/// Endpoint of the client library when the spec sets none.
const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";

/// Secret Manager method names, for log fields, metrics and error messages.
const GET_SECRET: &str = "GetSecret";
const CREATE_SECRET: &str = "CreateSecret";
const UPDATE_SECRET: &str = "UpdateSecret";
const ADD_SECRET_VERSION: &str = "AddSecretVersion";
const GET_SECRET_VERSION: &str = "GetSecretVersion";
const ACCESS_SECRET_VERSION: &str = "AccessSecretVersion";
const LIST_SECRET_VERSIONS: &str = "ListSecretVersions";

/// Update mask paths of `UpdateSecret`.
const ALIASES_FIELD: &str = "version_aliases";
const ANNOTATIONS_FIELD: &str = "annotations";

/// One Secret Manager client, built on first use and shared by the rotators that use the same
/// endpoint and credentials.
type ClientCell = Arc<OnceCell<SecretManagerService>>;

/// Builds [`GcpRotator`]s. Rotators without a credentials Secret share one client per
/// endpoint, so the connection pool and the access token outlive each reconcile.
#[derive(Clone, Default)]
pub struct GcpFactory {
    credentials: Option<AuthCredentials>,
    observer: Option<Arc<dyn CallObserver>>,
    clients: Arc<Mutex<HashMap<String, ClientCell>>>,
}

impl fmt::Debug for GcpFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpFactory")
            .field("injected_credentials", &self.credentials.is_some())
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl GcpFactory {
    /// Creates a factory whose rotators use Application Default Credentials unless a spec
    /// names a credentials Secret. Loading the credentials waits for the first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `credentials` for every rotator without a credentials Secret, for tests that
    /// aim the client at an emulator with anonymous credentials.
    pub fn with_credentials(mut self, credentials: AuthCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Reports every Secret Manager call of the rotators this factory builds to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Builds the rotator for the secret that `spec` names. `credentials`, when given,
    /// replace Application Default Credentials and must contain a service-account key in
    /// JSON under the key `credentials.json`.
    ///
    /// Returns [`ProviderError::InvalidConfig`] for an empty project, an invalid secret id
    /// or an unusable endpoint, and [`ProviderError::CredentialsNotFound`] for a missing or
    /// invalid service-account key.
    pub fn rotator(
        &self,
        spec: &GcpProvider,
        credentials: Option<&Credentials>,
        owner: &Owner,
    ) -> Result<GcpRotator, ProviderError> {
        let name = format!("projects/{}/secrets/{}", spec.project, spec.secret_id);
        let invalid = |message: String| ProviderError::InvalidConfig {
            secret: name.clone(),
            message,
        };
        if spec.project.trim().is_empty() || spec.project.contains('/') {
            return Err(invalid(format!(
                "spec.provider.gcp.project {:?} is not a project ID or number",
                spec.project
            )));
        }
        if !is_valid_secret_id(&spec.secret_id) {
            return Err(invalid(format!(
                "spec.provider.gcp.secretId {:?} is invalid: use 1 to 255 letters, digits, hyphens and underscores",
                spec.secret_id
            )));
        }
        let endpoint = spec.endpoint.clone().unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let loopback = match endpoint_kind(&endpoint) {
            Ok(kind) => kind == EndpointKind::Loopback,
            Err(reason) => {
                return Err(invalid(format!("spec.provider.gcp.endpoint {endpoint:?} {reason}")));
            }
        };

        let (client, client_credentials) = match credentials {
            Some(credentials) => (
                ClientCell::default(),
                ClientCredentials::ServiceAccount {
                    source: credentials.source.clone(),
                    key: service_account_key(credentials)?,
                },
            ),
            None => {
                // NOTE: an http:// endpoint on a loopback address gets anonymous credentials,
                // because it can only be an emulator or a local proxy, and a token sent there
                // would travel in clear text. endpoint_kind rejects http:// for other hosts.
                let ambient = match &self.credentials {
                    Some(injected) => ClientCredentials::Given(injected.clone()),
                    None if loopback => ClientCredentials::Given(anonymous::Builder::new().build()),
                    None => ClientCredentials::ApplicationDefault,
                };
                (self.shared_client(&endpoint), ambient)
            }
        };

        Ok(GcpRotator {
            client,
            client_credentials,
            endpoint,
            name,
            owner: owner.clone(),
            staged_secret: Arc::default(),
            observer: self.observer.clone(),
        })
    }

    fn shared_client(&self, endpoint: &str) -> ClientCell {
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clients.entry(endpoint.to_owned()).or_default().clone()
    }
}

/// Returns true for a Secret Manager secret id: 1 to 255 ASCII letters, digits, `-` and `_`.
fn is_valid_secret_id(secret_id: &str) -> bool {
    (1..=255).contains(&secret_id.len())
        && secret_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndpointKind {
    Https,
    /// Plain HTTP on 127.0.0.1, `[::1]` or localhost.
    Loopback,
}

/// Classifies an endpoint URL, or returns why it is not usable.
fn endpoint_kind(endpoint: &str) -> Result<EndpointKind, &'static str> {
    let (kind, rest) = if let Some(rest) = endpoint.strip_prefix("https://") {
        (EndpointKind::Https, rest)
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        (EndpointKind::Loopback, rest)
    } else {
        return Err("is not an https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err("has no host or contains user information");
    }
    if kind == EndpointKind::Https {
        return Ok(kind);
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host == "127.0.0.1" || host == "::1" || host.eq_ignore_ascii_case("localhost") {
        Ok(EndpointKind::Loopback)
    } else {
        Err("uses http://, which rotor accepts only for 127.0.0.1, [::1] and localhost; use https://")
    }
}

/// Credentials for building a Secret Manager client.
#[derive(Clone)]
enum ClientCredentials {
    ApplicationDefault,
    Given(AuthCredentials),
    /// A service-account key from the credentials Secret `source`. It becomes credentials
    /// only when the client is built, because the credentials start a token refresh task,
    /// which needs a Tokio runtime.
    ServiceAccount {
        source: String,
        key: serde_json::Value,
    },
}

/// Required string fields of a service-account key.
const SERVICE_ACCOUNT_FIELDS: &[&str] = &["client_email", "private_key_id", "private_key", "project_id"];

/// Reads and checks the service-account key in a credentials Secret. Messages name the
/// problem and never contain the key's content.
fn service_account_key(credentials: &Credentials) -> Result<serde_json::Value, ProviderError> {
    let missing = |message: String| ProviderError::CredentialsNotFound {
        name: credentials.source.clone(),
        message,
    };
    let text = credentials.require(CREDENTIALS_KEY)?.expose();
    let key: serde_json::Value = serde_json::from_str(text).map_err(|error| {
        missing(format!(
            "key {CREDENTIALS_KEY} is not valid JSON (syntax error at line {}, column {})",
            error.line(),
            error.column()
        ))
    })?;
    match key.get("type").and_then(serde_json::Value::as_str) {
        Some("service_account") => {}
        Some(other) => {
            return Err(missing(format!(
                "key {CREDENTIALS_KEY} contains credentials of type {other:?}; rotor accepts only service-account keys (type \"service_account\")"
            )));
        }
        None => {
            return Err(missing(format!(
                "key {CREDENTIALS_KEY} has no \"type\" field; expected a service-account key (type \"service_account\")"
            )));
        }
    }

    let absent: Vec<&str> = SERVICE_ACCOUNT_FIELDS
        .iter()
        .copied()
        .filter(|field| !key.get(*field).is_some_and(serde_json::Value::is_string))
        .collect();
    if !absent.is_empty() {
        return Err(missing(format!(
            "key {CREDENTIALS_KEY} is not a complete service-account key: {} must be strings",
            absent.join(", ")
        )));
    }
    Ok(key)
}

/// A [`Rotator`] for one Google Cloud Secret Manager secret.
#[derive(Clone)]
pub struct GcpRotator {
    client: ClientCell,
    client_credentials: ClientCredentials,
    endpoint: String,
    /// Resource name, `projects/PROJECT/secrets/SECRET_ID`.
    name: String,
    owner: Owner,
    /// The secret as the last `stage` of this rotator left it, for `promote`.
    staged_secret: Arc<Mutex<Option<Secret>>>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl fmt::Debug for GcpRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpRotator")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Rotator for GcpRotator {
    fn provider(&self) -> &'static str {
        "gcp"
    }

    fn secret_name(&self) -> String {
        self.name.clone()
    }

    async fn stage(&self, rotation: &RotationId, value: &SecretValue) -> Result<Staged, ProviderError> {
        let (secret, after) = match self.get_secret(self.client().await?).await {
            Ok(secret) => match self.resume_or_claim(secret, rotation).await? {
                Claim::Done(staged) => return Ok(staged),
                Claim::Add { secret, after } => (*secret, after),
            },
            Err(error) if has_code(&error, Code::NotFound) => {
                match self.create_secret(self.client().await?, rotation).await {
                    Ok(secret) => (secret, 0),
                    Err(error) if has_code(&error, Code::AlreadyExists) => {
                        debug!(
                            operation = CREATE_SECRET,
                            secret = %self.name,
                            rotation = %rotation,
                            "the secret was created since GetSecret; reading it again"
                        );
                        let secret = self
                            .get_secret(self.client().await?)
                            .await
                            .map_err(|error| self.provider_error(GET_SECRET, None, &error))?;
                        match self.resume_or_claim(secret, rotation).await? {
                            Claim::Done(staged) => return Ok(staged),
                            Claim::Add { secret, after } => (*secret, after),
                        }
                    }
                    Err(error) => return Err(self.provider_error(CREATE_SECRET, None, &error)),
                }
            }
            Err(error) => return Err(self.provider_error(GET_SECRET, None, &error)),
        };

        // NOTE: a crash after AddSecretVersion and before the record below leaves a version
        // that only its number identifies. The next attempt adopts version `after + 1`, which
        // is right unless another writer added a version between the claim and this call:
        // then the other writer's version is adopted and this one stays unused.
        let version = self.add_version(value).await?;
        let secret = self.record_version(secret, rotation, version, after).await?;
        self.remember_staged_secret(secret);
        Ok(Staged {
            version: version_id(version),
            written: true,
        })
    }

    async fn promote(&self, version: &VersionId) -> Result<Promoted, ProviderError> {
        let number = self.version_number(version)?;
        let secret = match self.take_staged_secret() {
            Some(secret) => secret,
            None => self
                .get_secret(self.client().await?)
                .await
                .map_err(|error| self.provider_error(GET_SECRET, Some(version), &error))?,
        };

        let pending = secret.version_aliases.get(PENDING).copied();
        let known = secret.version_aliases.get(CURRENT) == Some(&number)
            || pending == Some(number)
            || recorded_version(&secret.annotations) == Some(number);
        if !known {
            self.check_promotable(number, version).await?;
        }
        // An adopted secret has no `current` alias yet: its current version is the newest
        // enabled one, which becomes `previous`.
        let implicit_current = if secret.version_aliases.contains_key(CURRENT) {
            None
        } else {
            let exclude: Vec<i64> = std::iter::once(number).chain(pending).collect();
            self.newest_enabled(&exclude).await?
        };

        let mut previous = None;
        self.update_secret(secret, &[ALIASES_FIELD], Some(version), |secret| {
            let promotion = promote_aliases(&secret.version_aliases, number, implicit_current);
            previous = promotion.previous;
            Ok(promotion.changed.then(|| {
                Secret::new()
                    .set_name(&secret.name)
                    .set_etag(&secret.etag)
                    .set_version_aliases(promotion.aliases)
            }))
        })
        .await?;
        Ok(Promoted {
            previous: previous.map(version_id),
        })
    }

    async fn read(&self, version: &VersionId) -> Result<SecretValue, ProviderError> {
        let number = self.version_number(version)?;
        let name = self.version_name(number);
        let client = self.client().await?;
        let call = client.access_secret_version().set_name(&name).send();
        let response = match self.timed(ACCESS_SECRET_VERSION, call).await {
            Ok(response) => response,
            Err(error) if has_code(&error, Code::FailedPrecondition) => {
                return Err(self.unusable_version_error(number, version, &error).await);
            }
            Err(error) => return Err(self.provider_error(ACCESS_SECRET_VERSION, Some(version), &error)),
        };

        let payload = response.payload.unwrap_or_default();
        if let Some(expected) = payload.data_crc32c {
            let actual = i64::from(crc32c::crc32c(&payload.data));
            if actual != expected {
                return Err(ProviderError::Cloud {
                    secret: self.name.clone(),
                    message: format!(
                        "{ACCESS_SECRET_VERSION} returned version {version} with a CRC32C checksum that does not match its data; the data was damaged in transit"
                    ),
                });
            }
        }
        match String::from_utf8(payload.data.to_vec()) {
            Ok(text) => Ok(SecretValue::new(text)),
            Err(_) => Err(ProviderError::Cloud {
                secret: self.name.clone(),
                message: format!(
                    "version {version} contains bytes that are not UTF-8; rotor reads and writes only text values"
                ),
            }),
        }
    }

    async fn current_version(&self) -> Result<Option<VersionId>, ProviderError> {
        let secret = match self.get_secret(self.client().await?).await {
            Ok(secret) => secret,
            Err(error) if has_code(&error, Code::NotFound) => return Ok(None),
            Err(error) => return Err(self.provider_error(GET_SECRET, None, &error)),
        };
        if let Some(current) = secret.version_aliases.get(CURRENT) {
            return Ok(Some(version_id(*current)));
        }
        // A staged but unpromoted version is newer than the version in use, so it is skipped.
        let exclude: Vec<i64> = secret.version_aliases.get(PENDING).copied().into_iter().collect();
        Ok(self.newest_enabled(&exclude).await?.map(version_id))
    }
}

/// Outcome of [`GcpRotator::resume_or_claim`] on an existing secret.
enum Claim {
    /// The rotation's version exists already.
    Done(Staged),
    /// The rotation has claimed `secret`, which had no version newer than `after`, and the
    /// version is still to be added.
    Add { secret: Box<Secret>, after: i64 },
}

impl GcpRotator {
    /// Finds the version of `rotation` on an existing secret, or claims the secret for it.
    async fn resume_or_claim(&self, secret: Secret, rotation: &RotationId) -> Result<Claim, ProviderError> {
        match pending_record(&secret.annotations, rotation) {
            PendingRecord::Written { version } => {
                self.remember_staged_secret(secret);
                Ok(Claim::Done(Staged {
                    version: version_id(version),
                    written: false,
                }))
            }
            PendingRecord::Claimed { after } => {
                let candidate = after + 1;
                match self.get_version(self.client().await?, candidate).await {
                    Ok(_) => {
                        debug!(
                            secret = %self.name,
                            rotation = %rotation,
                            version = candidate,
                            "an earlier attempt of this rotation added the version; recording it"
                        );
                        let secret = self.record_version(secret, rotation, candidate, after).await?;
                        self.remember_staged_secret(secret);
                        Ok(Claim::Done(Staged {
                            version: version_id(candidate),
                            written: false,
                        }))
                    }
                    Err(error) if has_code(&error, Code::NotFound) => Ok(Claim::Add {
                        secret: Box::new(secret),
                        after,
                    }),
                    Err(error) => Err(self.provider_error(GET_SECRET_VERSION, None, &error)),
                }
            }
            PendingRecord::Unclaimed => {
                let after = self.latest_version_number().await?;
                let secret = self
                    .update_secret(secret, &[ANNOTATIONS_FIELD, ALIASES_FIELD], None, |secret| {
                        let mut aliases = secret.version_aliases.clone();
                        aliases.remove(PENDING);
                        Ok(Some(
                            Secret::new()
                                .set_name(&secret.name)
                                .set_etag(&secret.etag)
                                .set_annotations(claim_annotations(&secret.annotations, rotation, after))
                                .set_version_aliases(aliases),
                        ))
                    })
                    .await?;
                Ok(Claim::Add {
                    secret: Box::new(secret),
                    after,
                })
            }
        }
    }

    /// Records `version` as the version of `rotation`: the annotation
    /// `rotor.dev_pending-version` and the alias `pending`, or `current` for the first
    /// version of a secret.
    async fn record_version(
        &self,
        secret: Secret,
        rotation: &RotationId,
        version: i64,
        after: i64,
    ) -> Result<Secret, ProviderError> {
        self.update_secret(
            secret,
            &[ANNOTATIONS_FIELD, ALIASES_FIELD],
            None,
            |secret| match pending_record(&secret.annotations, rotation) {
                PendingRecord::Written { version: recorded } if recorded == version => Ok(None),
                PendingRecord::Unclaimed | PendingRecord::Written { .. } => Err(self.conflict_error(format!(
                    "the secret's annotation {ROTATION_ANNOTATION} no longer names rotation {rotation}"
                ))),
                PendingRecord::Claimed { .. } => Ok(Some(
                    Secret::new()
                        .set_name(&secret.name)
                        .set_etag(&secret.etag)
                        .set_annotations(record_annotations(&secret.annotations, version))
                        .set_version_aliases(stage_aliases(&secret.version_aliases, version, after == 0)),
                )),
            },
        )
        .await
    }

    /// Sends `UpdateSecret` with the secret that `edit` makes from the current one, guarded
    /// by its etag. `edit` returns `None` when nothing needs to change. After an etag
    /// conflict, reads the secret again and retries once.
    async fn update_secret(
        &self,
        mut secret: Secret,
        mask: &[&str],
        version: Option<&VersionId>,
        mut edit: impl FnMut(&Secret) -> Result<Option<Secret>, ProviderError>,
    ) -> Result<Secret, ProviderError> {
        let mut retried = false;
        loop {
            let Some(update) = edit(&secret)? else {
                return Ok(secret);
            };
            let client = self.client().await?;
            let call = client
                .update_secret()
                .set_secret(update)
                .set_update_mask(FieldMask::default().set_paths(mask.iter().copied()))
                .send();
            match self.timed(UPDATE_SECRET, call).await {
                Ok(updated) => return Ok(updated),
                Err(error) if is_conflict(&error) && !retried => {
                    debug!(
                        operation = UPDATE_SECRET,
                        secret = %self.name,
                        error = %error_message(UPDATE_SECRET, &error),
                        "the secret changed since it was read; reading it again and retrying once"
                    );
                    retried = true;
                    secret = self
                        .get_secret(self.client().await?)
                        .await
                        .map_err(|error| self.provider_error(GET_SECRET, version, &error))?;
                }
                Err(error) if is_conflict(&error) => {
                    return Err(self.conflict_error(error_message(UPDATE_SECRET, &error)));
                }
                Err(error) => return Err(self.provider_error(UPDATE_SECRET, version, &error)),
            }
        }
    }

    fn conflict_error(&self, detail: String) -> ProviderError {
        ProviderError::Cloud {
            secret: self.name.clone(),
            message: format!("another writer changed the secret during the update, twice in a row: {detail}"),
        }
    }

    /// Rejects promoting a version that does not exist or cannot be read.
    async fn check_promotable(&self, number: i64, version: &VersionId) -> Result<(), ProviderError> {
        let found = self
            .get_version(self.client().await?, number)
            .await
            .map_err(|error| self.provider_error(GET_SECRET_VERSION, Some(version), &error))?;
        match found.state {
            State::Disabled => Err(self.disabled_error(version)),
            State::Destroyed => Err(self.destroyed_error(version)),
            _ => Ok(()),
        }
    }

    /// Explains a `FAILED_PRECONDITION` from `AccessSecretVersion` by the version's state.
    async fn unusable_version_error(&self, number: i64, version: &VersionId, access_error: &GcpError) -> ProviderError {
        let client = match self.client().await {
            Ok(client) => client,
            Err(error) => return error,
        };
        match self.get_version(client, number).await {
            Ok(found) if found.state == State::Disabled => self.disabled_error(version),
            Ok(found) if found.state == State::Destroyed => self.destroyed_error(version),
            Ok(_) => self.provider_error(ACCESS_SECRET_VERSION, Some(version), access_error),
            Err(error) => {
                debug!(
                    operation = GET_SECRET_VERSION,
                    secret = %self.name,
                    version = number,
                    error = %error_message(GET_SECRET_VERSION, &error),
                    "reading the state of a version that could not be accessed failed"
                );
                self.provider_error(ACCESS_SECRET_VERSION, Some(version), access_error)
            }
        }
    }

    fn disabled_error(&self, version: &VersionId) -> ProviderError {
        ProviderError::SecretDisabled {
            secret: self.name.clone(),
            message: format!("version {version} is DISABLED"),
        }
    }

    fn destroyed_error(&self, version: &VersionId) -> ProviderError {
        ProviderError::SecretDeleted {
            secret: self.name.clone(),
            message: format!("version {version} is DESTROYED"),
        }
    }

    /// Returns the number of the most recently created version, or 0 when there is none.
    async fn latest_version_number(&self) -> Result<i64, ProviderError> {
        let client = self.client().await?;
        let call = client
            .get_secret_version()
            .set_name(format!("{}/versions/latest", self.name))
            .send();
        match self.timed(GET_SECRET_VERSION, call).await {
            Ok(found) => self.number_in(&found.name, GET_SECRET_VERSION),
            Err(error) if has_code(&error, Code::NotFound) => Ok(0),
            Err(error) => Err(self.provider_error(GET_SECRET_VERSION, None, &error)),
        }
    }

    /// Returns the newest `ENABLED` version that is not in `exclude`.
    async fn newest_enabled(&self, exclude: &[i64]) -> Result<Option<i64>, ProviderError> {
        let client = self.client().await?;
        // The list is sorted newest first, so one page contains the result.
        let page_size = i32::try_from(exclude.len() + 1).unwrap_or(i32::MAX);
        let call = client
            .list_secret_versions()
            .set_parent(&self.name)
            .set_filter("state:ENABLED")
            .set_page_size(page_size)
            .send();
        let response = self
            .timed(LIST_SECRET_VERSIONS, call)
            .await
            .map_err(|error| self.provider_error(LIST_SECRET_VERSIONS, None, &error))?;
        for found in &response.versions {
            let number = self.number_in(&found.name, LIST_SECRET_VERSIONS)?;
            if !exclude.contains(&number) {
                return Ok(Some(number));
            }
        }
        Ok(None)
    }

    async fn get_secret(&self, client: &SecretManagerService) -> Result<Secret, GcpError> {
        let call = client.get_secret().set_name(&self.name).send();
        self.timed(GET_SECRET, call).await
    }

    async fn get_version(&self, client: &SecretManagerService, number: i64) -> Result<SecretVersion, GcpError> {
        let call = client.get_secret_version().set_name(self.version_name(number)).send();
        self.timed(GET_SECRET_VERSION, call).await
    }

    /// Creates the secret with automatic replication, labelled as managed by rotor and
    /// already claimed by `rotation`.
    async fn create_secret(&self, client: &SecretManagerService, rotation: &RotationId) -> Result<Secret, GcpError> {
        let (parent, secret_id) = self.name.split_once("/secrets/").unwrap_or((&self.name, ""));
        let owner = format!("{}/{}", self.owner.namespace, self.owner.name);
        let mut annotations = claim_annotations(&HashMap::new(), rotation, 0);
        annotations.insert(OWNER_ANNOTATION.to_owned(), owner);
        let secret = Secret::new()
            .set_replication(Replication::new().set_automatic(Automatic::new()))
            .set_labels([(MANAGED_BY_LABEL, MANAGED_BY_VALUE)])
            .set_annotations(annotations);
        let call = client
            .create_secret()
            .set_parent(parent)
            .set_secret_id(secret_id)
            .set_secret(secret)
            .send();
        self.timed(CREATE_SECRET, call).await
    }

    /// Adds `value` as a new version with its CRC32C checksum and returns its number.
    async fn add_version(&self, value: &SecretValue) -> Result<i64, ProviderError> {
        let client = self.client().await?;
        let data = value.expose().as_bytes().to_vec();
        let checksum = i64::from(crc32c::crc32c(&data));
        let call = client
            .add_secret_version()
            .set_parent(&self.name)
            .set_payload(SecretPayload::new().set_data(data).set_data_crc32c(checksum))
            .send();
        let added = self
            .timed(ADD_SECRET_VERSION, call)
            .await
            .map_err(|error| self.provider_error(ADD_SECRET_VERSION, None, &error))?;
        self.number_in(&added.name, ADD_SECRET_VERSION)
    }

    /// Returns the client, building it on the first call.
    async fn client(&self) -> Result<&SecretManagerService, ProviderError> {
        self.client
            .get_or_try_init(|| async {
                debug!(secret = %self.name, endpoint = %self.endpoint, "building the Secret Manager client");
                let mut builder = SecretManagerService::builder();
                // The library picks its default endpoint itself, with the universe domain of
                // the credentials, so only another endpoint is passed on.
                if self.endpoint != DEFAULT_ENDPOINT {
                    builder = builder.with_endpoint(&self.endpoint);
                }
                match &self.client_credentials {
                    ClientCredentials::ApplicationDefault => {}
                    ClientCredentials::Given(credentials) => builder = builder.with_credentials(credentials.clone()),
                    ClientCredentials::ServiceAccount { source, key } => {
                        let credentials = service_account::Builder::new(key.clone()).build().map_err(|_| {
                            ProviderError::CredentialsNotFound {
                                name: source.clone(),
                                message: format!("key {CREDENTIALS_KEY} is not a usable service-account key"),
                            }
                        })?;
                        builder = builder.with_credentials(credentials);
                    }
                }
                builder.build().await.map_err(|error| {
                    let chain = display_chain(&error);
                    if error.is_default_credentials() {
                        ProviderError::AuthFailed {
                            secret: self.name.clone(),
                            message: format!("loading Application Default Credentials failed: {chain}"),
                        }
                    } else {
                        ProviderError::Cloud {
                            secret: self.name.clone(),
                            message: format!(
                                "building the Secret Manager client for {} failed: {chain}",
                                self.endpoint
                            ),
                        }
                    }
                })
            })
            .await
    }

    fn version_name(&self, number: i64) -> String {
        format!("{}/versions/{number}", self.name)
    }

    /// Parses a version id as a Secret Manager version number. Other ids, such as aliases
    /// or another cloud's version ids, name no version of this secret.
    fn version_number(&self, version: &VersionId) -> Result<i64, ProviderError> {
        parse_version_number(version.as_str()).ok_or_else(|| ProviderError::VersionNotFound {
            secret: self.name.clone(),
            version: version.to_string(),
        })
    }

    /// Parses the version number at the end of a version's resource name.
    fn number_in(&self, version_name: &str, operation: &str) -> Result<i64, ProviderError> {
        version_name
            .rsplit_once("/versions/")
            .and_then(|(_, number)| parse_version_number(number))
            .ok_or_else(|| ProviderError::Cloud {
                secret: self.name.clone(),
                message: format!("{operation} returned the version name {version_name:?}, which has no version number"),
            })
    }

    fn take_staged_secret(&self) -> Option<Secret> {
        self.staged_secret
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    fn remember_staged_secret(&self, secret: Secret) {
        *self
            .staged_secret
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(secret);
    }

    /// Awaits one Secret Manager call, logs it and reports its outcome and duration to the
    /// observer.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, GcpError>>,
    ) -> Result<T, GcpError> {
        debug!(operation, secret = %self.name, "calling Google Cloud Secret Manager");
        let started = Instant::now();
        let result = call.await;
        if let Some(observer) = &self.observer {
            // A missing secret or version is an expected result before the first rotation,
            // so it gets its own outcome instead of counting as a cloud error.
            let outcome = match &result {
                Ok(_) => "success",
                Err(error) if has_code(error, Code::NotFound) => "NotFound",
                Err(error) => self.provider_error(operation, None, error).reason().as_str(),
            };
            observer.observe("gcp", operation, outcome, started.elapsed());
        }
        result
    }

    fn provider_error(&self, operation: &str, version: Option<&VersionId>, error: &GcpError) -> ProviderError {
        provider_error(&self.name, operation, version, error)
    }
}

fn version_id(number: i64) -> VersionId {
    VersionId::new(number.to_string())
}

/// Parses a positive decimal version number.
fn parse_version_number(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|number| *number > 0)
}

/// The state of a rotation as the secret's annotations record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PendingRecord {
    /// Another rotation, or none, claimed the secret last.
    Unclaimed,
    /// The rotation claimed the secret when its newest version was `after` (0 for none),
    /// and no version is recorded yet.
    Claimed { after: i64 },
    /// The rotation added `version`.
    Written { version: i64 },
}

/// Reads the record of `rotation` from a secret's annotations. A claim without a valid
/// `rotor.dev_pending-after` cannot locate its version and counts as unclaimed.
fn pending_record(annotations: &HashMap<String, String>, rotation: &RotationId) -> PendingRecord {
    if annotations.get(ROTATION_ANNOTATION).map(String::as_str) != Some(rotation.as_str()) {
        return PendingRecord::Unclaimed;
    }
    if let Some(version) = recorded_version(annotations) {
        return PendingRecord::Written { version };
    }
    match annotations.get(PENDING_AFTER_ANNOTATION).map(String::as_str) {
        Some("0") => PendingRecord::Claimed { after: 0 },
        Some(after) => {
            parse_version_number(after).map_or(PendingRecord::Unclaimed, |after| PendingRecord::Claimed { after })
        }
        None => PendingRecord::Unclaimed,
    }
}

fn recorded_version(annotations: &HashMap<String, String>) -> Option<i64> {
    annotations
        .get(PENDING_VERSION_ANNOTATION)
        .and_then(|version| parse_version_number(version))
}

/// Returns `annotations` claimed by `rotation` when the newest version is `after`, keeping
/// annotations that are not rotor's.
fn claim_annotations(
    annotations: &HashMap<String, String>,
    rotation: &RotationId,
    after: i64,
) -> HashMap<String, String> {
    let mut claimed = annotations.clone();
    claimed.insert(ROTATION_ANNOTATION.to_owned(), rotation.as_str().to_owned());
    claimed.insert(PENDING_AFTER_ANNOTATION.to_owned(), after.to_string());
    claimed.remove(PENDING_VERSION_ANNOTATION);
    claimed
}

/// Returns `annotations` with `version` recorded as the claiming rotation's version.
fn record_annotations(annotations: &HashMap<String, String>, version: i64) -> HashMap<String, String> {
    let mut recorded = annotations.clone();
    recorded.insert(PENDING_VERSION_ANNOTATION.to_owned(), version.to_string());
    recorded
}

/// Returns the aliases after staging `version`: `current` for the first version of a new
/// secret, as AWS makes the first version current, and `pending` otherwise.
fn stage_aliases(aliases: &HashMap<String, i64>, version: i64, first_version: bool) -> HashMap<String, i64> {
    let mut staged = aliases.clone();
    if first_version && !aliases.contains_key(CURRENT) {
        staged.insert(CURRENT.to_owned(), version);
    } else {
        staged.insert(PENDING.to_owned(), version);
    }
    staged
}

/// Aliases after a promotion, with the version that became `previous`.
#[derive(Debug, PartialEq, Eq)]
struct Promotion {
    aliases: HashMap<String, i64>,
    /// The version current before the promotion; the `previous` alias when `version` was
    /// current already.
    previous: Option<i64>,
    /// False when the aliases need no update.
    changed: bool,
}

/// Points `current` at `version` and `previous` at the old current version, and removes
/// `pending` from `version`. `implicit_current` stands for the current version of a secret
/// without a `current` alias.
fn promote_aliases(aliases: &HashMap<String, i64>, version: i64, implicit_current: Option<i64>) -> Promotion {
    let current = aliases.get(CURRENT).copied().or(implicit_current);
    let mut promoted = aliases.clone();
    if promoted.get(PENDING) == Some(&version) {
        promoted.remove(PENDING);
    }
    let previous = if current == Some(version) {
        aliases.get(PREVIOUS).copied()
    } else {
        if let Some(old) = current {
            promoted.insert(PREVIOUS.to_owned(), old);
        }
        current
    };
    promoted.insert(CURRENT.to_owned(), version);
    let changed = promoted != *aliases;
    Promotion {
        aliases: promoted,
        previous,
        changed,
    }
}

fn has_code(error: &GcpError, code: Code) -> bool {
    error.status().is_some_and(|status| status.code == code)
}

/// Returns true when `UpdateSecret` failed because the etag no longer matches. Secret
/// Manager returns `FAILED_PRECONDITION` (HTTP 400) then, as
/// <https://cloud.google.com/secret-manager/docs/etags> states. `ABORTED`, the code for
/// concurrency conflicts, counts too.
fn is_conflict(error: &GcpError) -> bool {
    has_code(error, Code::Aborted) || has_code(error, Code::FailedPrecondition)
}

/// Maps a client library error to a [`ProviderError`]. `version` is the version the call
/// named, if any: a `NOT_FOUND` then means that version (or its secret) does not exist.
fn provider_error(secret: &str, operation: &str, version: Option<&VersionId>, error: &GcpError) -> ProviderError {
    let secret = secret.to_owned();
    let message = error_message(operation, error);
    let status = error.http_status_code();
    let code = error.status().map(|status| status.code);

    if matches!(code, Some(Code::PermissionDenied | Code::Unauthenticated))
        || error.is_authentication()
        || (code.is_none() && matches!(status, Some(401 | 403)))
    {
        return ProviderError::AuthFailed { secret, message };
    }
    if code == Some(Code::ResourceExhausted) || (code.is_none() && status == Some(429)) {
        return ProviderError::Throttled { secret, message };
    }
    if code == Some(Code::NotFound)
        && let Some(version) = version
    {
        return ProviderError::VersionNotFound {
            secret,
            version: version.to_string(),
        };
    }
    ProviderError::Cloud { secret, message }
}

/// Describes a client library error for a [`ProviderError`] message: the status code and
/// message for a service error, otherwise the error's `Display` chain. Neither contains a
/// response body, so no secret value reaches the message.
fn error_message(operation: &str, error: &GcpError) -> String {
    let http = error
        .http_status_code()
        .map(|status| format!(" (HTTP {status})"))
        .unwrap_or_default();
    match error.status() {
        Some(status) => format!("{operation} returned {}: {}{http}", status.code.name(), status.message),
        None => format!("{operation} failed: {}{http}", display_chain(error)),
    }
}

/// Joins the `Display` output of `error` and of its sources with ": ".
fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use google_cloud_gax::error::CredentialsError;
    use google_cloud_gax::error::rpc::Status;

    use super::*;

    const SECRET: &str = "projects/demo/secrets/db";

    fn service_error(code: Code, message: &str, http_status: u16) -> GcpError {
        let status = Status::default().set_code(code).set_message(message);
        GcpError::service_with_http_metadata(status, Some(http_status), None)
    }

    fn map(error: &GcpError, version: Option<&VersionId>) -> ProviderError {
        provider_error(SECRET, ACCESS_SECRET_VERSION, version, error)
    }

    fn rotation(id: &str) -> RotationId {
        RotationId::from(id.to_owned())
    }

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn aliases(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs
            .iter()
            .map(|(alias, version)| ((*alias).to_owned(), *version))
            .collect()
    }

    #[test]
    fn auth_codes_map_to_auth_failed() {
        for (code, http_status) in [(Code::PermissionDenied, 403), (Code::Unauthenticated, 401)] {
            let error = map(&service_error(code, "denied", http_status), None);
            assert!(
                matches!(error, ProviderError::AuthFailed { .. }),
                "{code:?} mapped to {error:?}"
            );
        }
    }

    #[test]
    fn token_failure_maps_to_auth_failed() {
        let error = GcpError::authentication(CredentialsError::from_msg(false, "no token"));
        let mapped = map(&error, None);
        assert!(
            matches!(mapped, ProviderError::AuthFailed { .. }),
            "mapped to {mapped:?}"
        );
    }

    #[test]
    fn resource_exhausted_maps_to_throttled() {
        let error = map(&service_error(Code::ResourceExhausted, "quota", 429), None);
        assert!(matches!(error, ProviderError::Throttled { .. }), "mapped to {error:?}");
    }

    #[test]
    fn not_found_names_version() {
        let version = VersionId::new("7");
        let error = map(&service_error(Code::NotFound, "not found", 404), Some(&version));
        let ProviderError::VersionNotFound {
            secret,
            version: missing,
        } = error
        else {
            panic!("mapped to {error:?}");
        };
        assert_eq!(secret, SECRET);
        assert_eq!(missing, "7");
    }

    #[test]
    fn not_found_without_version_maps_to_cloud() {
        let error = map(&service_error(Code::NotFound, "not found", 404), None);
        assert!(matches!(error, ProviderError::Cloud { .. }), "mapped to {error:?}");
    }

    #[test]
    fn failed_precondition_maps_to_cloud() {
        let error = map(&service_error(Code::FailedPrecondition, "etag", 400), None);
        assert!(matches!(error, ProviderError::Cloud { .. }), "mapped to {error:?}");
    }

    #[test]
    fn service_error_message_names_code() {
        let error = map(&service_error(Code::Internal, "try again", 500), None);
        let ProviderError::Cloud { message, .. } = error else {
            panic!("mapped to {error:?}");
        };
        assert!(message.contains(ACCESS_SECRET_VERSION), "{message}");
        assert!(message.contains("INTERNAL"), "{message}");
        assert!(message.contains("try again"), "{message}");
        assert!(message.contains("HTTP 500"), "{message}");
    }

    #[test]
    fn io_error_maps_to_cloud() {
        let error = GcpError::io("connection refused");
        let mapped = map(&error, Some(&VersionId::new("1")));
        let ProviderError::Cloud { message, .. } = mapped else {
            panic!("mapped to {mapped:?}");
        };
        assert!(message.contains("connection refused"), "{message}");
    }

    #[test]
    fn conflict_codes() {
        assert!(is_conflict(&service_error(Code::Aborted, "etag", 409)));
        assert!(is_conflict(&service_error(Code::FailedPrecondition, "etag", 400)));
        assert!(!is_conflict(&service_error(Code::NotFound, "gone", 404)));
    }

    #[test]
    fn version_numbers_parse() {
        assert_eq!(parse_version_number("1"), Some(1));
        assert_eq!(parse_version_number("42"), Some(42));
        for text in ["", "0", "-1", "+3", "latest", "current", "1.5", "99999999999999999999"] {
            assert_eq!(parse_version_number(text), None, "{text:?}");
        }
    }

    #[test]
    fn record_of_other_rotation_is_unclaimed() {
        let found = annotations(&[(ROTATION_ANNOTATION, "r0"), (PENDING_AFTER_ANNOTATION, "3")]);
        assert_eq!(pending_record(&found, &rotation("r1")), PendingRecord::Unclaimed);
        assert_eq!(
            pending_record(&HashMap::new(), &rotation("r1")),
            PendingRecord::Unclaimed
        );
    }

    #[test]
    fn record_of_claim_without_version() {
        let found = annotations(&[(ROTATION_ANNOTATION, "r1"), (PENDING_AFTER_ANNOTATION, "3")]);
        assert_eq!(
            pending_record(&found, &rotation("r1")),
            PendingRecord::Claimed { after: 3 }
        );
        let fresh = annotations(&[(ROTATION_ANNOTATION, "r1"), (PENDING_AFTER_ANNOTATION, "0")]);
        assert_eq!(
            pending_record(&fresh, &rotation("r1")),
            PendingRecord::Claimed { after: 0 }
        );
    }

    #[test]
    fn record_of_written_version() {
        let found = annotations(&[
            (ROTATION_ANNOTATION, "r1"),
            (PENDING_AFTER_ANNOTATION, "3"),
            (PENDING_VERSION_ANNOTATION, "4"),
        ]);
        assert_eq!(
            pending_record(&found, &rotation("r1")),
            PendingRecord::Written { version: 4 }
        );
    }

    #[test]
    fn record_with_invalid_after_is_unclaimed() {
        let found = annotations(&[(ROTATION_ANNOTATION, "r1"), (PENDING_AFTER_ANNOTATION, "x")]);
        assert_eq!(pending_record(&found, &rotation("r1")), PendingRecord::Unclaimed);
    }

    #[test]
    fn claim_keeps_foreign_annotations() {
        let found = annotations(&[
            ("team", "payments"),
            (ROTATION_ANNOTATION, "r0"),
            (PENDING_VERSION_ANNOTATION, "2"),
        ]);
        let claimed = claim_annotations(&found, &rotation("r1"), 2);
        assert_eq!(claimed.get("team").map(String::as_str), Some("payments"));
        assert_eq!(claimed.get(ROTATION_ANNOTATION).map(String::as_str), Some("r1"));
        assert_eq!(claimed.get(PENDING_AFTER_ANNOTATION).map(String::as_str), Some("2"));
        assert_eq!(claimed.get(PENDING_VERSION_ANNOTATION), None);
        assert_eq!(
            pending_record(&record_annotations(&claimed, 3), &rotation("r1")),
            PendingRecord::Written { version: 3 }
        );
    }

    #[test]
    fn first_version_becomes_current() {
        let staged = stage_aliases(&HashMap::new(), 1, true);
        assert_eq!(staged, aliases(&[(CURRENT, 1)]));
    }

    #[test]
    fn later_version_becomes_pending() {
        let staged = stage_aliases(&aliases(&[(CURRENT, 3), ("custom", 1)]), 4, false);
        assert_eq!(staged, aliases(&[(CURRENT, 3), ("custom", 1), (PENDING, 4)]));
    }

    #[test]
    fn promotion_moves_current_and_previous() {
        let found = aliases(&[(CURRENT, 3), (PREVIOUS, 2), (PENDING, 4), ("custom", 1)]);
        let promotion = promote_aliases(&found, 4, None);
        assert_eq!(
            promotion.aliases,
            aliases(&[(CURRENT, 4), (PREVIOUS, 3), ("custom", 1)])
        );
        assert_eq!(promotion.previous, Some(3));
        assert!(promotion.changed);
    }

    #[test]
    fn promotion_of_current_version_is_unchanged() {
        let found = aliases(&[(CURRENT, 4), (PREVIOUS, 3)]);
        let promotion = promote_aliases(&found, 4, None);
        assert_eq!(promotion.aliases, found);
        assert_eq!(promotion.previous, Some(3));
        assert!(!promotion.changed);
    }

    #[test]
    fn promotion_of_current_removes_pending() {
        let found = aliases(&[(CURRENT, 4), (PENDING, 4)]);
        let promotion = promote_aliases(&found, 4, None);
        assert_eq!(promotion.aliases, aliases(&[(CURRENT, 4)]));
        assert_eq!(promotion.previous, None);
        assert!(promotion.changed);
    }

    #[test]
    fn promotion_keeps_other_pending() {
        let found = aliases(&[(CURRENT, 2), (PENDING, 4)]);
        let promotion = promote_aliases(&found, 3, None);
        assert_eq!(promotion.aliases, aliases(&[(CURRENT, 3), (PREVIOUS, 2), (PENDING, 4)]));
    }

    #[test]
    fn promotion_of_adopted_secret_uses_implicit_current() {
        let found = aliases(&[(PENDING, 6)]);
        let promotion = promote_aliases(&found, 6, Some(5));
        assert_eq!(promotion.aliases, aliases(&[(CURRENT, 6), (PREVIOUS, 5)]));
        assert_eq!(promotion.previous, Some(5));
        assert!(promotion.changed);
    }

    #[test]
    fn promotion_of_secret_without_versions() {
        let promotion = promote_aliases(&HashMap::new(), 1, None);
        assert_eq!(promotion.aliases, aliases(&[(CURRENT, 1)]));
        assert_eq!(promotion.previous, None);
    }

    #[test]
    fn endpoints_classified() {
        let cases = [
            ("https://secretmanager.googleapis.com", Ok(EndpointKind::Https)),
            ("https://secretmanager-psc.p.googleapis.com/", Ok(EndpointKind::Https)),
            ("http://127.0.0.1:8085", Ok(EndpointKind::Loopback)),
            ("http://localhost:8085/", Ok(EndpointKind::Loopback)),
            ("http://[::1]:8085", Ok(EndpointKind::Loopback)),
        ];
        for (endpoint, expected) in cases {
            assert_eq!(endpoint_kind(endpoint), expected, "{endpoint}");
        }
        for endpoint in [
            "http://secretmanager.googleapis.com",
            "http://127.0.0.1.example.com:80",
            "http://localhost@evil.example",
            "secretmanager.googleapis.com",
            "https://",
            "ftp://127.0.0.1",
        ] {
            assert!(endpoint_kind(endpoint).is_err(), "{endpoint} was accepted");
        }
    }

    #[test]
    fn secret_ids_validated() {
        assert!(is_valid_secret_id("db-password_2"));
        assert!(is_valid_secret_id(&"a".repeat(255)));
        for secret_id in ["", "db/password", "db.password", "dé", &"a".repeat(256)] {
            assert!(!is_valid_secret_id(secret_id), "{secret_id:?} was accepted");
        }
    }

    fn credentials(pairs: &[(&str, &str)]) -> Credentials {
        Credentials {
            source: "team-a/gcp-credentials".to_owned(),
            data: pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), SecretValue::new((*value).to_owned())))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn credentials_message(credentials: &Credentials) -> String {
        let error = service_account_key(credentials).expect_err("rejects the credentials");
        let ProviderError::CredentialsNotFound { name, message } = error else {
            panic!("{error:?}");
        };
        assert_eq!(name, "team-a/gcp-credentials");
        message
    }

    #[test]
    fn credentials_missing_key() {
        let message = credentials_message(&credentials(&[("other.json", "{}")]));
        assert!(message.contains(CREDENTIALS_KEY), "{message}");
    }

    #[test]
    fn credentials_invalid_json_hides_content() {
        let message = credentials_message(&credentials(&[(CREDENTIALS_KEY, "{\"private_key\": hunter2")]));
        assert!(message.contains("not valid JSON"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn credentials_of_other_type_rejected() {
        let message = credentials_message(&credentials(&[(
            CREDENTIALS_KEY,
            r#"{"type": "authorized_user", "refresh_token": "hunter2"}"#,
        )]));
        assert!(message.contains("authorized_user"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn credentials_incomplete_key_rejected() {
        let message = credentials_message(&credentials(&[(
            CREDENTIALS_KEY,
            r#"{"type": "service_account", "private_key": "hunter2"}"#,
        )]));
        assert!(message.contains("client_email"), "{message}");
        assert!(message.contains("project_id"), "{message}");
        assert!(!message.contains("private_key,"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn credentials_complete_key_accepted() {
        let key = serde_json::json!({
            "type": "service_account",
            "project_id": "demo",
            "private_key_id": "key-1",
            "private_key": "-----BEGIN PRIVATE KEY-----\nnot checked until a token is requested\n-----END PRIVATE KEY-----\n",
            "client_email": "rotor@demo.iam.gserviceaccount.com",
        });
        let credentials = credentials(&[(CREDENTIALS_KEY, &key.to_string())]);
        assert!(service_account_key(&credentials).is_ok());
    }

    fn spec(endpoint: Option<&str>) -> GcpProvider {
        GcpProvider {
            project: "demo".to_owned(),
            secret_id: "db".to_owned(),
            endpoint: endpoint.map(str::to_owned),
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
    fn rotator_names_resource() {
        let rotator = GcpFactory::new()
            .rotator(&spec(None), None, &owner())
            .expect("builds a rotator");
        assert_eq!(rotator.secret_name(), SECRET);
        assert_eq!(rotator.provider(), "gcp");
        assert_eq!(rotator.endpoint, DEFAULT_ENDPOINT);
        assert!(matches!(
            rotator.client_credentials,
            ClientCredentials::ApplicationDefault
        ));
    }

    #[test]
    fn rotator_uses_anonymous_for_loopback() {
        let rotator = GcpFactory::new()
            .rotator(&spec(Some("http://127.0.0.1:8085")), None, &owner())
            .expect("builds a rotator");
        assert!(matches!(rotator.client_credentials, ClientCredentials::Given(_)));
    }

    #[test]
    fn rotator_rejects_plain_http_to_remote_host() {
        let error = GcpFactory::new()
            .rotator(&spec(Some("http://secretmanager.googleapis.com")), None, &owner())
            .expect_err("rejects the endpoint");
        assert!(matches!(error, ProviderError::InvalidConfig { .. }), "{error:?}");
    }

    #[test]
    fn rotator_rejects_invalid_secret_id() {
        let spec = GcpProvider {
            secret_id: "a/b".to_owned(),
            ..spec(None)
        };
        let error = GcpFactory::new()
            .rotator(&spec, None, &owner())
            .expect_err("rejects the secret id");
        assert!(matches!(error, ProviderError::InvalidConfig { .. }), "{error:?}");
    }

    #[test]
    fn rotators_share_client_per_endpoint() {
        let factory = GcpFactory::new();
        let first = factory.rotator(&spec(None), None, &owner()).expect("builds");
        let second = factory.rotator(&spec(None), None, &owner()).expect("builds");
        let other = factory
            .rotator(&spec(Some("http://127.0.0.1:8085")), None, &owner())
            .expect("builds");
        assert!(Arc::ptr_eq(&first.client, &second.client));
        assert!(!Arc::ptr_eq(&first.client, &other.client));
    }
}
