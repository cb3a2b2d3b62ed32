//! Drives the emulator with Google's Rust client, `google-cloud-secretmanager-v1`, over HTTP on
//! 127.0.0.1 with anonymous credentials.

use gcp_secret_manager_emulator::Emulator;
use google_cloud_auth::credentials::anonymous;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::paginator::Paginator;
use google_cloud_secretmanager_v1::Error;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::replication::{Automatic, UserManaged, user_managed::Replica};
use google_cloud_secretmanager_v1::model::secret_version::State;
use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload, SecretVersion};
use google_cloud_wkt::FieldMask;

const PROJECT: &str = "projects/rotor-test";

struct Harness {
    // Kept so that the server stops when the test ends.
    _emulator: Emulator,
    client: SecretManagerService,
}

async fn start() -> Harness {
    let address = "127.0.0.1:0".parse().expect("valid address");
    let emulator = Emulator::start(address).await.expect("emulator starts");
    let client = SecretManagerService::builder()
        .with_endpoint(emulator.endpoint())
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .expect("client builds");
    Harness {
        _emulator: emulator,
        client,
    }
}

fn automatic() -> Replication {
    Replication::new().set_automatic(Automatic::new())
}

fn code(error: &Error) -> Code {
    error
        .status()
        .unwrap_or_else(|| panic!("expected a service error, got {error:?}"))
        .code
}

impl Harness {
    async fn create_secret(&self, secret_id: &str) -> Secret {
        self.client
            .create_secret()
            .set_parent(PROJECT)
            .set_secret_id(secret_id)
            .set_secret(Secret::new().set_replication(automatic()))
            .send()
            .await
            .expect("secret created")
    }

    async fn add_version(&self, secret: &Secret, data: &[u8]) -> SecretVersion {
        self.client
            .add_secret_version()
            .set_parent(&secret.name)
            .set_payload(
                SecretPayload::new()
                    .set_data(data.to_vec())
                    .set_data_crc32c(i64::from(crc32c::crc32c(data))),
            )
            .send()
            .await
            .expect("version added")
    }

    async fn access(&self, name: &str) -> Result<(String, Vec<u8>, Option<i64>), Error> {
        let response = self.client.access_secret_version().set_name(name).send().await?;
        let payload = response.payload.expect("access response has a payload");
        Ok((response.name, payload.data.to_vec(), payload.data_crc32c))
    }
}

