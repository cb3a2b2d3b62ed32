//! The Helm chart in `charts/rotor`: its copy of the CRD, `helm lint`, what the templates
//! render, server-side dry runs of the rendered manifests, install and uninstall, and the
//! values schema. Runs `helm` and `kubectl` from PATH. Needs `tests/env/up.sh` and
//! `source target/testenv/env.sh`, except for the CRD copy check.

mod support;

use support::command::{run, succeed};

use serde::Deserialize;
use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/rotor");
const GENERATED_CRD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/secretrotations.rotor.dev.yaml");
const CHART_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/rotor/files/crds/secretrotations.rotor.dev.yaml"
);
const CRD_NAME: &str = "secretrotations.rotor.dev";

/// `helm template` of the chart as release `release` in `namespace` with `--set` values.
fn template(release: &str, namespace: &str, sets: &[&str]) -> String {
    let mut args = vec!["template", release, CHART, "--namespace", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    succeed("helm", &args, None)
}

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

/// Returns the documents of `kind`.
fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|document| document["kind"] == kind).collect()
}

/// Returns the single document of `kind`. Panics when there is none or several.
fn single<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, rendered {}", found.len());
    found[0]
}

/// Returns the value of the plain (not `valueFrom`) environment variable `name` of a container.
fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|variable| variable["name"] == name)?["value"]
        .as_str()
}

/// Replaces every number by its f64 value, so that `1024` and `1024.0` compare equal.
fn normalize_numbers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            let float = number.as_f64().expect("a JSON number fits f64");
            *value = serde_json::json!(float);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// Namespaces of one test, deleted when the test ends, also when it fails.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn create(prefixes: &[&str]) -> Self {
        let names: Vec<String> = prefixes.iter().map(|prefix| support::unique_name(prefix)).collect();
        for name in &names {
            succeed("kubectl", &["create", "namespace", name], None);
        }
        Self(names)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = run(
                "kubectl",
                &["delete", "namespace", name, "--wait=false", "--ignore-not-found"],
                None,
            );
        }
    }
}

/// Asserts that the chart's copy of the CRD is the generated CRD, byte for byte.
fn assert_crd_copy_is_current() {
    let generated = std::fs::read(GENERATED_CRD).expect("reads crds/secretrotations.rotor.dev.yaml");
    let copy = std::fs::read(CHART_CRD).expect("reads charts/rotor/files/crds/secretrotations.rotor.dev.yaml");
    assert!(
        copy == generated,
        "charts/rotor/files/crds/secretrotations.rotor.dev.yaml differs from crds/secretrotations.rotor.dev.yaml; \
         run `make crd` to regenerate both"
    );
}

#[test]
fn chart_crd_matches_generated_crd() {
    assert_crd_copy_is_current();
}

#[test]
fn rendered_crd_equals_crd_file() {
    support::testenv();
    let rendered = documents(&template("rotor", "rotor", &[]));
    let crd = single(&rendered, "CustomResourceDefinition");
    let file: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(CHART_CRD).expect("reads the chart's CRD")).expect("valid YAML");
    let mut expected = serde_json::to_value(file).expect("converts to JSON");
    let mut actual = crd.clone();
    normalize_numbers(&mut expected);
    normalize_numbers(&mut actual);

    assert_eq!(actual["metadata"]["name"], CRD_NAME);
    assert_eq!(actual["spec"], expected["spec"], "the template changed the CRD's spec");
    assert_eq!(
        actual["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
        "crds.keep defaults to true"
    );
}

#[test]
fn crd_values_control_crd() {
    support::testenv();
    let disabled = documents(&template("rotor", "rotor", &["crds.enabled=false"]));
    assert!(of_kind(&disabled, "CustomResourceDefinition").is_empty());

    let not_kept = documents(&template("rotor", "rotor", &["crds.keep=false"]));
    let crd = single(&not_kept, "CustomResourceDefinition");
    assert!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null(),
        "crds.keep=false still renders the keep annotation: {}",
        crd["metadata"]
    );
}

