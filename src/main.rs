//! The `rotor` binary: `rotor run` runs the controller, `rotor crd` prints the CRD.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Args, Parser, Subcommand};
use rotor::controller::{self, Settings, SystemClock};
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
    #[arg(long, env = "ROTOR_LOG_JSON")]
    log_json: bool,

    /// Name of this replica in Events, usually the pod name.
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,

    /// Watch only this namespace instead of all namespaces.
    #[arg(long, env = "ROTOR_NAMESPACE")]
    namespace: Option<String>,
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

    let settings = Settings {
        rotators: Arc::new(CloudProviders::from_env().await),
        clock: Arc::new(SystemClock),
        metrics,
        ready,
        instance: args.instance,
        namespace: args.namespace,
    };
    controller::run(client, settings, shutdown_signal()).await;
    ExitCode::SUCCESS
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
