//! The settings every role shares, flattened into each binary's clap
//! `Config`, so they have one name, one variable and one meaning everywhere.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::address_limit::{AddressLimitSettings, SOCKET_LEASE};
use crate::client_addr::TrustedProxies;
use crate::listener::ConnectionSettings;
use crate::logging::LogFormat;

/// Redis, the ticket secret, allowed origins, connection limits and the log
/// format.
#[derive(Debug, Clone, Args)]
pub struct SharedSettings {
    /// Redis URL (redis://host:port, rediss://, or redis-cluster://host:port).
    /// rediss:// verifies the server's certificate (system roots, or
    /// --redis-ca-file).
    #[arg(long, env = "RVC_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// PEM file of the certificate authority (or authorities) that signed
    /// the Redis server's certificate, for rediss:// with a private CA. When
    /// set, only these are trusted, not the system roots.
    #[arg(long, env = "RVC_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// HMAC secret for room tickets, the same for matcher and signaller (at
    /// least 32 bytes). When unset, a random one is shared through Redis.
    #[arg(long, env = "RVC_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Option<String>,

    /// Read the ticket secret from this file instead (trailing newline
    /// ignored), so it need not be on the command line or in the
    /// environment.
    #[arg(long, env = "RVC_TICKET_SECRET_FILE", conflicts_with = "ticket_secret")]
    pub ticket_secret_file: Option<PathBuf>,

    /// Allowed browser origins for CORS and WebSocket upgrades, comma
    /// separated; `*` allows any.
    #[arg(
        long,
        env = "RVC_ALLOWED_ORIGINS",
        default_value = "*",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Serve /metrics, /readyz and /healthz on this address (for Prometheus
    /// and the orchestrator), and no longer /metrics and /readyz on the
    /// public one.
    #[arg(long, env = "RVC_INTERNAL_LISTEN")]
    pub internal_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub connections: ConnectionSettings,

    /// Log format: text or json (level from RUST_LOG).
    #[arg(long, env = "RVC_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Proxies whose X-Forwarded-For is believed, comma separated (CIDR
    /// networks or addresses). Empty: the TCP peer is the client.
    #[arg(
        long,
        env = "RVC_TRUSTED_PROXIES",
        default_value = "",
        value_parser = TrustedProxies::parse
    )]
    pub trusted_proxies: TrustedProxies,

    /// Requests per second one client address may make on average, over
    /// every gateway and node together (register POSTs, WebSocket opens,
    /// registrations); 0: no limit.
    #[arg(long, env = "RVC_IP_RATE_LIMIT", default_value_t = 50)]
    pub ip_rate_limit: u32,

    /// Requests one client address may make at once (see --ip-rate-limit).
    #[arg(long, env = "RVC_IP_RATE_BURST", default_value_t = 200)]
    pub ip_rate_burst: u32,

    /// Sockets one client address may hold open on this service, over
    /// every gateway or node together; 0: no cap.
    #[arg(long, env = "RVC_MAX_SOCKETS_PER_IP", default_value_t = 500)]
    pub max_sockets_per_ip: u32,
}

impl SharedSettings {
    /// The per-address limits as configured.
    fn address_limits(&self) -> AddressLimitSettings {
        AddressLimitSettings {
            rate: self.ip_rate_limit,
            burst: self.ip_rate_burst,
            max_sockets: self.max_sockets_per_ip,
            lease: SOCKET_LEASE,
        }
    }

    /// Start the per-address limits of node `node` of `service`, pushing
    /// their lease-renewal task onto `tasks`.
    pub fn start_address_limits(
        &self,
        redis: &fred::prelude::Client,
        service: &'static str,
        node: &str,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> crate::address_limit::AddressLimits {
        let (limits, renewer) = crate::address_limit::AddressLimits::start(
            redis.clone(),
            self.address_limits(),
            service,
            node,
        );
        tasks.push(renewer);
        limits
    }
}
