//! The matcher gateway: WebSocket + HTTP front door. It holds sockets and
//! nothing else; registers go to the stream, assignments and chat come back
//! through this gateway's inbox channel.

mod connection;
mod delivery;
pub mod heartbeat;
mod http;
mod inbox;
mod register;
mod registry;
mod web;

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use service::health::Health;
use service::origin::AllowedOrigins;
use service::shutdown::Shutdown;

pub use registry::{ConnHandle, Outbound, Registry, Waiting};

use crate::config::Config;
use crate::scripts::Scripts;

/// Settings of a gateway, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub signaller_url: Option<String>,
    pub web_dir: Option<std::path::PathBuf>,
    pub origins: AllowedOrigins,
    pub heartbeat: Duration,
    pub gateway_ttl: Duration,
    pub ticket_ttl: Duration,
    pub idle_timeout: Duration,
    pub rate_limit: u32,
    pub drain_grace: Duration,
}

impl From<&Config> for GatewaySettings {
    fn from(c: &Config) -> Self {
        GatewaySettings {
            signaller_url: c.signaller_url.clone(),
            web_dir: c.web_dir.clone(),
            origins: AllowedOrigins::new(&c.shared.allowed_origins),
            heartbeat: Config::ms(c.heartbeat_ms.max(10)),
            gateway_ttl: Config::ms(c.gateway_ttl_ms.max(c.heartbeat_ms * 2)),
            ticket_ttl: Duration::from_secs(c.ticket_ttl_secs.max(1)),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs.max(1)),
            rate_limit: c.rate_limit.max(1),
            drain_grace: Duration::from_secs(c.drain_grace_secs),
        }
    }
}

/// Everything the gateway's handlers share.
pub struct Gateway {
    /// This gateway's id: names its inbox and its liveness key.
    pub id: String,
    pub redis: Client,
    pub scripts: Scripts,
    pub secret: Vec<u8>,
    pub settings: GatewaySettings,
    pub conns: Registry,
    pub health: Health,
    /// Fires on a graceful drain.
    pub drain: Shutdown,
    /// Fires on a hard kill (tests): tasks stop without cleaning up.
    pub kill: Shutdown,
    /// Set when Redis reconnected or the heartbeat lapsed; the heartbeat
    /// task restores this gateway's state until it succeeds.
    pub needs_restore: std::sync::atomic::AtomicBool,
}

pub type SharedGateway = Arc<Gateway>;

pub use heartbeat::run as run_heartbeat;
pub use http::router;
pub use inbox::run as run_inbox;
pub use register::{register, RegisterOutcome};

/// After Redis came back (possibly empty), or after workers presumed this
/// gateway dead and purged its users, put its state back: liveness, the
/// shared secret, where its users are, notices that wait for them, and who
/// waits in the pool. Idempotent; stops at the first Redis error so that the
/// heartbeat task tries again on its next tick.
pub async fn restore(gw: &Gateway) -> Result<(), fred::error::Error> {
    service::ticket_secret::reassert(&gw.redis, &gw.secret).await;
    if heartbeat::beat(gw).await == heartbeat::Beat::Failed {
        return Err(fred::error::Error::new(
            fred::error::ErrorKind::IO,
            "heartbeat failed",
        ));
    }
    let mut requeued = 0;
    for (user, conn, _) in gw.conns.snapshot() {
        connection::claim(gw, &user, &conn.conn_id, false).await?;
        // A notice first: a user who was matched must not wait again.
        delivery::deliver_pending(gw, &user, &conn).await;
        if let Some(w) = gw.conns.waiting(&user) {
            register::requeue(gw, &user, &w).await?;
            requeued += 1;
        }
    }
    tracing::info!(
        sockets = gw.conns.len(),
        requeued,
        "gateway state restored in Redis"
    );
    Ok(())
}
