//! Every setting of the `matcher` binary: a clap flag with an `RVC_`
//! environment-variable fallback and a `--help` line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use service::settings::SharedSettings;
use service::startup::StartError;

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

/// A switch given as `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
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

    /// Gateway id (unique per gateway process, no spaces). Default: a fresh ULID.
    #[arg(long, env = "RVC_GATEWAY_ID")]
    pub gateway_id: Option<String>,

    /// Serve the original React client's API (`POST /registerForMatching`,
    /// `WS /ws/{name}`). Its identity is weaker: a legacy user is known by
    /// the name it types, bound to its client address.
    #[arg(long, env = "RVC_LEGACY_API", value_enum, default_value = "on")]
    pub legacy_api: Switch,

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

    /// How long a native user whose matching socket closed may come back
    /// (`/ws?resume=<session>`, any gateway) and keep its place in the pool
    /// or receive its pending `matched`, s; past it the user is withdrawn.
    #[arg(long, env = "RVC_RESUME_GRACE_SECS", default_value_t = 15)]
    pub resume_grace_secs: u64,

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
    /// Refuse settings out of range, naming the first one at fault (the
    /// binary prints it and exits with code 2). Nothing is clamped silently.
    pub fn validate(&self) -> Result<(), StartError> {
        let invalid =
            |setting: &'static str, reason: String| Err(StartError::Invalid { setting, reason });
        let at_least = |setting: &'static str, value: u64, min: u64| {
            if value < min {
                invalid(setting, format!("({value}) must be at least {min}"))
            } else {
                Ok(())
            }
        };
        if let Some(id) = &self.gateway_id {
            if id.is_empty() || id.chars().any(char::is_whitespace) {
                return invalid(
                    "--gateway-id",
                    format!("({id:?}) must be non-empty, without spaces"),
                );
            }
        }
        at_least("--heartbeat-ms", self.heartbeat_ms, 10)?;
        if self.gateway_ttl_ms < 2 * self.heartbeat_ms {
            return invalid(
                "--gateway-ttl-ms",
                format!(
                    "({}) must be at least twice --heartbeat-ms ({})",
                    self.gateway_ttl_ms, self.heartbeat_ms
                ),
            );
        }
        at_least("--purge-interval-ms", self.purge_interval_ms, 1)?;
        at_least("--backoff-initial-ms", self.backoff_initial_ms, 1)?;
        if self.backoff_max_ms < self.backoff_initial_ms {
            return invalid(
                "--backoff-max-ms",
                format!(
                    "({}) must be at least --backoff-initial-ms ({})",
                    self.backoff_max_ms, self.backoff_initial_ms
                ),
            );
        }
        at_least("--claim-idle-ms", self.claim_idle_ms, 1)?;
        at_least("--read-batch", self.read_batch, 1)?;
        at_least("--pairs-per-call", self.pairs_per_call as u64, 1)?;
        at_least("--room-ttl-secs", self.room_ttl_secs, 1)?;
        at_least("--notice-ttl-secs", self.notice_ttl_secs, 1)?;
        at_least("--ticket-ttl-secs", self.ticket_ttl_secs, 1)?;
        at_least("--resume-grace-secs", self.resume_grace_secs, 1)?;
        at_least("--idle-timeout-secs", self.idle_timeout_secs, 1)?;
        at_least("--rate-limit", self.rate_limit as u64, 1)?;
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("matcher").chain(args.iter().copied())).unwrap()
    }

    fn refused(args: &[&str]) -> String {
        match parse(args).validate() {
            Err(StartError::Invalid { setting, .. }) => setting.to_string(),
            other => panic!("{args:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]);
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 8000);
        assert_eq!(c.backoff_max_ms, 5000);
    }

    #[test]
    fn out_of_range_values_are_refused_by_name_not_clamped() {
        assert_eq!(refused(&["--heartbeat-ms", "0"]), "--heartbeat-ms");
        assert_eq!(
            refused(&["--heartbeat-ms", "1000", "--gateway-ttl-ms", "1500"]),
            "--gateway-ttl-ms"
        );
        assert_eq!(refused(&["--rate-limit", "0"]), "--rate-limit");
        assert_eq!(refused(&["--pairs-per-call", "0"]), "--pairs-per-call");
        assert_eq!(refused(&["--read-batch", "0"]), "--read-batch");
        assert_eq!(refused(&["--room-ttl-secs", "0"]), "--room-ttl-secs");
        assert_eq!(
            refused(&["--backoff-initial-ms", "100", "--backoff-max-ms", "50"]),
            "--backoff-max-ms"
        );
        assert_eq!(
            refused(&["--idle-timeout-secs", "0"]),
            "--idle-timeout-secs"
        );
        assert_eq!(refused(&["--gateway-id", "a b"]), "--gateway-id");
    }
}
