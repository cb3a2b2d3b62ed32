//! The chart's RBAC is enough for rotor and grants nothing rotor does not use. Each test
//! renders and applies the ServiceAccount and RBAC objects of `charts/rotor`. It runs the
//! rotor binary as that ServiceAccount, which the admin user impersonates, with the
//! container arguments and environment of the rendered Deployment. It checks that a
//! SecretRotation becomes Ready, then checks with `kubectl auth can-i` what the account may
//! not do. Runs `helm` and `kubectl` from PATH. Needs `tests/env/up.sh` and
//! `source target/testenv/env.sh`.

mod support;

use support::command::{run, succeed};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use rotor::api::SecretRotation;
use serde::Deserialize;
use serde_json::Value;
use support::harness;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/rotor");
const TEST_MANAGER: &str = "rotor-rbac-test";

/// Parses the non-empty documents of a multi-document YAML stream into JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| {
            let value = serde_yaml::Value::deserialize(document).expect("helm renders valid YAML");
            serde_json::to_value(value).expect("the YAML converts to JSON")
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds a free port");
    listener.local_addr().expect("has an address").port()
}

/// A release of the chart that is rendered but not installed. Only its ServiceAccount and
/// RBAC objects are applied, and the rotor binary replaces the Deployment's pod.
struct Release {
    name: String,
    namespace: String,
    /// `--set` values of the render.
    sets: Vec<String>,
}

impl Release {
    /// Returns the full name of the release's objects, which is also the ServiceAccount's
    /// and the Lease's name. The chart uses a release name that contains "rotor" as it is.
    fn fullname(&self) -> &str {
        &self.name
    }

    /// Returns the user name that the API server gives the release's ServiceAccount.
    fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.fullname())
    }

    fn template(&self, show_only: &[&str]) -> String {
        let mut args = vec!["template", &self.name, CHART, "--namespace", &self.namespace];
        for set in &self.sets {
            args.extend(["--set", set]);
        }
        for template in show_only {
            args.extend(["--show-only", template]);
        }
        succeed("helm", &args, None)
    }

    /// Renders the ServiceAccount, the ClusterRole or Roles, and their bindings.
    fn rbac_manifests(&self) -> String {
        self.template(&[
            "templates/serviceaccount.yaml",
            "templates/rbac.yaml",
            "templates/leader-election-rbac.yaml",
        ])
    }

    /// Renders the Deployment and returns its rotor container.
    fn container(&self) -> Value {
        let deployment = documents(&self.template(&["templates/deployment.yaml"]))
            .pop()
            .expect("the chart renders a Deployment");
        deployment["spec"]["template"]["spec"]["containers"][0].clone()
    }

    /// Runs `kubectl auth can-i VERB RESOURCE ...` as the release's ServiceAccount.
    fn can_i(&self, request: &[&str]) -> bool {
        let user = self.user();
        let mut args = vec!["auth", "can-i"];
        args.extend_from_slice(request);
        args.extend(["--as", &user]);
        let output = run("kubectl", &args, None);
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        match answer.as_str() {
            "yes" => true,
            "no" => false,
            _ => panic!(
                "`kubectl {}` printed neither yes nor no:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

/// What one test created: namespaces, cluster-scoped objects and the rotor process. Dropping
/// it stops rotor, prints rotor's log when the test failed, and deletes the objects.
struct Cleanup {
    namespaces: Vec<String>,
    cluster_objects: Vec<String>,
    rotor: Option<Child>,
    log: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut rotor) = self.rotor.take() {
            let _ = rotor.kill();
            let _ = rotor.wait();
        }
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("last lines of rotor's log {}:\n{}", self.log.display(), tail.join("\n"));
        }
        for object in &self.cluster_objects {
            let _ = run("kubectl", &["delete", object, "--ignore-not-found"], None);
        }
        for namespace in &self.namespaces {
            let _ = run(
                "kubectl",
                &["delete", "namespace", namespace, "--wait=false", "--ignore-not-found"],
                None,
            );
        }
    }
}

/// Writes a copy of the test environment's kubeconfig whose user impersonates `user`.
fn impersonating_kubeconfig(env: &support::TestEnv, user: &str, file_name: &str) -> PathBuf {
    let text = std::fs::read_to_string(&env.kubeconfig).expect("reads target/testenv/kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("the kubeconfig is YAML");
    let users = config["users"]
        .as_sequence_mut()
        .expect("the kubeconfig has a list of users");
    assert_eq!(
        users.len(),
        1,
        "expected the one admin user in target/testenv/kubeconfig"
    );
    users[0]["user"]["as"] = serde_yaml::Value::from(user);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file_name);
    std::fs::write(
        &path,
        serde_yaml::to_string(&config).expect("serializes the kubeconfig"),
    )
    .expect("writes the impersonating kubeconfig");
    path
}

