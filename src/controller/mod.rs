//! The rotation controller: watches `SecretRotation` objects and the Secrets rotor
//! manages, and runs [`reconcile`](reconcile::reconcile) for each. Knows clouds only
//! through the `RotatorFactory`. Does IO against the Kubernetes API.

pub mod plan;
mod reconcile;
pub mod schedule;
pub mod status;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{Reason, SecretRotation};
use crate::metrics::Metrics;
use crate::providers::RotatorFactory;
use crate::secret::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRET_ROTATION_ANNOTATION};

/// A `SecretRotation` as the watch delivers it: an object that does not deserialize (for
/// example a status field edited by hand to a value out of range) becomes an error for that
/// object alone instead of failing the whole watch.
type Guarded = DeserializeGuard<SecretRotation>;

/// Field manager of every server-side apply rotor makes, on Secrets and on status.
pub const FIELD_MANAGER: &str = "rotor";

/// Source of the current time, injected so that tests can control it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Errors of the controller itself: failed calls to the Kubernetes API for rotor's own
/// writes. Problems the user can fix are reported in status, not here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// Static reason for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(status)) if status.code == 409 => "Conflict",
            Self::Kube(_) => "KubernetesApiError",
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub rotators: Arc<dyn RotatorFactory>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    /// Metadata of the Secrets labelled as managed by rotor.
    secrets: Store<PartialObjectMeta<Secret>>,
    /// Consecutive controller errors per object, for the in-memory retry backoff of
    /// errors that could not be recorded in status.
    errors: Mutex<HashMap<ObjectRef<Guarded>, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// Dependencies and options of the controller, besides the client.
#[derive(Clone)]
pub struct Settings {
    pub rotators: Arc<dyn RotatorFactory>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Set to true once the caches have synced; served on `/readyz`.
    pub ready: Arc<AtomicBool>,
    /// Identity of this replica in Events, such as the pod name.
    pub instance: Option<String>,
    /// Namespaces to watch; empty watches all namespaces.
    pub namespaces: Vec<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("instance", &self.instance)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

/// Runs the controller until `shutdown` completes, then finishes the reconciles in
/// progress and returns. With a list of namespaces, one controller runs per namespace, so
/// that rotor needs permissions in those namespaces only.
pub async fn run(client: Client, settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) {
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    // Two watches per scope must list before rotor is ready.
    let unsynced = Arc::new(AtomicUsize::new(2 * scopes.len()));
    let shutdown = shutdown.boxed().shared();
    info!(namespaces = ?settings.namespaces, "controller started");
    let controllers = scopes
        .into_iter()
        .map(|scope| run_scope(client.clone(), &settings, scope, unsynced.clone(), shutdown.clone()));
    futures::future::join_all(controllers).await;
    settings.metrics.untrack_all();
    info!("controller stopped");
}

/// Runs one controller over one namespace, or over all namespaces when `scope` is `None`.
async fn run_scope(
    client: Client,
    settings: &Settings,
    scope: Option<String>,
    unsynced: Arc<AtomicUsize>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (rotations, secrets): (Api<Guarded>, Api<PartialObjectMeta<Secret>>) = match &scope {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));

    let (secret_store, secret_writer) = reflector::store();
    // managedFields are the largest part of most objects and the caches never read them.
    let secret_stream = watcher(secrets, managed)
        .default_backoff()
        .modify(|secret| secret.managed_fields_mut().clear())
        .reflect(secret_writer)
        .inspect(mark_synced(unsynced.clone(), settings.ready.clone()))
        .touched_objects();

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "rotor".to_owned(),
            instance: settings.instance.clone(),
        },
    );
    let ctx = Arc::new(Context {
        client,
        rotators: settings.rotators.clone(),
        clock: settings.clock.clone(),
        metrics: settings.metrics.clone(),
        recorder,
        secrets: secret_store,
        errors: Mutex::new(HashMap::new()),
    });

    // rotor's own status writes change neither the generation nor the annotations, so the
    // predicate keeps them from triggering another reconcile. Spec edits and the manual
    // rotation annotation pass.
    let (rotation_store, rotation_writer) = reflector::store();
    settings.metrics.track(rotation_store.clone());
    let rotation_stream = watcher(rotations, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|rotation| rotation.managed_fields_mut().clear())
        .reflect(rotation_writer)
        .inspect(mark_synced(unsynced, settings.ready.clone()))
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );
    Controller::for_stream(rotation_stream, rotation_store)
        .watches_stream(secret_stream, secret_owner)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                log_controller_error(&error);
            }
        })
        .await;
}

