//! Routes requests to the store and writes Key Vault's JSON. Every request goes through the
//! bearer-token check first, so that the SDK's challenge flow runs as against Key Vault.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::store::{DeletedSecret, RECOVERABLE_DAYS, SetRequest, Store, UpdateRequest, Version};

pub type SharedStore = Arc<Mutex<Store>>;

/// The challenge a request without a bearer token gets. The SDK's challenge policy reads the
/// `resource` (or `scope`) parameter and requests a token for `{resource}/.default`.
pub const CHALLENGE: &str = "Bearer authorization=\"https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000\", resource=\"https://vault.azure.net\"";
/// Recovery level of every secret: soft delete is on and purging is allowed.
const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";
/// Page size when `maxresults` is absent (Key Vault's reference gives 25), and the largest
/// `maxresults` accepted.
const MAX_RESULTS: usize = 25;
/// Maximum request body size. A larger body gets 400 `BadParameter`.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Handles every request.
pub async fn handle(State(store): State<SharedStore>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !has_bearer_token(&parts.headers) {
        return challenge();
    }
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            tracing::debug!(method = %parts.method, path = parts.uri.path(), %error, "failed to read the request body");
            let message =
                format!("Failed to read the request body, which must be at most {MAX_BODY_BYTES} bytes: {error}");
            return ApiError::bad_parameter(message).into_response();
        }
    };
    let query: HashMap<String, String> = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let context = Context {
        base: base_url(&parts.headers),
        query,
        now: unix_now(),
    };
    let segments: Vec<&str> = parts.uri.path().trim_start_matches('/').split('/').collect();

    let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
    let result = route(&mut store, &context, &parts.method, &segments, &body);
    match result {
        // Only a purge returns no body, with 204 as in Key Vault.
        Ok(Value::Null) => StatusCode::NO_CONTENT.into_response(),
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(error) => {
            tracing::debug!(method = %parts.method, path = parts.uri.path(), status = error.status, code = %error.code, "request failed");
            error.into_response()
        }
    }
}

fn has_bearer_token(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
}

fn challenge() -> Response {
    let error = ApiError::new(401, "Unauthorized", "Request is missing a Bearer token.");
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, Body::from(value.to_string())).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// `https://HOST` from the request's Host header, so that ids carry the address the client
/// used.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    format!("https://{host}")
}

/// Request data that a handler needs besides the store.
struct Context {
    base: String,
    query: HashMap<String, String>,
    now: i64,
}

fn route(
    store: &mut Store,
    context: &Context,
    method: &Method,
    segments: &[&str],
    body: &[u8],
) -> Result<Value, ApiError> {
    match (method.as_str(), segments) {
        ("GET", ["secrets"] | ["secrets", ""]) => list_secrets(store, context),
        ("PUT", ["secrets", name]) => set_secret(store, context, name, body),
        ("DELETE", ["secrets", name]) => delete_secret(store, context, name),
        ("GET", ["secrets", name, "versions"]) => list_versions(store, context, name),
        ("POST", ["secrets", "restore"] | ["secrets", _, "backup"]) => Err(ApiError::new(
            501,
            "NotImplemented",
            "Backup and restore are not implemented by this emulator.",
        )),
        // The SDK sends `/secrets/NAME/` (an empty version) for the latest version.
        ("GET", ["secrets", name] | ["secrets", name, ""]) => get_secret(store, context, name, None),
        ("GET", ["secrets", name, version]) => get_secret(store, context, name, Some(version)),
        ("PATCH", ["secrets", name] | ["secrets", name, ""]) => update_secret(store, context, name, None, body),
        ("PATCH", ["secrets", name, version]) => update_secret(store, context, name, Some(version), body),
        ("GET", ["deletedsecrets"] | ["deletedsecrets", ""]) => list_deleted(store, context),
        ("GET", ["deletedsecrets", name]) => {
            let deleted = store.deleted(name)?;
            Ok(deleted_bundle(context, deleted))
        }
        ("DELETE", ["deletedsecrets", name]) => {
            store.purge(name)?;
            Ok(Value::Null)
        }
        ("POST", ["deletedsecrets", name, "recover"]) => {
            let secret = store.recover(name)?;
            Ok(bundle(context, &secret.name, secret.latest(), false))
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            format!("{method} /{} is not a Key Vault secrets operation.", segments.join("/")),
        )),
    }
}

/// Secret attributes in requests. Times are Unix seconds.
#[derive(Debug, Default, Deserialize)]
struct AttributesBody {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct SetBody {
    value: Option<String>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    attributes: Option<AttributesBody>,
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    attributes: Option<AttributesBody>,
}

fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_parameter(format!("The request body is not valid JSON: {error}")))
}

