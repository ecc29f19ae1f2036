//! `/healthz` (the process runs) and `/readyz` (it can serve: Redis answers
//! and it is not draining), shared by every role.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::{extract::State, http::StatusCode, routing::get, Router};

/// What readiness depends on.
#[derive(Clone)]
pub struct Health {
    redis: fred::prelude::Client,
    draining: Arc<AtomicBool>,
}

impl Health {
    pub fn new(redis: fred::prelude::Client) -> Self {
        Health {
            redis,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Report not-ready from now on: the node is draining.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub async fn is_ready(&self) -> bool {
        !self.is_draining()
            && !crate::ticket_secret::changed()
            && crate::redis_conn::is_reachable(&self.redis).await
    }
}

/// The `/healthz` and `/readyz` routes.
pub fn routes<S: Clone + Send + Sync + 'static>(health: Health) -> Router<S> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if crate::ticket_secret::changed() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "ticket secret changed in Redis",
        )
    } else if health.is_ready().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable")
    }
}
