//! HTTP front end: maps Secret Manager v1 REST URLs to store operations and renders results
//! and errors as Google's JSON APIs do.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::error::{ApiError, Code};
use crate::filter::{Filter, ResourceKind};
use crate::json::{self, EnumEncoding};
use crate::page::PageRequest;
use crate::store::{SecretSpec, SecretUpdate, Store, UpdateMask, VersionAction};
use crate::validate;

/// Shared emulator state behind every request.
pub type SharedStore = Arc<Mutex<Store>>;

/// A REST method of the Secret Manager v1 API, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    ListSecrets {
        project: String,
    },
    CreateSecret {
        project: String,
    },
    GetSecret {
        project: String,
        secret: String,
    },
    UpdateSecret {
        project: String,
        secret: String,
    },
    DeleteSecret {
        project: String,
        secret: String,
    },
    AddVersion {
        project: String,
        secret: String,
    },
    ListVersions {
        project: String,
        secret: String,
    },
    GetVersion {
        project: String,
        secret: String,
        version: String,
    },
    AccessVersion {
        project: String,
        secret: String,
        version: String,
    },
    ChangeVersionState {
        project: String,
        secret: String,
        version: String,
        action: VersionAction,
    },
}

impl Operation {
    /// The query parameters the method takes besides Google's system parameters.
    fn query_parameters(&self) -> &'static [&'static str] {
        match self {
            Operation::ListSecrets { .. } | Operation::ListVersions { .. } => &["pageSize", "pageToken", "filter"],
            Operation::CreateSecret { .. } => &["secretId"],
            Operation::UpdateSecret { .. } => &["updateMask"],
            Operation::DeleteSecret { .. } => &["etag"],
            _ => &[],
        }
    }
}

/// Query parameters that every Google REST API accepts. `fields` (partial responses) and the
/// others are accepted and ignored, except `alt` and `prettyPrint`.
const SYSTEM_PARAMETERS: &[&str] = &[
    "$alt",
    "alt",
    "$prettyPrint",
    "prettyPrint",
    "$fields",
    "fields",
    "$.xgafv",
    "key",
    "access_token",
    "oauth_token",
    "quotaUser",
    "callback",
    "upload_protocol",
    "uploadType",
];

/// How to render a response: JSON is indented unless `prettyPrint=false`, as Google does.
#[derive(Debug, Clone, Copy)]
struct ResponseFormat {
    pretty: bool,
    enums: EnumEncoding,
}

impl Default for ResponseFormat {
    fn default() -> Self {
        Self {
            pretty: true,
            enums: EnumEncoding::Name,
        }
    }
}

/// Decoded query string of one request.
#[derive(Debug, Default)]
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        Self { pairs }
    }

    /// Returns every value of `name`, in order.
    fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        let name = name.to_string();
        self.pairs
            .iter()
            .filter(move |(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    fn last(&self, name: &str) -> Option<&str> {
        self.all(name).last()
    }

    /// Reads `alt` and `prettyPrint` leniently, so that even an error response for a bad
    /// query string uses the requested format.
    fn response_format(&self) -> ResponseFormat {
        let alt = self.last("$alt").or_else(|| self.last("alt")).unwrap_or("json");
        let enums = if alt.split(';').any(|option| option.trim() == "enum-encoding=int") {
            EnumEncoding::Number
        } else {
            EnumEncoding::Name
        };
        let pretty = self
            .last("$prettyPrint")
            .or_else(|| self.last("prettyPrint"))
            .is_none_or(|value| value != "false");
        ResponseFormat { pretty, enums }
    }

    /// Rejects parameters that the method does not take and `alt` formats other than JSON.
    fn check(&self, operation: &Operation) -> Result<(), ApiError> {
        for (name, _) in &self.pairs {
            if !operation.query_parameters().contains(&name.as_str()) && !SYSTEM_PARAMETERS.contains(&name.as_str()) {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. \
                     Field '{name}' could not be found in request message."
                )));
            }
        }
        let alt = self.last("$alt").or_else(|| self.last("alt")).unwrap_or("json");
        if alt.split(';').next().map(str::trim) != Some("json") {
            return Err(ApiError::unimplemented(format!(
                "alt={alt:?} is not supported by this emulator. Use alt=json or omit alt."
            )));
        }
        Ok(())
    }

    fn page_request(&self, kind: ResourceKind) -> Result<PageRequest, ApiError> {
        let page_size = match self.last("pageSize") {
            None | Some("") => 0,
            Some(text) => text
                .parse()
                .map_err(|_| ApiError::invalid_argument(format!("invalid pageSize {text:?}: expected an integer")))?,
        };
        let filter_text = self.last("filter").unwrap_or_default().to_string();
        let filter = Filter::parse(&filter_text, kind)
            .map_err(|message| ApiError::invalid_argument(format!("invalid filter {filter_text:?}: {message}")))?;
        Ok(PageRequest {
            page_size,
            page_token: self.last("pageToken").unwrap_or_default().to_string(),
            filter_text,
            filter,
        })
    }
}

