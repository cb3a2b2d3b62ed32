//! In-memory state and the semantics of each Secret Manager method, independent of HTTP.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::error::ApiError;
use crate::filter::{Field, FieldValue, Filterable};
use crate::page::{self, Page, PageRequest};

/// The largest payload Secret Manager stores: 64 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    Enabled,
    Disabled,
    Destroyed,
}

impl VersionState {
    /// Returns the enum value name used in JSON with string enum encoding.
    pub fn name(self) -> &'static str {
        match self {
            VersionState::Enabled => "ENABLED",
            VersionState::Disabled => "DISABLED",
            VersionState::Destroyed => "DESTROYED",
        }
    }

    /// Returns the enum number from `google.cloud.secretmanager.v1.SecretVersion.State`.
    pub fn number(self) -> i32 {
        match self {
            VersionState::Enabled => 1,
            VersionState::Disabled => 2,
            VersionState::Destroyed => 3,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ENABLED" => Some(VersionState::Enabled),
            "DISABLED" => Some(VersionState::Disabled),
            "DESTROYED" => Some(VersionState::Destroyed),
            _ => None,
        }
    }
}

/// A secret's replication policy. Customer-managed encryption key names are stored and
/// returned but never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    Automatic { kms_key_name: Option<String> },
    UserManaged { replicas: Vec<Replica> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub location: String,
    pub kms_key_name: Option<String>,
}

/// The fields a caller may set when creating a secret, already validated.
#[derive(Debug, Clone)]
pub struct SecretSpec {
    pub replication: Replication,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub version_aliases: BTreeMap<String, i64>,
}

/// The fields listed in a `secrets.patch` update mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateMask {
    pub labels: bool,
    pub annotations: bool,
    pub version_aliases: bool,
}

/// A validated `secrets.patch` request. Fields outside the mask are ignored.
#[derive(Debug, Clone)]
pub struct SecretUpdate {
    pub mask: UpdateMask,
    pub etag: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub version_aliases: BTreeMap<String, i64>,
}

#[derive(Debug, Clone)]
pub struct Secret {
    /// `projects/{project}/secrets/{secret}`, with the project segment as the caller sent it.
    pub name: String,
    pub create_time: Timestamp,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub version_aliases: BTreeMap<String, i64>,
    pub replication: Replication,
    pub etag: String,
    /// Creation order across all secrets, the sort key of `secrets.list`.
    sequence: u64,
    /// Version `n` is at index `n - 1`. Versions are never removed, only destroyed.
    versions: Vec<SecretVersion>,
}

#[derive(Clone)]
pub struct SecretVersion {
    /// `projects/{project}/secrets/{secret}/versions/{number}`.
    pub name: String,
    pub number: i64,
    pub create_time: Timestamp,
    pub destroy_time: Option<Timestamp>,
    pub state: VersionState,
    pub etag: String,
    pub client_specified_payload_checksum: bool,
    /// The secret's replication policy, which is immutable, for `replicationStatus`.
    pub replication: Replication,
    /// `None` once the version is destroyed.
    payload: Option<Vec<u8>>,
    crc32c: u32,
}

/// Leaves the payload out so that logging a version never prints secret data.
impl std::fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVersion")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("etag", &self.etag)
            .field("payload_bytes", &self.payload.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// The result of `versions.access`.
pub struct AccessedVersion {
    /// The resolved name, with the version number even when an alias or `latest` was requested.
    pub name: String,
    pub data: Vec<u8>,
    pub crc32c: u32,
}

impl std::fmt::Debug for AccessedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessedVersion")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A state change requested by `versions.enable`, `versions.disable` or `versions.destroy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionAction {
    Enable,
    Disable,
    Destroy,
}

/// All projects' secrets, keyed by (project, secret ID). Project IDs are opaque: a project
/// number and a project ID name different projects here.
#[derive(Debug, Default)]
pub struct Store {
    secrets: BTreeMap<(String, String), Secret>,
    /// Secrets whose every request fails with PERMISSION_DENIED, set through the test hook.
    denied: std::collections::BTreeSet<(String, String)>,
    next_sequence: u64,
    etags: EtagGenerator,
}

/// Issues etags as quoted strings, the form that Secret Manager's etag documentation gives.
/// Each value is the current time in microseconds, in hexadecimal and raised when needed so
/// that no two etags are equal.
#[derive(Debug, Default)]
struct EtagGenerator {
    last: u64,
}

