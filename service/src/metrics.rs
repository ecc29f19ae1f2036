//! Prometheus metrics: one process-wide recorder, rendered by each role's own
//! router at `/metrics` (the exporter's own HTTP server is not used).
//!
//! Metric names are listed here, so every role reports under the same names.

use std::sync::OnceLock;
use std::time::Duration;

use axum::{routing::get, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Open WebSockets, labelled by `role` (matcher, signaller).
pub const SOCKETS_OPEN: &str = "rvc_sockets_open";
/// Registrations accepted into line for the pool.
pub const REGISTRATIONS: &str = "rvc_registrations_total";
/// Pairs made by workers.
pub const MATCHES: &str = "rvc_matches_total";
/// `matched` notices delivered to sockets.
pub const MATCHED_DELIVERED: &str = "rvc_matched_delivered_total";
/// Seconds from a register to its `matched` delivery, seen by the gateway.
pub const TIME_TO_MATCH: &str = "rvc_time_to_match_seconds";
/// Users waiting in the pool (sampled by workers).
pub const POOL_SIZE: &str = "rvc_pool_size";
/// Signals and chat lines relayed to a peer.
pub const RELAYED: &str = "rvc_signals_relayed_total";
/// Seconds from publish (stamped by the sender's node) to delivery.
pub const RELAY_LATENCY: &str = "rvc_relay_latency_seconds";
/// Seconds spent in one stage of a user's path, by `stage`: where the
/// time from register to `matched`, and from a signal to its delivery,
/// goes ([`MATCHER_STAGES`], [`SIGNALLER_STAGES`]). Finer buckets than the
/// other histograms: most stages take microseconds.
pub const STAGE: &str = "rvc_stage_seconds";

/// The [`STAGE`] histogram of stage `name` (look it up once and keep it: a
/// labelled lookup hashes its key and searches the registry every call).
pub fn stage(name: &'static str) -> metrics::Histogram {
    metrics::histogram!(STAGE, "stage" => name)
}

/// The matcher's stages, in the order a registration goes through them:
/// `register` (register frame read → register script replied, gateway),
/// `stream_wait` (register accepted → a worker read it from the stream),
/// `pairing` (the worker's pairing step, one round trip, per call),
/// `inbox` (pairing step published → the gateway's inbox got it),
/// `deliver` (inbox got it → `matched` written to the socket).
pub const MATCHER_STAGES: [&str; 5] = ["register", "stream_wait", "pairing", "inbox", "deliver"];
/// The signaller's stages of one relayed message: `append` (frame read →
/// the room script replied, sender's node), `fanout` (published → the
/// receiving node got it), `dispatch` (received → written to the peer's
/// socket).
pub const SIGNALLER_STAGES: [&str; 3] = ["append", "fanout", "dispatch"];
/// Bucket bounds of [`STAGE`], seconds: 10 µs to 1 s.
pub const STAGE_BUCKETS: [f64; 22] = [
    0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002,
    0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];
/// Errors by `kind`: bad_input, auth_refused, redis, rate_limited
/// ([`error_kinds`]).
pub const ERRORS: &str = "rvc_errors_total";
/// Redis reconnections.
pub const REDIS_RECONNECTS: &str = "rvc_redis_reconnects_total";
/// Drains begun.
pub const DRAINS: &str = "rvc_drains_total";
/// TURN credentials minted, by `via`: [`TURN_CREDENTIAL_VIAS`].
pub const TURN_CREDENTIALS: &str = "rvc_turn_credentials_issued_total";
/// Reports users made (stored; each counted once per reporter for bans).
pub const REPORTS: &str = "rvc_reports_total";
/// Bans made, by whom (`by`: `reports` or `admin`).
pub const BANS: &str = "rvc_bans_total";
/// Blocks users made.
pub const BLOCKS: &str = "rvc_blocks_total";
/// Admin API requests, by `action` and `outcome` (`ok`, `unauthorized`, `error`).
pub const ADMIN_ACTIONS: &str = "rvc_admin_actions_total";
/// The admin API's actions, for pre-registration.
pub const ADMIN_ACTION_NAMES: [&str; 5] = [
    "list_reports",
    "list_bans",
    "add_ban",
    "remove_ban",
    "stats",
];
/// How a TURN credential reached its client: with `hello`, in an
/// `ice-servers` refresh on the socket, or from `GET /ice-servers`.
pub const TURN_CREDENTIAL_VIAS: [&str; 3] = ["hello", "refresh", "http"];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Which service's series a process lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Matcher,
    Signaller,
}

