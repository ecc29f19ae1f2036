//! Why a role could not start. Each error names the setting at fault, so
//! the binary can print it as one clear line.

use std::net::SocketAddr;

/// A start-up failure of any role.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--redis-url: {0}")]
    RedisUrl(#[from] crate::redis_conn::BadRedisUrl),
    #[error("{0}")]
    Secret(#[from] crate::ticket_secret::SecretError),
    #[error("--listen {addr}: cannot listen: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A role-specific setting out of range.
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// The shared settings of a role, checked before it binds anything: where
/// Redis is (and how to reach it safely), and the ticket secret when one is
/// configured.
pub struct Checked {
    pub redis: crate::redis_conn::RedisTarget,
    /// `None`: the secret is shared through Redis.
    pub secret: Option<Vec<u8>>,
}

impl Checked {
    pub fn new(shared: &crate::settings::SharedSettings) -> Result<Checked, StartError> {
        shared.connections.validate()?;
        Ok(Checked {
            redis: crate::redis_conn::RedisTarget::from_settings(shared)?,
            secret: crate::ticket_secret::configured(shared)?,
        })
    }

    /// Connect to Redis (TLS verified first, for `rediss://`) and list the
    /// role's metrics, Redis reconnects included.
    pub async fn connect(
        &self,
        role: crate::metrics::Role,
    ) -> Result<fred::prelude::Client, StartError> {
        self.redis.check_tls().await?;
        let redis = crate::redis_conn::connect(&self.redis).await?;
        crate::metrics::register(role);
        crate::metrics::count_reconnects(&redis);
        Ok(redis)
    }
}
