//! The `rotor` binary as users run it: `rotor run` serves its probes and metrics, rotates,
//! and exits cleanly on SIGTERM; `rotor crd` prints the committed CRD. Needs
//! `tests/env/up.sh`.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use rotor::api::SecretRotation;
use support::harness;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds a free port");
    listener.local_addr().expect("has an address").port()
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

#[test]
fn crd_command_prints_committed_crd() {
    let output = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("crd")
        .output()
        .expect("runs rotor crd");
    assert!(output.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/secretrotations.rotor.dev.yaml"
    ))
    .expect("reads the committed CRD");
    assert_eq!(String::from_utf8_lossy(&output.stdout), committed);
}

#[tokio::test]
async fn run_rotates_and_stops_on_sigterm() {
    let env = support::testenv();
    let client = env.kube_client().await;
    harness::install_crd(&client).await;
    let namespace = harness::create_namespace(&client, "bin").await;
    let health = free_port();
    let metrics = free_port();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["run", "--namespaces", &namespace, "--log-json"])
        .args(["--health-bind-address", &format!("127.0.0.1:{health}")])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics}")])
        .env("KUBECONFIG", &env.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts rotor run");

    harness::wait_for(Duration::from_secs(30), "/readyz to answer 200", || async {
        http_get(health, "/readyz").await.filter(|(status, _)| *status == 200)
    })
    .await;
    let (status, body) = http_get(health, "/healthz").await.expect("/healthz answers");
    assert_eq!((status, body.as_str()), (200, "ok"));

    let rotations: Api<SecretRotation> = Api::namespaced(client.clone(), &namespace);
    let manifest = serde_json::json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "SecretRotation",
        "metadata": {"name": "db"},
        "spec": {
            "rotationInterval": "24h",
            "provider": {"aws": {"region": "us-east-1", "secretId": format!("{namespace}/db")}},
            "generator": {"password": {"length": 20}},
            "target": {"name": "db-credentials"}
        }
    });
    rotations
        .patch("db", &PatchParams::apply("rotor-tests"), &Patch::Apply(&manifest))
        .await
        .expect("applies");
    let value = harness::wait_for(Duration::from_secs(30), "the Secret to be written", || async {
        harness::secret_value(&client, &namespace, "db-credentials", "password").await
    })
    .await;
    let object = rotations.get("db").await.expect("reads the SecretRotation");
    assert!(
        object
            .status
            .as_ref()
            .and_then(|s| s.current_version.as_ref())
            .is_some(),
        "{} has no version",
        object.name_any()
    );

    let (status, text) = http_get(metrics, "/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200);
    let object_labels = format!(r#"{{namespace="{namespace}",name="db"}}"#);
    let expected = [
        r#"rotor_rotations_total{provider="aws",result="success"} 1"#.to_owned(),
        r#"rotor_cloud_operations_total{provider="aws",operation="CreateSecret",outcome="success"} 1"#.to_owned(),
        r#"rotor_cloud_operations_total{provider="aws",operation="DescribeSecret",outcome="NotFound"} 1"#.to_owned(),
        format!("rotor_secretrotation_ready{object_labels} 1"),
        format!("rotor_secretrotation_last_rotation_timestamp_seconds{object_labels} "),
        format!("rotor_secretrotation_next_rotation_timestamp_seconds{object_labels} "),
        "rotor_leader 1".to_owned(),
        r#"rotor_build_info{version=""#.to_owned(),
    ];
    for series in &expected {
        assert!(text.contains(series.as_str()), "missing {series} in:\n{text}");
    }
    let next_rotation = text
        .lines()
        .find(|line| {
            line.starts_with(&format!(
                "rotor_secretrotation_next_rotation_timestamp_seconds{object_labels}"
            ))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .expect("next rotation value");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    assert!(
        next_rotation > now + 21.0 * 3600.0,
        "next rotation {next_rotation} is not about a day ahead of {now}"
    );

    // The per-object series disappear with the object.
    rotations
        .delete("db", &Default::default())
        .await
        .expect("deletes the SecretRotation");
    harness::wait_for(Duration::from_secs(30), "the object's series to disappear", || async {
        let (_, text) = http_get(metrics, "/metrics").await?;
        (!text.contains(&object_labels)).then_some(())
    })
    .await;

    let pid = child.id().expect("rotor has a PID");
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("runs kill");
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("rotor exits within 20 s of SIGTERM")
        .expect("waits for rotor");
    assert!(exit.success(), "rotor exited with {exit}");

    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .await
        .expect("reads stderr");
    assert!(stderr.contains("controller stopped"), "{stderr}");
    assert!(
        stderr.lines().all(|line| line.starts_with('{')),
        "a log line is not JSON: {stderr}"
    );
    assert!(!stderr.contains(&value), "the value appears in rotor's log");
}