impl Role {
    /// The `role` label of [`SOCKETS_OPEN`].
    pub fn label(self) -> &'static str {
        match self {
            Role::Matcher => "matcher",
            Role::Signaller => "signaller",
        }
    }
}

/// Count an `error` event sent to a client under its kind, unless it is
/// counted elsewhere (rate limits, where the frame is refused) or is a
/// normal outcome (`already_waiting`, …).
pub fn count_error_event(code: wire::ErrorCode) {
    use wire::codes::ErrorKind;
    match code.kind() {
        ErrorKind::RateLimited | ErrorKind::Expected => {}
        kind => metrics::counter!(ERRORS, "kind" => kind.as_str()).increment(1),
    }
}

/// The `kind` labels of [`ERRORS`]: every kind an error code counts under.
pub fn error_kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = wire::codes::ErrorCode::ALL
        .iter()
        .map(|c| c.kind())
        .filter(|k| *k != wire::codes::ErrorKind::Expected)
        .map(|k| k.as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// Install the recorder and list every series `role` reports, at zero, so
/// that `/metrics` shows them from the start: dashboards and alerts see a
/// series before its first event (a rate of an absent series is no alert).
/// Idempotent; adds nothing to series that already moved.
pub fn register(role: Role) {
    install();
    use metrics::{counter, gauge, histogram};
    for kind in error_kinds() {
        counter!(ERRORS, "kind" => kind).increment(0);
    }
    counter!(REDIS_RECONNECTS).increment(0);
    counter!(DRAINS).increment(0);
    gauge!(SOCKETS_OPEN, "role" => role.label()).increment(0.0);
    gauge!(crate::listener::CONNECTIONS_OPEN).increment(0.0);
    for reason in crate::listener::REFUSAL_REASONS {
        counter!(crate::listener::CONNECTIONS_REFUSED, "reason" => reason).increment(0);
    }
    counter!(crate::listener::HEADER_TIMEOUTS).increment(0);
    gauge!(crate::ticket_secret::CHANGED_METRIC).increment(0.0);
    match role {
        Role::Matcher => {
            counter!(REGISTRATIONS).increment(0);
            counter!(MATCHES).increment(0);
            counter!(MATCHED_DELIVERED).increment(0);
            for via in TURN_CREDENTIAL_VIAS {
                counter!(TURN_CREDENTIALS, "via" => via).increment(0);
            }
            gauge!(POOL_SIZE).increment(0.0);
            counter!(REPORTS).increment(0);
            counter!(BLOCKS).increment(0);
            for by in ["reports", "admin"] {
                counter!(BANS, "by" => by).increment(0);
            }
            // Touched, not recorded: listed with empty buckets.
            let _ = histogram!(TIME_TO_MATCH);
            for stage in MATCHER_STAGES {
                let _ = histogram!(STAGE, "stage" => stage);
            }
        }
        Role::Signaller => {
            counter!(RELAYED).increment(0);
            let _ = histogram!(RELAY_LATENCY);
            for stage in SIGNALLER_STAGES {
                let _ = histogram!(STAGE, "stage" => stage);
            }
        }
    }
}

/// Install the recorder (once per process) and return its handle. Also
/// starts the exporter's periodic upkeep, which bounds histogram memory.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(STAGE.into()), &STAGE_BUCKETS)
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// The `/metrics` route.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let handle = install();
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    )
}

/// Count a Redis reconnection each time `client` reconnects, for as long as
/// it lives.
pub fn count_reconnects(client: &fred::prelude::Client) {
    use fred::prelude::EventInterface;
    let mut rx = client.reconnect_rx();
    tokio::spawn(async move {
        while let Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) = rx.recv().await
        {
            metrics::counter!(REDIS_RECONNECTS).increment(1);
        }
    });
}