impl EtagGenerator {
    fn next(&mut self) -> String {
        let now = u64::try_from(Timestamp::now().as_microsecond()).unwrap_or_default();
        self.last = now.max(self.last + 1);
        format!("\"{:x}\"", self.last)
    }
}

pub fn secret_name(project: &str, secret_id: &str) -> String {
    format!("projects/{project}/secrets/{secret_id}")
}

fn secret_not_found(project: &str, secret_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Secret [{}] not found or has no versions.",
        secret_name(project, secret_id)
    ))
}

fn version_not_found(secret: &Secret, version_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Secret Version [{}/versions/{version_id}] not found.",
        secret.name
    ))
}

/// Fails with `FAILED_PRECONDITION` when `requested` is set and differs from `current`.
/// An empty `requested` etag means "no check", as in Google's API.
pub fn check_etag(requested: Option<&str>, current: &str, resource: &str) -> Result<(), ApiError> {
    match requested {
        Some(etag) if !etag.is_empty() && etag != current => Err(ApiError::failed_precondition(format!(
            "etag {etag} does not match the current etag of {resource}. Read the resource again and retry with its \
             current etag."
        ))),
        _ => Ok(()),
    }
}

impl Secret {
    /// Finds the index of the version that `version_id` names: a number, `latest` (the most
    /// recently created version, whatever its state) or a version alias.
    fn resolve_version(&self, project: &str, secret_id: &str, version_id: &str) -> Result<usize, ApiError> {
        if version_id == "latest" {
            return match self.versions.len() {
                0 => Err(secret_not_found(project, secret_id)),
                count => Ok(count - 1),
            };
        }
        let number = if version_id.bytes().all(|b| b.is_ascii_digit()) {
            version_id.parse::<i64>().ok()
        } else {
            self.version_aliases.get(version_id).copied()
        };
        // NOTE: an alias may name a version that does not exist (Secret Manager's reference does
        // not say whether it checks), so it resolves to NOT_FOUND here instead of failing at update.
        match number {
            Some(number) if number >= 1 && number as usize <= self.versions.len() => Ok(number as usize - 1),
            _ => Err(version_not_found(self, version_id)),
        }
    }
}

impl Store {
    /// Makes every request on the secret fail with PERMISSION_DENIED, or stops doing so.
    pub fn set_denied(&mut self, project: &str, secret: &str, denied: bool) {
        let key = (project.to_owned(), secret.to_owned());
        if denied {
            self.denied.insert(key);
        } else {
            self.denied.remove(&key);
        }
    }

    /// Returns true when requests on the secret must fail with PERMISSION_DENIED.
    pub fn is_denied(&self, project: &str, secret: &str) -> bool {
        self.denied.contains(&(project.to_owned(), secret.to_owned()))
    }

    pub fn new() -> Self {
        Self::default()
    }

    fn secret(&self, project: &str, secret_id: &str) -> Result<&Secret, ApiError> {
        self.secrets
            .get(&(project.to_string(), secret_id.to_string()))
            .ok_or_else(|| secret_not_found(project, secret_id))
    }

    fn secret_mut(&mut self, project: &str, secret_id: &str) -> Result<&mut Secret, ApiError> {
        self.secrets
            .get_mut(&(project.to_string(), secret_id.to_string()))
            .ok_or_else(|| secret_not_found(project, secret_id))
    }

    pub fn create_secret(&mut self, project: &str, secret_id: &str, spec: SecretSpec) -> Result<Secret, ApiError> {
        let key = (project.to_string(), secret_id.to_string());
        if self.secrets.contains_key(&key) {
            return Err(ApiError::already_exists(format!(
                "Secret [{}] already exists.",
                secret_name(project, secret_id)
            )));
        }
        self.next_sequence += 1;
        let secret = Secret {
            name: secret_name(project, secret_id),
            create_time: Timestamp::now(),
            labels: spec.labels,
            annotations: spec.annotations,
            version_aliases: spec.version_aliases,
            replication: spec.replication,
            etag: self.etags.next(),
            sequence: self.next_sequence,
            versions: Vec::new(),
        };
        self.secrets.insert(key, secret.clone());
        Ok(secret)
    }

    pub fn get_secret(&self, project: &str, secret_id: &str) -> Result<Secret, ApiError> {
        self.secret(project, secret_id).cloned()
    }

