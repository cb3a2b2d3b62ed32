//! Sends raw REST requests to check the wire format that Google's client libraries hide:
//! enum encodings, error bodies, query parameter handling and JSON field spellings.

use gcp_secret_manager_emulator::Emulator;
use serde_json::{Value, json};

struct Harness {
    emulator: Emulator,
    http: reqwest::Client,
}

async fn start() -> Harness {
    let address = "127.0.0.1:0".parse().expect("valid address");
    let emulator = Emulator::start(address).await.expect("emulator starts");
    Harness {
        emulator,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}/v1/{path_and_query}", self.emulator.endpoint())
    }

    async fn send(&self, method: reqwest::Method, path_and_query: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path_and_query));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or_else(|error| panic!("body {text:?} is not JSON: {error}"));
        (status, body)
    }

    async fn create_secret(&self, secret_id: &str) {
        let body = json!({"replication": {"automatic": {}}});
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                &format!("projects/p/secrets?secretId={secret_id}"),
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn add_version(&self, secret_id: &str, data_base64: &str) -> Value {
        let body = json!({"payload": {"data": data_base64}});
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                &format!("projects/p/secrets/{secret_id}:addVersion"),
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

#[tokio::test]
async fn enum_encoding_follows_alt() {
    let harness = start().await;
    harness.create_secret("enums").await;
    harness.add_version("enums", "dmFsdWU=").await;

    let (_, by_name) = harness
        .send(reqwest::Method::GET, "projects/p/secrets/enums/versions/1", None)
        .await;
    let (_, by_number) = harness
        .send(
            reqwest::Method::GET,
            "projects/p/secrets/enums/versions/1?%24alt=json%3Benum-encoding%3Dint",
            None,
        )
        .await;

    assert_eq!(by_name["state"], json!("ENABLED"));
    assert_eq!(by_number["state"], json!(1));
}

#[tokio::test]
async fn access_returns_base64_data_and_int64_checksum() {
    let harness = start().await;
    harness.create_secret("wire").await;
    // `dmFsdWU=` is "value" in base64.
    harness.add_version("wire", "dmFsdWU=").await;

    let (status, body) = harness
        .send(
            reqwest::Method::GET,
            "projects/p/secrets/wire/versions/latest:access",
            None,
        )
        .await;

    assert_eq!(status, 200);
    assert_eq!(body["name"], json!("projects/p/secrets/wire/versions/1"));
    assert_eq!(body["payload"]["data"], json!("dmFsdWU="));
    assert_eq!(
        body["payload"]["dataCrc32c"],
        json!(crc32c::crc32c(b"value").to_string())
    );
}

#[tokio::test]
async fn errors_use_google_error_body() {
    let harness = start().await;

    let (status, body) = harness
        .send(reqwest::Method::GET, "projects/p/secrets/absent", None)
        .await;

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], json!(404));
    assert_eq!(body["error"]["status"], json!("NOT_FOUND"));
    assert_eq!(
        body["error"]["message"],
        json!("Secret [projects/p/secrets/absent] not found or has no versions.")
    );
}

#[tokio::test]
async fn access_of_disabled_version_names_its_state() {
    let harness = start().await;
    harness.create_secret("off").await;
    harness.add_version("off", "dmFsdWU=").await;
    let (status, _) = harness
        .send(reqwest::Method::POST, "projects/p/secrets/off/versions/1:disable", None)
        .await;
    assert_eq!(status, 200);

    let (status, body) = harness
        .send(reqwest::Method::GET, "projects/p/secrets/off/versions/1:access", None)
        .await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], json!("FAILED_PRECONDITION"));
    assert_eq!(
        body["error"]["message"],
        json!("Secret Version [projects/p/secrets/off/versions/1] is in DISABLED state.")
    );
}

#[tokio::test]
async fn snake_case_request_fields_are_accepted() {
    let harness = start().await;
    harness.create_secret("snake").await;
    let checksum = crc32c::crc32c(b"value");

    let body = json!({"payload": {"data": "dmFsdWU=", "data_crc32c": checksum}});
    let (status, version) = harness
        .send(reqwest::Method::POST, "projects/p/secrets/snake:addVersion", Some(body))
        .await;

    assert_eq!(status, 200, "{version}");
    assert_eq!(version["clientSpecifiedPayloadChecksum"], json!(true));
}