fn set_secret(store: &mut Store, context: &Context, name: &str, body: &[u8]) -> Result<Value, ApiError> {
    let body: SetBody = parse_body(body)?;
    let Some(value) = body.value else {
        return Err(ApiError::bad_parameter("Property 'value' is required."));
    };
    let attributes = body.attributes.unwrap_or_default();
    let request = SetRequest {
        value,
        content_type: body.content_type,
        tags: body.tags,
        enabled: attributes.enabled,
        not_before: attributes.nbf,
        expires: attributes.exp,
    };
    let (secret, version) = store.set(name, request, context.now)?;
    Ok(bundle(context, &secret.name, version, true))
}

fn get_secret(store: &Store, context: &Context, name: &str, version: Option<&str>) -> Result<Value, ApiError> {
    let (secret, found) = store.readable_version(name, version)?;
    Ok(bundle(context, &secret.name, found, true))
}

fn update_secret(
    store: &mut Store,
    context: &Context,
    name: &str,
    version: Option<&str>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let body: UpdateBody = parse_body(body)?;
    let attributes = body.attributes.unwrap_or_default();
    let request = UpdateRequest {
        content_type: body.content_type,
        tags: body.tags,
        enabled: attributes.enabled,
        not_before: attributes.nbf,
        expires: attributes.exp,
    };
    let (secret, updated) = store.update(name, version, request, context.now)?;
    Ok(bundle(context, &secret.name, updated, false))
}

fn delete_secret(store: &mut Store, context: &Context, name: &str) -> Result<Value, ApiError> {
    let deleted = store.delete(name, context.now)?;
    Ok(deleted_bundle(context, deleted))
}

fn list_versions(store: &Store, context: &Context, name: &str) -> Result<Value, ApiError> {
    let secret = store.secret(name)?;
    let items: Vec<(&str, Value)> = secret
        .versions
        .iter()
        .map(|version| (version.id.as_str(), item(context, &secret.name, version, true)))
        .collect();
    page(context, &format!("secrets/{}/versions", secret.name), items)
}

fn list_secrets(store: &Store, context: &Context) -> Result<Value, ApiError> {
    let items: Vec<(&str, Value)> = store
        .secrets()
        .map(|(key, secret)| (key, item(context, &secret.name, secret.latest(), false)))
        .collect();
    page(context, "secrets", items)
}

fn list_deleted(store: &Store, context: &Context) -> Result<Value, ApiError> {
    let items: Vec<(&str, Value)> = store
        .deleted_secrets()
        .map(|(key, deleted)| {
            let mut value = item(context, &deleted.secret.name, deleted.secret.latest(), false);
            add_deletion(context, &mut value, deleted);
            (key, value)
        })
        .collect();
    page(context, "deletedsecrets", items)
}

/// Returns the page of `items` (sorted by their key) that `maxresults` and `$skiptoken`
/// select, with a `nextLink` to the rest. The skip token is the key of the last item of the
/// previous page, so a page stays correct when items are added between requests.
fn page(context: &Context, path: &str, items: Vec<(&str, Value)>) -> Result<Value, ApiError> {
    let max_results = match context.query.get("maxresults") {
        None => MAX_RESULTS,
        Some(text) => match text.parse::<usize>() {
            Ok(count) if (1..=MAX_RESULTS).contains(&count) => count,
            _ => {
                return Err(ApiError::bad_parameter(format!(
                    "Invalid maxresults {text:?}: it must be an integer from 1 to {MAX_RESULTS}."
                )));
            }
        },
    };
    let start = match context.query.get("$skiptoken") {
        None => 0,
        Some(token) => items.iter().position(|(key, _)| *key == token.as_str()).map_or_else(
            // The item was deleted since: continue after the keys that sort before it.
            || items.iter().filter(|(key, _)| *key < token.as_str()).count(),
            |index| index + 1,
        ),
    };
    let end = (start + max_results).min(items.len());
    let next_link = if end < items.len() {
        let api_version = context.query.get("api-version").map(String::as_str).unwrap_or_default();
        let token = items[end - 1].0;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("api-version", api_version)
            .append_pair("$skiptoken", token)
            .append_pair("maxresults", &max_results.to_string())
            .finish();
        Value::String(format!("{}/{path}?{query}", context.base))
    } else {
        Value::Null
    };
    let value: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(max_results)
        .map(|(_, value)| value)
        .collect();
    Ok(json!({"value": value, "nextLink": next_link}))
}

fn attributes(version: &Version) -> Value {
    let mut attributes = json!({
        "enabled": version.enabled,
        "created": version.created,
        "updated": version.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    });
    if let Some(not_before) = version.not_before {
        attributes["nbf"] = json!(not_before);
    }
    if let Some(expires) = version.expires {
        attributes["exp"] = json!(expires);
    }
    attributes
}

