//! Reconcile of one `SecretRotation`, as a pipeline of named steps: fetch, validate, plan,
//! apply, status. Validate and plan are pure functions in `plan.rs`. This module does the
//! IO: reads from the cache and the API server, cloud calls through a `Rotator`, the
//! Secret write, the status patch and Events.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::plan::{self, Action, Observed, Validated};
use super::status::{self, StatusContext, Success};
use super::{Context, Error, FIELD_MANAGER, schedule};
use crate::api::{
    ConditionType, InFlightRotation, ROTATE_REQUESTED_AT, Reason, RotationStep, SecretRotation, SecretRotationStatus,
};
use crate::providers::Owner;
use crate::rotation::{Credentials, ProviderError, RotationId, Rotator, SecretValue, VersionId, generator};
use crate::secret::{self, Ownership, Published};

/// A step that failed for a reason the user can act on. It becomes Ready=False, a Warning
/// Event and a backoff; it is not an error of the controller.
#[derive(Debug)]
struct Failure {
    reason: Reason,
    message: String,
}

impl Failure {
    fn from_provider(object: &SecretRotation, error: &ProviderError) -> Self {
        Self {
            reason: error.reason(),
            message: format!("SecretRotation {}: {error}; {}", reference(object), error.remedy()),
        }
    }
}

/// Reconciles one object. Errors returned here are Kubernetes API failures of rotor's own
/// writes; everything the user can fix is reported in status instead.
pub async fn reconcile(cached: Arc<SecretRotation>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let result = run_pipeline(cached, &ctx).await;
    ctx.metrics.observe_reconcile(started.elapsed(), result.is_ok());
    result
}

async fn run_pipeline(cached: Arc<SecretRotation>, ctx: &Context) -> Result<Requeue, Error> {
    // Status times have whole seconds, so the schedule is computed from whole seconds too.
    let now = Timestamp::from_second(ctx.clock.now().as_second()).unwrap_or_else(|_| ctx.clock.now());

    // validate
    let validated = match plan::validate(&cached.spec) {
        Ok(validated) => validated,
        Err(error) => {
            if let Some(until) = plan::backing_off(&observe(&cached, ctx), now) {
                return Ok(requeue_at(until, now));
            }
            let failure = Failure {
                reason: Reason::InvalidSpec,
                message: format!("{error}; fix the spec of SecretRotation {}", reference(&cached)),
            };
            return report_failure(&cached, failure, ctx, now).await;
        }
    };

    // plan, from the watch cache first
    let mut action = plan::plan(&observe(&cached, ctx), validated, now);
    let mut object = cached;

    // fetch: an action that writes plans again from a fresh read, because the cache can
    // lag behind rotor's own status writes and a stale status could start a second rotation.
    if action.writes() {
        let api: Api<SecretRotation> = Api::namespaced(ctx.client.clone(), &namespace(&object));
        match api.get_opt(&object.name_any()).await? {
            Some(fresh) => object = Arc::new(fresh),
            None => return Ok(Requeue::await_change()),
        }
        let validated = match plan::validate(&object.spec) {
            Ok(validated) => validated,
            Err(_) => return Ok(Requeue::requeue(std::time::Duration::from_secs(1))),
        };
        action = plan::plan(&observe(&object, ctx), validated, now);
    }
    debug!(action = ?action, "planned");
    let was_suspended = object
        .status
        .as_ref()
        .and_then(|status| status::condition(status, ConditionType::Ready))
        .is_some_and(|ready| ready.reason == Reason::Suspended.as_str());
    if was_suspended && !object.spec.is_suspended() {
        info!("rotation resumed");
    }

    // apply and status
    match action {
        Action::Wait { until } => Ok(requeue_at(until, now)),
        Action::BackOff { until } => Ok(requeue_at(until, now)),
        Action::Suspend => {
            let next = status::suspended(&current_status(&object), &status_context(&object, None, now));
            if patch_status_if_changed(&object, next, ctx).await? {
                info!("rotation suspended");
                let note = format!(
                    "rotation of SecretRotation {} is suspended; the Secret keeps its value",
                    reference(&object)
                );
                publish_event(&object, EventType::Normal, Reason::Suspended, note, None, ctx).await;
            }
            Ok(Requeue::await_change())
        }
        Action::Publish => match publish(&object, validated, ctx, now).await {
            Ok(requeue) => Ok(requeue),
            Err(StepError::Failure(failure)) => report_failure(&object, failure, ctx, now).await,
            Err(StepError::Kube(error)) => Err(error),
        },
        Action::Rotate { rotation, resumed } => match rotate(&object, rotation, resumed, validated, ctx, now).await {
            Ok(requeue) => Ok(requeue),
            Err(StepError::Failure(failure)) => {
                ctx.metrics
                    .rotation(object.spec.provider_name(), failure.reason.as_str());
                // The object as rotate() last wrote it records the in-flight step to resume.
                let latest = refetch(&object, ctx).await?.map(Arc::new).unwrap_or(object);
                report_failure(&latest, failure, ctx, now).await
            }
            Err(StepError::Kube(error)) => Err(error),
        },
    }
}

