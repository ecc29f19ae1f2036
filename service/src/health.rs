//! `/healthz` (the process runs) and `/readyz` (it can serve: Redis answers,
//! the shared ticket secret is still its own, and it is not draining),
//! shared by every role.
//!
//! Redis's answer is cached for [`REDIS_CHECK_EVERY`]: a flood of `/readyz`
//! requests costs Redis at most one `PING` a second per process, and
//! concurrent requests wait for the one check in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::{extract::State, http::StatusCode, routing::get, Router};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long Redis's last answer to the readiness check is reused.
pub const REDIS_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What readiness depends on.
#[derive(Clone)]
pub struct Health {
    redis: fred::prelude::Client,
    draining: Arc<AtomicBool>,
    /// When Redis was last checked, and whether it answered.
    last_check: Arc<Mutex<Option<(Instant, bool)>>>,
}

impl Health {
    pub fn new(redis: fred::prelude::Client) -> Self {
        Health {
            redis,
            draining: Arc::new(AtomicBool::new(false)),
            last_check: Arc::new(Mutex::new(None)),
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
        self.readiness().await.is_ok()
    }

    /// Ready, or why not: draining, the shared ticket secret changed under
    /// this process, or Redis not answering (checked in that order, so the
    /// cheap flags spare Redis a check).
    pub async fn readiness(&self) -> Result<(), &'static str> {
        if self.is_draining() {
            Err("draining")
        } else if crate::ticket_secret::changed() {
            Err("ticket secret changed in Redis")
        } else if self.redis_answers().await {
            Ok(())
        } else {
            Err("redis unreachable")
        }
    }

    /// Whether Redis answered its last check, made at most
    /// [`REDIS_CHECK_EVERY`] ago (checked now otherwise).
    async fn redis_answers(&self) -> bool {
        let mut last = self.last_check.lock().await;
        if let Some((at, answered)) = *last {
            if at.elapsed() < REDIS_CHECK_EVERY {
                return answered;
            }
        }
        let answered = crate::redis_conn::is_reachable(&self.redis).await;
        *last = Some((Instant::now(), answered));
        answered
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
    match health.readiness().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
