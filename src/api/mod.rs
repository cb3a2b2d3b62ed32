//! The `SecretRotation` custom resource (group `rotor.dev`, version `v1alpha1`): its spec,
//! status and admission rules. Pure data with serde and schema derives; no IO.
//!
//! The `///` comments on fields become the CRD's OpenAPI descriptions, which is what
//! `kubectl explain secretrotation.spec` prints.

mod conditions;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use conditions::{ConditionStatus, ConditionType, Reason};

/// Annotation on a `SecretRotation` that requests a rotation now; any new value triggers
/// one rotation, for example `kubectl annotate srot NAME rotor.dev/rotate-requested-at="$(date -u +%FT%TZ)" --overwrite`.
pub const ROTATE_REQUESTED_AT: &str = "rotor.dev/rotate-requested-at";

/// Group of the custom resource.
pub const GROUP: &str = "rotor.dev";

/// Desired state of a `SecretRotation`: which cloud secret to rotate, how to make a new
/// value, how often, and which Kubernetes Secret receives the result.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rotor.dev",
    version = "v1alpha1",
    kind = "SecretRotation",
    plural = "secretrotations",
    shortname = "srot",
    namespaced,
    status = "SecretRotationStatus",
    doc = "Rotates one secret in a cloud secret store on a schedule and publishes the current value into a Kubernetes Secret.",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Provider", "type": "string", "jsonPath": ".status.provider"}"#,
    printcolumn = r#"{"name": "Version", "type": "string", "jsonPath": ".status.currentVersion"}"#,
    printcolumn = r#"{"name": "Last Rotation", "type": "date", "jsonPath": ".status.lastRotationTime"}"#,
    printcolumn = r#"{"name": "Next Rotation", "type": "string", "jsonPath": ".status.nextRotationTime"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationSpec {
    /// Time between two scheduled rotations, as a Go duration such as `24h`, `72h` or
    /// `90m`; at least one minute. rotor rotates up to 10% (at most one hour) before the
    /// interval ends, at an offset derived from the object's UID, so that objects created
    /// together do not rotate together.
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m')").message("rotationInterval must be a duration of at least 1m, such as 24h or 90m"))]
    pub rotation_interval: String,

    /// Stops scheduled and manually requested rotations while true. The Kubernetes Secret
    /// keeps its current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// The cloud secret store that contains the secret. Exactly one provider must be set.
    pub provider: ProviderSpec,

    /// How a new secret value is made.
    pub generator: GeneratorSpec,

    /// The Kubernetes Secret, in the same namespace, that receives the current value.
    pub target: TargetSpec,
}

/// The cloud secret store that contains the rotated secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("[has(self.aws), has(self.azure), has(self.gcp)].filter(x, x).size() == 1").message("exactly one provider must be set"))]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// AWS Secrets Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsProvider>,

    /// Azure Key Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureProvider>,

    /// Google Cloud Secret Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpProvider>,
}

/// An AWS Secrets Manager secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    /// AWS region of the secret, such as `us-east-1`.
    #[schemars(length(min = 1))]
    pub region: String,

    /// Name or ARN of the secret. rotor creates the secret, tagged as managed by rotor,
    /// when no secret of this name exists.
    #[schemars(length(min = 1, max = 2048))]
    pub secret_id: String,

    /// Secrets Manager endpoint URL, for VPC endpoints and emulators. When unset, the SDK
    /// uses `AWS_ENDPOINT_URL` from rotor's environment, or the region's public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Credentials for the calls. When unset, rotor uses the AWS default credential chain,
    /// which covers EKS IRSA and EKS Pod Identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,
}

/// Credentials for AWS calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// A Secret in the same namespace with keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, and optionally `AWS_SESSION_TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// An Azure Key Vault secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureProvider {
    /// URL of the vault, such as `https://my-vault.vault.azure.net`. It must use https.
    #[schemars(length(min = 9, max = 2048), regex(pattern = r"^https://[^/?#]+/?$"))]
    pub vault_url: String,

    /// Name of the secret in the vault: 1 to 127 letters, digits and hyphens. rotor creates
    /// the secret, tagged as managed by rotor, when no secret of this name exists.
    #[schemars(length(min = 1, max = 127), regex(pattern = r"^[0-9a-zA-Z-]+$"))]
    pub secret_name: String,

    /// Credentials for the calls. When unset, rotor uses Azure Workload Identity from the
    /// `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE` variables of its
    /// own environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AzureAuth>,
}