#[tokio::test]
async fn unknown_query_parameter_is_invalid() {
    let harness = start().await;
    harness.create_secret("strict").await;

    let (status, body) = harness
        .send(reqwest::Method::GET, "projects/p/secrets/strict?view=FULL", None)
        .await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], json!("INVALID_ARGUMENT"));
}

#[tokio::test]
async fn unknown_body_field_is_invalid() {
    let harness = start().await;

    let body = json!({"replication": {"automatic": {}}, "lables": {"a": "b"}});
    let (status, body) = harness
        .send(reqwest::Method::POST, "projects/p/secrets?secretId=typo", Some(body))
        .await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], json!("INVALID_ARGUMENT"));
}

#[tokio::test]
async fn patch_rejects_missing_update_mask() {
    let harness = start().await;
    harness.create_secret("unmasked").await;

    let body = json!({"labels": {"a": "b"}});
    let (status, body) = harness
        .send(reqwest::Method::PATCH, "projects/p/secrets/unmasked", Some(body))
        .await;

    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], json!("INVALID_ARGUMENT"));
}

#[tokio::test]
async fn version_aliases_are_int64_strings() {
    let harness = start().await;
    harness.create_secret("aliases").await;
    harness.add_version("aliases", "dmFsdWU=").await;

    let body = json!({"versionAliases": {"stable": 1}});
    let (status, secret) = harness
        .send(
            reqwest::Method::PATCH,
            "projects/p/secrets/aliases?updateMask=versionAliases",
            Some(body),
        )
        .await;

    assert_eq!(status, 200, "{secret}");
    assert_eq!(secret["versionAliases"], json!({"stable": "1"}));
}

#[tokio::test]
async fn auth_and_goog_headers_are_ignored() {
    let harness = start().await;
    harness.create_secret("headers").await;

    let response = harness
        .http
        .get(harness.url("projects/p/secrets/headers"))
        .header("authorization", "Bearer not-a-real-token")
        .header("x-goog-api-client", "gl-rust/1.95 gax/1.15")
        .header("x-goog-user-project", "billing-project")
        .send()
        .await
        .expect("request sent");

    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn pretty_print_controls_indentation() {
    let harness = start().await;
    harness.create_secret("pretty").await;

    let pretty = harness
        .http
        .get(harness.url("projects/p/secrets/pretty"))
        .send()
        .await
        .expect("sent");
    let compact = harness
        .http
        .get(harness.url("projects/p/secrets/pretty?prettyPrint=false"))
        .send()
        .await
        .expect("sent");

    assert!(pretty.text().await.expect("body").contains("\n  \"name\""));
    assert!(!compact.text().await.expect("body").trim_end().contains('\n'));
}

#[tokio::test]
async fn regional_paths_are_unimplemented() {
    let harness = start().await;

    let (status, body) = harness
        .send(reqwest::Method::GET, "projects/p/locations/us-east1/secrets", None)
        .await;

    assert_eq!(status, 501);
    assert_eq!(body["error"]["status"], json!("UNIMPLEMENTED"));
}

#[tokio::test]
async fn deny_hook_denies_then_allows() {
    let harness = start().await;
    harness.create_secret("guarded").await;
    let hook = format!(
        "{}/emulator/deny/projects/p/secrets/guarded",
        harness.emulator.endpoint()
    );

    let denied = harness.http.post(&hook).send().await.expect("request sent");
    assert_eq!(denied.status().as_u16(), 200);
    let (status, body) = harness
        .send(reqwest::Method::GET, "projects/p/secrets/guarded", None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    let (status, _) = harness
        .send(
            reqwest::Method::POST,
            "projects/p/secrets/guarded:addVersion",
            Some(json!({"payload": {"data": "eA=="}})),
        )
        .await;
    assert_eq!(status, 403);

    let allowed = harness.http.delete(&hook).send().await.expect("request sent");
    assert_eq!(allowed.status().as_u16(), 200);
    let (status, body) = harness
        .send(reqwest::Method::GET, "projects/p/secrets/guarded", None)
        .await;
    assert_eq!(status, 200, "{body}");
}