    /// Applies the masked fields of `update` and issues a new etag, even when nothing changed.
    pub fn update_secret(&mut self, project: &str, secret_id: &str, update: SecretUpdate) -> Result<Secret, ApiError> {
        let etag = self.etags.next();
        let secret = self.secret_mut(project, secret_id)?;
        check_etag(
            update.etag.as_deref(),
            &secret.etag,
            &format!("Secret [{}]", secret.name),
        )?;
        if update.mask.labels {
            secret.labels = update.labels;
        }
        if update.mask.annotations {
            secret.annotations = update.annotations;
        }
        if update.mask.version_aliases {
            secret.version_aliases = update.version_aliases;
        }
        secret.etag = etag;
        Ok(secret.clone())
    }

    /// Deletes a secret with all its versions.
    pub fn delete_secret(&mut self, project: &str, secret_id: &str, etag: Option<&str>) -> Result<(), ApiError> {
        let secret = self.secret(project, secret_id)?;
        check_etag(etag, &secret.etag, &format!("Secret [{}]", secret.name))?;
        self.secrets.remove(&(project.to_string(), secret_id.to_string()));
        Ok(())
    }

    /// Lists a project's secrets, newest first.
    pub fn list_secrets(&self, project: &str, request: &PageRequest) -> Result<Page<Secret>, ApiError> {
        let mut secrets: Vec<&Secret> = self
            .secrets
            .range((project.to_string(), String::new())..)
            .take_while(|((p, _), _)| p == project)
            .map(|(_, s)| s)
            .collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.sequence));
        page::paginate(secrets, request, |secret| secret.sequence)
    }

    /// Adds a version holding `data`. When `client_crc32c` is given it must equal the CRC32C of
    /// `data`, otherwise the request fails with `INVALID_ARGUMENT`.
    pub fn add_version(
        &mut self,
        project: &str,
        secret_id: &str,
        data: Vec<u8>,
        client_crc32c: Option<i64>,
    ) -> Result<SecretVersion, ApiError> {
        if data.is_empty() {
            return Err(ApiError::invalid_argument("Secret Payload cannot be empty."));
        }
        if data.len() > MAX_PAYLOAD_BYTES {
            return Err(ApiError::invalid_argument(format!(
                "payload data is {} bytes, more than the maximum of {MAX_PAYLOAD_BYTES} bytes (64 KiB)",
                data.len()
            )));
        }
        let crc32c = crate::checksum::crc32c(&data);
        if let Some(expected) = client_crc32c
            && expected != i64::from(crc32c)
        {
            return Err(ApiError::invalid_argument(format!(
                "payload.dataCrc32c {expected} does not match the CRC32C of payload.data, which is {crc32c}; \
                 compute the checksum over the decoded bytes"
            )));
        }

        let etag = self.etags.next();
        let secret = self.secret_mut(project, secret_id)?;
        let number = secret.versions.len() as i64 + 1;
        let version = SecretVersion {
            name: format!("{}/versions/{number}", secret.name),
            number,
            create_time: Timestamp::now(),
            destroy_time: None,
            state: VersionState::Enabled,
            etag,
            client_specified_payload_checksum: client_crc32c.is_some(),
            replication: secret.replication.clone(),
            payload: Some(data),
            crc32c,
        };
        secret.versions.push(version.clone());
        Ok(version)
    }

    pub fn get_version(&self, project: &str, secret_id: &str, version_id: &str) -> Result<SecretVersion, ApiError> {
        let secret = self.secret(project, secret_id)?;
        let index = secret.resolve_version(project, secret_id, version_id)?;
        Ok(secret.versions[index].clone())
    }

    /// Returns a version's payload. Disabled and destroyed versions fail with
    /// `FAILED_PRECONDITION`.
    pub fn access_version(
        &self,
        project: &str,
        secret_id: &str,
        version_id: &str,
    ) -> Result<AccessedVersion, ApiError> {
        let secret = self.secret(project, secret_id)?;
        let version = &secret.versions[secret.resolve_version(project, secret_id, version_id)?];
        match (&version.payload, version.state) {
            (Some(data), VersionState::Enabled) => Ok(AccessedVersion {
                name: version.name.clone(),
                data: data.clone(),
                crc32c: version.crc32c,
            }),
            (_, state) => Err(ApiError::failed_precondition(format!(
                "Secret Version [{}] is in {} state.",
                version.name,
                state.name()
            ))),
        }
    }

    /// Lists a secret's versions, newest first.
    pub fn list_versions(
        &self,
        project: &str,
        secret_id: &str,
        request: &PageRequest,
    ) -> Result<Page<SecretVersion>, ApiError> {
        let secret = self.secret(project, secret_id)?;
        let versions: Vec<&SecretVersion> = secret.versions.iter().rev().collect();
        page::paginate(versions, request, |version| version.number as u64)
    }

    /// Enables, disables or destroys a version and issues it a new etag. A destroyed version
    /// accepts none of these. Destroying clears the payload and sets `destroy_time`.
    pub fn change_version_state(
        &mut self,
        project: &str,
        secret_id: &str,
        version_id: &str,
        action: VersionAction,
        etag: Option<&str>,
    ) -> Result<SecretVersion, ApiError> {
        let new_etag = self.etags.next();
        let secret = self.secret_mut(project, secret_id)?;
        let index = secret.resolve_version(project, secret_id, version_id)?;
        let version = &mut secret.versions[index];
        check_etag(etag, &version.etag, &format!("Secret Version [{}]", version.name))?;
        if version.state == VersionState::Destroyed {
            return Err(ApiError::failed_precondition(format!(
                "Secret Version [{}] is in DESTROYED state.",
                version.name
            )));
        }
        match action {
            VersionAction::Enable => version.state = VersionState::Enabled,
            VersionAction::Disable => version.state = VersionState::Disabled,
            VersionAction::Destroy => {
                version.state = VersionState::Destroyed;
                version.destroy_time = Some(Timestamp::now());
                version.payload = None;
            }
        }
        version.etag = new_etag;
        Ok(version.clone())
    }
}