/// Cause of an apply step's early stop.
enum StepError {
    Failure(Failure),
    Kube(Error),
}

impl From<Failure> for StepError {
    fn from(failure: Failure) -> Self {
        Self::Failure(failure)
    }
}

impl From<Error> for StepError {
    fn from(error: Error) -> Self {
        Self::Kube(error)
    }
}

impl From<kube::Error> for StepError {
    fn from(error: kube::Error) -> Self {
        Self::Kube(Error::Kube(error))
    }
}

/// Builds the plan's view of the object and of the cached target Secret metadata.
fn observe<'a>(object: &'a SecretRotation, ctx: &Context) -> Observed<'a> {
    let status = object.status.as_ref().unwrap_or(&EMPTY_STATUS);
    let target_in_sync = status.current_version.as_deref().is_some_and(|version| {
        let key = ObjectRef::new(&object.spec.target.name).within(&namespace(object));
        ctx.secrets.get(&key).is_some_and(|meta| {
            secret::metadata_shows_version(object, &meta.metadata, version)
                && meta.metadata.resource_version.is_some()
                && meta.metadata.resource_version == status.target_resource_version
        })
    });
    Observed {
        spec: &object.spec,
        status,
        generation: object.metadata.generation,
        uid: object.metadata.uid.as_deref().unwrap_or_default(),
        rotate_request: object.annotations().get(ROTATE_REQUESTED_AT).map(String::as_str),
        target_in_sync,
    }
}

static EMPTY_STATUS: SecretRotationStatus = SecretRotationStatus {
    observed_generation: None,
    conditions: Vec::new(),
    provider: None,
    current_version: None,
    previous_version: None,
    last_rotation_time: None,
    next_rotation_time: None,
    source_hash: None,
    target_resource_version: None,
    last_rotate_request: None,
    rotation: None,
    failure_count: 0,
    last_failure_time: None,
};

/// Runs a rotation from its recorded step to the end. Each step's result is written to
/// status before the next step starts, so a restart resumes at the right step.
async fn rotate(
    object: &SecretRotation,
    mut rotation: InFlightRotation,
    resumed: bool,
    validated: Validated,
    ctx: &Context,
    now: Timestamp,
) -> Result<Requeue, StepError> {
    let rotator = build_rotator(object, ctx).await?;
    let target = get_target(object, ctx).await?;
    check_ownership(object, target.as_ref())?;

    let mut latest = object.clone();
    let status_ctx = status_context(object, Some(rotator.as_ref()), now);
    if resumed {
        info!(rotation = %rotation.id, step = ?rotation.step, "resuming rotation");
    } else {
        info!(rotation = %rotation.id, trigger = ?rotation.trigger, "rotation started");
        // The resourceVersion precondition makes this write fail when another writer (a
        // second replica during leader handover) changed the object since it was read.
        let next = status::rotating(&current_status(object), &rotation, false, &status_ctx);
        latest = patch_status(object, next, true, ctx).await?;
    }

    let rotation_id = RotationId::from(rotation.id.clone());
    let mut value: Option<SecretValue> = None;

    if rotation.step == RotationStep::Stage {
        let fresh = generator::generate(&object.spec.generator).map_err(|error| Failure {
            reason: Reason::InvalidSpec,
            message: format!("{error}; fix spec.generator of SecretRotation {}", reference(object)),
        })?;
        let staged = rotator
            .stage(&rotation_id, &fresh)
            .await
            .map_err(|e| Failure::from_provider(object, &e))?;
        debug!(rotation = %rotation.id, version = %staged.version, written = staged.written, "staged");
        if staged.written {
            value = Some(fresh);
        }
        rotation.version = Some(staged.version.to_string());
        rotation.step = RotationStep::Promote;
        let next = status::rotating(&current_status(&latest), &rotation, resumed, &status_ctx);
        latest = patch_status(&latest, next, false, ctx).await?;
    }

    let version = VersionId::new(rotation.version.clone().unwrap_or_else(|| rotation.id.clone()));

    if rotation.step == RotationStep::Promote {
        let promoted = rotator
            .promote(&version)
            .await
            .map_err(|e| Failure::from_provider(object, &e))?;
        debug!(rotation = %rotation.id, version = %version, "promoted");
        rotation.previous_version = promoted.previous.map(|v| v.to_string());
        rotation.step = RotationStep::Publish;
        let next = status::rotating(&current_status(&latest), &rotation, resumed, &status_ctx);
        latest = patch_status(&latest, next, false, ctx).await?;
    }

    let value = match value {
        Some(value) => value,
        None => rotator
            .read(&version)
            .await
            .map_err(|e| Failure::from_provider(object, &e))?,
    };
    let published = Published {
        provider: rotator.provider(),
        version: version.to_string(),
        rotated_at: now,
    };
    let (target_resource_version, _) = write_target(object, target.as_ref(), &value, &published, ctx).await?;

    let success = Success {
        current_version: version.to_string(),
        previous_version: rotation.previous_version.clone(),
        last_rotation_time: now,
        next_rotation_time: schedule::next_rotation(now, validated.interval, uid(object)),
        source_hash: plan::source_hash(&object.spec),
        rotate_request: rotation.rotate_request.clone(),
        target_resource_version: target_resource_version.clone(),
    };
    let next = status::succeeded(&current_status(&latest), &success, &status_ctx);
    patch_status(&latest, next, false, ctx).await?;
    ctx.metrics.rotation(rotator.provider(), "success");
    info!(rotation = %rotation.id, version = %version, "rotated");
    publish_event(
        object,
        EventType::Normal,
        Reason::Rotated,
        format!(
            "rotated {} secret {} to version {}; Secret {} updated",
            rotator.provider(),
            rotator.secret_name(),
            version,
            target_reference(object)
        ),
        Some(secret_reference(object, target_resource_version)),
        ctx,
    )
    .await;
    Ok(requeue_at(success.next_rotation_time, now))
}