/// Credentials for Azure calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureAuth {
    /// A Secret in the same namespace with the keys `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_CLIENT_SECRET` of a Microsoft Entra ID application (service principal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// A Google Cloud Secret Manager secret (a global secret, `projects/PROJECT/secrets/SECRET_ID`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpProvider {
    /// ID or number of the Google Cloud project that contains the secret, such as
    /// `my-project`.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^[-a-z0-9.:]+$"))]
    pub project: String,

    /// ID of the secret in the project: 1 to 255 letters, digits, hyphens and underscores.
    /// rotor creates the secret, with automatic replication and the label
    /// `managed-by=rotor`, when no secret of this ID exists.
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    pub secret_id: String,

    /// Secret Manager endpoint URL, for private endpoints and emulators. Defaults to
    /// `https://secretmanager.googleapis.com`. An `http://` URL is accepted only for
    /// 127.0.0.1, `[::1]` or localhost, and rotor then sends no credentials unless
    /// `auth.secretRef` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: Option<String>,

    /// Credentials for the calls. When unset, rotor uses Application Default Credentials,
    /// which on GKE with Workload Identity come from the metadata server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<GcpAuth>,
}

/// Credentials for Google Cloud calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpAuth {
    /// A Secret in the same namespace whose key `credentials.json` contains a service-account
    /// key in JSON, as `gcloud iam service-accounts keys create` writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// A reference to a Secret in the same namespace as the `SecretRotation`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// How a new secret value is made. Exactly one generator must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("[has(self.password)].filter(x, x).size() == 1").message("exactly one generator must be set"))]
#[serde(rename_all = "camelCase")]
pub struct GeneratorSpec {
    /// A random password drawn from the enabled character classes, with at least one
    /// character of each enabled class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordGenerator>,
}

/// Options of the password generator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.lowercase) || self.lowercase || !has(self.uppercase) || self.uppercase || !has(self.digits) || self.digits || !has(self.symbols) || self.symbols").message("at least one of lowercase, uppercase, digits and symbols must be enabled"))]
#[serde(rename_all = "camelCase")]
pub struct PasswordGenerator {
    /// Number of characters, from 8 to 1024. Defaults to 32.
    #[serde(default = "default_password_length")]
    #[schemars(range(min = 8, max = 1024), extend("format" = "int32"))]
    pub length: u32,

    /// Include the lowercase letters `a-z`. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowercase: Option<bool>,

    /// Include the uppercase letters `A-Z`. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uppercase: Option<bool>,

    /// Include the digits `0-9`. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits: Option<bool>,

    /// Include the ASCII punctuation characters ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``.
    /// Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<bool>,

    /// Characters that never appear in the password, for example `"'\` for systems that
    /// mishandle quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub exclude_characters: Option<String>,
}

fn default_password_length() -> u32 {
    32
}

/// The Kubernetes Secret that receives the current value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Name of the Secret, in the namespace of the `SecretRotation`.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,

    /// Data key that contains the value. Defaults to `password`.
    #[serde(default = "default_target_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,

    /// Secret type, such as `Opaque`. Defaults to `Opaque`. Kubernetes does not allow
    /// changing the type of an existing Secret.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// Extra labels on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Extra annotations on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Who owns the Secret. `Owner` (default): rotor creates the Secret with an owner
    /// reference, so it is deleted with the `SecretRotation`, and never writes to a Secret it
    /// did not create. `Orphan`: like `Owner` but without the owner reference, so the Secret
    /// outlives the `SecretRotation`. `Merge`: rotor writes only its key, labels and
    /// annotations into an existing Secret and leaves the other keys as they are.
    #[serde(default)]
    pub creation_policy: CreationPolicy,
}

fn default_target_key() -> String {
    "password".to_owned()
}

/// Ownership of the target Secret.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CreationPolicy {
    /// rotor creates and owns the Secret; it is garbage-collected with the `SecretRotation`.
    #[default]
    Owner,
    /// rotor creates the Secret without an owner reference.
    Orphan,
    /// rotor writes its key into a Secret that may exist already, keeping other keys.
    Merge,
}

