//! An in-memory emulator of the Google Cloud Secret Manager v1 REST API, for tests that run
//! against 127.0.0.1.
//!
//! [`Emulator::start`] serves it in-process; the `gcp-secret-manager-emulator` binary serves it
//! from the command line. README.md lists what is implemented and how it differs from Google.

mod checksum;
pub mod error;
mod filter;
mod http;
mod json;
mod page;
mod store;
mod validate;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Builds the router that serves the API, with fresh empty state.
pub fn router() -> Router {
    let store: http::SharedStore = Arc::new(Mutex::new(store::Store::new()));
    Router::new().fallback(http::handle).with_state(store)
}

/// Rejects a listen address outside the loopback range unless `allow_non_loopback` is set,
/// because the emulator has no authentication.
pub fn check_listen_address(address: SocketAddr, allow_non_loopback: bool) -> Result<(), String> {
    if address.ip().is_loopback() || allow_non_loopback {
        Ok(())
    } else {
        Err(format!(
            "rejected listen address {address}: it is not a loopback address and the emulator has no \
             authentication. Use 127.0.0.1 or [::1], or pass --allow-non-loopback."
        ))
    }
}

/// An emulator serving on a local TCP port until [`Emulator::stop`] is called or it is dropped.
#[derive(Debug)]
pub struct Emulator {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Emulator {
    /// Binds `address` (port 0 picks a free port) and serves the API on a Tokio task.
    pub async fn start(address: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let local_addr = listener.local_addr()?;
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

    /// Returns the base URL to pass to a client, for example `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.local_addr)
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
        for address in ["127.0.0.1:0", "127.1.2.3:8080", "[::1]:0"] {
            let address: SocketAddr = address.parse().expect("valid address");
            assert!(check_listen_address(address, false).is_ok(), "{address}");
        }
    }

    #[test]
    fn other_addresses_need_the_flag() {
        let address: SocketAddr = "0.0.0.0:8080".parse().expect("valid address");
        let error = check_listen_address(address, false).expect_err("wildcard address");
        assert!(error.contains("--allow-non-loopback"), "{error}");
        assert!(check_listen_address(address, true).is_ok());
    }
}