/// Handles every request: routes it, runs it against the store and logs the outcome.
pub async fn handle(State(store): State<SharedStore>, method: Method, uri: Uri, body: Bytes) -> Response {
    let query = Query::parse(uri.query());
    let format = query.response_format();
    if let Some(target) = uri.path().strip_prefix(DENY_HOOK) {
        return deny_hook(&store, &method, target);
    }
    let result = route(&method, uri.path()).and_then(|operation| {
        query.check(&operation)?;
        // A poisoned lock means that another request panicked. The store is still consistent,
        // because every operation validates its input before it mutates anything.
        let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((project, secret)) = secret_of(uri.path())
            && store.is_denied(&project, &secret)
        {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!("Permission denied on resource projects/{project}/secrets/{secret} (or it may not exist)."),
            ));
        }
        execute(&mut store, operation, &query, &body, format.enums)
    });

    match result {
        Ok(body) => {
            tracing::info!(%method, path = uri.path(), status = 200, "request handled");
            json_response(StatusCode::OK, &body, format.pretty)
        }
        Err(error) => {
            if error.code == Code::Internal {
                tracing::error!(%method, path = uri.path(), error = %error, "request failed");
            } else {
                tracing::info!(%method, path = uri.path(), status = error.code.name(), message = %error.message, "request rejected");
            }
            json_response(error.code.http_status(), &error.to_json(), format.pretty)
        }
    }
}

/// Path prefix of the test hook that denies or allows all requests on one secret:
/// `POST /emulator/deny/projects/P/secrets/S` denies, `DELETE` on the same path allows again.
/// Real Secret Manager has no such endpoint. It replaces an IAM policy change in tests.
const DENY_HOOK: &str = "/emulator/deny/";

fn deny_hook(store: &SharedStore, method: &Method, target: &str) -> Response {
    let Some((project, secret)) = secret_of(&format!("/v1/{target}")) else {
        let error = ApiError::not_found(format!("{DENY_HOOK}{target} does not name a secret"));
        return json_response(error.code.http_status(), &error.to_json(), false);
    };
    let denied = match *method {
        Method::POST => true,
        Method::DELETE => false,
        _ => {
            let error = ApiError::new(Code::InvalidArgument, "use POST to deny and DELETE to allow");
            return json_response(error.code.http_status(), &error.to_json(), false);
        }
    };
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .set_denied(&project, &secret, denied);
    tracing::info!(project, secret, denied, "access changed through the test hook");
    json_response(StatusCode::OK, &serde_json::json!({}), false)
}

/// Returns the (project, secret) that a `/v1/projects/P/secrets/S...` path names, if any.
fn secret_of(path: &str) -> Option<(String, String)> {
    let mut segments = path.strip_prefix("/v1/projects/")?.split('/');
    let project = segments.next()?;
    if segments.next()? != "secrets" {
        return None;
    }
    let secret = segments.next()?.split(':').next()?;
    Some((project.to_owned(), secret.to_owned()))
}

