//! A `SecretRotation` stored under another schema (as after installing the CRD of another
//! rotor version) must not stall the controller: the other objects keep rotating and the
//! unreadable one gets a Warning Event. Runs in its own test binary because it replaces the
//! shared CRD for a while; cargo runs test binaries one after another. Needs
//! `tests/env/up.sh`.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceValidation, JSONSchemaProps,
};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use rotor::api::SecretRotation;
use support::harness;

async fn apply_crd(client: &Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "secretrotations.rotor.dev",
        &PatchParams::apply("rotor-tests").force(),
        &Patch::Apply(crd),
    )
    .await
    .expect("applies the CRD");
}

/// The rotor CRD with a schema that accepts any object.
fn permissive_crd() -> CustomResourceDefinition {
    let mut crd = rotor::api::crd();
    for version in &mut crd.spec.versions {
        version.schema = Some(CustomResourceValidation {
            open_api_v3_schema: Some(JSONSchemaProps {
                type_: Some("object".to_owned()),
                x_kubernetes_preserve_unknown_fields: Some(true),
                ..JSONSchemaProps::default()
            }),
        });
    }
    crd
}

#[tokio::test]
async fn unreadable_object_does_not_stall_others() {
    let env = support::testenv();
    harness::captured_logs();
    let client = env.kube_client().await;
    harness::install_crd(&client).await;
    let namespace = harness::create_namespace(&client, "skew").await;

    apply_crd(&client, &permissive_crd()).await;
    let gvk = GroupVersionKind::gvk("rotor.dev", "v1alpha1", "SecretRotation");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "secretrotations");
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    let unreadable = serde_json::json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "SecretRotation",
        "metadata": {"name": "unreadable"},
        "spec": {"rotationInterval": 42, "provider": "aws"}
    });
    harness::wait_for(
        Duration::from_secs(30),
        "the permissive schema to take effect",
        || async {
            dynamic
                .patch(
                    "unreadable",
                    &PatchParams::apply("rotor-tests"),
                    &Patch::Apply(&unreadable),
                )
                .await
                .ok()
        },
    )
    .await;
    apply_crd(&client, &rotor::api::crd()).await;

    let controller = harness::start_controller(&client, &namespace, harness::cloud_providers().await).await;
    let rotations: Api<SecretRotation> = Api::namespaced(client.clone(), &namespace);
    let valid = serde_json::json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "SecretRotation",
        "metadata": {"name": "valid"},
        "spec": {
            "rotationInterval": "24h",
            "provider": {"aws": {"region": "us-east-1", "secretId": format!("{namespace}/valid")}},
            "generator": {"password": {"length": 16}},
            "target": {"name": "valid-credentials"}
        }
    });
    harness::wait_for(Duration::from_secs(30), "the strict schema to take effect", || async {
        rotations
            .patch("valid", &PatchParams::apply("rotor-tests"), &Patch::Apply(&valid))
            .await
            .ok()
    })
    .await;

    let rotated = harness::wait_for(Duration::from_secs(30), "the valid object to rotate", || async {
        harness::secret_value(&client, &namespace, "valid-credentials", "password").await
    })
    .await;
    assert_eq!(rotated.len(), 16);

    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let warning = harness::wait_for(
        Duration::from_secs(30),
        "a Warning Event for the unreadable object",
        || async {
            let list = events.list(&ListParams::default()).await.expect("lists Events");
            list.items.into_iter().find(|event| {
                event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("unreadable")
                    && event.reason.as_deref() == Some("InvalidSpec")
            })
        },
    )
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    controller.stop().await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("deletes the namespace");
}