/// Builds a secret bundle: the version's id, attributes, content type and tags, and its value
/// when `with_value` is set.
fn bundle(context: &Context, name: &str, version: &Version, with_value: bool) -> Value {
    let mut value = json!({
        "id": format!("{}/secrets/{name}/{}", context.base, version.id),
        "attributes": attributes(version),
    });
    if with_value {
        value["value"] = json!(version.value);
    }
    add_metadata(&mut value, version);
    value
}

/// Builds a list item for `version`, without its value. The id names the version when
/// `with_version` is set, else it is the secret's base id.
fn item(context: &Context, name: &str, version: &Version, with_version: bool) -> Value {
    let id = if with_version {
        format!("{}/secrets/{name}/{}", context.base, version.id)
    } else {
        format!("{}/secrets/{name}", context.base)
    };
    let mut value = json!({"id": id, "attributes": attributes(version)});
    add_metadata(&mut value, version);
    value
}

fn add_metadata(value: &mut Value, version: &Version) {
    if let Some(content_type) = &version.content_type {
        value["contentType"] = json!(content_type);
    }
    if let Some(tags) = &version.tags {
        value["tags"] = json!(tags);
    }
}

fn add_deletion(context: &Context, value: &mut Value, deleted: &DeletedSecret) {
    value["recoveryId"] = json!(format!("{}/deletedsecrets/{}", context.base, deleted.secret.name));
    value["deletedDate"] = json!(deleted.deleted_date);
    value["scheduledPurgeDate"] = json!(deleted.scheduled_purge_date);
}

/// Builds a deleted secret bundle: the latest version's bundle without its value, plus the
/// recovery id and deletion dates.
fn deleted_bundle(context: &Context, deleted: &DeletedSecret) -> Value {
    let mut value = bundle(context, &deleted.secret.name, deleted.secret.latest(), false);
    add_deletion(context, &mut value, deleted);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(query: &[(&str, &str)]) -> Context {
        Context {
            base: "https://localhost:8443".to_owned(),
            query: query
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            now: 1_000,
        }
    }

    fn items(keys: &[&'static str]) -> Vec<(&'static str, Value)> {
        keys.iter().map(|key| (*key, json!(key))).collect()
    }

    #[test]
    fn page_follows_skip_token() {
        let keys = ["a", "b", "c", "d", "e"];
        let first = page(
            &context(&[("maxresults", "2"), ("api-version", "2025-07-01")]),
            "secrets",
            items(&keys),
        )
        .expect("first page");
        assert_eq!(first["value"], json!(["a", "b"]));
        assert_eq!(
            first["nextLink"],
            "https://localhost:8443/secrets?api-version=2025-07-01&%24skiptoken=b&maxresults=2"
        );

        let second = page(
            &context(&[("maxresults", "2"), ("$skiptoken", "b")]),
            "secrets",
            items(&keys),
        )
        .expect("second page");
        assert_eq!(second["value"], json!(["c", "d"]));
        let last = page(
            &context(&[("maxresults", "2"), ("$skiptoken", "d")]),
            "secrets",
            items(&keys),
        )
        .expect("last page");
        assert_eq!(last["value"], json!(["e"]));
        assert!(last["nextLink"].is_null());
    }

    #[test]
    fn page_skip_token_of_removed_item() {
        let page = page(&context(&[("$skiptoken", "bb")]), "secrets", items(&["a", "b", "c"])).expect("page");
        assert_eq!(page["value"], json!(["c"]));
    }

    #[test]
    fn page_rejects_invalid_max_results() {
        for text in ["0", "26", "-1", "many"] {
            let error = page(&context(&[("maxresults", text)]), "secrets", items(&["a"])).expect_err(text);
            assert_eq!(error.status, 400, "{text}");
        }
    }

    #[test]
    fn bearer_token_required() {
        let mut headers = HeaderMap::new();
        assert!(!has_bearer_token(&headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert!(!has_bearer_token(&headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(!has_bearer_token(&headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer any-token"));
        assert!(has_bearer_token(&headers));
    }

    #[test]
    fn bundle_omits_value_when_asked() {
        let version = Version {
            id: "0123456789abcdef0123456789abcdef".to_owned(),
            value: "hunter2".to_owned(),
            content_type: None,
            tags: None,
            enabled: true,
            not_before: None,
            expires: None,
            created: 10,
            updated: 20,
        };
        let with_value = bundle(&context(&[]), "db", &version, true);
        assert_eq!(with_value["value"], "hunter2");
        assert_eq!(
            with_value["id"],
            "https://localhost:8443/secrets/db/0123456789abcdef0123456789abcdef"
        );
        assert_eq!(with_value["attributes"]["recoveryLevel"], RECOVERY_LEVEL);
        assert!(with_value.get("tags").is_none());
        let without = bundle(&context(&[]), "db", &version, false);
        assert!(without.get("value").is_none(), "{without}");
    }
}
