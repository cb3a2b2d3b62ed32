//! An in-memory cloud secret store implementing [`Rotator`], for unit tests and the
//! provider conformance suite. It follows AWS Secrets Manager's model: versions with
//! staging labels `AWSPENDING`, `AWSCURRENT` and `AWSPREVIOUS`. No IO.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Promoted, ProviderError, RotationId, Rotator, SecretValue, Staged, VersionId};

const PENDING: &str = "AWSPENDING";
const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

/// Operations of [`MemoryRotator`], for counting calls and injecting faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Stage,
    Promote,
    Read,
    CurrentVersion,
}

#[derive(Debug, Default)]
struct Secret {
    /// Version id to value.
    versions: BTreeMap<String, SecretValue>,
    /// Staging label to version id.
    labels: BTreeMap<String, String>,
    disabled: bool,
}

#[derive(Debug, Default)]
struct State {
    secrets: HashMap<String, Secret>,
    calls: BTreeMap<Operation, usize>,
    faults: VecDeque<(Operation, ProviderError)>,
}

/// The shared state of an in-memory "cloud": clone it to hand the same store to several
/// rotators, as several objects share one cloud account.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns a rotator for the secret `name` in this store.
    pub fn rotator(&self, name: &str) -> MemoryRotator {
        MemoryRotator {
            store: self.clone(),
            name: name.to_owned(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held leaves plain data behind, which stays usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the next call of `operation` fail with `error`.
    pub fn fail_next(&self, operation: Operation, error: ProviderError) {
        self.lock().faults.push_back((operation, error));
    }

    /// Number of calls of `operation` so far.
    pub fn calls(&self, operation: Operation) -> usize {
        self.lock().calls.get(&operation).copied().unwrap_or(0)
    }

    /// Total number of calls so far.
    pub fn total_calls(&self) -> usize {
        self.lock().calls.values().sum()
    }

    /// Number of versions of secret `name`.
    pub fn version_count(&self, name: &str) -> usize {
        self.lock().secrets.get(name).map_or(0, |secret| secret.versions.len())
    }

    /// Value of the version of `name` that carries `label`, such as `AWSCURRENT`.
    pub fn value_at(&self, name: &str, label: &str) -> Option<SecretValue> {
        let state = self.lock();
        let secret = state.secrets.get(name)?;
        let id = secret.labels.get(label)?;
        secret.versions.get(id).cloned()
    }

    /// Creates secret `name` with one current version, as if made outside rotor.
    pub fn insert(&self, name: &str, version: &str, value: &str) {
        let mut state = self.lock();
        let secret = state.secrets.entry(name.to_owned()).or_default();
        secret
            .versions
            .insert(version.to_owned(), SecretValue::new(value.to_owned()));
        if let Some(old) = secret.labels.insert(CURRENT.to_owned(), version.to_owned()) {
            secret.labels.insert(PREVIOUS.to_owned(), old);
        }
    }

    /// Disables or enables secret `name`.
    pub fn set_disabled(&self, name: &str, disabled: bool) {
        if let Some(secret) = self.lock().secrets.get_mut(name) {
            secret.disabled = disabled;
        }
    }
}

/// A [`Rotator`] for one secret of a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryRotator {
    store: MemoryStore,
    name: String,
}

impl MemoryRotator {
    /// Counts the call and returns the first queued fault for `operation`, if any.
    fn enter(&self, operation: Operation) -> Result<MutexGuard<'_, State>, ProviderError> {
        let mut state = self.store.lock();
        *state.calls.entry(operation).or_default() += 1;
        if let Some(index) = state.faults.iter().position(|(op, _)| *op == operation)
            && let Some((_, error)) = state.faults.remove(index)
        {
            return Err(error);
        }
        Ok(state)
    }

    fn disabled_error(&self) -> ProviderError {
        ProviderError::SecretDisabled {
            secret: self.name.clone(),
            message: "disabled in the memory store".to_owned(),
        }
    }
}