fn json_response(status: StatusCode, body: &Value, pretty: bool) -> Response {
    let text = if pretty {
        serde_json::to_string_pretty(body)
    } else {
        serde_json::to_string(body)
    };
    let mut response = (status, text.unwrap_or_default() + "\n").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// Maps a method and path to an operation. Unknown paths and methods are `NOT_FOUND`.
fn route(method: &Method, path: &str) -> Result<Operation, ApiError> {
    let not_found = || ApiError::not_found(format!("no Secret Manager v1 method matches {method} {path}"));
    let rest = path.strip_prefix("/v1/").ok_or_else(not_found)?;
    let mut segments: Vec<String> = rest
        .split('/')
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    if segments.iter().any(String::is_empty) {
        return Err(not_found());
    }

    // A custom method such as `:access` is a suffix of the last segment.
    let verb = match segments
        .last_mut()
        .and_then(|last| last.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())))
    {
        Some((resource, verb)) => {
            if let Some(last) = segments.last_mut() {
                *last = resource;
            }
            Some(verb)
        }
        None => None,
    };
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();

    if parts.len() >= 3 && parts[0] == "projects" && parts[2] == "locations" {
        return Err(ApiError::unimplemented(
            "regional secrets and locations (projects/*/locations/*) are not supported by this emulator",
        ));
    }
    if let Some(verb @ ("getIamPolicy" | "setIamPolicy" | "testIamPermissions")) = verb.as_deref() {
        return Err(ApiError::unimplemented(format!(
            "{verb} is not supported by this emulator: it has no IAM"
        )));
    }

    let project = || parts[1].to_string();
    let secret = || parts[3].to_string();
    let operation = match (parts.as_slice(), verb.as_deref(), method) {
        (["projects", _, "secrets"], None, &Method::GET) => Operation::ListSecrets { project: project() },
        (["projects", _, "secrets"], None, &Method::POST) => Operation::CreateSecret { project: project() },
        (["projects", _, "secrets", _], None, &Method::GET) => Operation::GetSecret {
            project: project(),
            secret: secret(),
        },
        (["projects", _, "secrets", _], None, &Method::PATCH) => Operation::UpdateSecret {
            project: project(),
            secret: secret(),
        },
        (["projects", _, "secrets", _], None, &Method::DELETE) => Operation::DeleteSecret {
            project: project(),
            secret: secret(),
        },
        (["projects", _, "secrets", _], Some("addVersion"), &Method::POST) => Operation::AddVersion {
            project: project(),
            secret: secret(),
        },
        (["projects", _, "secrets", _, "versions"], None, &Method::GET) => Operation::ListVersions {
            project: project(),
            secret: secret(),
        },
        (["projects", _, "secrets", _, "versions", version], verb, method) => {
            let version = version.to_string();
            let (project, secret) = (project(), secret());
            match (verb, method) {
                (None, &Method::GET) => Operation::GetVersion {
                    project,
                    secret,
                    version,
                },
                (Some("access"), &Method::GET) => Operation::AccessVersion {
                    project,
                    secret,
                    version,
                },
                (Some(verb), &Method::POST) => {
                    let action = match verb {
                        "enable" => VersionAction::Enable,
                        "disable" => VersionAction::Disable,
                        "destroy" => VersionAction::Destroy,
                        _ => return Err(not_found()),
                    };
                    Operation::ChangeVersionState {
                        project,
                        secret,
                        version,
                        action,
                    }
                }
                _ => return Err(not_found()),
            }
        }
        _ => return Err(not_found()),
    };
    Ok(operation)
}

fn execute(
    store: &mut Store,
    operation: Operation,
    query: &Query,
    body: &[u8],
    enums: EnumEncoding,
) -> Result<Value, ApiError> {
    match operation {
        Operation::ListSecrets { project } => {
            let request = query.page_request(ResourceKind::Secret)?;
            let page = store.list_secrets(&project, &request)?;
            Ok(json::list_json(&page, "secrets", json::secret_json))
        }
        Operation::CreateSecret { project } => {
            let secret_id = query.last("secretId").unwrap_or_default();
            validate::secret_id(secret_id)?;
            let spec = secret_spec(json::parse_body(body)?)?;
            Ok(json::secret_json(&store.create_secret(&project, secret_id, spec)?))
        }
        Operation::GetSecret { project, secret } => Ok(json::secret_json(&store.get_secret(&project, &secret)?)),
        Operation::UpdateSecret { project, secret } => {
            let mask = parse_update_mask(query.all("updateMask"))?;
            let update = secret_update(mask, json::parse_body(body)?)?;
            Ok(json::secret_json(&store.update_secret(&project, &secret, update)?))
        }
        Operation::DeleteSecret { project, secret } => {
            store.delete_secret(&project, &secret, query.last("etag"))?;
            Ok(Value::Object(serde_json::Map::new()))
        }
        Operation::AddVersion { project, secret } => {
            let request: json::AddVersionBody = json::parse_body(body)?;
            let payload = request
                .payload
                .ok_or_else(|| ApiError::invalid_argument("payload is required"))?;
            let data = json::decode_payload_data(payload.data.as_deref().unwrap_or_default())?;
            let checksum = payload.data_crc32c.map(|checksum| checksum.0);
            let version = store.add_version(&project, &secret, data, checksum)?;
            Ok(json::version_json(&version, enums))
        }
        Operation::ListVersions { project, secret } => {
            let request = query.page_request(ResourceKind::SecretVersion)?;
            let page = store.list_versions(&project, &secret, &request)?;
            Ok(json::list_json(&page, "versions", |version| {
                json::version_json(version, enums)
            }))
        }
        Operation::GetVersion {
            project,
            secret,
            version,
        } => Ok(json::version_json(
            &store.get_version(&project, &secret, &version)?,
            enums,
        )),
        Operation::AccessVersion {
            project,
            secret,
            version,
        } => Ok(json::access_json(&store.access_version(&project, &secret, &version)?)),
        Operation::ChangeVersionState {
            project,
            secret,
            version,
            action,
        } => {
            let request: json::EtagBody = json::parse_body(body)?;
            let changed = store.change_version_state(&project, &secret, &version, action, request.etag.as_deref())?;
            Ok(json::version_json(&changed, enums))
        }
    }
}