#[tokio::test]
async fn create_secret_returns_resource() {
    let harness = start().await;

    let secret = harness
        .client
        .create_secret()
        .set_parent(PROJECT)
        .set_secret_id("db-password")
        .set_secret(
            Secret::new()
                .set_replication(automatic())
                .set_labels([("team", "payments")])
                .set_annotations([("rotor.dev_owner", "rotation-1")])
                .set_version_aliases([("current", 1)]),
        )
        .send()
        .await
        .expect("secret created");

    assert_eq!(secret.name, "projects/rotor-test/secrets/db-password");
    assert_eq!(secret.labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(
        secret.annotations.get("rotor.dev_owner").map(String::as_str),
        Some("rotation-1")
    );
    assert_eq!(secret.version_aliases.get("current"), Some(&1));
    assert!(secret.create_time.is_some());
    assert!(
        secret.etag.starts_with('"') && secret.etag.ends_with('"'),
        "etag {:?} is not quoted",
        secret.etag
    );
    assert!(secret.replication.as_ref().and_then(|r| r.automatic()).is_some());

    let fetched = harness
        .client
        .get_secret()
        .set_name(&secret.name)
        .send()
        .await
        .expect("secret read");
    assert_eq!(fetched, secret);
}

#[tokio::test]
async fn create_secret_keeps_user_managed_replicas() {
    let harness = start().await;
    let replication = Replication::new().set_user_managed(UserManaged::new().set_replicas([
        Replica::new().set_location("us-east1"),
        Replica::new().set_location("europe-west1"),
    ]));

    let secret = harness
        .client
        .create_secret()
        .set_parent(PROJECT)
        .set_secret_id("regional-copy")
        .set_secret(Secret::new().set_replication(replication.clone()))
        .send()
        .await
        .expect("secret created");

    assert_eq!(secret.replication, Some(replication));
}

#[tokio::test]
async fn create_existing_secret_is_already_exists() {
    let harness = start().await;
    harness.create_secret("api-key").await;

    let error = harness
        .client
        .create_secret()
        .set_parent(PROJECT)
        .set_secret_id("api-key")
        .set_secret(Secret::new().set_replication(automatic()))
        .send()
        .await
        .expect_err("second create fails");

    assert_eq!(code(&error), Code::AlreadyExists);
    assert_eq!(error.http_status_code(), Some(409));
}

#[tokio::test]
async fn create_secret_without_replication_is_invalid() {
    let harness = start().await;

    let error = harness
        .client
        .create_secret()
        .set_parent(PROJECT)
        .set_secret_id("no-replication")
        .set_secret(Secret::new())
        .send()
        .await
        .expect_err("create without replication fails");

    assert_eq!(code(&error), Code::InvalidArgument);
}

#[tokio::test]
async fn versions_count_up_and_access_checks_crc32c() {
    let harness = start().await;
    let secret = harness.create_secret("rotating").await;

    for (index, data) in [b"value-1", b"value-2", b"value-3"].iter().enumerate() {
        let version = harness.add_version(&secret, *data).await;
        assert_eq!(version.name, format!("{}/versions/{}", secret.name, index + 1));
        assert_eq!(version.state, State::Enabled);
        assert!(version.client_specified_payload_checksum);
    }

    let (name, data, checksum) = harness
        .access(&format!("{}/versions/latest", secret.name))
        .await
        .expect("latest");
    assert_eq!(name, format!("{}/versions/3", secret.name));
    assert_eq!(data, b"value-3");
    assert_eq!(checksum, Some(i64::from(crc32c::crc32c(b"value-3"))));

    let (name, data, checksum) = harness
        .access(&format!("{}/versions/1", secret.name))
        .await
        .expect("version 1");
    assert_eq!(name, format!("{}/versions/1", secret.name));
    assert_eq!(data, b"value-1");
    assert_eq!(checksum, Some(i64::from(crc32c::crc32c(b"value-1"))));
}

#[tokio::test]
async fn add_version_without_checksum_gets_server_checksum() {
    let harness = start().await;
    let secret = harness.create_secret("no-client-checksum").await;

    let version = harness
        .client
        .add_secret_version()
        .set_parent(&secret.name)
        .set_payload(SecretPayload::new().set_data(b"plain".to_vec()))
        .send()
        .await
        .expect("version added");

    assert!(!version.client_specified_payload_checksum);
    let (_, _, checksum) = harness.access(&version.name).await.expect("access");
    assert_eq!(checksum, Some(i64::from(crc32c::crc32c(b"plain"))));
}

#[tokio::test]
async fn add_version_with_wrong_checksum_is_invalid() {
    let harness = start().await;
    let secret = harness.create_secret("checked").await;

    let wrong = i64::from(crc32c::crc32c(b"value")) + 1;
    let error = harness
        .client
        .add_secret_version()
        .set_parent(&secret.name)
        .set_payload(SecretPayload::new().set_data(b"value".to_vec()).set_data_crc32c(wrong))
        .send()
        .await
        .expect_err("checksum mismatch fails");

    assert_eq!(code(&error), Code::InvalidArgument);
    let versions = harness
        .client
        .list_secret_versions()
        .set_parent(&secret.name)
        .send()
        .await
        .expect("list");
    assert!(versions.versions.is_empty(), "a rejected version was stored");
}

#[tokio::test]
async fn add_empty_payload_is_invalid() {
    let harness = start().await;
    let secret = harness.create_secret("empty").await;

    let error = harness
        .client
        .add_secret_version()
        .set_parent(&secret.name)
        .set_payload(SecretPayload::new())
        .send()
        .await
        .expect_err("empty payload fails");

    assert_eq!(code(&error), Code::InvalidArgument);
}

#[tokio::test]
async fn update_mask_sets_aliases_only() {
    let harness = start().await;
    let created = harness
        .client
        .create_secret()
        .set_parent(PROJECT)
        .set_secret_id("aliased")
        .set_secret(
            Secret::new()
                .set_replication(automatic())
                .set_labels([("team", "payments")]),
        )
        .send()
        .await
        .expect("secret created");
    harness.add_version(&created, b"first").await;
    harness.add_version(&created, b"second").await;

    let updated = harness
        .client
        .update_secret()
        .set_secret(
            Secret::new()
                .set_name(&created.name)
                .set_version_aliases([("current", 1)])
                .set_labels([("team", "ignored-outside-mask")]),
        )
        .set_update_mask(FieldMask::default().set_paths(["version_aliases"]))
        .send()
        .await
        .expect("secret updated");

    assert_eq!(updated.version_aliases.get("current"), Some(&1));
    assert_eq!(updated.labels.get("team").map(String::as_str), Some("payments"));
    assert_ne!(updated.etag, created.etag);

    let (name, data, _) = harness
        .access(&format!("{}/versions/current", created.name))
        .await
        .expect("alias");
    assert_eq!(name, format!("{}/versions/1", created.name));
    assert_eq!(data, b"first");
    let version = harness
        .client
        .get_secret_version()
        .set_name(format!("{}/versions/current", created.name))
        .send()
        .await;
    assert_eq!(
        version.expect("version by alias").name,
        format!("{}/versions/1", created.name)
    );
}

#[tokio::test]
async fn update_with_unknown_mask_field_is_invalid() {
    let harness = start().await;
    let secret = harness.create_secret("masked").await;

    let error = harness
        .client
        .update_secret()
        .set_secret(Secret::new().set_name(&secret.name))
        .set_update_mask(FieldMask::default().set_paths(["no_such_field"]))
        .send()
        .await
        .expect_err("unknown mask field fails");

    assert_eq!(code(&error), Code::InvalidArgument);
}

#[tokio::test]
async fn update_with_stale_etag_fails() {
    let harness = start().await;
    let created = harness.create_secret("guarded").await;
    let update = |etag: String| {
        harness
            .client
            .update_secret()
            .set_secret(
                Secret::new()
                    .set_name(&created.name)
                    .set_labels([("step", "one")])
                    .set_etag(etag),
            )
            .set_update_mask(FieldMask::default().set_paths(["labels"]))
            .send()
    };

    let first = update(created.etag.clone()).await.expect("update with current etag");
    let error = update(created.etag.clone())
        .await
        .expect_err("update with stale etag fails");

    assert_eq!(code(&error), Code::FailedPrecondition);
    assert_eq!(error.http_status_code(), Some(400));
    let current = harness
        .client
        .get_secret()
        .set_name(&created.name)
        .send()
        .await
        .expect("secret read");
    assert_eq!(current.etag, first.etag);
}

#[tokio::test]
async fn disabled_version_cannot_be_accessed() {
    let harness = start().await;
    let secret = harness.create_secret("toggled").await;
    harness.add_version(&secret, b"old").await;
    let newest = harness.add_version(&secret, b"new").await;

    let disabled = harness
        .client
        .disable_secret_version()
        .set_name(&newest.name)
        .send()
        .await
        .expect("disable");
    assert_eq!(disabled.state, State::Disabled);
    assert_ne!(disabled.etag, newest.etag);

    let error = harness.access(&newest.name).await.expect_err("disabled version");
    assert_eq!(code(&error), Code::FailedPrecondition);
    assert!(
        error.status().is_some_and(|s| s.message.contains("DISABLED")),
        "{error:?}"
    );
    // `latest` names the newest version whatever its state, so it fails too.
    let error = harness
        .access(&format!("{}/versions/latest", secret.name))
        .await
        .expect_err("latest");
    assert_eq!(code(&error), Code::FailedPrecondition);

    let enabled = harness
        .client
        .enable_secret_version()
        .set_name(&newest.name)
        .send()
        .await
        .expect("enable");
    assert_eq!(enabled.state, State::Enabled);
    let (_, data, _) = harness.access(&newest.name).await.expect("enabled again");
    assert_eq!(data, b"new");
}

#[tokio::test]
async fn version_state_change_checks_etag() {
    let harness = start().await;
    let secret = harness.create_secret("version-etag").await;
    let version = harness.add_version(&secret, b"data").await;
    harness
        .client
        .enable_secret_version()
        .set_name(&version.name)
        .send()
        .await
        .expect("no-op enable");

    let error = harness
        .client
        .disable_secret_version()
        .set_name(&version.name)
        .set_etag(&version.etag)
        .send()
        .await
        .expect_err("stale etag");

    assert_eq!(code(&error), Code::FailedPrecondition);
}

#[tokio::test]
async fn destroyed_version_loses_payload() {
    let harness = start().await;
    let secret = harness.create_secret("shredded").await;
    let version = harness.add_version(&secret, b"gone soon").await;

    let destroyed = harness
        .client
        .destroy_secret_version()
        .set_name(&version.name)
        .set_etag(&version.etag)
        .send()
        .await
        .expect("destroy");

    assert_eq!(destroyed.state, State::Destroyed);
    assert!(destroyed.destroy_time.is_some());
    let error = harness.access(&version.name).await.expect_err("destroyed version");
    assert_eq!(code(&error), Code::FailedPrecondition);
    assert!(
        error.status().is_some_and(|s| s.message.contains("DESTROYED")),
        "{error:?}"
    );
    let error = harness
        .client
        .enable_secret_version()
        .set_name(&version.name)
        .send()
        .await
        .expect_err("enable");
    assert_eq!(code(&error), Code::FailedPrecondition);
}

#[tokio::test]
async fn list_versions_filters_by_state_and_pages() {
    let harness = start().await;
    let secret = harness.create_secret("many-versions").await;
    for index in 1..=5 {
        harness.add_version(&secret, format!("value-{index}").as_bytes()).await;
    }
    for number in [2, 4] {
        let name = format!("{}/versions/{number}", secret.name);
        harness
            .client
            .disable_secret_version()
            .set_name(name)
            .send()
            .await
            .expect("disable");
    }

    let mut pages = harness
        .client
        .list_secret_versions()
        .set_parent(&secret.name)
        .set_filter("state:ENABLED")
        .set_page_size(2)
        .by_page();
    let mut names = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        assert!(page.versions.len() <= 2);
        assert!(page.versions.iter().all(|version| version.state == State::Enabled));
        names.extend(page.versions.into_iter().map(|version| version.name));
        page_count += 1;
    }

    let expected: Vec<String> = [5, 3, 1]
        .iter()
        .map(|n| format!("{}/versions/{n}", secret.name))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(page_count, 2);

    let all = harness
        .client
        .list_secret_versions()
        .set_parent(&secret.name)
        .send()
        .await
        .expect("unfiltered list");
    assert_eq!(all.total_size, 5);
    assert_eq!(all.versions.len(), 5);
}

