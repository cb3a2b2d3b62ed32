//! Command-line entry point: serves the emulator over HTTPS until SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// In-memory emulator of the Azure Key Vault secrets REST API, over HTTPS.
///
/// Prints `listening on https://ADDRESS` as its first line on standard output once it
/// accepts connections, and logs to standard error (set the level with RUST_LOG, default
/// info).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on, as IP:PORT. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Allow a --listen address outside 127.0.0.0/8 and ::1. The emulator accepts any
    /// bearer token, so anyone who can reach the address can read every secret.
    #[arg(long)]
    allow_non_loopback: bool,

    /// PEM file with the server certificate, followed by any intermediate certificates.
    #[arg(long)]
    tls_cert: PathBuf,

    /// PEM file with the server certificate's private key.
    #[arg(long)]
    tls_key: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let args = Args::parse();

    if let Err(message) = azure_key_vault_emulator::check_listen_address(args.listen, args.allow_non_loopback) {
        tracing::error!("{message}");
        return ExitCode::FAILURE;
    }
    let config = match azure_key_vault_emulator::tls_config_from_files(&args.tls_cert, &args.tls_key) {
        Ok(config) => config,
        Err(message) => {
            tracing::error!("failed to load the TLS certificate: {message}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(address = %args.listen, %error, "failed to bind the listen address");
            return ExitCode::FAILURE;
        }
    };
    let listener = match azure_key_vault_emulator::TlsListener::new(listener, config) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "failed to read the bound address");
            return ExitCode::FAILURE;
        }
    };
    let address = match axum::serve::Listener::local_addr(&listener) {
        Ok(address) => address,
        Err(error) => {
            tracing::error!(%error, "failed to read the bound address");
            return ExitCode::FAILURE;
        }
    };

    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on https://{address}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        tracing::warn!("failed to write the listen address to standard output");
    }
    drop(stdout);
    tracing::info!(%address, "emulator started");

    let served = axum::serve(listener, azure_key_vault_emulator::router())
        .with_graceful_shutdown(shutdown_signal())
        .await;
    match served {
        Ok(()) => {
            tracing::info!(%address, "emulator stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%address, %error, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "failed to listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}
