//! The normalized Kubernetes Secret: rendering it from a `SecretRotation` and a value,
//! deciding whether rotor may write an existing Secret, and whether a write is needed.
//! Pure functions; the controller does the reads and writes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::api::{CreationPolicy, SecretRotation};
use crate::rotation::SecretValue;

/// Label on every Secret rotor writes; the controller watches only Secrets with it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "rotor";
/// Annotation naming the `SecretRotation` (same namespace) that writes the Secret.
pub const SECRET_ROTATION_ANNOTATION: &str = "rotor.dev/secret-rotation";
/// Annotation with the provider name.
pub const PROVIDER_ANNOTATION: &str = "rotor.dev/provider";
/// Annotation with the cloud version id of the value.
pub const VERSION_ANNOTATION: &str = "rotor.dev/version";
/// Annotation with the time the value was rotated (RFC 3339).
pub const ROTATED_AT_ANNOTATION: &str = "rotor.dev/rotated-at";

/// Facts about the value that the Secret's annotations record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub provider: &'static str,
    pub version: String,
    pub rotated_at: Timestamp,
}

/// Whether rotor may write the target Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// No Secret of that name exists; rotor creates it.
    Absent,
    /// rotor wrote the Secret for this `SecretRotation`, or the policy is `Merge`.
    Writable,
    /// The Secret exists and was not created by rotor for this object.
    NotOwned,
    /// Another `SecretRotation`, named here, writes the Secret.
    ClaimedBy(String),
}

/// Classifies an existing Secret's metadata against `rotation`'s creation policy.
pub fn ownership(rotation: &SecretRotation, existing: Option<&ObjectMeta>) -> Ownership {
    let Some(meta) = existing else {
        return Ownership::Absent;
    };
    let name = rotation.metadata.name.as_deref().unwrap_or_default();
    let claimed_by = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SECRET_ROTATION_ANNOTATION));
    if let Some(other) = claimed_by.filter(|claimant| claimant.as_str() != name) {
        return Ownership::ClaimedBy(other.clone());
    }
    match rotation.spec.target.creation_policy {
        CreationPolicy::Merge => Ownership::Writable,
        CreationPolicy::Owner => {
            let uid = rotation.metadata.uid.as_deref().unwrap_or_default();
            let owned = meta
                .owner_references
                .iter()
                .flatten()
                .any(|reference| reference.uid == uid && reference.kind == "SecretRotation");
            if owned {
                Ownership::Writable
            } else {
                Ownership::NotOwned
            }
        }
        CreationPolicy::Orphan => {
            let managed = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .map(String::as_str)
                == Some(MANAGED_BY_VALUE);
            if managed && claimed_by.is_some() {
                Ownership::Writable
            } else {
                Ownership::NotOwned
            }
        }
    }
}