/// Returns an inspector for a watch stream that counts `unsynced` down on the watch's first
/// complete list and sets `ready` when the count reaches zero. Waiting on the stores instead
/// would race with the controller, which waits on the same store.
fn mark_synced<K>(
    unsynced: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) {
    let mut listed = false;
    move |event| {
        if !listed && matches!(event, Ok(watcher::Event::InitDone)) {
            listed = true;
            if unsynced.fetch_sub(1, Ordering::SeqCst) == 1 {
                ready.store(true, Ordering::SeqCst);
                info!("caches synced");
            }
        }
    }
}

/// Maps a managed Secret to the `SecretRotation` named in its annotation.
fn secret_owner(secret: PartialObjectMeta<Secret>) -> Option<ObjectRef<Guarded>> {
    let name = secret.metadata.annotations.as_ref()?.get(SECRET_ROTATION_ANNOTATION)?;
    let namespace = secret.metadata.namespace.as_deref()?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Runs one reconcile. kube-runtime wraps it in a `reconciling object` span that carries
/// the object reference.
async fn reconcile(object: Arc<Guarded>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let key = ObjectRef::from(object.as_ref());
    let rotation = match &object.0 {
        Ok(rotation) => Arc::new(rotation.clone()),
        Err(invalid) => {
            report_invalid_object(&object, invalid, &ctx).await;
            return Ok(Requeue::await_change());
        }
    };
    let result = reconcile::reconcile(rotation, ctx.clone()).await;
    if result.is_ok() {
        ctx.errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key);
    }
    result
}

/// Reports an object that does not deserialize with a Warning Event. Its status is left
/// alone, because rotor cannot rewrite it without losing the fields it could not read.
async fn report_invalid_object(object: &Guarded, invalid: &InvalidObject, ctx: &Context) {
    let reference = object.object_ref(&());
    warn!(object = %ObjectRef::from(object), error = %invalid.error, "SecretRotation does not match its schema");
    let event = Event {
        type_: EventType::Warning,
        reason: Reason::InvalidSpec.as_str().to_owned(),
        note: Some(format!(
            "rotor cannot read this SecretRotation: {}; fix the object, or reinstall the CRD that matches this rotor version",
            invalid.error
        )),
        action: "Read".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        warn!(%error, "publishing an Event failed");
    }
}

/// Retries controller errors with a per-object exponential backoff: 1 s, 2 s, 4 s, ...
/// capped at five minutes.
fn error_policy(object: Arc<Guarded>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = ObjectRef::from(object.as_ref());
    let mut errors = ctx.errors.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let count = errors.entry(key.clone()).or_default();
    *count = count.saturating_add(1);
    let delay = Duration::from_secs(1u64 << (*count - 1).min(8)).min(Duration::from_secs(300));
    warn!(object = %key, reason = error.reason(), %error, retry_in_seconds = delay.as_secs(), "reconcile error");
    Requeue::requeue(delay)
}

fn log_controller_error(error: &kube::runtime::controller::Error<Error, watcher::Error>) {
    use kube::runtime::controller::Error as ControllerError;
    match error {
        // Already logged with the object by error_policy.
        ControllerError::ReconcilerFailed(..) => {}
        // A reconcile for an object that was deleted meanwhile.
        ControllerError::ObjectNotFound(object) => tracing::debug!(object = %object, "object gone before reconcile"),
        other => warn!(error = %other, "controller error"),
    }
}