/// Brings the target Secret in line with the current cloud version without rotating:
/// after the Secret was deleted or edited, or the target settings changed. Reads the
/// cloud only when the Secret must be written.
async fn publish(
    object: &SecretRotation,
    validated: Validated,
    ctx: &Context,
    now: Timestamp,
) -> Result<Requeue, StepError> {
    let status = current_status(object);
    let Some(current) = status.current_version.clone() else {
        return Ok(Requeue::requeue(std::time::Duration::from_secs(1)));
    };
    let target = get_target(object, ctx).await?;
    check_ownership(object, target.as_ref())?;

    let rotated_at = status.last_rotation_time.as_ref().map_or(now, |time| time.0);
    let provider = object.spec.provider_name();
    let published = Published {
        provider,
        version: current.clone(),
        rotated_at,
    };

    // The Secret's own value counts as current only when its annotations name the current
    // version and no other field manager has written the key since rotor did.
    let existing_value = target.as_ref().and_then(|secret| {
        let bytes = secret.data.as_ref()?.get(&object.spec.target.key)?;
        let text = String::from_utf8(bytes.0.clone()).ok()?;
        let version = secret.annotations().get(secret::VERSION_ANNOTATION)?;
        let edited = secret::key_written_by_others(secret, &object.spec.target.key, FIELD_MANAGER);
        (version == &current && !edited).then(|| SecretValue::new(text))
    });
    let up_to_date = match (&target, &existing_value) {
        (Some(existing), Some(value)) => secret::is_up_to_date(existing, &secret::render(object, value, &published)),
        _ => false,
    };

    let mut target_resource_version = target
        .as_ref()
        .and_then(|secret| secret.metadata.resource_version.clone());
    // Only a write needs the cloud, and with it the credentials Secret.
    if !up_to_date {
        let rotator = build_rotator(object, ctx).await?;
        let value = rotator
            .read(&VersionId::new(current.clone()))
            .await
            .map_err(|e| Failure::from_provider(object, &e))?;
        let (resource_version, written) = write_target(object, target.as_ref(), &value, &published, ctx).await?;
        target_resource_version = resource_version;
        if written {
            info!(version = %current, "Secret written from the current version");
            let note = format!(
                "Secret {} written again from version {current} of {} secret {}",
                target_reference(object),
                rotator.provider(),
                rotator.secret_name()
            );
            let related = secret_reference(object, target_resource_version.clone());
            publish_event(object, EventType::Normal, Reason::Published, note, Some(related), ctx).await;
        }
    }

    let success = Success {
        current_version: current,
        previous_version: status.previous_version.clone(),
        last_rotation_time: rotated_at,
        next_rotation_time: schedule::next_rotation(rotated_at, validated.interval, uid(object)),
        source_hash: status
            .source_hash
            .clone()
            .unwrap_or_else(|| plan::source_hash(&object.spec)),
        rotate_request: None,
        target_resource_version,
    };
    let next = status::succeeded(&status, &success, &status_context(object, None, now));
    patch_status_if_changed(object, next, ctx).await?;
    Ok(requeue_at(success.next_rotation_time, now))
}

