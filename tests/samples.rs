//! The sample manifests in `config/samples/` are valid `SecretRotation` objects: the test API
//! server accepts each in a server-side dry run. Needs `tests/env/up.sh`.

mod support;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use support::command::succeed;
use support::harness;

#[tokio::test]
async fn samples_pass_server_dry_run() {
    let env = support::testenv();
    let client = env.kube_client().await;
    harness::install_crd(&client).await;
    // The samples name the namespace `shop`; a dry run still needs it to exist.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let shop = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    namespaces
        .patch("shop", &PatchParams::apply("rotor-tests"), &Patch::Apply(&shop))
        .await
        .expect("applies shop");

    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/config/samples");
    let mut names: Vec<String> = std::fs::read_dir(samples)
        .expect("reads config/samples")
        .map(|entry| entry.expect("reads an entry").path().display().to_string())
        .collect();
    names.sort();
    assert!(names.len() >= 3, "expected a sample per provider, found {names:?}");
    for path in &names {
        let output = succeed("kubectl", &["apply", "--dry-run=server", "-f", path], None);
        assert!(output.contains("(server dry run)"), "{path}: {output}");
    }
}