#[tokio::test]
async fn list_secrets_pages_newest_first() {
    let harness = start().await;
    for index in 1..=5 {
        harness.create_secret(&format!("secret-{index}")).await;
    }

    let mut pages = harness
        .client
        .list_secrets()
        .set_parent(PROJECT)
        .set_page_size(2)
        .by_page();
    let mut names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        assert!(page.secrets.len() <= 2);
        names.extend(page.secrets.into_iter().map(|secret| secret.name));
    }

    let expected: Vec<String> = (1..=5).rev().map(|n| format!("{PROJECT}/secrets/secret-{n}")).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn list_secrets_filters_by_label() {
    let harness = start().await;
    for (secret_id, team) in [("a", "payments"), ("b", "search"), ("c", "payments")] {
        harness
            .client
            .create_secret()
            .set_parent(PROJECT)
            .set_secret_id(secret_id)
            .set_secret(Secret::new().set_replication(automatic()).set_labels([("team", team)]))
            .send()
            .await
            .expect("secret created");
    }

    let response = harness
        .client
        .list_secrets()
        .set_parent(PROJECT)
        .set_filter("labels.team=payments")
        .send()
        .await;

    let names: Vec<String> = response
        .expect("list")
        .secrets
        .into_iter()
        .map(|secret| secret.name)
        .collect();
    assert_eq!(
        names,
        vec![format!("{PROJECT}/secrets/c"), format!("{PROJECT}/secrets/a")]
    );
}

