//! Drives an in-process emulator over HTTPS with the Azure SDK's `SecretClient`, the client
//! rotor uses. The server certificate in `tests/fixtures` is issued by the test CA there
//! for `localhost` and 127.0.0.1, and the client trusts only that CA.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, StatusCode, Transport};
use azure_core::time::{Duration as TokenLifetime, OffsetDateTime};
use azure_key_vault_emulator::{CHALLENGE, Emulator, tls_config};
use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientGetSecretOptions, SecretClientListSecretPropertiesVersionsOptions,
    SecretClientUpdateSecretPropertiesOptions, SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::{StreamExt, TryStreamExt};

const CA: &[u8] = include_bytes!("fixtures/ca.crt");
const SERVER_CERTIFICATE: &[u8] = include_bytes!("fixtures/server.crt");
const SERVER_KEY: &[u8] = include_bytes!("fixtures/server.key");

/// A credential that returns a fixed bearer token without calling Microsoft Entra ID.
#[derive(Debug)]
struct FixedToken;

#[async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "emulator-test-token",
            OffsetDateTime::now_utc() + TokenLifetime::hours(1),
        ))
    }
}

fn http_client() -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(CA).expect("parses the test CA");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("builds an HTTP client")
}

async fn start() -> (Emulator, SecretClient) {
    let config = tls_config(SERVER_CERTIFICATE, SERVER_KEY).expect("loads the test certificate");
    let emulator = Emulator::start("127.0.0.1:0".parse().expect("valid address"), config)
        .await
        .expect("starts the emulator");
    let options = SecretClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http_client()))),
            ..ClientOptions::default()
        },
        verify_challenge_resource: Some(false),
        ..SecretClientOptions::default()
    };
    let client =
        SecretClient::new(&emulator.vault_url(), Arc::new(FixedToken), Some(options)).expect("builds a client");
    (emulator, client)
}

async fn set(client: &SecretClient, name: &str, value: &str) -> String {
    let parameters = SetSecretParameters {
        value: Some(value.to_owned()),
        ..SetSecretParameters::default()
    };
    let secret = client
        .set_secret(name, parameters.try_into().expect("serializes"), None)
        .await
        .expect("sets the secret")
        .into_model()
        .expect("parses the secret");
    secret.resource_id().expect("has an id").version.expect("has a version")
}

async fn get(client: &SecretClient, name: &str, version: Option<&str>) -> azure_core::Result<Option<String>> {
    let options = version.map(|version| SecretClientGetSecretOptions {
        secret_version: Some(version.to_owned()),
        ..SecretClientGetSecretOptions::default()
    });
    Ok(client.get_secret(name, options).await?.into_model()?.value)
}

async fn disable(client: &SecretClient, name: &str, version: &str) {
    let parameters = UpdateSecretPropertiesParameters {
        secret_attributes: Some(SecretAttributes {
            enabled: Some(false),
            ..SecretAttributes::default()
        }),
        ..UpdateSecretPropertiesParameters::default()
    };
    let options = SecretClientUpdateSecretPropertiesOptions {
        secret_version: Some(version.to_owned()),
        ..SecretClientUpdateSecretPropertiesOptions::default()
    };
    let updated = client
        .update_secret_properties(name, parameters.try_into().expect("serializes"), Some(options))
        .await
        .expect("updates the version")
        .into_model()
        .expect("parses the secret");
    assert_eq!(
        updated.attributes.and_then(|attributes| attributes.enabled),
        Some(false)
    );
    assert_eq!(updated.value, None, "an update returns no value");
}

#[tokio::test]
async fn set_and_get_versions() {
    let (_emulator, client) = start().await;
    let first = set(&client, "db-password", "one").await;
    let second = set(&client, "db-password", "two").await;

    assert_ne!(first, second);
    assert_eq!(first.len(), 32, "{first}");
    assert_eq!(
        get(&client, "db-password", None).await.expect("gets").as_deref(),
        Some("two")
    );
    assert_eq!(
        get(&client, "db-password", Some(&first))
            .await
            .expect("gets")
            .as_deref(),
        Some("one")
    );
    assert_eq!(
        get(&client, "DB-PASSWORD", Some(&second))
            .await
            .expect("gets")
            .as_deref(),
        Some("two")
    );
}

#[tokio::test]
async fn set_returns_attributes_and_tags() {
    let (emulator, client) = start().await;
    let parameters = SetSecretParameters {
        value: Some("one".to_owned()),
        content_type: Some("text/plain".to_owned()),
        tags: Some([("owner".to_owned(), "team-a".to_owned())].into()),
        ..SetSecretParameters::default()
    };
    let secret = client
        .set_secret("tagged", parameters.try_into().expect("serializes"), None)
        .await
        .expect("sets the secret")
        .into_model()
        .expect("parses the secret");

    let id = secret.resource_id().expect("has an id");
    assert_eq!(id.vault_url, emulator.vault_url());
    assert_eq!(id.name, "tagged");
    assert_eq!(secret.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        secret.tags.and_then(|tags| tags.get("owner").cloned()).as_deref(),
        Some("team-a")
    );
    let attributes = secret.attributes.expect("has attributes");
    assert_eq!(attributes.enabled, Some(true));
    assert!(attributes.created.is_some());
    assert_eq!(attributes.created, attributes.updated);
    assert!(attributes.recovery_level.is_some());
}

#[tokio::test]
async fn missing_secret_not_found() {
    let (_emulator, client) = start().await;

    let error = get(&client, "missing", None).await.expect_err("the secret is missing");

    assert_eq!(error.http_status(), Some(StatusCode::NotFound));
}