fn unsupported_field_error(field: &str) -> ApiError {
    ApiError::unimplemented(format!(
        "field {field} is not supported by this emulator. Leave it unset."
    ))
}

fn secret_spec(body: json::SecretBody) -> Result<SecretSpec, ApiError> {
    if let Some(field) = body.unsupported_field() {
        return Err(unsupported_field_error(field));
    }
    let version_aliases = body.version_aliases();
    let labels = body.labels.unwrap_or_default();
    let annotations = body.annotations.unwrap_or_default();
    validate::labels(&labels)?;
    validate::annotations(&annotations)?;
    validate::version_aliases(&version_aliases)?;
    Ok(SecretSpec {
        replication: json::replication(body.replication)?,
        labels,
        annotations,
        version_aliases,
    })
}

/// Builds a patch from the body, validating only the fields that the mask selects.
fn secret_update(mask: UpdateMask, body: json::SecretBody) -> Result<SecretUpdate, ApiError> {
    let version_aliases = if mask.version_aliases {
        body.version_aliases()
    } else {
        Default::default()
    };
    let labels = if mask.labels {
        body.labels.unwrap_or_default()
    } else {
        Default::default()
    };
    let annotations = if mask.annotations {
        body.annotations.unwrap_or_default()
    } else {
        Default::default()
    };
    validate::labels(&labels)?;
    validate::annotations(&annotations)?;
    validate::version_aliases(&version_aliases)?;
    Ok(SecretUpdate {
        mask,
        etag: body.etag,
        labels,
        annotations,
        version_aliases,
    })
}