/// Starts `rotor` as the Deployment's container would run it: its arguments and its plain
/// environment variables, with POD_NAME and POD_NAMESPACE set as the downward API would.
/// `extra_args` come after the container's, and the HTTP endpoints bind free local ports.
fn start_rotor(release: &Release, kubeconfig: &Path, extra_args: &[&str], log: &Path) -> Child {
    let container = release.container();
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|arg| arg.as_str().expect("args are strings"))
        .collect();
    let plain_env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .expect("the container has env")
        .iter()
        .filter_map(|variable| Some((variable["name"].as_str()?, variable["value"].as_str()?)))
        .collect();
    let log_file = std::fs::File::create(log).expect("creates rotor's log file");
    Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(&args)
        .args(["--leader-election-namespace", &release.namespace])
        .args(extra_args)
        .args(["--health-bind-address", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{}", free_port())])
        .env_remove("ROTOR_NAMESPACES")
        .envs(plain_env)
        .env("POD_NAME", format!("{}-0", release.fullname()))
        .env("POD_NAMESPACE", &release.namespace)
        .env("KUBECONFIG", kubeconfig)
        .stdout(log_file.try_clone().expect("clones the log file handle"))
        .stderr(log_file)
        .spawn()
        .expect("starts rotor run")
}

/// Returns a `SecretRotation` named `db` that rotates the moto secret `<namespace>/db`
/// into the Secret `db-credentials`.
fn rotation(namespace: &str) -> Value {
    serde_json::json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "SecretRotation",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {
            "rotationInterval": "24h",
            "provider": {"aws": {"region": "us-east-1", "secretId": format!("{namespace}/db")}},
            "generator": {"password": {"length": 20}},
            "target": {"name": "db-credentials", "key": "password"}
        }
    })
}

async fn apply_rotation(client: &kube::Client, namespace: &str) {
    let rotations: Api<SecretRotation> = Api::namespaced(client.clone(), namespace);
    rotations
        .patch(
            "db",
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&rotation(namespace)),
        )
        .await
        .unwrap_or_else(|error| panic!("applying the SecretRotation {namespace}/db failed: {error}"));
}

fn is_ready(rotation: &SecretRotation) -> bool {
    rotation.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True")
    })
}

/// Waits until `<namespace>/db` is Ready and its Secret contains a value. Panics early when
/// rotor exits.
async fn wait_until_rotated(client: &kube::Client, namespace: &str, rotor: &mut Child) {
    let rotations: Api<SecretRotation> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(exit) = rotor.try_wait().expect("checks rotor's state") {
            panic!("rotor exited with {exit} before {namespace}/db became Ready");
        }
        let object = rotations.get("db").await.expect("reads the SecretRotation");
        let value = harness::secret_value(client, namespace, "db-credentials", "password").await;
        if is_ready(&object) && value.is_some() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace}/db is not Ready with its Secret written after 60 s; status: {:?}",
            object.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads the Lease's holder as the admin user.
