//! The settings every role shares, flattened into each binary's clap
//! `Config`, so they have one name, one variable and one meaning everywhere.

use clap::Args;

use crate::logging::LogFormat;

/// Redis, the ticket secret, allowed origins and the log format.
#[derive(Debug, Clone, Args)]
pub struct SharedSettings {
    /// Redis URL (redis://host:port, rediss://, or redis-cluster://host:port).
    #[arg(long, env = "RVC_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// HMAC secret for room tickets, the same for matcher and signaller (at
    /// least 32 bytes). When unset, a random one is shared through Redis.
    #[arg(long, env = "RVC_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Option<String>,

    /// Allowed browser origins for CORS and WebSocket upgrades, comma
    /// separated; `*` allows any.
    #[arg(
        long,
        env = "RVC_ALLOWED_ORIGINS",
        default_value = "*",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Log format: text or json (level from RUST_LOG).
    #[arg(long, env = "RVC_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}
