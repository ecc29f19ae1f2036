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

    /// Lifetime of a live room's log and member list after its last
    /// message, s; also how long a closed room's tombstone stays. Keep it
    /// above the ticket lifetime: the tombstone is what refuses a ticket
    /// for a closed room.
    #[arg(long, env = "RVC_ROOM_LOG_TTL_SECS", default_value_t = 1800)]
    pub room_log_ttl_secs: u64,

    /// Lifetime of a closed room's log, s: once someone left, the log is
    /// deleted this long after (only a one-field tombstone stays).
    #[arg(long, env = "RVC_CLOSED_ROOM_TTL_SECS", default_value_t = wire::limits::CLOSED_ROOM_TTL_SECS)]
    pub closed_room_ttl_secs: u64,

    /// Most bytes of events one room's log keeps (signals, chat and joins,
    /// as stored). Past it a signal or chat is refused with
    /// `room_log_full`; the last 16 KiB are kept for joins. At least 32 KiB.
    #[arg(long, env = "RVC_ROOM_LOG_BUDGET_BYTES", default_value_t = wire::limits::ROOM_LOG_BUDGET_BYTES as u64)]
    pub room_log_budget_bytes: u64,

    /// Most rooms one user may be in at once (any sockets, any nodes); a
    /// join past it is refused with `too_many_rooms`.
    #[arg(long, env = "RVC_MAX_ROOMS_PER_USER", default_value_t = wire::limits::MAX_ROOMS_PER_USER as u64)]
    pub max_rooms_per_user: u64,

    /// A socket that sends nothing (not even a pong) for this long is closed
    /// with 4408, s. The server pings at a third of it.
    #[arg(long, env = "RVC_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// How long a native session whose socket dropped (or whose node died)
    /// may resume on a new socket, on any node, s. Its peer is told
    /// `peer-reconnecting` meanwhile, and `peer-left` (reason `timeout`)
    /// once it passes.
    #[arg(long, env = "RVC_RESUME_GRACE_SECS", default_value_t = 15)]
    pub resume_grace_secs: u64,

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

    pub fn resume_grace(&self) -> Duration {
        Duration::from_secs(self.resume_grace_secs)
    }

    pub fn room_log_ttl(&self) -> Duration {
        Duration::from_secs(self.room_log_ttl_secs)
    }

    /// What one room and one user may hold in Redis.
    pub fn room_limits(&self) -> crate::room_log::Limits {
        crate::room_log::Limits {
            ttl: self.room_log_ttl(),
            closed_ttl: Duration::from_secs(self.closed_room_ttl_secs),
            budget_bytes: self.room_log_budget_bytes,
            max_rooms_per_user: self.max_rooms_per_user,
        }
    }

    /// The smallest `--room-log-budget-bytes`: the join reserve and one
    /// signal of the largest size.
    pub const MIN_ROOM_LOG_BUDGET: u64 =
        (wire::limits::ROOM_LOG_JOIN_RESERVE_BYTES + wire::limits::MAX_SIGNAL_BYTES) as u64;

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
        let limits = c.room_limits();
        assert_eq!(limits.budget_bytes, 256 * 1024);
        assert_eq!(limits.relay_budget(), 240 * 1024);
        assert_eq!(limits.closed_ttl, Duration::from_secs(60));
        assert_eq!(limits.max_rooms_per_user, 3);
        assert_eq!(c.resume_grace(), Duration::from_secs(15));
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
