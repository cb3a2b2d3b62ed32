//! In-memory state of one vault: active secrets with their versions, and soft-deleted
//! secrets. Times are Unix seconds, the resolution Key Vault reports.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// Days a soft-deleted secret is kept before its scheduled purge date, Key Vault's default
/// retention.
pub const RECOVERABLE_DAYS: i64 = 90;
const SECONDS_PER_DAY: i64 = 86_400;
/// Maximum length of a secret name.
/// NOTE: 127 is the limit commonly quoted for Key Vault object names. The REST reference read
/// for this emulator gives only the pattern, not a length.
const MAX_NAME_CHARS: usize = 127;

/// One version of a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// 32 lowercase hex digits.
    pub id: String,
    pub value: String,
    pub content_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub enabled: bool,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

/// A secret: its name as first set, and its versions in creation order.
#[derive(Clone, Debug)]
pub struct Secret {
    pub name: String,
    pub versions: Vec<Version>,
}

impl Secret {
    pub fn latest(&self) -> &Version {
        // A secret is created with one version, and versions are never removed one by one.
        &self.versions[self.versions.len() - 1]
    }
}

/// A soft-deleted secret with all its versions.
#[derive(Clone, Debug)]
pub struct DeletedSecret {
    pub secret: Secret,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// Fields of a set request.
#[derive(Clone, Debug, Default)]
pub struct SetRequest {
    pub value: String,
    pub content_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
}

/// Fields of an update request. `None` leaves a field unchanged.
#[derive(Clone, Debug, Default)]
pub struct UpdateRequest {
    pub content_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
}

/// The vault. Names are case-insensitive, as in Key Vault, so the maps are keyed by the
/// lowercase name.
#[derive(Debug, Default)]
pub struct Store {
    secrets: BTreeMap<String, Secret>,
    deleted: BTreeMap<String, DeletedSecret>,
}

/// Checks a secret name against Key Vault's pattern `^[0-9a-zA-Z-]+$` and length limit.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_parameter(format!(
            "The request URI contains an invalid name: {name}. A secret name has 1 to {MAX_NAME_CHARS} \
             characters from 0-9, a-z, A-Z and -."
        )))
    }
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a version with a new random id, creating the secret when needed, and returns it.
    pub fn set(&mut self, name: &str, request: SetRequest, now: i64) -> Result<(&Secret, &Version), ApiError> {
        check_name(name)?;
        let key = key(name);
        if self.deleted.contains_key(&key) {
            return Err(ApiError::deleted_but_recoverable(name));
        }
        let version = Version {
            id: uuid::Uuid::new_v4().simple().to_string(),
            value: request.value,
            content_type: request.content_type,
            tags: request.tags,
            enabled: request.enabled.unwrap_or(true),
            not_before: request.not_before,
            expires: request.expires,
            created: now,
            updated: now,
        };
        let secret = self.secrets.entry(key).or_insert_with(|| Secret {
            name: name.to_owned(),
            versions: Vec::new(),
        });
        secret.versions.push(version);
        Ok((secret, secret.latest()))
    }

    /// Returns the secret `name`, or `SecretNotFound`.
    pub fn secret(&self, name: &str) -> Result<&Secret, ApiError> {
        self.secrets
            .get(&key(name))
            .ok_or_else(|| ApiError::secret_not_found(name))
    }

    /// Returns `version` of `name`, or the latest version when `version` is `None`.
    /// Does not check whether the version is enabled.
    pub fn version(&self, name: &str, version: Option<&str>) -> Result<(&Secret, &Version), ApiError> {
        let secret = self.secret(name)?;
        let found = match version {
            None => Some(secret.latest()),
            Some(id) => secret.versions.iter().find(|candidate| candidate.id == id),
        };
        match found {
            Some(found) => Ok((secret, found)),
            None => Err(ApiError::version_not_found(name, version.unwrap_or_default())),
        }
    }

    /// Returns a version like [`Store::version`], failing with `SecretDisabled` when it is
    /// disabled, as a GET with its value does.
    pub fn readable_version(&self, name: &str, version: Option<&str>) -> Result<(&Secret, &Version), ApiError> {
        let (secret, found) = self.version(name, version)?;
        if !found.enabled {
            return Err(ApiError::secret_disabled());
        }
        Ok((secret, found))
    }

    /// Changes the attributes, tags or content type of one version and returns it.
    pub fn update(
        &mut self,
        name: &str,
        version: Option<&str>,
        request: UpdateRequest,
        now: i64,
    ) -> Result<(&Secret, &Version), ApiError> {
        let secret = self
            .secrets
            .get_mut(&key(name))
            .ok_or_else(|| ApiError::secret_not_found(name))?;
        let index = match version {
            None => secret.versions.len() - 1,
            Some(id) => secret
                .versions
                .iter()
                .position(|candidate| candidate.id == id)
                .ok_or_else(|| ApiError::version_not_found(name, id))?,
        };
        let target = &mut secret.versions[index];
        if let Some(content_type) = request.content_type {
            target.content_type = Some(content_type);
        }
        if let Some(tags) = request.tags {
            target.tags = Some(tags);
        }
        if let Some(enabled) = request.enabled {
            target.enabled = enabled;
        }
        if let Some(not_before) = request.not_before {
            target.not_before = Some(not_before);
        }
        if let Some(expires) = request.expires {
            target.expires = Some(expires);
        }
        target.updated = now;
        Ok((secret, &secret.versions[index]))
    }

    /// Active secrets in name order.
    pub fn secrets(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.secrets.iter().map(|(key, secret)| (key.as_str(), secret))
    }

    /// Soft-deleted secrets in name order.
    pub fn deleted_secrets(&self) -> impl Iterator<Item = (&str, &DeletedSecret)> {
        self.deleted.iter().map(|(key, deleted)| (key.as_str(), deleted))
    }

    /// Moves `name` with all its versions to the deleted secrets and returns it.
    pub fn delete(&mut self, name: &str, now: i64) -> Result<&DeletedSecret, ApiError> {
        let key = key(name);
        let secret = self
            .secrets
            .remove(&key)
            .ok_or_else(|| ApiError::secret_not_found(name))?;
        let deleted = DeletedSecret {
            secret,
            deleted_date: now,
            scheduled_purge_date: now + RECOVERABLE_DAYS * SECONDS_PER_DAY,
        };
        Ok(self.deleted.entry(key).or_insert(deleted))
    }

    /// Returns the soft-deleted secret `name`, or `SecretNotFound`.
    pub fn deleted(&self, name: &str) -> Result<&DeletedSecret, ApiError> {
        self.deleted
            .get(&key(name))
            .ok_or_else(|| ApiError::deleted_secret_not_found(name))
    }

    /// Moves a soft-deleted secret back to the active secrets, with every version as it was,
    /// and returns it.
    pub fn recover(&mut self, name: &str) -> Result<&Secret, ApiError> {
        let key = key(name);
        let deleted = self
            .deleted
            .remove(&key)
            .ok_or_else(|| ApiError::deleted_secret_not_found(name))?;
        Ok(self.secrets.entry(key).or_insert(deleted.secret))
    }

    /// Removes a soft-deleted secret for good.
    pub fn purge(&mut self, name: &str) -> Result<(), ApiError> {
        self.deleted
            .remove(&key(name))
            .map(|_| ())
            .ok_or_else(|| ApiError::deleted_secret_not_found(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(store: &mut Store, name: &str, value: &str, now: i64) -> String {
        let request = SetRequest {
            value: value.to_owned(),
            ..SetRequest::default()
        };
        store.set(name, request, now).expect("sets").1.id.clone()
    }

    #[test]
    fn set_adds_versions_in_order() {
        let mut store = Store::new();
        let first = set(&mut store, "db", "one", 10);
        let second = set(&mut store, "db", "two", 20);

        let secret = store.secret("db").expect("exists");
        let ids: Vec<&str> = secret.versions.iter().map(|version| version.id.as_str()).collect();
        assert_eq!(ids, [first.as_str(), second.as_str()]);
        assert_eq!(secret.latest().value, "two");
        assert_eq!(secret.latest().created, 20);
    }

    #[test]
    fn version_ids_are_32_lowercase_hex() {
        let mut store = Store::new();
        let id = set(&mut store, "db", "one", 10);
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{id}"
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        let mut store = Store::new();
        set(&mut store, "Db-Password", "one", 10);
        set(&mut store, "db-password", "two", 20);

        let secret = store.secret("DB-PASSWORD").expect("exists");
        assert_eq!(secret.name, "Db-Password");
        assert_eq!(secret.versions.len(), 2);
    }

    #[test]
    fn invalid_names_rejected() {
        let long = "a".repeat(128);
        for name in ["", "db_password", "db.password", "dbé", long.as_str()] {
            let error = check_name(name).expect_err(name);
            assert_eq!(error.status, 400, "{name}");
            assert_eq!(error.code, "BadParameter", "{name}");
        }
        assert!(check_name(&"a".repeat(127)).is_ok());
    }

    #[test]
    fn get_by_version_and_latest() {
        let mut store = Store::new();
        let first = set(&mut store, "db", "one", 10);
        set(&mut store, "db", "two", 20);

        assert_eq!(
            store.readable_version("db", Some(&first)).expect("found").1.value,
            "one"
        );
        assert_eq!(store.readable_version("db", None).expect("found").1.value, "two");
    }

    #[test]
    fn missing_secret_and_version_not_found() {
        let mut store = Store::new();
        let missing = store.version("db", None).expect_err("missing secret");
        assert_eq!((missing.status, missing.code.as_str()), (404, "SecretNotFound"));

        set(&mut store, "db", "one", 10);
        let unknown = store
            .version("db", Some("00000000000000000000000000000000"))
            .expect_err("missing version");
        assert_eq!((unknown.status, unknown.code.as_str()), (404, "SecretNotFound"));
    }

    #[test]
    fn disabled_version_is_forbidden() {
        let mut store = Store::new();
        let id = set(&mut store, "db", "one", 10);
        let disable = UpdateRequest {
            enabled: Some(false),
            ..UpdateRequest::default()
        };
        store.update("db", Some(&id), disable, 30).expect("updates");

        let error = store.readable_version("db", Some(&id)).expect_err("disabled");
        assert_eq!(error.status, 403);
        assert_eq!(error.code, "Forbidden");
        assert_eq!(error.inner_code.as_deref(), Some("SecretDisabled"));
        let latest = store.readable_version("db", None).expect_err("latest is disabled");
        assert_eq!(latest.status, 403);
        let (_, version) = store.version("db", Some(&id)).expect("metadata stays readable");
        assert!(!version.enabled);
        assert_eq!(version.updated, 30);
        assert_eq!(version.created, 10);
    }

    #[test]
    fn update_changes_only_given_fields() {
        let mut store = Store::new();
        let request = SetRequest {
            value: "one".to_owned(),
            content_type: Some("text/plain".to_owned()),
            tags: Some(BTreeMap::from([("a".to_owned(), "1".to_owned())])),
            ..SetRequest::default()
        };
        store.set("db", request, 10).expect("sets");
        let tags = UpdateRequest {
            tags: Some(BTreeMap::from([("b".to_owned(), "2".to_owned())])),
            ..UpdateRequest::default()
        };
        let (_, version) = store.update("db", None, tags, 20).expect("updates");

        assert_eq!(version.content_type.as_deref(), Some("text/plain"));
        assert!(version.enabled);
        assert_eq!(version.tags, Some(BTreeMap::from([("b".to_owned(), "2".to_owned())])));
    }

    #[test]
    fn deleted_name_rejects_set() {
        let mut store = Store::new();
        set(&mut store, "db", "one", 10);
        let deleted = store.delete("db", 100).expect("deletes");
        assert_eq!(deleted.deleted_date, 100);
        assert_eq!(deleted.scheduled_purge_date, 100 + 90 * 86_400);

        let request = SetRequest {
            value: "two".to_owned(),
            ..SetRequest::default()
        };
        let error = store.set("DB", request, 200).expect_err("name is deleted");
        assert_eq!(error.status, 409);
        assert_eq!(error.code, "Conflict");
        assert_eq!(error.inner_code.as_deref(), Some("ObjectIsDeletedButRecoverable"));
        let active = store.secret("db").expect_err("no longer active");
        assert_eq!(active.status, 404);
    }

    #[test]
    fn recover_restores_every_version() {
        let mut store = Store::new();
        let first = set(&mut store, "db", "one", 10);
        set(&mut store, "db", "two", 20);
        store.delete("db", 100).expect("deletes");

        let recovered = store.recover("db").expect("recovers");
        assert_eq!(recovered.versions.len(), 2);
        assert_eq!(
            store.readable_version("db", Some(&first)).expect("found").1.value,
            "one"
        );
        assert!(store.deleted("db").is_err());
    }

    #[test]
    fn purge_frees_the_name() {
        let mut store = Store::new();
        set(&mut store, "db", "one", 10);
        store.delete("db", 100).expect("deletes");
        store.purge("db").expect("purges");

        assert_eq!(store.purge("db").expect_err("already purged").status, 404);
        set(&mut store, "db", "new", 200);
        assert_eq!(store.secret("db").expect("exists").versions.len(), 1);
    }

    #[test]
    fn deleted_operations_on_active_secret_not_found() {
        let mut store = Store::new();
        set(&mut store, "db", "one", 10);
        for error in [
            store.deleted("db").expect_err("not deleted"),
            store.recover("db").expect_err("not deleted"),
            store.purge("db").expect_err("not deleted"),
        ] {
            assert_eq!((error.status, error.code.as_str()), (404, "SecretNotFound"));
        }
    }
}