/// Observed state of a `SecretRotation`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationStatus {
    /// The `metadata.generation` that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` reports whether the Secret holds the current value and the schedule is
    /// healthy; `Rotating` is true while a rotation is in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Provider of the cloud secret: `aws`, `azure` or `gcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,

    /// Cloud version id of the value in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,

    /// Cloud version id of the value before the last rotation; it stays readable in the
    /// cloud (as `AWSPREVIOUS` on AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,

    /// When the last rotation finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,

    /// When the next scheduled rotation is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Time>,

    /// Fingerprint of the provider and generator settings that produced the current value;
    /// a change of either starts a new rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hash: Option<String>,

    /// `metadata.resourceVersion` of the target Secret when rotor last wrote or checked it. A
    /// different one means the Secret changed, so rotor compares it with the current version
    /// and writes it again if needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resource_version: Option<String>,

    /// Value of the `rotor.dev/rotate-requested-at` annotation that the last manual rotation
    /// handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_request: Option<String>,

    /// The rotation in flight, recorded before anything is written to the cloud so that a
    /// restarted controller resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<InFlightRotation>,

    /// Consecutive failed reconciles; reset to zero on success. Drives the retry backoff.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0), extend("format" = "int32"))]
    pub failure_count: u32,

    /// When the last failure happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A rotation that has started and not yet finished.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InFlightRotation {
    /// Rotation id, fixed before the first cloud write. The cloud version carries it (as
    /// the AWS version id), so a retry finds that version instead of writing another.
    pub id: String,

    /// Step the rotation has reached: `Stage`, `Promote` or `Publish`.
    pub step: RotationStep,

    /// Why the rotation started: `Initial`, `Scheduled`, `ManuallyTriggered` or
    /// `SpecChanged`.
    pub trigger: RotationTrigger,

    /// When the rotation started.
    pub started_at: Time,

    /// Value of the `rotor.dev/rotate-requested-at` annotation that this rotation handles,
    /// when it was requested manually.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_request: Option<String>,

    /// Cloud version id of the staged value, once staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Cloud version id that was current before promotion, once promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
}

/// Step of an in-flight rotation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RotationStep {
    /// Writing the new value to the cloud as a pending version.
    Stage,
    /// Making the pending version current.
    Promote,
    /// Writing the Kubernetes Secret.
    Publish,
}

/// Cause of a rotation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RotationTrigger {
    /// No value has been rotated yet.
    Initial,
    /// The rotation interval elapsed.
    Scheduled,
    /// The `rotor.dev/rotate-requested-at` annotation changed.
    ManuallyTriggered,
    /// The provider or generator settings changed.
    SpecChanged,
}

impl RotationTrigger {
    /// Returns the `Rotating` condition reason for this trigger.
    pub fn reason(self) -> Reason {
        match self {
            Self::Initial => Reason::Initial,
            Self::Scheduled => Reason::Scheduled,
            Self::ManuallyTriggered => Reason::ManuallyTriggered,
            Self::SpecChanged => Reason::SpecChanged,
        }
    }
}

impl SecretRotationSpec {
    /// Provider name as used in status, annotations and metric labels.
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// True when `suspend` is set to true.
    pub fn is_suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }
}

