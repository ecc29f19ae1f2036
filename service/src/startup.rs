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
