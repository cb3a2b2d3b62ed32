//! Checks that the local test environment is made of real components: the API server
//! stores, watches, validates and garbage-collects, and moto keeps Secrets Manager state.
//! Needs `tests/env/up.sh`.

mod support;

use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManager;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

const MANAGER: &str = "rotor-environment-test";

/// Polls `check` every 200 ms until it returns true or `timeout` passes.
async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn applied_secret_arrives_through_watch() {
    let env = support::testenv();
    let client = env.kube_client().await;
    let namespace = support::harness::create_namespace(&client, "env-watch").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);

    let stream = watcher(secrets.clone(), watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);

    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "watched"},
        "stringData": {"token": "example"}
    }))
    .expect("valid secret");
    secrets
        .patch("watched", &PatchParams::apply(MANAGER), &Patch::Apply(&secret))
        .await
        .expect("applies the Secret");

    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(object) = stream.try_next().await.expect("watch stream works") {
            if object.name_any() == "watched" {
                return object;
            }
        }
        panic!("watch stream ended before the Secret arrived");
    })
    .await
    .expect("the Secret arrives through the watch within 30 s");
    let data = seen.data.expect("the Secret has data");
    assert_eq!(
        data.get("token").map(|bytes| bytes.0.as_slice()),
        Some(b"example".as_slice())
    );
    let managers: Vec<String> = seen
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(managers.contains(&MANAGER.to_owned()), "field managers: {managers:?}");
}

#[tokio::test]
async fn crd_schema_rejects_invalid_object() {
    let env = support::testenv();
    let client = env.kube_client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.envtest.rotor.dev"},
        "spec": {
            "group": "envtest.rotor.dev",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}}
                    }}
                }}
            }]
        }
    }))
    .expect("valid CRD");
    crds.patch(
        "widgets.envtest.rotor.dev",
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("applies the CRD");

    let gvk = GroupVersionKind::gvk("envtest.rotor.dev", "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let namespace = support::harness::create_namespace(&client, "env-crd").await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);

    let established = eventually(Duration::from_secs(30), || async {
        let valid = serde_json::json!({"apiVersion": "envtest.rotor.dev/v1", "kind": "Widget", "metadata": {"name": "ok"}, "spec": {"size": 3}});
        widgets.patch("ok", &PatchParams::apply(MANAGER), &Patch::Apply(&valid)).await.is_ok()
    })
    .await;
    assert!(established, "a valid Widget is not accepted within 30 s");

    let invalid = serde_json::json!({"apiVersion": "envtest.rotor.dev/v1", "kind": "Widget", "metadata": {"name": "too-big"}, "spec": {"size": 11}});
    let error = widgets
        .patch("too-big", &PatchParams::apply(MANAGER), &Patch::Apply(&invalid))
        .await
        .expect_err("the API server rejects size 11");
    let kube::Error::Api(status) = error else {
        panic!("expected an API error, got {error}")
    };
    assert_eq!(status.code, 422);
    assert!(status.message.contains("spec.size"), "message: {}", status.message);
}

#[tokio::test]
async fn owned_object_is_garbage_collected() {
    let env = support::testenv();
    let client = env.kube_client().await;
    let namespace = support::harness::create_namespace(&client, "env-gc").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);

    let owner = config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "owner"}})).expect("valid"),
        )
        .await
        .expect("creates the owner");
    let child: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "child",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().expect("uid")}]
        },
        "stringData": {"k": "v"}
    }))
    .expect("valid secret");
    secrets
        .create(&PostParams::default(), &child)
        .await
        .expect("creates the child");

    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .expect("deletes the owner");
    let collected = eventually(Duration::from_secs(60), || async {
        matches!(secrets.get_opt("child").await, Ok(None))
    })
    .await;
    assert!(
        collected,
        "kube-controller-manager did not delete the owned Secret within 60 s"
    );
}

#[tokio::test]
async fn deleted_namespace_is_emptied_and_removed() {
    let env = support::testenv();
    let client = env.kube_client().await;
    let namespace = support::harness::create_namespace(&client, "env-ns").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "inside"}})).expect("valid"),
        )
        .await
        .expect("creates a ConfigMap");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("deletes the namespace");
    let removed = eventually(Duration::from_secs(90), || async {
        matches!(namespaces.get_opt(&namespace).await, Ok(None))
    })
    .await;
    assert!(removed, "namespace {namespace} still exists 90 s after deletion");
}

#[tokio::test]
async fn moto_moves_staging_labels() {
    let env = support::testenv();
    let client = SecretsManager::new(&env.aws_config().await);
    let name = support::unique_name("env/moto");

    let created = client
        .create_secret()
        .name(&name)
        .secret_string("first")
        .client_request_token("00000000-0000-4000-8000-000000000001")
        .send()
        .await
        .expect("creates the secret");
    assert_eq!(created.version_id(), Some("00000000-0000-4000-8000-000000000001"));

    let staged = client
        .put_secret_value()
        .secret_id(&name)
        .secret_string("second")
        .client_request_token("00000000-0000-4000-8000-000000000002")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("stages a version");
    let pending = staged.version_id().expect("version id").to_owned();

    let current = client
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("reads AWSCURRENT");
    assert_eq!(current.secret_string(), Some("first"));

    client
        .update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&pending)
        .remove_from_version_id("00000000-0000-4000-8000-000000000001")
        .send()
        .await
        .expect("moves AWSCURRENT");

    let current = client
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("reads AWSCURRENT");
    assert_eq!(current.secret_string(), Some("second"));
    let previous = client
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("reads AWSPREVIOUS");
    assert_eq!(previous.secret_string(), Some("first"));
}

#[tokio::test]
async fn watch_stream_sees_deletion() {
    let env = support::testenv();
    let client = env.kube_client().await;
    let namespace = support::harness::create_namespace(&client, "env-delete").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "short-lived"}})).expect("valid"),
        )
        .await
        .expect("creates a ConfigMap");

    let events = watcher(config_maps.clone(), watcher::Config::default());
    let mut events = std::pin::pin!(events);
    // The watcher lists lazily: wait for its initial list before deleting.
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                return;
            }
        }
    })
    .await
    .expect("the initial list completes within 30 s");

    config_maps
        .delete("short-lived", &DeleteParams::default())
        .await
        .expect("deletes the ConfigMap");
    let deleted = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Delete(object)) = event {
                return object.name_any();
            }
        }
        String::new()
    })
    .await
    .expect("a delete event arrives within 30 s");
    assert_eq!(deleted, "short-lived");
}