/// Renders the Secret that rotor applies with server-side apply. Under `Merge` it carries only rotor's
/// key, labels and annotations, so fields other managers set are left alone.
pub fn render(rotation: &SecretRotation, value: &SecretValue, published: &Published) -> Secret {
    let target = &rotation.spec.target;

    let mut labels = target.labels.clone();
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned());

    let mut annotations = target.annotations.clone();
    annotations.insert(
        SECRET_ROTATION_ANNOTATION.to_owned(),
        rotation.metadata.name.clone().unwrap_or_default(),
    );
    annotations.insert(PROVIDER_ANNOTATION.to_owned(), published.provider.to_owned());
    annotations.insert(VERSION_ANNOTATION.to_owned(), published.version.clone());
    annotations.insert(ROTATED_AT_ANNOTATION.to_owned(), published.rotated_at.to_string());

    let owner_references = match target.creation_policy {
        CreationPolicy::Owner => Some(vec![owner_reference(rotation)]),
        CreationPolicy::Orphan | CreationPolicy::Merge => None,
    };
    let type_ = match target.creation_policy {
        CreationPolicy::Merge => target.type_.clone(),
        CreationPolicy::Owner | CreationPolicy::Orphan => {
            Some(target.type_.clone().unwrap_or_else(|| "Opaque".to_owned()))
        }
    };

    Secret {
        metadata: ObjectMeta {
            name: Some(target.name.clone()),
            namespace: rotation.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        type_,
        data: Some(BTreeMap::from([(
            target.key.clone(),
            ByteString(value.expose().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn owner_reference(rotation: &SecretRotation) -> OwnerReference {
    OwnerReference {
        api_version: SecretRotation::api_version(&()).into_owned(),
        kind: SecretRotation::kind(&()).into_owned(),
        name: rotation.metadata.name.clone().unwrap_or_default(),
        uid: rotation.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        // Blocking foreground deletion would need update rights on the finalizers
        // subresource; garbage collection works without it.
        block_owner_deletion: None,
    }
}

/// True when `existing` already has everything `desired` sets: rotor then writes nothing,
/// so the Secret's resourceVersion does not change.
pub fn is_up_to_date(existing: &Secret, desired: &Secret) -> bool {
    let contains = |have: &Option<BTreeMap<String, String>>, want: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(key, value)| have.as_ref().and_then(|have| have.get(key)) == Some(value))
    };
    let data_matches = desired
        .data
        .iter()
        .flatten()
        .all(|(key, value)| existing.data.as_ref().and_then(|data| data.get(key)) == Some(value));
    let owners_match = desired.metadata.owner_references.iter().flatten().all(|want| {
        existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|have| have.uid == want.uid)
    });
    let type_matches = desired.type_.is_none() || desired.type_ == existing.type_;
    data_matches
        && owners_match
        && type_matches
        && contains(&existing.metadata.labels, &desired.metadata.labels)
        && contains(&existing.metadata.annotations, &desired.metadata.annotations)
}

/// Returns true when a field manager other than rotor's has written the data key `key`,
/// for example `kubectl edit` or `kubectl patch`. The value may then differ from the cloud
/// version even though the annotations still name it.
pub fn key_written_by_others(secret: &Secret, key: &str, field_manager: &str) -> bool {
    let field = format!("f:{key}");
    secret.metadata.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() != Some(field_manager)
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields.0.get("f:data").and_then(|data| data.get(&field)).is_some())
    })
}

/// Returns true when a Secret's metadata alone shows that it contains `version` for
/// `rotation`. The controller then reads neither the Secret's data nor the cloud.
pub fn metadata_shows_version(rotation: &SecretRotation, meta: &ObjectMeta, version: &str) -> bool {
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str);
    annotation(VERSION_ANNOTATION) == Some(version)
        && annotation(SECRET_ROTATION_ANNOTATION) == rotation.metadata.name.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretRotationSpec;

    fn rotation(policy: CreationPolicy) -> SecretRotation {
        let spec: SecretRotationSpec = serde_json::from_value(serde_json::json!({
            "rotationInterval": "24h",
            "provider": {"aws": {"region": "us-east-1", "secretId": "shop/orders-db"}},
            "generator": {"password": {"length": 32}},
            "target": {"name": "orders-db-credentials", "creationPolicy": policy, "labels": {"team": "shop"}}
        }))
        .expect("valid spec");
        let mut rotation = SecretRotation::new("orders-db", spec);
        rotation.metadata.namespace = Some("shop".to_owned());
        rotation.metadata.uid = Some("uid-1".to_owned());
        rotation
    }

    fn published() -> Published {
        Published {
            provider: "aws",
            version: "v1".to_owned(),
            rotated_at: "2026-01-01T00:00:00Z".parse().expect("valid timestamp"),
        }
    }

    fn value() -> SecretValue {
        SecretValue::new("s3cr3t-value".to_owned())
    }

    #[test]
    fn render_sets_key_labels_and_annotations() {
        let secret = render(&rotation(CreationPolicy::Owner), &value(), &published());
        let data = secret.data.expect("data");
        assert_eq!(data.get("password"), Some(&ByteString(b"s3cr3t-value".to_vec())));
        let labels = secret.metadata.labels.expect("labels");
        assert_eq!(labels.get(MANAGED_BY_LABEL).map(String::as_str), Some("rotor"));
        assert_eq!(labels.get("team").map(String::as_str), Some("shop"));
        let annotations = secret.metadata.annotations.expect("annotations");
        assert_eq!(annotations.get(VERSION_ANNOTATION).map(String::as_str), Some("v1"));
        assert_eq!(annotations.get(PROVIDER_ANNOTATION).map(String::as_str), Some("aws"));
        assert_eq!(
            annotations.get(ROTATED_AT_ANNOTATION).map(String::as_str),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn render_owner_policy_sets_owner_reference() {
        let secret = render(&rotation(CreationPolicy::Owner), &value(), &published());
        let owners = secret.metadata.owner_references.expect("owner references");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "uid-1");
        assert_eq!(owners[0].kind, "SecretRotation");
    }

    #[test]
    fn render_merge_policy_sets_no_owner_or_type() {
        let secret = render(&rotation(CreationPolicy::Merge), &value(), &published());
        assert!(secret.metadata.owner_references.is_none());
        assert!(secret.type_.is_none());
    }

    #[test]
    fn foreign_secret_is_not_owned() {
        let foreign = ObjectMeta {
            name: Some("orders-db-credentials".to_owned()),
            ..ObjectMeta::default()
        };
        assert_eq!(
            ownership(&rotation(CreationPolicy::Owner), Some(&foreign)),
            Ownership::NotOwned
        );
        assert_eq!(
            ownership(&rotation(CreationPolicy::Orphan), Some(&foreign)),
            Ownership::NotOwned
        );
        assert_eq!(
            ownership(&rotation(CreationPolicy::Merge), Some(&foreign)),
            Ownership::Writable
        );
    }

    #[test]
    fn rendered_secret_is_owned() {
        for policy in [CreationPolicy::Owner, CreationPolicy::Orphan, CreationPolicy::Merge] {
            let rotation = rotation(policy);
            let secret = render(&rotation, &value(), &published());
            assert_eq!(
                ownership(&rotation, Some(&secret.metadata)),
                Ownership::Writable,
                "{policy:?}"
            );
        }
    }

    #[test]
    fn secret_of_other_rotation_is_claimed() {
        let other = rotation(CreationPolicy::Merge);
        let mut secret = render(&other, &value(), &published());
        secret
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(SECRET_ROTATION_ANNOTATION.to_owned(), "billing-db".to_owned());
        assert_eq!(
            ownership(&rotation(CreationPolicy::Merge), Some(&secret.metadata)),
            Ownership::ClaimedBy("billing-db".to_owned())
        );
    }

    #[test]
    fn up_to_date_ignores_foreign_keys() {
        let rotation = rotation(CreationPolicy::Merge);
        let desired = render(&rotation, &value(), &published());
        let mut existing = desired.clone();
        existing
            .data
            .get_or_insert_default()
            .insert("other".to_owned(), ByteString(b"x".to_vec()));
        assert!(is_up_to_date(&existing, &desired));
    }

    #[test]
    fn key_edited_by_kubectl_is_detected() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let rotation = rotation(CreationPolicy::Owner);
        let mut secret = render(&rotation, &value(), &published());
        let entry = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        };
        secret.metadata.managed_fields = Some(vec![
            entry("rotor", serde_json::json!({"f:data": {"f:password": {}}})),
            entry("kubectl-edit", serde_json::json!({"f:data": {"f:other": {}}})),
        ]);
        assert!(!key_written_by_others(&secret, "password", "rotor"));
        secret.metadata.managed_fields.get_or_insert_default().push(entry(
            "kubectl-patch",
            serde_json::json!({"f:data": {"f:password": {}}}),
        ));
        assert!(key_written_by_others(&secret, "password", "rotor"));
    }

    #[test]
    fn changed_value_is_not_up_to_date() {
        let rotation = rotation(CreationPolicy::Owner);
        let desired = render(&rotation, &value(), &published());
        let existing = render(&rotation, &SecretValue::new("old".to_owned()), &published());
        assert!(!is_up_to_date(&existing, &desired));
    }
}
