//! JSON request bodies and response resources, following the proto3 JSON mapping: camelCase
//! names (proto field names are accepted too), int64 as strings, bytes as base64, and fields
//! with default values left out.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use jiff::Timestamp;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::page::Page;
use crate::store::{AccessedVersion, Replica, Replication, Secret, SecretVersion};

/// How enums appear in responses: names by default, numbers when the request sends
/// `$alt=json;enum-encoding=int`, as Google's client libraries do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EnumEncoding {
    #[default]
    Name,
    Number,
}

/// Parses a request body. An empty body reads as `{}`.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid_argument(format!("Invalid JSON payload received. {error}")))
}

/// An int64 field, which proto3 JSON sends as a string and which also parses from a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int64(pub i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(number) => number
                .as_i64()
                .map(Int64)
                .ok_or_else(|| de::Error::custom(format!("{number} is not a valid int64"))),
            Value::String(text) => text
                .parse()
                .map(Int64)
                .map_err(|_| de::Error::custom(format!("{text:?} is not a valid int64"))),
            other => Err(de::Error::custom(format!("expected an int64, found {other}"))),
        }
    }
}

/// A `Secret` in a create or patch request body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretBody {
    /// Output only, or taken from the URL path: ignored.
    #[serde(rename = "name")]
    _name: Option<IgnoredAny>,
    pub replication: Option<ReplicationBody>,
    /// Output only: ignored.
    #[serde(rename = "createTime", alias = "create_time")]
    _create_time: Option<IgnoredAny>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(alias = "version_aliases")]
    pub version_aliases: Option<BTreeMap<String, Int64>>,
    pub etag: Option<String>,
    pub topics: Option<Value>,
    #[serde(alias = "expire_time")]
    pub expire_time: Option<Value>,
    pub ttl: Option<Value>,
    pub rotation: Option<Value>,
    #[serde(alias = "version_destroy_ttl")]
    pub version_destroy_ttl: Option<Value>,
    #[serde(alias = "customer_managed_encryption")]
    pub customer_managed_encryption: Option<Value>,
    pub tags: Option<Value>,
    #[serde(alias = "secret_type")]
    pub secret_type: Option<Value>,
    /// Output only: ignored.
    #[serde(rename = "policyMember", alias = "policy_member")]
    _policy_member: Option<IgnoredAny>,
}

impl SecretBody {
    /// Returns the JSON name of the first field that is set and that the emulator does not
    /// implement.
    pub fn unsupported_field(&self) -> Option<&'static str> {
        let fields = [
            ("topics", &self.topics),
            ("expireTime", &self.expire_time),
            ("ttl", &self.ttl),
            ("rotation", &self.rotation),
            ("versionDestroyTtl", &self.version_destroy_ttl),
            ("customerManagedEncryption", &self.customer_managed_encryption),
            ("tags", &self.tags),
            ("secretType", &self.secret_type),
        ];
        fields
            .into_iter()
            .find(|(_, value)| value.as_ref().is_some_and(is_set))
            .map(|(name, _)| name)
    }

    pub fn version_aliases(&self) -> BTreeMap<String, i64> {
        let aliases = self.version_aliases.iter().flatten();
        aliases.map(|(alias, version)| (alias.clone(), version.0)).collect()
    }
}