#[test]
fn lint_passes() {
    support::testenv();
    let cases: [(&str, &[&str]); 3] = [
        ("default values", &[]),
        ("watchNamespaces={a,b}", &["--set", "watchNamespaces={a,b}"]),
        (
            "ServiceMonitor and PrometheusRule enabled",
            &[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.prometheusRule.enabled=true",
            ],
        ),
    ];
    for (case, sets) in cases {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend_from_slice(sets);
        let output = run("helm", &args, None);
        assert!(
            output.status.success(),
            "helm lint with {case} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

#[test]
fn default_rbac_grants_only_what_rotor_uses() {
    support::testenv();
    let rendered = documents(&template("rel", "rotor-system", &[]));

    let role = single(&rendered, "ClusterRole");
    let expected = serde_json::json!([
        {"apiGroups": ["rotor.dev"], "resources": ["secretrotations"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["rotor.dev"], "resources": ["secretrotations/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]);
    assert_eq!(role["rules"], expected);

    let binding = single(&rendered, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], "rel-rotor");
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "rel-rotor", "namespace": "rotor-system"}])
    );

    let lease_role = single(&rendered, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], "rotor-system");
    let expected = serde_json::json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["rel-rotor"],
            "verbs": ["get", "update", "patch"]
        },
    ]);
    assert_eq!(lease_role["rules"], expected);
}