/// Builds the rotator, reading the credentials Secret the spec names, if any.
async fn build_rotator(object: &SecretRotation, ctx: &Context) -> Result<Box<dyn Rotator>, StepError> {
    let credentials = read_credentials(object, ctx).await?;
    let owner = Owner {
        namespace: namespace(object),
        name: object.name_any(),
    };
    ctx.rotators
        .rotator(&object.spec, &owner, credentials.as_ref())
        .map_err(|e| Failure::from_provider(object, &e).into())
}

async fn read_credentials(object: &SecretRotation, ctx: &Context) -> Result<Option<Credentials>, StepError> {
    let Some(secret_ref) = object.spec.provider.credentials_ref() else {
        return Ok(None);
    };
    let source = format!("{}/{}", namespace(object), secret_ref.name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace(object));
    let secret = api
        .get_opt(&secret_ref.name)
        .await
        .map_err(|error| forbidden_or_kube(object, "read", &secret_ref.name, error))?
        .ok_or_else(|| {
            Failure::from_provider(
                object,
                &ProviderError::CredentialsNotFound {
                    name: source.clone(),
                    message: "the Secret does not exist".to_owned(),
                },
            )
        })?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, bytes)| {
            String::from_utf8(bytes.0)
                .ok()
                .map(|text| (key, SecretValue::new(text)))
        })
        .collect();
    Ok(Some(Credentials { source, data }))
}

async fn get_target(object: &SecretRotation, ctx: &Context) -> Result<Option<Secret>, StepError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace(object));
    api.get_opt(&object.spec.target.name)
        .await
        .map_err(|error| forbidden_or_kube(object, "read", &object.spec.target.name, error))
}

/// Turns a 403 response into a [`Failure`] that tells the user which permission rotor lacks;
/// other errors stay controller errors and are retried.
fn forbidden_or_kube(object: &SecretRotation, verb: &str, secret: &str, error: kube::Error) -> StepError {
    match error {
        kube::Error::Api(status) if status.code == 403 => Failure {
            reason: Reason::Forbidden,
            message: format!(
                "rotor may not {verb} Secret {}/{secret}: {}; grant rotor's service account get, create and patch on \
                 secrets in namespace {} (Helm value watchNamespaces)",
                namespace(object),
                status.message,
                namespace(object)
            ),
        }
        .into(),
        other => other.into(),
    }
}

fn check_ownership(object: &SecretRotation, target: Option<&Secret>) -> Result<(), Failure> {
    match secret::ownership(object, target.map(|secret| &secret.metadata)) {
        Ownership::Absent | Ownership::Writable => Ok(()),
        Ownership::NotOwned => Err(Failure {
            reason: Reason::TargetNotOwned,
            message: format!(
                "Secret {} exists and was not created by rotor for SecretRotation {}, so rotor leaves it untouched; \
                 delete the Secret, choose another spec.target.name, or set spec.target.creationPolicy to Merge",
                target_reference(object),
                reference(object)
            ),
        }),
        Ownership::ClaimedBy(other) => Err(Failure {
            reason: Reason::Conflict,
            message: format!(
                "Secret {} is written by SecretRotation {}/{}; give SecretRotation {} another spec.target.name",
                target_reference(object),
                namespace(object),
                other,
                reference(object)
            ),
        }),
    }
}

/// Writes the target Secret with server-side apply, unless it is up to date. Returns the
/// Secret's resourceVersion afterwards and whether rotor wrote it.
async fn write_target(
    object: &SecretRotation,
    existing: Option<&Secret>,
    value: &SecretValue,
    published: &Published,
    ctx: &Context,
) -> Result<(Option<String>, bool), StepError> {
    let desired = secret::render(object, value, published);
    if let Some(existing) = existing.filter(|existing| secret::is_up_to_date(existing, &desired)) {
        debug!("Secret up to date");
        return Ok((existing.metadata.resource_version.clone(), false));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace(object));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(&object.spec.target.name, &params, &Patch::Apply(&desired)).await {
        Ok(written) => Ok((written.metadata.resource_version, true)),
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => Err(Failure {
            reason: Reason::SecretWriteFailed,
            message: format!(
                "writing Secret {} failed: {}; check spec.target of SecretRotation {} (the type of an existing Secret cannot change)",
                target_reference(object),
                status.message,
                reference(object)
            ),
        }
        .into()),
        Err(error) => Err(forbidden_or_kube(object, "write", &object.spec.target.name, error)),
    }
}

