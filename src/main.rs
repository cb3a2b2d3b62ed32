//! The `rotor` binary: `rotor run` runs the controller, `rotor crd` prints the CRD.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{ArgAction, Args, Parser, Subcommand};
use rotor::controller::{self, Settings, SystemClock};
use rotor::leader::{self, LeaseSettings};
use rotor::metrics::Metrics;
use rotor::providers::CloudProviders;
use rotor::{server, telemetry};
use tracing::{error, info};

#[derive(Debug, Parser)]
#[command(
    name = "rotor",
    version,
    about = "Rotates cloud secrets on a schedule and publishes them as Kubernetes Secrets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller. Reads the kubeconfig from KUBECONFIG, ~/.kube/config or the
    /// in-cluster service account.
    Run(RunArgs),
    /// Print the SecretRotation CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Address of the Prometheus endpoint `/metrics`.
    #[arg(long, env = "ROTOR_METRICS_BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    metrics_bind_address: SocketAddr,

    /// Address of the probe endpoints `/healthz` and `/readyz`; may equal the metrics address.
    #[arg(long, env = "ROTOR_HEALTH_BIND_ADDRESS", default_value = "0.0.0.0:8081")]
    health_bind_address: SocketAddr,

    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or per-module
    /// directives such as `rotor=debug,kube=info`.
    #[arg(long, env = "ROTOR_LOG_LEVEL", default_value = "info")]
    log_level: String,

    /// Write logs as JSON lines instead of text.
    #[arg(long, env = "ROTOR_LOG_JSON", action = ArgAction::Set, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    log_json: bool,

    /// Name of this replica in Events and in the leader election Lease, usually the pod
    /// name. Defaults to the host name.
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,

    /// Comma-separated namespaces to watch; empty watches all namespaces.
    #[arg(long, env = "ROTOR_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// Reconcile only while holding the leader election Lease, so that one of several
    /// replicas is active.
    #[arg(long, env = "ROTOR_LEADER_ELECT", action = ArgAction::Set, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    leader_elect: bool,

    /// Namespace of the leader election Lease, usually rotor's own namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,

    /// Name of the leader election Lease.
    #[arg(long, env = "ROTOR_LEADER_ELECTION_LEASE_NAME", default_value = "rotor")]
    leader_election_lease_name: String,

    /// Seconds a leader holds the Lease without renewing it; a standby replica takes over
    /// at most this long after the leader stops.
    #[arg(long, env = "ROTOR_LEADER_ELECTION_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..))]
    leader_election_lease_seconds: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print_crd(),
        Command::Run(args) => {
            if let Err(message) = telemetry::init(&args.log_level, args.log_json) {
                let _ = writeln!(std::io::stderr(), "rotor: {message}");
                return ExitCode::FAILURE;
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    error!(error = %err, "starting the async runtime failed");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(args))
        }
    }
}

fn print_crd() -> ExitCode {
    match rotor::api::crd_yaml() {
        Ok(yaml) => {
            if std::io::stdout().lock().write_all(yaml.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "rotor: serializing the CRD failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(err) => {
            error!(error = %err, "building the Kubernetes client failed; set KUBECONFIG or run in a cluster");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));

    let listeners = match server::bind(
        args.health_bind_address,
        args.metrics_bind_address,
        metrics.clone(),
        ready.clone(),
    )
    .await
    {
        Ok(listeners) => listeners,
        Err(err) => {
            error!(error = %err, health = %args.health_bind_address, metrics = %args.metrics_bind_address, "binding the HTTP listeners failed");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(async move {
        if let Err(err) = server::serve(listeners).await {
            error!(error = %err, "HTTP server failed");
        }
    });
    info!(health = %args.health_bind_address, metrics = %args.metrics_bind_address, "HTTP endpoints listening");

    let identity = args.instance.clone().unwrap_or_else(default_identity);
    let settings = Settings {
        rotators: Arc::new(CloudProviders::from_env(metrics.clone()).await),
        clock: Arc::new(SystemClock),
        metrics,
        ready: ready.clone(),
        instance: Some(identity.clone()),
        namespaces: args
            .namespaces
            .into_iter()
            .filter(|namespace| !namespace.is_empty())
            .collect(),
    };
    if !args.leader_elect {
        settings.metrics.set_leader(true);
        controller::run(client, settings, shutdown_signal()).await;
        return ExitCode::SUCCESS;
    }

    let lease = LeaseSettings {
        namespace: args.leader_election_namespace,
        name: args.leader_election_lease_name,
        identity,
        duration_seconds: args.leader_election_lease_seconds,
    };
    // A standby replica is healthy and ready; it only does not reconcile.
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    match leader::run_when_leader(client, lease, settings, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %err, "leader election failed; check the Lease RBAC and --leader-election-namespace");
            ExitCode::FAILURE
        }
    }
}

/// Returns the host name with a random suffix, so that two processes on one host differ.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let host = if host.is_empty() { "rotor".to_owned() } else { host };
    format!("{host}-{}", &suffix[..8])
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                error!(error = %err, "installing the SIGTERM handler failed");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => info!(signal = "SIGTERM", "shutting down"),
        _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "shutting down"),
    }
}