/// Tells whether a JSON value differs from the proto3 default (null, empty, zero or the
/// `..._UNSPECIFIED` enum value).
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !text.is_empty() && !text.ends_with("_UNSPECIFIED"),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplicationBody {
    pub automatic: Option<AutomaticBody>,
    #[serde(alias = "user_managed")]
    pub user_managed: Option<UserManagedBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AutomaticBody {
    #[serde(alias = "customer_managed_encryption")]
    pub customer_managed_encryption: Option<EncryptionBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserManagedBody {
    #[serde(default)]
    pub replicas: Vec<ReplicaBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplicaBody {
    #[serde(default)]
    pub location: String,
    #[serde(alias = "customer_managed_encryption")]
    pub customer_managed_encryption: Option<EncryptionBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EncryptionBody {
    #[serde(default, alias = "kms_key_name")]
    pub kms_key_name: String,
}

impl EncryptionBody {
    fn key_name(encryption: Option<EncryptionBody>, field: &str) -> Result<Option<String>, ApiError> {
        match encryption {
            None => Ok(None),
            Some(encryption) if encryption.kms_key_name.is_empty() => Err(ApiError::invalid_argument(format!(
                "{field}.kmsKeyName is required when {field} is set"
            ))),
            Some(encryption) => Ok(Some(encryption.kms_key_name)),
        }
    }
}

/// Converts the `replication` of a create request, which is required and must set exactly
/// one of `automatic` and `userManaged`.
pub fn replication(body: Option<ReplicationBody>) -> Result<Replication, ApiError> {
    // NOTE: the v1 proto marks replication optional, and the reference does not say what Google
    // does without one. The emulator requires it so that every secret has a policy to return.
    let body = body.ok_or_else(|| {
        ApiError::invalid_argument("replication is required: set replication.automatic or replication.userManaged")
    })?;
    match (body.automatic, body.user_managed) {
        (Some(automatic), None) => Ok(Replication::Automatic {
            kms_key_name: EncryptionBody::key_name(
                automatic.customer_managed_encryption,
                "replication.automatic.customerManagedEncryption",
            )?,
        }),
        (None, Some(user_managed)) => {
            if user_managed.replicas.is_empty() {
                return Err(ApiError::invalid_argument(
                    "replication.userManaged.replicas must list at least one replica",
                ));
            }
            let mut replicas: Vec<Replica> = Vec::new();
            for replica in user_managed.replicas {
                if replica.location.is_empty() {
                    return Err(ApiError::invalid_argument(
                        "replication.userManaged.replicas[].location is required",
                    ));
                }
                if replicas.iter().any(|existing| existing.location == replica.location) {
                    return Err(ApiError::invalid_argument(format!(
                        "replication.userManaged.replicas lists location {:?} twice",
                        replica.location
                    )));
                }
                replicas.push(Replica {
                    kms_key_name: EncryptionBody::key_name(
                        replica.customer_managed_encryption,
                        "replication.userManaged.replicas[].customerManagedEncryption",
                    )?,
                    location: replica.location,
                });
            }
            Ok(Replication::UserManaged { replicas })
        }
        (Some(_), Some(_)) => Err(ApiError::invalid_argument(
            "replication sets both automatic and userManaged. Set exactly one of them.",
        )),
        (None, None) => Err(ApiError::invalid_argument(
            "replication is empty: set replication.automatic or replication.userManaged",
        )),
    }
}

/// The body of `secrets.addVersion`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddVersionBody {
    /// Taken from the URL path: ignored.
    #[serde(rename = "parent")]
    _parent: Option<IgnoredAny>,
    pub payload: Option<PayloadBody>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PayloadBody {
    pub data: Option<String>,
    #[serde(alias = "data_crc32c")]
    pub data_crc32c: Option<Int64>,
}

impl std::fmt::Debug for PayloadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadBody")
            .field("data_crc32c", &self.data_crc32c)
            .finish_non_exhaustive()
    }
}

/// The body of `versions.enable`, `versions.disable` and `versions.destroy`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EtagBody {
    /// Taken from the URL path: ignored.
    #[serde(rename = "name")]
    _name: Option<IgnoredAny>,
    pub etag: Option<String>,
}

/// Proto3 JSON `bytes` decoder: standard or URL-safe base64, with or without padding.
const BYTES_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes `payload.data`.
pub fn decode_payload_data(data: &str) -> Result<Vec<u8>, ApiError> {
    let standard: String = data
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    BYTES_ENGINE
        .decode(standard)
        .map_err(|error| ApiError::invalid_argument(format!("payload.data is not valid base64: {error}")))
}

/// Formats a timestamp as RFC 3339 in UTC with microseconds, as Secret Manager does.
pub fn format_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicationJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    automatic: Option<EncryptionHolder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_managed: Option<ReplicasJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EncryptionHolder {
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_managed_encryption: Option<EncryptionJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EncryptionJson {
    kms_key_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicasJson {
    replicas: Vec<ReplicaJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicaJson {
    location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_managed_encryption: Option<EncryptionJson>,
}

fn encryption_json(kms_key_name: &Option<String>) -> Option<EncryptionJson> {
    kms_key_name.as_ref().map(|name| EncryptionJson {
        kms_key_name: name.clone(),
    })
}

/// Renders a replication policy, or with `status` the `replicationStatus` of a version, which
/// has the same shape without key names.
fn replication_json(replication: &Replication, status: bool) -> ReplicationJson {
    match replication {
        Replication::Automatic { kms_key_name } => ReplicationJson {
            automatic: Some(EncryptionHolder {
                customer_managed_encryption: if status { None } else { encryption_json(kms_key_name) },
            }),
            user_managed: None,
        },
        Replication::UserManaged { replicas } => ReplicationJson {
            automatic: None,
            user_managed: Some(ReplicasJson {
                replicas: replicas
                    .iter()
                    .map(|replica| ReplicaJson {
                        location: replica.location.clone(),
                        customer_managed_encryption: if status {
                            None
                        } else {
                            encryption_json(&replica.kms_key_name)
                        },
                    })
                    .collect(),
            }),
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretJson<'a> {
    name: &'a str,
    replication: ReplicationJson,
    create_time: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    etag: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    version_aliases: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

pub fn secret_json(secret: &Secret) -> Value {
    let resource = SecretJson {
        name: &secret.name,
        replication: replication_json(&secret.replication, false),
        create_time: format_time(secret.create_time),
        labels: &secret.labels,
        etag: &secret.etag,
        version_aliases: secret
            .version_aliases
            .iter()
            .map(|(alias, version)| (alias.as_str(), version.to_string()))
            .collect(),
        annotations: &secret.annotations,
    };
    to_value(resource)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionJson<'a> {
    name: &'a str,
    create_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    destroy_time: Option<String>,
    state: Value,
    replication_status: ReplicationJson,
    etag: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    client_specified_payload_checksum: bool,
}

pub fn version_json(version: &SecretVersion, encoding: EnumEncoding) -> Value {
    let state = match encoding {
        EnumEncoding::Name => Value::from(version.state.name()),
        EnumEncoding::Number => Value::from(version.state.number()),
    };
    let resource = VersionJson {
        name: &version.name,
        create_time: format_time(version.create_time),
        destroy_time: version.destroy_time.map(format_time),
        state,
        replication_status: replication_json(&version.replication, true),
        etag: &version.etag,
        client_specified_payload_checksum: version.client_specified_payload_checksum,
    };
    to_value(resource)
}

pub fn access_json(accessed: &AccessedVersion) -> Value {
    serde_json::json!({
        "name": accessed.name,
        "payload": {
            "data": STANDARD.encode(&accessed.data),
            "dataCrc32c": accessed.crc32c.to_string(),
        },
    })
}

/// Renders a list response with `items_field` holding the page's resources.
pub fn list_json<T>(page: &Page<T>, items_field: &str, render: impl Fn(&T) -> Value) -> Value {
    let mut body = serde_json::Map::new();
    if !page.items.is_empty() {
        body.insert(
            items_field.to_string(),
            Value::Array(page.items.iter().map(render).collect()),
        );
    }
    if !page.next_page_token.is_empty() {
        body.insert("nextPageToken".to_string(), Value::from(page.next_page_token.clone()));
    }
    if page.total_size != 0 {
        body.insert("totalSize".to_string(), Value::from(page.total_size));
    }
    Value::Object(body)
}

fn to_value(resource: impl Serialize) -> Value {
    // serde_json fails only on non-string map keys or failing Serialize impls, and these structs
    // have neither.
    serde_json::to_value(resource).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_parses_strings_and_numbers() {
        let from_string: Int64 = serde_json::from_str("\"4294967295\"").expect("string int64");
        let from_number: Int64 = serde_json::from_str("12").expect("number int64");
        assert_eq!(from_string, Int64(4_294_967_295));
        assert_eq!(from_number, Int64(12));
        assert!(serde_json::from_str::<Int64>("\"twelve\"").is_err());
        assert!(serde_json::from_str::<Int64>("1.5").is_err());
    }

    #[test]
    fn secret_body_accepts_both_name_styles() {
        let camel: SecretBody = parse_body(br#"{"versionAliases": {"current": "2"}}"#).expect("camelCase");
        let snake: SecretBody = parse_body(br#"{"version_aliases": {"current": 2}}"#).expect("snake_case");
        assert_eq!(camel.version_aliases(), BTreeMap::from([("current".to_string(), 2)]));
        assert_eq!(snake.version_aliases(), camel.version_aliases());
    }

    #[test]
    fn secret_body_rejects_unknown_fields() {
        let error = parse_body::<SecretBody>(br#"{"lables": {}}"#).expect_err("unknown field");
        assert!(error.message.contains("lables"), "{}", error.message);
    }

    #[test]
    fn empty_body_reads_as_empty_object() {
        let body: EtagBody = parse_body(b"").expect("empty body");
        assert!(body.etag.is_none());
    }

    #[test]
    fn unsupported_fields_are_named_only_when_set() {
        let unset: SecretBody = parse_body(br#"{"topics": [], "secretType": 0, "ttl": null}"#).expect("body");
        assert_eq!(unset.unsupported_field(), None);
        let set: SecretBody = parse_body(br#"{"rotation": {"rotationPeriod": "3600s"}}"#).expect("body");
        assert_eq!(set.unsupported_field(), Some("rotation"));
    }

    #[test]
    fn replication_requires_exactly_one_policy() {
        let parse = |json: &[u8]| replication(parse_body::<SecretBody>(json).expect("body").replication);
        assert!(parse(br#"{}"#).is_err());
        assert!(parse(br#"{"replication": {}}"#).is_err());
        assert!(
            parse(br#"{"replication": {"automatic": {}, "userManaged": {"replicas": [{"location": "a"}]}}}"#).is_err()
        );
        assert!(parse(br#"{"replication": {"userManaged": {"replicas": []}}}"#).is_err());
        assert!(
            parse(br#"{"replication": {"userManaged": {"replicas": [{"location": "a"}, {"location": "a"}]}}}"#)
                .is_err()
        );
        assert_eq!(
            parse(br#"{"replication": {"automatic": {}}}"#).expect("automatic"),
            Replication::Automatic { kms_key_name: None }
        );
    }

    #[test]
    fn payload_data_accepts_base64_variants() {
        assert_eq!(decode_payload_data("aGk/Pz8=").expect("padded"), b"hi???");
        assert_eq!(decode_payload_data("aGk_Pz8").expect("url-safe unpadded"), b"hi???");
        assert!(decode_payload_data("not base64!").is_err());
    }

    #[test]
    fn time_has_microseconds_and_utc_suffix() {
        let time: Timestamp = "2024-02-14T10:31:07.118436789Z".parse().expect("timestamp");
        assert_eq!(format_time(time), "2024-02-14T10:31:07.118436Z");
    }
}
