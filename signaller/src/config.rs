//! Every setting of the `signaller` binary: a clap flag with an `RVC_`
//! environment-variable fallback and a `--help` line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use service::settings::SharedSettings;

/// Signaller: relays WebRTC signals and chat between the two peers of a
/// room. Any number of nodes may run against one Redis; a room's two peers
/// may sit on different nodes.
#[derive(Debug, Clone, Parser)]
#[command(name = "signaller", version, about)]
pub struct Config {
    /// Address to listen on (HTTP and WebSocket).
    #[arg(long, env = "RVC_LISTEN", default_value = "0.0.0.0:4000")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub shared: SharedSettings,

    /// Id of this node (unique per signaller process). Default: a fresh ULID.
    #[arg(long, env = "RVC_NODE_ID")]
    pub node_id: Option<String>,

    /// How often this node refreshes its liveness key in Redis, and how
    /// often it checks the nodes its sockets' peers are on, ms.
    #[arg(long, env = "RVC_HEARTBEAT_MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,

    /// Lifetime of the liveness key, ms: a node silent this long is dead,
    /// and its sockets' peers are told within about this plus one
    /// `--heartbeat-ms`.
    #[arg(long, env = "RVC_NODE_TTL_MS", default_value_t = 3000)]
    pub node_ttl_ms: u64,

    /// Lifetime of a room's log and member list after its last message, s.
    /// Keep it above the ticket lifetime: the log also remembers that a
    /// room is closed.
    #[arg(long, env = "RVC_ROOM_LOG_TTL_SECS", default_value_t = 1800)]
    pub room_log_ttl_secs: u64,

    /// A socket that sends nothing (not even a pong) for this long is closed
    /// with 4408, s. The server pings at a third of it.
    #[arg(long, env = "RVC_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Frames per second a socket may send on average.
    #[arg(long, env = "RVC_RATE_LIMIT", default_value_t = 50)]
    pub rate_limit: u32,

    /// Frames a socket may send in one burst.
    #[arg(long, env = "RVC_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,
}

impl Config {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub fn node_ttl(&self) -> Duration {
        Duration::from_millis(self.node_ttl_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn room_log_ttl(&self) -> Duration {
        Duration::from_secs(self.room_log_ttl_secs)
    }

    /// How long after a peer's node dies its partner is told, at most
    /// (plus Redis and network latency): the liveness key outlives the last
    /// heartbeat by the TTL, and the check runs once per heartbeat.
    pub fn node_loss_bound(&self) -> Duration {
        self.node_ttl() + self.heartbeat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::parse_from(["signaller"]);
        assert_eq!(c.listen.port(), 4000);
        assert_eq!(c.shared.allowed_origins, vec!["*".to_string()]);
        assert_eq!(c.node_loss_bound(), Duration::from_millis(4000));
    }

    #[test]
    fn origins_are_comma_separated() {
        let c = Config::parse_from([
            "signaller",
            "--allowed-origins",
            "https://a.example,http://localhost:3000",
        ]);
        assert_eq!(c.shared.allowed_origins.len(), 2);
    }
}