impl Filterable for Secret {
    fn field_value(&self, field: &Field) -> FieldValue<'_> {
        match field {
            Field::Name => FieldValue::Texts(vec![self.name.as_str()]),
            Field::CreateTime => FieldValue::Time(Some(self.create_time)),
            Field::Labels => FieldValue::Keys(self.labels.keys().map(String::as_str).collect()),
            Field::Label(key) => FieldValue::Texts(self.labels.get(key).map(String::as_str).into_iter().collect()),
            Field::Annotations => FieldValue::Keys(self.annotations.keys().map(String::as_str).collect()),
            Field::Annotation(key) => {
                FieldValue::Texts(self.annotations.get(key).map(String::as_str).into_iter().collect())
            }
            Field::ReplicationAutomatic => {
                FieldValue::Presence(matches!(self.replication, Replication::Automatic { .. }))
            }
            Field::ReplicaLocation => match &self.replication {
                Replication::Automatic { .. } => FieldValue::Texts(Vec::new()),
                Replication::UserManaged { replicas } => {
                    FieldValue::Texts(replicas.iter().map(|replica| replica.location.as_str()).collect())
                }
            },
            Field::DestroyTime | Field::State => FieldValue::Texts(Vec::new()),
        }
    }
}

impl Filterable for SecretVersion {
    fn field_value(&self, field: &Field) -> FieldValue<'_> {
        match field {
            Field::Name => FieldValue::Texts(vec![self.name.as_str()]),
            Field::CreateTime => FieldValue::Time(Some(self.create_time)),
            Field::DestroyTime => FieldValue::Time(self.destroy_time),
            Field::State => FieldValue::State(self.state),
            _ => FieldValue::Texts(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    const PROJECT: &str = "p";

    fn spec() -> SecretSpec {
        SecretSpec {
            replication: Replication::Automatic { kms_key_name: None },
            labels: BTreeMap::from([("team".to_string(), "payments".to_string())]),
            annotations: BTreeMap::new(),
            version_aliases: BTreeMap::new(),
        }
    }

    /// Builds a store with secret `s` and versions 1 to `count`, whose payloads are `v1`, `v2`, ...
    fn store_with_versions(count: usize) -> Store {
        let mut store = Store::new();
        store.create_secret(PROJECT, "s", spec()).expect("create");
        for number in 1..=count {
            store
                .add_version(PROJECT, "s", format!("v{number}").into_bytes(), None)
                .expect("add version");
        }
        store
    }

    fn set_aliases(store: &mut Store, aliases: &[(&str, i64)]) {
        let update = SecretUpdate {
            mask: UpdateMask {
                version_aliases: true,
                ..UpdateMask::default()
            },
            etag: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            version_aliases: aliases
                .iter()
                .map(|(alias, number)| (alias.to_string(), *number))
                .collect(),
        };
        store.update_secret(PROJECT, "s", update).expect("update aliases");
    }

    fn access_data(store: &Store, version_id: &str) -> Result<Vec<u8>, ApiError> {
        store
            .access_version(PROJECT, "s", version_id)
            .map(|accessed| accessed.data)
    }

    #[test]
    fn latest_is_newest_version_whatever_its_state() {
        let mut store = store_with_versions(3);
        assert_eq!(store.get_version(PROJECT, "s", "latest").expect("latest").number, 3);

        store
            .change_version_state(PROJECT, "s", "3", VersionAction::Disable, None)
            .expect("disable");
        assert_eq!(store.get_version(PROJECT, "s", "latest").expect("latest").number, 3);
        let error = access_data(&store, "latest").expect_err("latest is disabled");
        assert_eq!(error.code, Code::FailedPrecondition);
        assert_eq!(
            error.message,
            "Secret Version [projects/p/secrets/s/versions/3] is in DISABLED state."
        );
    }

    #[test]
    fn latest_of_secret_without_versions_is_not_found() {
        let store = store_with_versions(0);
        let error = store.get_version(PROJECT, "s", "latest").expect_err("no versions");
        assert_eq!(error.code, Code::NotFound);
        assert_eq!(
            error.message,
            "Secret [projects/p/secrets/s] not found or has no versions."
        );
    }

    #[test]
    fn numbers_resolve_to_their_version() {
        let store = store_with_versions(3);
        assert_eq!(access_data(&store, "2").expect("version 2"), b"v2");
        for missing in ["0", "4", "99999999999999999999"] {
            let error = store.get_version(PROJECT, "s", missing).expect_err(missing);
            assert_eq!(error.code, Code::NotFound, "{missing}");
        }
        let error = store.get_version(PROJECT, "s", "4").expect_err("version 4");
        assert_eq!(
            error.message,
            "Secret Version [projects/p/secrets/s/versions/4] not found."
        );
    }

    #[test]
    fn aliases_resolve_to_their_version() {
        let mut store = store_with_versions(3);
        set_aliases(&mut store, &[("stable", 1), ("next", 3), ("future", 9)]);

        assert_eq!(access_data(&store, "stable").expect("stable"), b"v1");
        let accessed = store.access_version(PROJECT, "s", "next").expect("next");
        assert_eq!(accessed.name, "projects/p/secrets/s/versions/3");
        assert_eq!(
            store
                .get_version(PROJECT, "s", "future")
                .expect_err("alias to missing version")
                .code,
            Code::NotFound
        );
        assert_eq!(
            store
                .get_version(PROJECT, "s", "unknown")
                .expect_err("unknown alias")
                .code,
            Code::NotFound
        );
    }

    #[test]
    fn aliases_follow_updates() {
        let mut store = store_with_versions(2);
        set_aliases(&mut store, &[("current", 1)]);
        set_aliases(&mut store, &[("current", 2)]);
        assert_eq!(access_data(&store, "current").expect("current"), b"v2");
    }

    #[test]
    fn update_changes_only_masked_fields() {
        let mut store = store_with_versions(1);
        let before = store.get_secret(PROJECT, "s").expect("secret");
        let update = SecretUpdate {
            mask: UpdateMask {
                annotations: true,
                ..UpdateMask::default()
            },
            etag: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::from([("owner".to_string(), "rotor".to_string())]),
            version_aliases: BTreeMap::from([("ignored".to_string(), 1)]),
        };

        let after = store.update_secret(PROJECT, "s", update).expect("update");

        assert_eq!(after.labels, before.labels, "labels are outside the mask");
        assert!(after.version_aliases.is_empty(), "aliases are outside the mask");
        assert_eq!(after.annotations.get("owner").map(String::as_str), Some("rotor"));
        assert_ne!(after.etag, before.etag);
    }

    #[test]
    fn masked_field_missing_from_body_is_cleared() {
        let mut store = store_with_versions(0);
        let update = SecretUpdate {
            mask: UpdateMask {
                labels: true,
                ..UpdateMask::default()
            },
            etag: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            version_aliases: BTreeMap::new(),
        };
        let after = store.update_secret(PROJECT, "s", update).expect("update");
        assert!(after.labels.is_empty());
    }

    #[test]
    fn check_etag_compares_only_when_given() {
        assert!(check_etag(None, "\"a\"", "Secret [x]").is_ok());
        assert!(check_etag(Some(""), "\"a\"", "Secret [x]").is_ok());
        assert!(check_etag(Some("\"a\""), "\"a\"", "Secret [x]").is_ok());
        let error = check_etag(Some("\"b\""), "\"a\"", "Secret [x]").expect_err("mismatch");
        assert_eq!(error.code, Code::FailedPrecondition);
        // Etags include their quotes, so the bare value does not match.
        assert!(check_etag(Some("a"), "\"a\"", "Secret [x]").is_err());
    }

    #[test]
    fn stale_etag_leaves_secret_unchanged() {
        let mut store = store_with_versions(1);
        let secret = store.get_secret(PROJECT, "s").expect("secret");
        let update = SecretUpdate {
            mask: UpdateMask {
                labels: true,
                ..UpdateMask::default()
            },
            etag: Some("\"stale\"".to_string()),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            version_aliases: BTreeMap::new(),
        };

        assert_eq!(
            store.update_secret(PROJECT, "s", update).expect_err("stale").code,
            Code::FailedPrecondition
        );
        assert_eq!(
            store
                .delete_secret(PROJECT, "s", Some("\"stale\""))
                .expect_err("stale")
                .code,
            Code::FailedPrecondition
        );
        let unchanged = store.get_secret(PROJECT, "s").expect("still there");
        assert_eq!(unchanged.etag, secret.etag);
        assert_eq!(unchanged.labels, secret.labels);
        store
            .delete_secret(PROJECT, "s", Some(&secret.etag))
            .expect("delete with current etag");
    }

    #[test]
    fn etags_are_quoted_and_unique() {
        let mut store = store_with_versions(0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let version = store.add_version(PROJECT, "s", b"x".to_vec(), None).expect("add");
            assert!(
                version.etag.starts_with('"') && version.etag.ends_with('"'),
                "{}",
                version.etag
            );
            assert!(seen.insert(version.etag), "duplicate etag");
        }
    }

    #[test]
    fn no_op_state_change_still_changes_etag() {
        let mut store = store_with_versions(1);
        let before = store.get_version(PROJECT, "s", "1").expect("version");
        let enabled = store
            .change_version_state(PROJECT, "s", "1", VersionAction::Enable, Some(&before.etag))
            .expect("enable");
        assert_ne!(enabled.etag, before.etag);
        let error = store
            .change_version_state(PROJECT, "s", "1", VersionAction::Disable, Some(&before.etag))
            .expect_err("old etag after no-op enable");
        assert_eq!(error.code, Code::FailedPrecondition);
    }

    #[test]
    fn destroy_clears_payload_and_is_final() {
        let mut store = store_with_versions(1);
        let destroyed = store
            .change_version_state(PROJECT, "s", "1", VersionAction::Destroy, None)
            .expect("destroy");
        assert_eq!(destroyed.state, VersionState::Destroyed);
        assert!(destroyed.destroy_time.is_some());
        assert!(destroyed.payload.is_none());
        for action in [VersionAction::Enable, VersionAction::Disable, VersionAction::Destroy] {
            let error = store
                .change_version_state(PROJECT, "s", "1", action, None)
                .expect_err("destroyed");
            assert_eq!(error.code, Code::FailedPrecondition, "{action:?}");
        }
    }

    #[test]
    fn add_version_checks_payload() {
        let mut store = store_with_versions(0);
        let data = b"payload".to_vec();
        let right = i64::from(crate::checksum::crc32c(&data));

        let error = store
            .add_version(PROJECT, "s", data.clone(), Some(right + 1))
            .expect_err("wrong checksum");
        assert_eq!(error.code, Code::InvalidArgument);
        assert_eq!(
            store
                .add_version(PROJECT, "s", Vec::new(), None)
                .expect_err("empty")
                .code,
            Code::InvalidArgument
        );
        let too_big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            store
                .add_version(PROJECT, "s", too_big, None)
                .expect_err("too big")
                .code,
            Code::InvalidArgument
        );
        let largest = vec![0u8; MAX_PAYLOAD_BYTES];
        store.add_version(PROJECT, "s", largest, None).expect("64 KiB payload");

        let version = store
            .add_version(PROJECT, "s", data, Some(right))
            .expect("right checksum");
        assert_eq!(version.number, 2, "rejected versions take no number");
        assert!(version.client_specified_payload_checksum);
    }

    #[test]
    fn projects_are_separate() {
        let mut store = store_with_versions(0);
        store
            .create_secret("123", "s", spec())
            .expect("same ID in another project");
        assert_eq!(
            store.create_secret(PROJECT, "s", spec()).expect_err("duplicate").code,
            Code::AlreadyExists
        );
        let page = store.list_secrets("123", &PageRequest::default()).expect("list");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].name, "projects/123/secrets/s");
    }
}