/// The one provider a [`ProviderSpec`] configures.
#[derive(Clone, Copy, Debug)]
pub enum SelectedProvider<'a> {
    Aws(&'a AwsProvider),
    Azure(&'a AzureProvider),
    Gcp(&'a GcpProvider),
}

impl SelectedProvider<'_> {
    /// Name of the secret within its store: the AWS secret id, the Key Vault secret name or
    /// the Secret Manager secret id.
    pub fn secret_name(&self) -> &str {
        match self {
            Self::Aws(aws) => &aws.secret_id,
            Self::Azure(azure) => &azure.secret_name,
            Self::Gcp(gcp) => &gcp.secret_id,
        }
    }
}

impl ProviderSpec {
    /// Returns the configured provider, or `None` for a spec without one, which admission
    /// rejects.
    pub fn selected(&self) -> Option<SelectedProvider<'_>> {
        if let Some(aws) = &self.aws {
            return Some(SelectedProvider::Aws(aws));
        }
        if let Some(azure) = &self.azure {
            return Some(SelectedProvider::Azure(azure));
        }
        self.gcp.as_ref().map(SelectedProvider::Gcp)
    }

    /// Name of the configured provider: `aws`, `azure` or `gcp`, and `none` for a spec
    /// without one.
    pub fn name(&self) -> &'static str {
        match self.selected() {
            Some(SelectedProvider::Aws(_)) => "aws",
            Some(SelectedProvider::Azure(_)) => "azure",
            Some(SelectedProvider::Gcp(_)) => "gcp",
            None => "none",
        }
    }

    /// Name of the cloud secret for messages: the AWS secret id, the Key Vault secret name or
    /// the Secret Manager resource name.
    pub fn cloud_secret(&self) -> String {
        match self.selected() {
            Some(SelectedProvider::Gcp(gcp)) => format!("projects/{}/secrets/{}", gcp.project, gcp.secret_id),
            Some(selected) => selected.secret_name().to_owned(),
            None => String::new(),
        }
    }

    /// Parts that identify the cloud secret: a change of any of them means another secret.
    pub fn identity(&self) -> Vec<&str> {
        let name = self.name();
        match self.selected() {
            Some(SelectedProvider::Aws(aws)) => vec![name, &aws.region, &aws.secret_id],
            Some(SelectedProvider::Azure(azure)) => vec![name, &azure.vault_url, &azure.secret_name],
            Some(SelectedProvider::Gcp(gcp)) => vec![name, &gcp.project, &gcp.secret_id],
            None => vec![name],
        }
    }

    /// Returns the credentials Secret that the provider's `auth` names, if any.
    pub fn credentials_ref(&self) -> Option<&SecretReference> {
        match self.selected()? {
            SelectedProvider::Aws(aws) => aws.auth.as_ref()?.secret_ref.as_ref(),
            SelectedProvider::Azure(azure) => azure.auth.as_ref()?.secret_ref.as_ref(),
            SelectedProvider::Gcp(gcp) => gcp.auth.as_ref()?.secret_ref.as_ref(),
        }
    }
}

/// Builds the CustomResourceDefinition of `SecretRotation`, as `rotor crd` prints it and
/// `crds/` contains it. Descriptions come from the `///` comments with their line wrapping undone, so
/// that `kubectl explain` reflows them.
pub fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;

    let mut crd = SecretRotation::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            unwrap_descriptions(schema);
        }
    }
    crd
}

/// [`crd`] as the YAML document that `rotor crd` prints and `crds/` holds.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!("---\n{}\n", serde_yaml::to_string(&crd())?.trim_end()))
}

fn unwrap_descriptions(
    schema: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    if let Some(description) = schema.description.as_mut() {
        *description = description
            .split("\n\n")
            .map(|paragraph| paragraph.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    for child in schema
        .properties
        .iter_mut()
        .flat_map(|properties| properties.values_mut())
    {
        unwrap_descriptions(child);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(
        items,
    )) = schema.items.as_mut()
    {
        unwrap_descriptions(items);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_crd_is_current() {
        let committed = include_str!("../../crds/secretrotations.rotor.dev.yaml");
        let generated = super::crd_yaml().expect("serializes the CRD");
        assert!(
            committed == generated,
            "crds/secretrotations.rotor.dev.yaml is stale; regenerate it with `cargo run -- crd > crds/secretrotations.rotor.dev.yaml`"
        );
    }

    #[test]
    fn azure_provider_lookups() {
        let spec: super::ProviderSpec = serde_json::from_value(serde_json::json!({
            "azure": {
                "vaultUrl": "https://my-vault.vault.azure.net",
                "secretName": "db-password",
                "auth": {"secretRef": {"name": "azure-credentials"}}
            }
        }))
        .expect("valid provider spec");

        assert_eq!(spec.name(), "azure");
        assert_eq!(spec.cloud_secret(), "db-password");
        assert_eq!(
            spec.identity(),
            vec!["azure", "https://my-vault.vault.azure.net", "db-password"]
        );
        assert_eq!(
            spec.credentials_ref().map(|reference| reference.name.as_str()),
            Some("azure-credentials")
        );
    }
}
