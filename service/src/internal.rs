//! The internal listener (`--internal-listen`): `/metrics`, `/readyz` and
//! `/healthz` on an address of their own, for Prometheus and the
//! orchestrator, kept off the public port (where they would tell anyone
//! the node's load and state, and `/readyz` would be one more thing to
//! flood). Without it, the public port serves them as before.

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::health::Health;
use crate::listener::ConnectionSettings;
use crate::settings::SharedSettings;
use crate::startup::StartError;

/// The paths that move to the internal listener when there is one.
pub const INTERNAL_PATHS: [&str; 2] = ["/metrics", "/readyz"];

/// A running internal listener.
pub struct Internal {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// The internal routes.
pub fn router(health: Health) -> Router {
    crate::health::routes(health).merge(crate::metrics::routes())
}

/// `app` as the public port serves it: without [`INTERNAL_PATHS`] (404)
/// when an internal listener is configured, unchanged otherwise.
pub fn public(app: Router, settings: &SharedSettings) -> Router {
    if settings.internal_listen.is_some() {
        app.layer(middleware::from_fn(hide_internal))
    } else {
        app
    }
}

async fn hide_internal(request: Request, next: Next) -> Response {
    if INTERNAL_PATHS.contains(&request.uri().path()) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    next.run(request).await
}

/// Bind the internal listener, if configured (a bad address is a start
/// error naming `--internal-listen`), and serve it until `stop`.
pub async fn start(
    settings: &SharedSettings,
    health: Health,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<Internal>, StartError> {
    let Some(addr) = settings.internal_listen else {
        return Ok(None);
    };
    let cannot = |source: std::io::Error| StartError::Invalid {
        setting: "--internal-listen",
        reason: format!("{addr}: cannot listen: {source}"),
    };
    let listener = TcpListener::bind(addr).await.map_err(cannot)?;
    let addr = listener.local_addr().map_err(cannot)?;
    let app = router(health);
    let limits = ConnectionSettings::default();
    let task =
        tokio::spawn(async move { crate::listener::serve(listener, app, &limits, stop).await });
    tracing::info!(%addr, "internal listener (metrics, readiness)");
    Ok(Some(Internal { addr, task }))
}
