//! The ticket secret this node verifies native joins with.
//!
//! Configured (`--ticket-secret`), it is known at start. Otherwise it is
//! the one shared through Redis (`service::ticket_secret`), fetched in the
//! background so that the node serves `/healthz` and legacy clients even
//! while Redis is not reachable yet; native joins are answered
//! `unavailable` until it is known. After every reconnect the shared secret
//! is put back (`SET NX`), in case Redis restarted empty.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fred::prelude::*;
use tokio::task::JoinHandle;

/// The ticket secret, once known.
#[derive(Clone, Default)]
pub struct TicketSecret(Arc<OnceLock<Vec<u8>>>);

impl TicketSecret {
    pub fn get(&self) -> Option<&[u8]> {
        self.0.get().map(Vec::as_slice)
    }

    /// A configured secret (already checked).
    pub fn configured(secret: Vec<u8>) -> TicketSecret {
        let cell = OnceLock::new();
        let _ = cell.set(secret);
        TicketSecret(Arc::new(cell))
    }

    /// The secret shared through Redis: fetched (or made) in the background,
    /// then reasserted after each reconnect.
    pub fn shared(redis: Client) -> (TicketSecret, JoinHandle<()>) {
        let secret = TicketSecret::default();
        let cell = secret.0.clone();
        let task = tokio::spawn(async move {
            let mut reconnects = redis.reconnect_rx();
            let value = loop {
                match service::ticket_secret::resolve(None, &redis).await {
                    Ok(value) => break value,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot use the shared ticket secret; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            let value = cell.get_or_init(|| value).clone();
            while let Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) =
                reconnects.recv().await
            {
                service::ticket_secret::reassert(&redis, &value).await;
            }
        });
        (secret, task)
    }
}