#[tokio::test]
async fn delete_checks_etag() {
    let harness = start().await;
    let secret = harness.create_secret("doomed").await;
    harness.add_version(&secret, b"data").await;

    let error = harness
        .client
        .delete_secret()
        .set_name(&secret.name)
        .set_etag("\"0\"")
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(code(&error), Code::FailedPrecondition);

    harness
        .client
        .delete_secret()
        .set_name(&secret.name)
        .set_etag(&secret.etag)
        .send()
        .await
        .expect("delete");
    let error = harness
        .client
        .get_secret()
        .set_name(&secret.name)
        .send()
        .await
        .expect_err("deleted secret");
    assert_eq!(code(&error), Code::NotFound);
    let error = harness
        .access(&format!("{}/versions/1", secret.name))
        .await
        .expect_err("deleted versions");
    assert_eq!(code(&error), Code::NotFound);
}

#[tokio::test]
async fn missing_resources_are_not_found() {
    let harness = start().await;

    let error = harness
        .client
        .get_secret()
        .set_name(format!("{PROJECT}/secrets/never-created"))
        .send()
        .await
        .expect_err("missing secret");
    assert_eq!(code(&error), Code::NotFound);
    assert_eq!(error.http_status_code(), Some(404));

    let secret = harness.create_secret("empty-secret").await;
    let error = harness
        .access(&format!("{}/versions/latest", secret.name))
        .await
        .expect_err("no versions");
    assert_eq!(code(&error), Code::NotFound);
    let error = harness
        .access(&format!("{}/versions/7", secret.name))
        .await
        .expect_err("missing version");
    assert_eq!(code(&error), Code::NotFound);
    let error = harness
        .access(&format!("{}/versions/no-such-alias", secret.name))
        .await
        .expect_err("alias");
    assert_eq!(code(&error), Code::NotFound);
}

#[tokio::test]
async fn project_numbers_and_ids_are_separate() {
    let harness = start().await;
    harness.create_secret("by-id").await;

    let error = harness
        .client
        .get_secret()
        .set_name("projects/123456789/secrets/by-id")
        .send()
        .await
        .expect_err("other project");

    assert_eq!(code(&error), Code::NotFound);
}