#[async_trait]
impl Rotator for MemoryRotator {
    fn provider(&self) -> &'static str {
        "memory"
    }

    fn secret_name(&self) -> String {
        self.name.clone()
    }

    async fn stage(&self, rotation: &RotationId, value: &SecretValue) -> Result<Staged, ProviderError> {
        let mut state = self.enter(Operation::Stage)?;
        let id = rotation.as_str().to_owned();
        let secret = state.secrets.entry(self.name.clone()).or_default();
        if secret.disabled {
            return Err(self.disabled_error());
        }
        if secret.versions.contains_key(&id) {
            return Ok(Staged {
                version: VersionId::new(id),
                written: false,
            });
        }
        secret.versions.insert(id.clone(), value.clone());
        // A new secret's first version is current at once, as CreateSecret does on AWS.
        let label = if secret.labels.contains_key(CURRENT) {
            PENDING
        } else {
            CURRENT
        };
        secret.labels.insert(label.to_owned(), id.clone());
        Ok(Staged {
            version: VersionId::new(id),
            written: true,
        })
    }

    async fn promote(&self, version: &VersionId) -> Result<Promoted, ProviderError> {
        let mut state = self.enter(Operation::Promote)?;
        let name = self.name.clone();
        let secret = state
            .secrets
            .get_mut(&name)
            .ok_or_else(|| ProviderError::VersionNotFound {
                secret: name.clone(),
                version: version.to_string(),
            })?;
        if secret.disabled {
            return Err(self.disabled_error());
        }
        if !secret.versions.contains_key(version.as_str()) {
            return Err(ProviderError::VersionNotFound {
                secret: name,
                version: version.to_string(),
            });
        }
        let current = secret.labels.get(CURRENT).cloned();
        if current.as_deref() == Some(version.as_str()) {
            if secret.labels.get(PENDING).map(String::as_str) == Some(version.as_str()) {
                secret.labels.remove(PENDING);
            }
            let previous = secret.labels.get(PREVIOUS).cloned().map(VersionId::new);
            return Ok(Promoted { previous });
        }
        secret.labels.insert(CURRENT.to_owned(), version.to_string());
        if let Some(old) = &current {
            secret.labels.insert(PREVIOUS.to_owned(), old.clone());
        }
        if secret.labels.get(PENDING).map(String::as_str) == Some(version.as_str()) {
            secret.labels.remove(PENDING);
        }
        Ok(Promoted {
            previous: current.map(VersionId::new),
        })
    }

    async fn read(&self, version: &VersionId) -> Result<SecretValue, ProviderError> {
        let state = self.enter(Operation::Read)?;
        let secret = state.secrets.get(&self.name);
        if secret.is_some_and(|secret| secret.disabled) {
            return Err(self.disabled_error());
        }
        secret
            .and_then(|secret| secret.versions.get(version.as_str()).cloned())
            .ok_or_else(|| ProviderError::VersionNotFound {
                secret: self.name.clone(),
                version: version.to_string(),
            })
    }

    async fn current_version(&self) -> Result<Option<VersionId>, ProviderError> {
        let state = self.enter(Operation::CurrentVersion)?;
        Ok(state
            .secrets
            .get(&self.name)
            .and_then(|secret| secret.labels.get(CURRENT).cloned())
            .map(VersionId::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> SecretValue {
        SecretValue::new(text.to_owned())
    }

    #[tokio::test]
    async fn first_stage_creates_current_version() {
        let store = MemoryStore::new();
        let rotator = store.rotator("db");
        let staged = rotator
            .stage(&RotationId::from("r1".to_owned()), &value("one"))
            .await
            .expect("stages");
        assert!(staged.written);
        assert_eq!(store.value_at("db", CURRENT), Some(value("one")));
    }

    #[tokio::test]
    async fn stage_and_promote_keep_previous() {
        let store = MemoryStore::new();
        store.insert("db", "v0", "zero");
        let rotator = store.rotator("db");
        let staged = rotator
            .stage(&RotationId::from("r1".to_owned()), &value("one"))
            .await
            .expect("stages");
        assert_eq!(store.value_at("db", PENDING), Some(value("one")));
        assert_eq!(store.value_at("db", CURRENT), Some(value("zero")));

        let promoted = rotator.promote(&staged.version).await.expect("promotes");
        assert_eq!(promoted.previous, Some(VersionId::new("v0")));
        assert_eq!(store.value_at("db", CURRENT), Some(value("one")));
        assert_eq!(store.value_at("db", PREVIOUS), Some(value("zero")));
        assert_eq!(store.value_at("db", PENDING), None);
    }

    #[tokio::test]
    async fn repeated_stage_writes_once() {
        let store = MemoryStore::new();
        store.insert("db", "v0", "zero");
        let rotator = store.rotator("db");
        let id = RotationId::from("r1".to_owned());
        rotator.stage(&id, &value("one")).await.expect("stages");
        let again = rotator.stage(&id, &value("other")).await.expect("stages again");
        assert!(!again.written);
        assert_eq!(store.version_count("db"), 2);
        assert_eq!(store.value_at("db", PENDING), Some(value("one")));
    }

    #[tokio::test]
    async fn injected_fault_fails_once() {
        let store = MemoryStore::new();
        let rotator = store.rotator("db");
        store.fail_next(
            Operation::Stage,
            ProviderError::Throttled {
                secret: "db".into(),
                message: "slow down".into(),
            },
        );
        let id = RotationId::from("r1".to_owned());
        assert!(rotator.stage(&id, &value("one")).await.is_err());
        assert!(rotator.stage(&id, &value("one")).await.is_ok());
        assert_eq!(store.calls(Operation::Stage), 2);
    }
}