/// Parses `updateMask`, a comma-separated list of field paths in camelCase or snake_case.
/// Repeated `updateMask` parameters are joined.
pub fn parse_update_mask<'a>(values: impl Iterator<Item = &'a str>) -> Result<UpdateMask, ApiError> {
    let mut mask = UpdateMask::default();
    let mut any = false;
    for path in values
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|path| !path.is_empty())
    {
        any = true;
        let snake: String = path
            .chars()
            .flat_map(|c| {
                if c.is_ascii_uppercase() {
                    vec!['_', c.to_ascii_lowercase()]
                } else {
                    vec![c]
                }
            })
            .collect();
        let top_level = snake.split('.').next().unwrap_or_default();
        match (snake.as_str(), top_level) {
            ("labels", _) => mask.labels = true,
            ("annotations", _) => mask.annotations = true,
            ("version_aliases", _) => mask.version_aliases = true,
            (
                _,
                "topics" | "expire_time" | "ttl" | "rotation" | "version_destroy_ttl" | "customer_managed_encryption",
            ) => return Err(unsupported_field_error(path)),
            (_, "name" | "create_time" | "replication" | "etag" | "tags" | "secret_type" | "policy_member") => {
                return Err(ApiError::invalid_argument(format!(
                    "updateMask path {path:?} names a field that is output only or immutable"
                )));
            }
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "updateMask path {path:?} is not a field of Secret that can be updated. Use labels, annotations \
                     or versionAliases"
                )));
            }
        }
    }
    if !any {
        return Err(ApiError::invalid_argument(
            "updateMask is required: list the fields to change, for example updateMask=labels,versionAliases",
        ));
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(value: &str) -> Result<UpdateMask, ApiError> {
        parse_update_mask(std::iter::once(value))
    }

    #[test]
    fn update_mask_accepts_both_name_styles() {
        let expected = UpdateMask {
            labels: true,
            annotations: false,
            version_aliases: true,
        };
        assert_eq!(mask("labels,versionAliases").expect("camelCase"), expected);
        assert_eq!(mask("labels, version_aliases").expect("snake_case"), expected);
        let repeated = parse_update_mask(["labels", "versionAliases"].into_iter()).expect("repeated");
        assert_eq!(repeated, expected);
    }

    #[test]
    fn update_mask_rejects_unknown_and_immutable_fields() {
        for path in ["lables", "replication", "createTime", "etag", "labels.env", "*"] {
            let error = mask(path).expect_err(path);
            assert_eq!(error.code, Code::InvalidArgument, "{path}");
        }
    }

    #[test]
    fn update_mask_flags_unimplemented_fields() {
        for path in ["topics", "rotation", "rotation.nextRotationTime", "ttl", "expireTime"] {
            let error = mask(path).expect_err(path);
            assert_eq!(error.code, Code::Unimplemented, "{path}");
        }
    }

    #[test]
    fn update_mask_is_required() {
        assert_eq!(mask("").expect_err("empty").code, Code::InvalidArgument);
        assert_eq!(
            parse_update_mask(std::iter::empty()).expect_err("missing").code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn routes_map_paths_to_operations() {
        let version = |verb: &str| format!("/v1/projects/p/secrets/s/versions/latest{verb}");
        assert_eq!(
            route(&Method::GET, "/v1/projects/123/secrets").expect("list"),
            Operation::ListSecrets { project: "123".into() }
        );
        assert_eq!(
            route(&Method::POST, "/v1/projects/p/secrets/s:addVersion").expect("add"),
            Operation::AddVersion {
                project: "p".into(),
                secret: "s".into()
            }
        );
        assert_eq!(
            route(&Method::GET, &version(":access")).expect("access"),
            Operation::AccessVersion {
                project: "p".into(),
                secret: "s".into(),
                version: "latest".into()
            }
        );
        assert_eq!(
            route(&Method::POST, &version("%3Adestroy")).expect("encoded colon"),
            Operation::ChangeVersionState {
                project: "p".into(),
                secret: "s".into(),
                version: "latest".into(),
                action: VersionAction::Destroy
            }
        );
    }

    #[test]
    fn routes_reject_unknown_paths_and_methods() {
        for (method, path) in [
            (Method::PUT, "/v1/projects/p/secrets/s"),
            (Method::GET, "/v1/projects/p/secrets/s:addVersion"),
            (Method::POST, "/v1/projects/p/secrets/s/versions/1:explode"),
            (Method::GET, "/v1/projects//secrets"),
            (Method::GET, "/v2/projects/p/secrets"),
        ] {
            assert_eq!(
                route(&method, path).expect_err(path).code,
                Code::NotFound,
                "{method} {path}"
            );
        }
        let regional = route(&Method::GET, "/v1/projects/p/locations/us-east1/secrets").expect_err("regional");
        assert_eq!(regional.code, Code::Unimplemented);
        let iam = route(&Method::GET, "/v1/projects/p/secrets/s:getIamPolicy").expect_err("iam");
        assert_eq!(iam.code, Code::Unimplemented);
    }

    #[test]
    fn query_rejects_unknown_parameters() {
        let operation = Operation::GetSecret {
            project: "p".into(),
            secret: "s".into(),
        };
        assert!(
            Query::parse(Some("$alt=json;enum-encoding=int&prettyPrint=false"))
                .check(&operation)
                .is_ok()
        );
        assert!(Query::parse(Some("pageSize=3")).check(&operation).is_err());
        assert!(Query::parse(Some("alt=proto")).check(&operation).is_err());
    }

    #[test]
    fn query_reads_response_format() {
        let format = Query::parse(Some("%24alt=json%3Benum-encoding%3Dint&prettyPrint=false")).response_format();
        assert_eq!(format.enums, EnumEncoding::Number);
        assert!(!format.pretty);
        let default = Query::parse(None).response_format();
        assert_eq!(default.enums, EnumEncoding::Name);
        assert!(default.pretty);
    }
}