fn lease_holder(release: &Release) -> String {
    succeed(
        "kubectl",
        &[
            "get",
            "lease",
            release.fullname(),
            "-n",
            &release.namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    )
}

/// Waits until an Event with `reason` exists in `namespace`, which shows that rotor may
/// publish Events there.
async fn wait_for_event(namespace: &str, reason: &str) {
    harness::wait_for(
        Duration::from_secs(30),
        &format!("a {reason} Event in {namespace}"),
        || async {
            let reasons = succeed(
                "kubectl",
                &[
                    "get",
                    "events.events.k8s.io",
                    "-n",
                    namespace,
                    "-o",
                    "jsonpath={.items[*].reason}",
                ],
                None,
            );
            reasons.split_whitespace().any(|found| found == reason).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn cluster_rbac_lets_rotor_rotate() {
    let env = support::testenv();
    let client = env.kube_client().await;
    harness::install_crd(&client).await;
    let release_namespace = harness::create_namespace(&client, "rbac-release").await;
    let app_namespace = harness::create_namespace(&client, "rbac-app").await;
    let release = Release {
        name: support::unique_name("rotor"),
        namespace: release_namespace.clone(),
        sets: Vec::new(),
    };
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.log", release.name));
    let mut cleanup = Cleanup {
        namespaces: vec![release_namespace.clone(), app_namespace.clone()],
        cluster_objects: vec![
            format!("clusterrolebinding/{}", release.fullname()),
            format!("clusterrole/{}", release.fullname()),
        ],
        rotor: None,
        log: log.clone(),
    };

    let manifests = release.rbac_manifests();
    let kinds: Vec<Value> = documents(&manifests)
        .into_iter()
        .map(|doc| doc["kind"].clone())
        .collect();
    assert!(kinds.contains(&Value::from("ClusterRole")), "rendered kinds: {kinds:?}");
    succeed("kubectl", &["apply", "-f", "-"], Some(&manifests));

    // rotor watches only the test's namespace, so that it leaves the SecretRotations of other
    // tests alone. The cluster-wide reads of the default mode are checked below instead.
    let kubeconfig = impersonating_kubeconfig(&env, &release.user(), &format!("{}.kubeconfig", release.name));
    let rotor = cleanup.rotor.insert(start_rotor(
        &release,
        &kubeconfig,
        &["--namespaces", &app_namespace],
        &log,
    ));
    apply_rotation(&client, &app_namespace).await;
    wait_until_rotated(&client, &app_namespace, rotor).await;
    assert_eq!(lease_holder(&release), format!("{}-0", release.fullname()));
    wait_for_event(&app_namespace, "Rotated").await;

    // The lists that rotor makes when it watches all namespaces, made as its ServiceAccount.
    let user = release.user();
    succeed(
        "kubectl",
        &[
            "get",
            "secretrotations",
            "--all-namespaces",
            "-o",
            "name",
            "--as",
            &user,
        ],
        None,
    );
    succeed(
        "kubectl",
        &[
            "get",
            "secrets",
            "--all-namespaces",
            "-l",
            "app.kubernetes.io/managed-by=rotor",
            "-o",
            "name",
            "--as",
            &user,
        ],
        None,
    );
    for verb in ["list", "watch"] {
        for resource in ["secretrotations.rotor.dev", "secrets"] {
            assert!(
                release.can_i(&[verb, resource, "--all-namespaces"]),
                "cannot {verb} {resource} in all namespaces"
            );
        }
    }

    let app = app_namespace.as_str();
    let lease = format!("leases/{}", release.fullname());
    assert!(release.can_i(&["get", &lease, "-n", &release_namespace]));
    assert!(release.can_i(&["update", &lease, "-n", &release_namespace]));
    let denied: [&[&str]; 14] = [
        &["delete", "secrets", "-n", app],
        &["update", "secrets", "-n", app],
        &["deletecollection", "secrets", "-n", app],
        &["create", "secretrotations.rotor.dev", "-n", app],
        &["update", "secretrotations.rotor.dev", "-n", app],
        &["patch", "secretrotations.rotor.dev", "-n", app],
        &["delete", "secretrotations.rotor.dev", "-n", app],
        &["update", "secretrotations.rotor.dev", "--subresource=status", "-n", app],
        &["get", "configmaps", "-n", app],
        &["create", "leases.coordination.k8s.io", "-n", app],
        &[
            "get",
            "leases.coordination.k8s.io/another-lease",
            "-n",
            &release_namespace,
        ],
        &["list", "leases.coordination.k8s.io", "-n", &release_namespace],
        &["delete", &lease, "-n", &release_namespace],
        &["create", "clusterroles.rbac.authorization.k8s.io"],
    ];
    for request in denied {
        assert!(!release.can_i(request), "the ServiceAccount may {}", request.join(" "));
    }
}

#[tokio::test]
async fn namespaced_rbac_limits_rotor_to_listed_namespaces() {
    let env = support::testenv();
    let client = env.kube_client().await;
    harness::install_crd(&client).await;
    let release_namespace = harness::create_namespace(&client, "rbac-release").await;
    let watched = harness::create_namespace(&client, "rbac-watched").await;
    let unwatched = harness::create_namespace(&client, "rbac-unwatched").await;
    let release = Release {
        name: support::unique_name("rotor"),
        namespace: release_namespace.clone(),
        sets: vec![format!("watchNamespaces={{{watched}}}")],
    };
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.log", release.name));
    let mut cleanup = Cleanup {
        namespaces: vec![release_namespace.clone(), watched.clone(), unwatched.clone()],
        cluster_objects: Vec::new(),
        rotor: None,
        log: log.clone(),
    };

    let manifests = release.rbac_manifests();
    let kinds: Vec<Value> = documents(&manifests)
        .into_iter()
        .map(|doc| doc["kind"].clone())
        .collect();
    assert!(
        !kinds.contains(&Value::from("ClusterRole")) && !kinds.contains(&Value::from("ClusterRoleBinding")),
        "watchNamespaces renders cluster-wide RBAC: {kinds:?}"
    );
    succeed("kubectl", &["apply", "-f", "-"], Some(&manifests));

    // rotor gets the namespace from the Deployment's ROTOR_NAMESPACES, as in a cluster.
    let container = release.container();
    let namespaces_variable = container["env"]
        .as_array()
        .expect("the container has env")
        .iter()
        .find(|variable| variable["name"] == "ROTOR_NAMESPACES")
        .map(|variable| variable["value"].clone());
    assert_eq!(namespaces_variable, Some(Value::from(watched.as_str())));
    let kubeconfig = impersonating_kubeconfig(&env, &release.user(), &format!("{}.kubeconfig", release.name));
    let rotor = cleanup.rotor.insert(start_rotor(&release, &kubeconfig, &[], &log));

    apply_rotation(&client, &watched).await;
    apply_rotation(&client, &unwatched).await;
    wait_until_rotated(&client, &watched, rotor).await;
    assert_eq!(lease_holder(&release), format!("{}-0", release.fullname()));
    wait_for_event(&watched, "Rotated").await;

    tokio::time::sleep(Duration::from_secs(10)).await;
    let rotations: Api<SecretRotation> = Api::namespaced(client.clone(), &unwatched);
    let object = rotations.get("db").await.expect("reads the unwatched SecretRotation");
    assert!(
        object.status.is_none(),
        "rotor wrote the status of {unwatched}/db: {:?}",
        object.status
    );
    let secret = harness::secret_value(&client, &unwatched, "db-credentials", "password").await;
    assert!(secret.is_none(), "rotor wrote the Secret {unwatched}/db-credentials");

    assert!(release.can_i(&["get", "secrets", "-n", &watched]));
    let denied: [&[&str]; 6] = [
        &["get", "secrets", "-n", &unwatched],
        &["list", "secrets", "-n", &unwatched],
        &["list", "secretrotations.rotor.dev", "-n", &unwatched],
        &["list", "secretrotations.rotor.dev", "--all-namespaces"],
        &["watch", "secrets", "--all-namespaces"],
        &["create", "events.events.k8s.io", "-n", &unwatched],
    ];
    for request in denied {
        assert!(!release.can_i(request), "the ServiceAccount may {}", request.join(" "));
    }
}

#[tokio::test]
async fn missing_secret_write_permission_reports_forbidden() {
    let env = support::testenv();
    let client = env.kube_client().await;
    harness::install_crd(&client).await;
    let release_namespace = harness::create_namespace(&client, "rbac-forbidden-release").await;
    let watched = harness::create_namespace(&client, "rbac-forbidden").await;
    let release = Release {
        name: support::unique_name("rotor"),
        namespace: release_namespace.clone(),
        sets: vec![format!("watchNamespaces={{{watched}}}")],
    };
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.log", release.name));
    let mut cleanup = Cleanup {
        namespaces: vec![release_namespace.clone(), watched.clone()],
        cluster_objects: Vec::new(),
        rotor: None,
        log: log.clone(),
    };

    // Apply the chart's RBAC with create and patch taken away from the Secrets rule.
    let mut manifests = documents(&release.rbac_manifests());
    for manifest in &mut manifests {
        let Some(rules) = manifest["rules"].as_array_mut() else {
            continue;
        };
        for rule in rules {
            if rule["resources"]
                .as_array()
                .is_some_and(|resources| resources.contains(&Value::from("secrets")))
            {
                rule["verbs"] = serde_json::json!(["get", "list", "watch"]);
            }
        }
    }
    let stripped: Vec<String> = manifests
        .iter()
        .map(|manifest| serde_json::to_string(manifest).expect("serializes"))
        .collect();
    succeed("kubectl", &["apply", "-f", "-"], Some(&stripped.join("\n")));
    assert!(!release.can_i(&["create", "secrets", "-n", &watched]));

    let kubeconfig = impersonating_kubeconfig(&env, &release.user(), &format!("{}.kubeconfig", release.name));
    cleanup.rotor = Some(start_rotor(&release, &kubeconfig, &[], &log));
    apply_rotation(&client, &watched).await;

    let rotations: Api<SecretRotation> = Api::namespaced(client.clone(), &watched);
    let ready = harness::wait_for(Duration::from_secs(60), "Ready=False with reason Forbidden", || async {
        let object = rotations.get("db").await.ok()?;
        let ready = object.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "Forbidden").then_some(ready)
    })
    .await;
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains(&format!("{watched}/db-credentials")),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("watchNamespaces"), "{}", ready.message);
    wait_for_event(&watched, "Forbidden").await;
}
