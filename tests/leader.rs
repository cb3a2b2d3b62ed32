//! Two `rotor run --leader-elect` processes against the real API server and moto: only the
//! Lease holder reconciles, 20 objects with a one-minute interval rotate exactly once per
//! interval, and killing the leader hands over without a double rotation. Needs
//! `tests/env/up.sh`.

mod support;

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManager;
use kube::Api;
use kube::api::{Patch, PatchParams};
use rotor::api::SecretRotation;
use support::harness;
use tokio::process::{Child, Command};

const OBJECTS: usize = 20;
const LEASE_SECONDS: u64 = 5;

struct Replica {
    child: Child,
    metrics_port: u16,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds a free port");
    listener.local_addr().expect("has an address").port()
}

fn start_replica(env: &support::TestEnv, namespace: &str, identity: &str) -> Replica {
    let metrics_port = free_port();
    let health_port = free_port();
    let log =
        std::fs::File::create(env.dir.join(format!("logs/leader-test-{identity}.log"))).expect("creates a log file");
    let child = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args([
            "run",
            "--leader-elect",
            "--namespaces",
            namespace,
            "--leader-election-namespace",
            namespace,
        ])
        .args(["--leader-election-lease-seconds", &LEASE_SECONDS.to_string()])
        .args(["--instance", identity])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics_port}")])
        .args(["--health-bind-address", &format!("127.0.0.1:{health_port}")])
        .env("KUBECONFIG", &env.kubeconfig)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("starts rotor run");
    Replica { child, metrics_port }
}

/// A metric's value summed over its series, from the replica's `/metrics`; `None` when the
/// endpoint does not answer.
async fn metric(replica: &Replica, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", replica.metrics_port))
        .await
        .ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let values = response
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
    Some(values.sum())
}

async fn is_leader(replica: &Replica) -> bool {
    metric(replica, "rotor_leader").await == Some(1.0)
}

async fn version_count(aws: &SecretsManager, secret_id: &str) -> usize {
    match aws
        .list_secret_version_ids()
        .secret_id(secret_id)
        .include_deprecated(true)
        .send()
        .await
    {
        Ok(output) => output.versions().len(),
        Err(_) => 0,
    }
}

async fn version_counts(aws: &SecretsManager, namespace: &str) -> Vec<usize> {
    let mut counts = Vec::with_capacity(OBJECTS);
    for index in 0..OBJECTS {
        counts.push(version_count(aws, &format!("{namespace}/db-{index}")).await);
    }
    counts
}

#[tokio::test]
async fn leader_handover_rotates_each_object_once_per_interval() {
    let env = support::testenv();
    let client = env.kube_client().await;
    harness::install_crd(&client).await;
    let namespace = harness::create_namespace(&client, "leader").await;
    let aws = SecretsManager::new(&env.aws_config().await);

    let mut first = start_replica(&env, &namespace, "replica-a");
    harness::wait_for(Duration::from_secs(30), "replica-a to lead", || async {
        is_leader(&first).await.then_some(())
    })
    .await;
    let second = start_replica(&env, &namespace, "replica-b");
    harness::wait_for(Duration::from_secs(30), "replica-b to serve metrics", || async {
        metric(&second, "rotor_leader").await
    })
    .await;
    assert!(!is_leader(&second).await, "two replicas lead at once");

    let rotations: Api<SecretRotation> = Api::namespaced(client.clone(), &namespace);
    for index in 0..OBJECTS {
        let manifest = serde_json::json!({
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "SecretRotation",
            "metadata": {"name": format!("db-{index}")},
            "spec": {
                "rotationInterval": "1m",
                "provider": {"aws": {"region": "us-east-1", "secretId": format!("{namespace}/db-{index}")}},
                "generator": {"password": {"length": 16}},
                "target": {"name": format!("db-{index}-credentials")}
            }
        });
        rotations
            .patch(
                &format!("db-{index}"),
                &PatchParams::apply("rotor-tests"),
                &Patch::Apply(&manifest),
            )
            .await
            .expect("applies a SecretRotation");
    }
    harness::wait_for(Duration::from_secs(60), "every object's first rotation", || async {
        version_counts(&aws, &namespace)
            .await
            .iter()
            .all(|count| *count == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        metric(&second, "rotor_reconciles_total").await,
        Some(0.0),
        "the standby reconciled"
    );

    // Crash the leader: SIGKILL leaves the Lease held until it expires.
    first.child.start_kill().expect("kills replica-a");
    let _ = first.child.wait().await;
    let killed_at = tokio::time::Instant::now();
    harness::wait_for(
        Duration::from_secs(LEASE_SECONDS * 3),
        "replica-b to take over",
        || async { is_leader(&second).await.then_some(()) },
    )
    .await;
    let takeover = killed_at.elapsed();
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 3),
        "takeover took {takeover:?}, more than the lease duration of {LEASE_SECONDS} s"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = version_counts(&aws, &namespace).await;
    assert!(
        counts.iter().all(|count| *count == 1),
        "the new leader rotated at takeover: {counts:?}"
    );

    harness::wait_for(
        Duration::from_secs(100),
        "every object's scheduled rotation",
        || async {
            version_counts(&aws, &namespace)
                .await
                .iter()
                .all(|count| *count >= 2)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let counts = version_counts(&aws, &namespace).await;
    assert!(
        counts.iter().all(|count| *count == 2),
        "not exactly one rotation per interval: {counts:?}"
    );

    let mut second = second;
    let _ = second.child.start_kill();
    let _ = second.child.wait().await;
}
