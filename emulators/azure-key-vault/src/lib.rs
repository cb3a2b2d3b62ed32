//! An in-memory emulator of the Azure Key Vault secrets REST API over HTTPS, for tests that
//! run against 127.0.0.1.
//!
//! [`Emulator::start`] serves it in-process; the `azure-key-vault-emulator` binary serves it
//! from the command line. README.md lists what is implemented and how it differs from Key
//! Vault.

pub mod error;
mod http;
mod store;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

pub use http::CHALLENGE;

/// Time a client gets to finish the TLS handshake before its connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the router that serves the API, with fresh empty state.
pub fn router() -> Router {
    let store: http::SharedStore = Arc::new(Mutex::new(store::Store::new()));
    Router::new().fallback(http::handle).with_state(store)
}

/// Rejects a listen address outside the loopback range unless `allow_non_loopback` is set,
/// because the emulator accepts any bearer token.
pub fn check_listen_address(address: SocketAddr, allow_non_loopback: bool) -> Result<(), String> {
    if address.ip().is_loopback() || allow_non_loopback {
        Ok(())
    } else {
        Err(format!(
            "rejected listen address {address}: it is not a loopback address and the emulator accepts \
             any bearer token. Use 127.0.0.1 or [::1], or pass --allow-non-loopback."
        ))
    }
}

/// Builds the TLS server configuration from a PEM certificate chain (server certificate
/// first) and a PEM private key (PKCS#8, PKCS#1 or SEC1). Offers only HTTP/1.1 by ALPN.
pub fn tls_config(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(certificate_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("invalid PEM certificate: {error}"))?;
    if chain.is_empty() {
        return Err("the certificate file contains no PEM certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| format!("invalid PEM private key: {error}"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("failed to configure TLS versions: {error}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("the certificate and key are not usable: {error}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads the certificate and key files and builds the TLS configuration with [`tls_config`].
pub fn tls_config_from_files(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ServerConfig>, String> {
    let certificate_pem =
        std::fs::read(certificate).map_err(|error| format!("failed to read {}: {error}", certificate.display()))?;
    let key_pem = std::fs::read(key).map_err(|error| format!("failed to read {}: {error}", key.display()))?;
    tls_config(&certificate_pem, &key_pem)
}

/// A listener that yields TLS streams. A background task accepts TCP connections and runs
/// each handshake on its own task, so that a slow client does not hold up the others.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    streams: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Wraps a bound TCP listener. The accept task ends when the `TlsListener` is dropped.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (sender, streams) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = sender.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        // Probes without the CA fail here, so failures are not warnings.
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local_addr, streams })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.streams.recv().await {
            Some(accepted) => accepted,
            // The accept task keeps a sender for as long as this receiver exists.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// An emulator serving HTTPS on a local TCP port until [`Emulator::stop`] is called or it is
/// dropped.
#[derive(Debug)]
pub struct Emulator {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Emulator {
    /// Binds `address` (port 0 picks a free port) and serves the API over TLS with `config`
    /// on a Tokio task.
    pub async fn start(address: SocketAddr, config: Arc<ServerConfig>) -> io::Result<Self> {
        let listener = TlsListener::new(TcpListener::bind(address).await?, config)?;
        let local_addr = listener.local_addr;
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router())
                .with_graceful_shutdown(async move {
                    // Both a stop request and a dropped sender end the server.
                    let _ = shutdown_signal.await;
                })
                .await
        });
        Ok(Self {
            local_addr,
            shutdown: Some(shutdown),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the vault URL to pass to a client, for example `https://localhost:41234`.
    /// It names `localhost`, which the test certificates cover, with the bound port.
    pub fn vault_url(&self) -> String {
        format!("https://localhost:{}", self.local_addr.port())
    }

    /// Stops accepting connections and waits for open requests to finish.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.task).await.map_err(io::Error::other)?
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_allowed() {
        for address in ["127.0.0.1:0", "127.1.2.3:8443", "[::1]:0"] {
            let address: SocketAddr = address.parse().expect("valid address");
            assert!(check_listen_address(address, false).is_ok(), "{address}");
        }
    }

    #[test]
    fn other_addresses_need_the_flag() {
        let address: SocketAddr = "0.0.0.0:8443".parse().expect("valid address");
        let error = check_listen_address(address, false).expect_err("wildcard address");
        assert!(error.contains("--allow-non-loopback"), "{error}");
        assert!(check_listen_address(address, true).is_ok());
    }

    #[test]
    fn tls_config_rejects_missing_certificate() {
        let error = tls_config(b"", b"").expect_err("no certificate");
        assert!(error.contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn tls_config_accepts_test_fixture() {
        let certificate = include_bytes!("../tests/fixtures/server.crt");
        let key = include_bytes!("../tests/fixtures/server.key");
        let config = tls_config(certificate, key).expect("builds the configuration");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
