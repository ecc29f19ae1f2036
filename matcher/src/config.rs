//! Every setting of the `matcher` binary: a clap flag with an `RVC_`
//! environment-variable fallback and a `--help` line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use service::settings::SharedSettings;

/// Which parts of the matcher this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// WebSocket + HTTP gateway: holds sockets only.
    Gateway,
    /// Pairing worker: reads the register stream, pairs users.
    Worker,
    /// Both in one process.
    All,
}

/// Matcher: pairs strangers at random and tells them their room.
#[derive(Debug, Clone, Parser)]
#[command(name = "matcher", version, about, args_override_self = true)]
pub struct Config {
    /// Which role(s) to run.
    #[arg(long, env = "RVC_ROLE", value_enum, default_value = "all")]
    pub role: Role,

    /// Address the gateway listens on (HTTP and WebSocket).
    #[arg(long, env = "RVC_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub shared: SharedSettings,

    /// Signaller WebSocket URL given to native clients in `matched`. Default:
    /// ws://<host the client used, without port>:4000/ws.
    #[arg(long, env = "RVC_SIGNALLER_URL")]
    pub signaller_url: Option<String>,

    /// Serve the web page from this folder instead of the copy built into the binary.
    #[arg(long, env = "RVC_WEB_DIR")]
    pub web_dir: Option<std::path::PathBuf>,

    /// Gateway id (unique per gateway process). Default: a fresh ULID.
    #[arg(long, env = "RVC_GATEWAY_ID")]
    pub gateway_id: Option<String>,

    /// How often a gateway refreshes its liveness in Redis, ms.
    #[arg(long, env = "RVC_HEARTBEAT_MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,

    /// A gateway silent this long is dead: its users are purged, ms.
    #[arg(long, env = "RVC_GATEWAY_TTL_MS", default_value_t = 5000)]
    pub gateway_ttl_ms: u64,

    /// How often a worker purges the users of dead gateways, ms.
    #[arg(long, env = "RVC_PURGE_INTERVAL_MS", default_value_t = 1000)]
    pub purge_interval_ms: u64,

    /// First idle back-off of a worker with fewer than two waiting, ms.
    #[arg(long, env = "RVC_BACKOFF_INITIAL_MS", default_value_t = 10)]
    pub backoff_initial_ms: u64,

    /// Longest idle back-off of a worker, ms.
    #[arg(long, env = "RVC_BACKOFF_MAX_MS", default_value_t = 5000)]
    pub backoff_max_ms: u64,

    /// A register entry read by a worker and not acknowledged for this long
    /// is taken over by another worker (XAUTOCLAIM), ms.
    #[arg(long, env = "RVC_CLAIM_IDLE_MS", default_value_t = 5000)]
    pub claim_idle_ms: u64,

    /// Register entries a worker reads at once.
    #[arg(long, env = "RVC_READ_BATCH", default_value_t = 256)]
    pub read_batch: u64,

    /// Most pairs made by one run of the pairing script.
    #[arg(long, env = "RVC_PAIRS_PER_CALL", default_value_t = 64)]
    pub pairs_per_call: usize,

    /// Lifetime of a room record, s.
    #[arg(long, env = "RVC_ROOM_TTL_SECS", default_value_t = 300)]
    pub room_ttl_secs: u64,

    /// How long the partner a user just left is avoided, s (0: never).
    #[arg(long, env = "RVC_LAST_PARTNER_SECS", default_value_t = 60)]
    pub last_partner_secs: u64,

    /// A user registered over HTTP whose socket has not connected after this
    /// long is dropped from the pool, ms.
    #[arg(long, env = "RVC_SOCKET_GRACE_MS", default_value_t = 10_000)]
    pub socket_grace_ms: u64,

    /// How long an undelivered `matched` notice is kept, s.
    #[arg(long, env = "RVC_NOTICE_TTL_SECS", default_value_t = 60)]
    pub notice_ttl_secs: u64,

    /// Lifetime of a signaller join ticket, s.
    #[arg(long, env = "RVC_TICKET_TTL_SECS", default_value_t = 600)]
    pub ticket_ttl_secs: u64,

    /// A socket that sends nothing (not even a pong) for this long is closed, s.
    #[arg(long, env = "RVC_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Frames per second a socket may send on average (burst: 4x).
    #[arg(long, env = "RVC_RATE_LIMIT", default_value_t = 20)]
    pub rate_limit: u32,

    /// On SIGTERM, how long sockets are given to move before the gateway exits, s.
    #[arg(long, env = "RVC_DRAIN_GRACE_SECS", default_value_t = 10)]
    pub drain_grace_secs: u64,
}

impl Config {
    pub fn runs_gateway(&self) -> bool {
        matches!(self.role, Role::Gateway | Role::All)
    }

    pub fn runs_worker(&self) -> bool {
        matches!(self.role, Role::Worker | Role::All)
    }

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}