#[test]
fn watch_namespaces_render_roles_only() {
    support::testenv();
    let rendered = documents(&template("rel", "rotor-system", &["watchNamespaces={team-a,team-b}"]));

    assert!(
        of_kind(&rendered, "ClusterRole").is_empty(),
        "a ClusterRole is rendered"
    );
    assert!(
        of_kind(&rendered, "ClusterRoleBinding").is_empty(),
        "a ClusterRoleBinding is rendered"
    );
    let roles = of_kind(&rendered, "Role");
    let mut role_namespaces: Vec<&str> = roles
        .iter()
        .map(|role| role["metadata"]["namespace"].as_str().expect("namespaced"))
        .collect();
    role_namespaces.sort_unstable();
    assert_eq!(role_namespaces, ["rotor-system", "team-a", "team-b"]);
    let bindings = of_kind(&rendered, "RoleBinding");
    assert_eq!(bindings.len(), 3);
    for binding in bindings {
        assert_eq!(binding["subjects"][0]["namespace"], "rotor-system");
    }

    let deployment = single(&rendered, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(env_value(container, "ROTOR_NAMESPACES"), Some("team-a,team-b"));
}

#[test]
fn deployment_runs_leader_elected_and_locked_down() {
    support::testenv();
    let rendered = documents(&template("rel", "rotor-system", &[]));
    let deployment = single(&rendered, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(container["image"], "rotor:0.1.0");
    assert_eq!(container["args"], serde_json::json!(["run", "--leader-elect=true"]));
    assert_eq!(env_value(container, "ROTOR_NAMESPACES"), None);
    assert_eq!(env_value(container, "ROTOR_LOG_LEVEL"), Some("info"));
    assert_eq!(env_value(container, "ROTOR_LOG_JSON"), Some("true"));
    assert_eq!(
        env_value(container, "ROTOR_LEADER_ELECTION_LEASE_NAME"),
        Some("rel-rotor")
    );
    for (name, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let variable = container["env"]
            .as_array()
            .expect("env is a list")
            .iter()
            .find(|variable| variable["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not set"));
        assert_eq!(variable["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }

    assert_eq!(
        container["ports"],
        serde_json::json!([
            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
        ])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "health");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);

    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["runAsGroup"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    let resources = &container["resources"];
    assert_eq!(
        resources["requests"],
        serde_json::json!({"cpu": "50m", "memory": "64Mi"})
    );
    assert_eq!(resources["limits"], serde_json::json!({"memory": "256Mi"}));
}

#[test]
fn pod_disruption_budget_needs_several_replicas() {
    support::testenv();
    let default_replicas = documents(&template("rel", "rotor-system", &[]));
    let budget = single(&default_replicas, "PodDisruptionBudget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);

    let single_replica = documents(&template("rel", "rotor-system", &["replicaCount=1"]));
    assert!(of_kind(&single_replica, "PodDisruptionBudget").is_empty());
}

#[test]
fn service_account_name_required_without_create() {
    support::testenv();
    let output = run(
        "helm",
        &["template", "rel", CHART, "--set", "serviceAccount.create=false"],
        None,
    );
    assert!(!output.status.success(), "rendered without a ServiceAccount name");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("serviceAccount.name is required"), "{stderr}");

    let rendered = documents(&template(
        "rel",
        "rotor-system",
        &["serviceAccount.create=false", "serviceAccount.name=existing"],
    ));
    assert!(of_kind(&rendered, "ServiceAccount").is_empty());
    assert_eq!(
        single(&rendered, "ClusterRoleBinding")["subjects"][0]["name"],
        "existing"
    );
}

#[test]
fn schema_rejects_unknown_and_mistyped_values() {
    support::testenv();
    // Each case: the --set argument and the text the error must contain.
    let cases = [
        ("replicaCount=two", "/replicaCount"),
        ("notAValue=1", "notAValue"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("serviceAccount.bogus=1", "bogus"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces/0"),
        ("log.level=verbose", "/log/level"),
        ("resources.limits.cpu=lots", "/resources/limits/cpu"),
        ("tolerations[0].keys=a", "keys"),
        (
            "metrics.prometheusRule.rotationFailingFor=15",
            "/metrics/prometheusRule/rotationFailingFor",
        ),
    ];
    for (set, expected) in cases {
        let output = run("helm", &["template", "rel", CHART, "--set", set], None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains(expected),
            "the error for --set {set} does not name {expected}:\n{stderr}"
        );
    }

    let directives = run(
        "helm",
        &["template", "rel", CHART, "--set", r"log.level=rotor=debug\,kube=info"],
        None,
    );
    assert!(
        directives.status.success(),
        "per-module log directives are rejected:\n{}",
        String::from_utf8_lossy(&directives.stderr)
    );
}

#[test]
fn default_render_passes_server_dry_run() {
    support::testenv();
    let namespaces = Namespaces::create(&["chart-default"]);
    let manifests = template(&support::unique_name("rotor"), &namespaces.0[0], &[]);
    succeed("kubectl", &["apply", "--dry-run=server", "-f", "-"], Some(&manifests));
}

#[test]
fn watch_namespaces_render_passes_server_dry_run() {
    support::testenv();
    let namespaces = Namespaces::create(&["chart-release", "chart-team-a", "chart-team-b"]);
    let watched = format!("watchNamespaces={{{},{}}}", namespaces.0[1], namespaces.0[2]);
    let manifests = template(&support::unique_name("rotor"), &namespaces.0[0], &[&watched]);
    let applied = succeed("kubectl", &["apply", "--dry-run=server", "-f", "-"], Some(&manifests));
    assert!(!applied.contains("clusterrole"), "{applied}");
}

/// Minimal stand-ins for the Prometheus Operator's CRDs, which the test API server lacks.
/// They accept any content, so the dry run checks kind, API version and metadata only.
/// They stay installed, because several test runs may share the environment.
const MONITORING_STAND_INS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
  labels:
    rotor.dev/test-stand-in: "true"
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    kind: ServiceMonitor
    listKind: ServiceMonitorList
    plural: servicemonitors
    singular: servicemonitor
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
  labels:
    rotor.dev/test-stand-in: "true"
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    kind: PrometheusRule
    listKind: PrometheusRuleList
    plural: prometheusrules
    singular: prometheusrule
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

#[test]
fn monitoring_render_passes_server_dry_run() {
    support::testenv();
    succeed(
        "kubectl",
        &["apply", "--server-side", "--field-manager=rotor-chart-tests", "-f", "-"],
        Some(MONITORING_STAND_INS),
    );
    succeed(
        "kubectl",
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
        None,
    );

    let namespaces = Namespaces::create(&["chart-monitoring"]);
    let release = support::unique_name("rotor");
    let manifests = template(
        &release,
        &namespaces.0[0],
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
        ],
    );
    succeed("kubectl", &["apply", "--dry-run=server", "-f", "-"], Some(&manifests));

    // The stand-in CRDs check no content, so check here what Prometheus relies on.
    let rendered = documents(&manifests);
    let service = single(&rendered, "Service");
    let monitor = single(&rendered, "ServiceMonitor");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("the ServiceMonitor selects by labels");
    for (key, value) in selector {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the metrics Service lacks the ServiceMonitor's selector label {key}"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);

    let rule = single(&rendered, "PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().expect("rules");
    let job = format!(r#"job="{}-metrics""#, release);
    let expected = [
        ("RotorSecretRotationFailing", "rotor_secretrotation_ready"),
        (
            "RotorSecretRotationOverdue",
            "rotor_secretrotation_next_rotation_timestamp_seconds",
        ),
        ("RotorDown", "up{"),
        ("RotorNoLeader", "rotor_leader"),
    ];
    for (alert, metric) in expected {
        let found = rules
            .iter()
            .find(|rule| rule["alert"] == alert)
            .unwrap_or_else(|| panic!("alert {alert} is not rendered"));
        let expr = found["expr"].as_str().expect("expr is a string");
        assert!(expr.contains(metric), "{alert} does not use {metric}: {expr}");
        assert!(expr.contains(&job), "{alert} does not select {job}: {expr}");
    }
}

#[test]
fn install_and_uninstall_keep_crd() {
    support::testenv();
    // The release applies the chart's CRD to the environment's shared CRD, so a stale copy
    // must not get that far.
    assert_crd_copy_is_current();
    let namespaces = Namespaces::create(&["chart-install"]);
    let namespace = namespaces.0[0].as_str();
    let release = support::unique_name("rotor");

    // The CRD already exists in the shared environment, applied by other tests, so the
    // release must adopt it. `--wait=hookOnly` is Helm 4's name for `--wait=false`. Waiting
    // for the pods would fail, because no image can run here.
    succeed(
        "helm",
        &[
            "install",
            &release,
            CHART,
            "--namespace",
            namespace,
            "--wait=hookOnly",
            "--take-ownership",
        ],
        None,
    );
    let status: Value = serde_json::from_str(&succeed(
        "helm",
        &["status", &release, "-n", namespace, "-o", "json"],
        None,
    ))
    .expect("helm status prints JSON");
    assert_eq!(status["info"]["status"], "deployed");

    for object in [
        format!("deployment/{release}"),
        format!("serviceaccount/{release}"),
        format!("service/{release}-metrics"),
        format!("poddisruptionbudget/{release}"),
        format!("role/{release}-leader-election"),
        format!("rolebinding/{release}-leader-election"),
    ] {
        succeed("kubectl", &["get", "-n", namespace, &object, "-o", "name"], None);
    }
    for object in [
        format!("clusterrole/{release}"),
        format!("clusterrolebinding/{release}"),
    ] {
        succeed("kubectl", &["get", &object, "-o", "name"], None);
    }

    // Checked on the live object before uninstalling: without the annotation, uninstall
    // would delete the CRD and every SecretRotation of the other tests.
    let annotations: Value = serde_json::from_str(&succeed(
        "kubectl",
        &["get", "crd", CRD_NAME, "-o", "jsonpath={.metadata.annotations}"],
        None,
    ))
    .expect("annotations are JSON");
    assert_eq!(annotations["meta.helm.sh/release-name"], release.as_str());
    assert_eq!(
        annotations["helm.sh/resource-policy"], "keep",
        "the installed CRD lacks the keep annotation; the release {release} in {namespace} is left installed"
    );

    let rotation = serde_json::json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "SecretRotation",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {
            "rotationInterval": "24h",
            "provider": {"aws": {"region": "us-east-1", "secretId": format!("{namespace}/db")}},
            "generator": {"password": {"length": 16}},
            "target": {"name": "db-credentials"}
        }
    })
    .to_string();
    succeed("kubectl", &["apply", "-f", "-"], Some(&rotation));

    let uninstalled = succeed("helm", &["uninstall", &release, "-n", namespace], None);
    assert!(
        uninstalled.contains(CRD_NAME),
        "helm does not report the kept CRD: {uninstalled}"
    );
    succeed("kubectl", &["get", "crd", CRD_NAME, "-o", "name"], None);
    succeed(
        "kubectl",
        &["get", "secretrotation", "db", "-n", namespace, "-o", "name"],
        None,
    );
    let cluster_role = run(
        "kubectl",
        &["get", &format!("clusterrole/{release}"), "-o", "name"],
        None,
    );
    assert!(
        !cluster_role.status.success(),
        "the ClusterRole {release} survived the uninstall"
    );
    let deployment = run(
        "kubectl",
        &["get", "-n", namespace, &format!("deployment/{release}"), "-o", "name"],
        None,
    );
    assert!(
        !deployment.status.success(),
        "the Deployment {release} survived the uninstall"
    );
}