#[tokio::test]
async fn versions_listed_across_pages() {
    let (_emulator, client) = start().await;
    let mut expected = Vec::new();
    for value in ["one", "two", "three", "four", "five"] {
        expected.push(set(&client, "paged", value).await);
    }
    let options = SecretClientListSecretPropertiesVersionsOptions {
        maxresults: Some(2),
        ..SecretClientListSecretPropertiesVersionsOptions::default()
    };

    let mut page_sizes = Vec::new();
    let mut listed = Vec::new();
    let mut pages = client
        .list_secret_properties_versions("paged", Some(options))
        .expect("builds the pager")
        .into_pages();
    while let Some(page) = pages.next().await {
        let page = page.expect("gets a page").into_model().expect("parses the page");
        page_sizes.push(page.value.len());
        for properties in page.value {
            listed.push(
                properties
                    .resource_id()
                    .expect("has an id")
                    .version
                    .expect("has a version"),
            );
        }
    }

    assert_eq!(page_sizes, [2, 2, 1]);
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn secrets_listed_without_versions() {
    let (_emulator, client) = start().await;
    set(&client, "alpha", "one").await;
    set(&client, "beta", "two").await;

    let secrets: Vec<_> = client
        .list_secret_properties(None)
        .expect("builds the pager")
        .try_collect()
        .await
        .expect("lists the secrets");

    let ids: Vec<_> = secrets
        .iter()
        .map(|properties| properties.resource_id().expect("has an id"))
        .collect();
    let names: Vec<&str> = ids.iter().map(|id| id.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(ids.iter().all(|id| id.version.is_none()), "{ids:?}");
}

#[tokio::test]
async fn disabled_version_forbidden() {
    let (_emulator, client) = start().await;
    let first = set(&client, "disabled", "one").await;
    let second = set(&client, "disabled", "two").await;
    disable(&client, "disabled", &second).await;

    let latest = get(&client, "disabled", None)
        .await
        .expect_err("the latest version is disabled");
    let by_version = get(&client, "disabled", Some(&second))
        .await
        .expect_err("the version is disabled");

    assert_eq!(latest.http_status(), Some(StatusCode::Forbidden));
    assert_eq!(by_version.http_status(), Some(StatusCode::Forbidden));
    assert_eq!(
        get(&client, "disabled", Some(&first)).await.expect("gets").as_deref(),
        Some("one")
    );
    let versions: Vec<_> = client
        .list_secret_properties_versions("disabled", None)
        .expect("builds the pager")
        .try_collect()
        .await
        .expect("lists the versions");
    let enabled: Vec<Option<bool>> = versions
        .iter()
        .map(|properties| properties.attributes.as_ref().and_then(|attributes| attributes.enabled))
        .collect();
    assert_eq!(enabled, [Some(true), Some(false)]);
}

#[tokio::test]
async fn deleted_secret_conflicts_until_recovered() {
    let (emulator, client) = start().await;
    let version = set(&client, "deleted", "one").await;

    let deleted = client
        .delete_secret("deleted", None)
        .await
        .expect("deletes the secret")
        .into_model()
        .expect("parses the deleted secret");
    assert_eq!(
        deleted.recovery_id.as_deref(),
        Some(format!("{}/deletedsecrets/deleted", emulator.vault_url()).as_str())
    );
    assert!(deleted.deleted_date.is_some());
    assert!(deleted.scheduled_purge_date > deleted.deleted_date);
    assert_eq!(
        get(&client, "deleted", None).await.expect_err("deleted").http_status(),
        Some(StatusCode::NotFound)
    );

    let parameters = SetSecretParameters {
        value: Some("two".to_owned()),
        ..SetSecretParameters::default()
    };
    let conflict = client
        .set_secret("deleted", parameters.try_into().expect("serializes"), None)
        .await
        .expect_err("the name is deleted but recoverable");
    assert_eq!(conflict.http_status(), Some(StatusCode::Conflict));

    let listed = client
        .get_deleted_secret("deleted", None)
        .await
        .expect("gets the deleted secret")
        .into_model()
        .expect("parses the deleted secret");
    assert_eq!(listed.recovery_id, deleted.recovery_id);

    client
        .recover_deleted_secret("deleted", None)
        .await
        .expect("recovers the secret");
    assert_eq!(
        get(&client, "deleted", Some(&version)).await.expect("gets").as_deref(),
        Some("one")
    );
}

#[tokio::test]
async fn purged_name_reusable() {
    let (_emulator, client) = start().await;
    set(&client, "purged", "one").await;
    client.delete_secret("purged", None).await.expect("deletes the secret");

    client
        .purge_deleted_secret("purged", None)
        .await
        .expect("purges the secret");

    set(&client, "purged", "two").await;
    assert_eq!(
        get(&client, "purged", None).await.expect("gets").as_deref(),
        Some("two")
    );
}

#[tokio::test]
async fn request_without_token_challenged() {
    let (emulator, _client) = start().await;

    let response = http_client()
        .get(format!("{}/secrets?api-version=2025-07-01", emulator.vault_url()))
        .send()
        .await
        .expect("sends the request");

    assert_eq!(response.status().as_u16(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    assert_eq!(challenge.as_deref(), Some(CHALLENGE));
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("reads the body")).expect("a JSON body");
    assert_eq!(body["error"]["code"], "Unauthorized");
}

#[tokio::test]
async fn disabled_error_body_has_inner_code() {
    let (emulator, client) = start().await;
    let version = set(&client, "inner", "one").await;
    disable(&client, "inner", &version).await;

    let response = http_client()
        .get(format!(
            "{}/secrets/inner/{version}?api-version=2025-07-01",
            emulator.vault_url()
        ))
        .bearer_auth("any-token")
        .send()
        .await
        .expect("sends the request");

    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("reads the body")).expect("a JSON body");
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "SecretDisabled");
}
