//! HTTP endpoints for probes and Prometheus: `/healthz`, `/readyz` and `/metrics`. Does
//! network IO on the addresses it is given.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

#[derive(Clone, Debug)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Binds the health and metrics listeners. When both addresses are equal, one listener
/// serves all endpoints.
pub async fn bind(
    health: SocketAddr,
    metrics_addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<Vec<(TcpListener, Router)>> {
    let state = AppState { metrics, ready };
    let health_routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let metrics_routes = Router::new().route("/metrics", get(metrics_text));
    if health == metrics_addr {
        let router = health_routes.merge(metrics_routes).with_state(state);
        return Ok(vec![(TcpListener::bind(health).await?, router)]);
    }
    Ok(vec![
        (
            TcpListener::bind(health).await?,
            health_routes.with_state(state.clone()),
        ),
        (TcpListener::bind(metrics_addr).await?, metrics_routes.with_state(state)),
    ])
}

/// Serves the listeners from [`bind`] until the process ends.
pub async fn serve(listeners: Vec<(TcpListener, Router)>) -> std::io::Result<()> {
    let servers = listeners
        .into_iter()
        .map(|(listener, router)| async move { axum::serve(listener, router).await });
    futures::future::try_join_all(servers).await.map(|_| ())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "encoding metrics failed".to_owned(),
        ),
    }
}
