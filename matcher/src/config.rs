//! Every setting of the `matcher` binary: a clap flag with an `RVC_`
//! environment-variable fallback and a `--help` line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use service::settings::SharedSettings;
use service::startup::StartError;

use crate::gateway::ice_servers::IceSettings;

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

    /// How long the partner a user just left is not given to them again,
    /// even when the two are the only ones waiting, s (0: no memory).
    #[arg(long, env = "RVC_LAST_PARTNER_SECS", default_value_t = 60)]
    pub last_partner_secs: u64,

    /// Two users who just left each other may meet again once both have
    /// waited this long, ms.
    #[arg(long, env = "RVC_REMATCH_AFTER_MS", default_value_t = 10_000)]
    pub rematch_after_ms: u64,

    /// How long a user with interests (or a language) is paired only with
    /// someone sharing one before anyone will do (never, for `strict`), ms.
    #[arg(long, env = "RVC_INTEREST_WAIT_MS", default_value_t = 5000)]
    pub interest_wait_ms: u64,

    /// How long a user is paired only with users of the same region (when
    /// both have one) before any region will do, ms.
    #[arg(long, env = "RVC_REGION_WAIT_MS", default_value_t = 1000)]
    pub region_wait_ms: u64,

    /// This gateway's region, e.g. `eu-west` (empty: none). Users are
    /// preferred to users of the same region for `--region-wait-ms`.
    #[arg(long, env = "RVC_REGION", default_value = "")]
    pub region: String,

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

    /// Two users one of whom blocked the other are never paired again for
    /// this many days.
    #[arg(long, env = "RVC_BLOCK_DAYS", default_value_t = 30)]
    pub block_days: u64,

    /// Reports from distinct reporters (distinct identities and addresses)
    /// within --report-window-mins that ban the reported user.
    #[arg(long, env = "RVC_BAN_AFTER_REPORTS", default_value_t = 3)]
    pub ban_after_reports: u32,

    /// The window in which reports about one user add up, minutes.
    #[arg(long, env = "RVC_REPORT_WINDOW_MINS", default_value_t = 60)]
    pub report_window_mins: u64,

    /// A first ban's length, s; doubled for each repeat ban within a week.
    #[arg(long, env = "RVC_BAN_SECS", default_value_t = 3600)]
    pub ban_secs: u64,

    /// Reports one user may make per hour (mass-reporting is useless).
    #[arg(long, env = "RVC_REPORTS_PER_HOUR", default_value_t = 20)]
    pub reports_per_hour: u32,

    /// Where the admin API listens (only when an admin token is set).
    #[arg(long, env = "RVC_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub admin_listen: SocketAddr,

    /// Bearer token of the admin API; the API is off without one. Prefer
    /// --admin-token-file.
    #[arg(long, env = "RVC_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// File holding the admin API's bearer token (one trailing newline ignored).
    #[arg(long, env = "RVC_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// TURN relay URLs handed to clients with a credential minted per
    /// session, comma separated, each `turn:` or `turns:` (e.g.
    /// turn:turn.example.com:3478?transport=udp). Needs --turn-secret or
    /// --turn-secret-file. Empty: no relay.
    #[arg(long, env = "RVC_TURN_URLS", default_value = "")]
    pub turn_urls: String,

    /// coturn's `static-auth-secret` (its `use-auth-secret` REST API
    /// scheme), at least 16 bytes: credentials are HMAC-SHA1 of it.
    #[arg(long, env = "RVC_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Read the TURN secret from this file instead (one trailing newline
    /// ignored).
    #[arg(long, env = "RVC_TURN_SECRET_FILE", conflicts_with = "turn_secret")]
    pub turn_secret_file: Option<std::path::PathBuf>,

    /// Lifetime of a minted TURN credential, s; a native client gets fresh
    /// ones at 80% of it.
    #[arg(long, env = "RVC_TURN_TTL_SECS", default_value_t = 3600)]
    pub turn_ttl_secs: u64,

    /// STUN URLs handed to clients, comma separated, each `stun:` or
    /// `stuns:`. Empty: none.
    #[arg(long, env = "RVC_STUN_URLS", default_value = "")]
    pub stun_urls: String,
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
        at_least("--block-days", self.block_days, 1)?;
        at_least("--ban-after-reports", self.ban_after_reports as u64, 1)?;
        at_least("--report-window-mins", self.report_window_mins, 1)?;
        at_least("--ban-secs", self.ban_secs, 1)?;
        at_least("--reports-per-hour", self.reports_per_hour as u64, 1)?;
        self.admin_token()?;
        at_least("--idle-timeout-secs", self.idle_timeout_secs, 1)?;
        at_least("--rate-limit", self.rate_limit as u64, 1)?;
        if self.region.chars().count() > 32
            || self
                .region
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        {
            return invalid(
                "--region",
                format!(
                    "({:?}) must be at most 32 letters, digits, '-', '_' or '.'",
                    self.region
                ),
            );
        }
        at_least("--turn-ttl-secs", self.turn_ttl_secs, 1)?;
        self.ice_settings()?;
        Ok(())
    }

    /// The ICE servers to hand out, checked: URLs of the right scheme, a
    /// TURN secret exactly when there are TURN URLs (one without the other
    /// is a mistake, not a default), the secret file readable.
    /// The admin API's token, if it is on (from --admin-token-file, else
    /// --admin-token); at least 16 bytes.
    pub fn admin_token(&self) -> Result<Option<String>, StartError> {
        let invalid =
            |setting: &'static str, reason: String| StartError::Invalid { setting, reason };
        let (setting, token) = match (&self.admin_token_file, &self.admin_token) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        "--admin-token-file",
                        format!("{}: cannot read: {e}", path.display()),
                    )
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                ("--admin-token-file", Some(text.to_string()))
            }
            (None, token) => ("--admin-token", token.clone()),
        };
        match token {
            Some(t) if t.len() < 16 => Err(invalid(
                setting,
                format!("must be at least 16 bytes ({} given)", t.len()),
            )),
            t => Ok(t),
        }
    }

    /// How reports turn into bans.
    pub fn report_policy(&self) -> crate::store::ReportPolicy {
        crate::store::ReportPolicy {
            reports_per_hour: self.reports_per_hour,
            window: Duration::from_secs(self.report_window_mins * 60),
            ban_after: self.ban_after_reports,
            ban: Duration::from_secs(self.ban_secs),
        }
    }

    pub fn ice_settings(&self) -> Result<IceSettings, StartError> {
        use crate::gateway::ice_servers::{parse_urls, MIN_TURN_SECRET_BYTES};
        let invalid =
            |setting: &'static str, reason: String| StartError::Invalid { setting, reason };
        let turn_urls = parse_urls(&self.turn_urls, &["turn:", "turns:"])
            .map_err(|reason| invalid("--turn-urls", reason))?;
        let stun_urls = parse_urls(&self.stun_urls, &["stun:", "stuns:"])
            .map_err(|reason| invalid("--stun-urls", reason))?;
        let (setting, secret) = match (&self.turn_secret_file, &self.turn_secret) {
            (Some(path), _) => {
                let mut bytes = std::fs::read(path).map_err(|e| {
                    invalid(
                        "--turn-secret-file",
                        format!("{}: cannot read: {e}", path.display()),
                    )
                })?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                ("--turn-secret-file", Some(bytes))
            }
            (None, Some(secret)) => ("--turn-secret", Some(secret.as_bytes().to_vec())),
            (None, None) => ("--turn-secret", None),
        };
        match (&secret, turn_urls.is_empty()) {
            (Some(secret), false) if secret.len() < MIN_TURN_SECRET_BYTES => Err(invalid(
                setting,
                format!(
                    "must be at least {MIN_TURN_SECRET_BYTES} bytes, got {}",
                    secret.len()
                ),
            )),
            (None, false) => Err(invalid(
                "--turn-urls",
                "needs --turn-secret or --turn-secret-file (coturn's static-auth-secret)".into(),
            )),
            (Some(_), true) => Err(invalid(setting, "is set but --turn-urls is empty".into())),
            _ => Ok(IceSettings {
                turn_urls,
                stun_urls,
                turn_secret: secret.map(Into::into),
                ttl_secs: self.turn_ttl_secs,
            }),
        }
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
        assert_eq!(refused(&["--region", "eu west"]), "--region");
        assert_eq!(refused(&["--region", &"x".repeat(33)]), "--region");
        parse(&["--region", "eu-west-1"]).validate().unwrap();
    }

    const TURN_SECRET: &str = "0123456789abcdef";

    #[test]
    fn turn_and_stun_settings_are_checked_by_name() {
        let c = parse(&[]);
        assert_eq!(c.turn_ttl_secs, 3600);
        assert!(c
            .ice_settings()
            .unwrap()
            .mint("S", 0)
            .ice_servers
            .is_empty());
        let ok = parse(&[
            "--turn-urls",
            "turn:127.0.0.1:3478,turns:t.example:5349",
            "--turn-secret",
            TURN_SECRET,
            "--stun-urls",
            "stun:127.0.0.1:3478",
        ]);
        ok.validate().unwrap();
        assert_eq!(ok.ice_settings().unwrap().turn_urls.len(), 2);
        assert_eq!(refused(&["--turn-urls", "stun:x:3478"]), "--turn-urls");
        assert_eq!(refused(&["--turn-urls", "turn:x:3478"]), "--turn-urls");
        assert_eq!(refused(&["--stun-urls", "turn:x:3478"]), "--stun-urls");
        assert_eq!(refused(&["--turn-secret", TURN_SECRET]), "--turn-secret");
        assert_eq!(
            refused(&["--turn-urls", "turn:x", "--turn-secret", "short"]),
            "--turn-secret"
        );
        assert_eq!(
            refused(&[
                "--turn-urls",
                "turn:x",
                "--turn-secret-file",
                "/nonexistent/turn-secret"
            ]),
            "--turn-secret-file"
        );
        assert_eq!(
            refused(&[
                "--turn-urls",
                "turn:x",
                "--turn-secret",
                TURN_SECRET,
                "--turn-ttl-secs",
                "0"
            ]),
            "--turn-ttl-secs"
        );
    }

    #[test]
    fn the_turn_secret_file_loses_one_trailing_newline() {
        let path = std::env::temp_dir().join(format!("rvc-turn-secret-{}", std::process::id()));
        std::fs::write(&path, format!("{TURN_SECRET}\n")).unwrap();
        let c = parse(&[
            "--turn-urls",
            "turn:x",
            "--turn-secret-file",
            path.to_str().unwrap(),
        ]);
        let ice = c.ice_settings().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&ice.turn_secret.unwrap()[..], TURN_SECRET.as_bytes());
    }
}