/// Records a failure: Ready=False, backoff counters, a Warning Event.
async fn report_failure(
    object: &SecretRotation,
    failure: Failure,
    ctx: &Context,
    now: Timestamp,
) -> Result<Requeue, Error> {
    warn!(reason = failure.reason.as_str(), message = %failure.message, "reconcile failed");
    let previous = current_status(object);
    let next = status::failed(
        &previous,
        failure.reason,
        failure.message.clone(),
        &status_context(object, None, now),
    );
    let retry = schedule::retry_at(now, next.failure_count);
    patch_status(object, next, false, ctx).await?;
    ctx.metrics.reconcile_failure(failure.reason.as_str());
    publish_event(object, EventType::Warning, failure.reason, failure.message, None, ctx).await;
    Ok(requeue_at(retry, now))
}

/// Publishes an Event about `object`. `related`, the Secret an Event is also about, is part
/// of kube's aggregation key, so Events about different Secret writes are not merged into
/// one series that shows only the first message.
async fn publish_event(
    object: &SecretRotation,
    type_: EventType,
    reason: Reason,
    note: String,
    related: Option<ObjectReference>,
    ctx: &Context,
) {
    let event = Event {
        type_,
        reason: reason.as_str().to_owned(),
        note: Some(note),
        action: "Rotate".to_owned(),
        secondary: related,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(%error, reason = reason.as_str(), "publishing an Event failed");
    }
}

/// Builds a reference to the target Secret at `resource_version`.
fn secret_reference(object: &SecretRotation, resource_version: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Secret".to_owned()),
        name: Some(object.spec.target.name.clone()),
        namespace: object.metadata.namespace.clone(),
        resource_version,
        ..ObjectReference::default()
    }
}

/// Applies `status` to the status subresource with server-side apply. With
/// `precondition`, the patch carries the object's resourceVersion and fails with a
/// conflict if the object changed since it was read.
async fn patch_status(
    object: &SecretRotation,
    status: SecretRotationStatus,
    precondition: bool,
    ctx: &Context,
) -> Result<SecretRotation, Error> {
    let api: Api<SecretRotation> = Api::namespaced(ctx.client.clone(), &namespace(object));
    let mut metadata = serde_json::json!({ "name": object.name_any() });
    if precondition {
        metadata["resourceVersion"] = serde_json::json!(object.resource_version());
    }
    let body = serde_json::json!({
        "apiVersion": SecretRotation::api_version(&()),
        "kind": SecretRotation::kind(&()),
        "metadata": metadata,
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api
        .patch_status(&object.name_any(), &params, &Patch::Apply(&body))
        .await?)
}

/// Applies `status` unless the object has it already; returns whether it wrote.
async fn patch_status_if_changed(
    object: &SecretRotation,
    status: SecretRotationStatus,
    ctx: &Context,
) -> Result<bool, Error> {
    if object.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    patch_status(object, status, false, ctx).await.map(|_| true)
}

async fn refetch(object: &SecretRotation, ctx: &Context) -> Result<Option<SecretRotation>, Error> {
    let api: Api<SecretRotation> = Api::namespaced(ctx.client.clone(), &namespace(object));
    Ok(api.get_opt(&object.name_any()).await?)
}

fn status_context(object: &SecretRotation, rotator: Option<&dyn Rotator>, now: Timestamp) -> StatusContext {
    let cloud_secret = rotator
        .map(|r| r.secret_name())
        .unwrap_or_else(|| object.spec.provider.cloud_secret());
    StatusContext {
        generation: object.metadata.generation,
        provider: object.spec.provider_name(),
        target: target_reference(object),
        cloud_secret,
        now,
    }
}

fn current_status(object: &SecretRotation) -> SecretRotationStatus {
    object.status.clone().unwrap_or_default()
}

fn requeue_at(time: Timestamp, now: Timestamp) -> Requeue {
    Requeue::requeue(schedule::until(now, time).max(std::time::Duration::from_secs(1)))
}

fn namespace(object: &SecretRotation) -> String {
    object.namespace().unwrap_or_default()
}

fn uid(object: &SecretRotation) -> &str {
    object.metadata.uid.as_deref().unwrap_or_default()
}

fn reference(object: &SecretRotation) -> String {
    format!("{}/{}", namespace(object), object.name_any())
}

fn target_reference(object: &SecretRotation) -> String {
    format!("{}/{}", namespace(object), object.spec.target.name)
}
