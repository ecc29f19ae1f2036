//! The signaller: relays WebRTC signals and chat between the two peers of a
//! room, across any number of nodes.
//!
//! How a message travels: a socket's frame becomes a [`wire::internal::RoomEvent`]
//! appended to the room's log (a Redis stream) and published on the room's
//! channel in one atomic script ([`room_log`]). Every node with a socket in
//! that room is subscribed to the channel ([`fanout`]) and hands the event to
//! the socket's queue ([`mailbox`]); the socket's state machine
//! ([`session`]) turns it into the peer's JSON, exactly once and in order,
//! and the async shell ([`connection`]) writes it. A late joiner reads the
//! log first, so nothing sent before it joined is lost. Nodes heartbeat in
//! Redis, and a node tells its sockets when their peer's node is gone
//! ([`presence`]).
//!
//! [`spawn`] starts a node in this process; the binary, the tests, the
//! benchmark and the end-to-end harness all use it.

pub mod admission;
pub mod config;
pub mod connection;
pub mod fanout;
pub mod mailbox;
pub mod presence;
pub mod room_log;
pub mod secret;
pub mod server;
pub mod session;
pub mod stages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use service::health::Health;
use service::origin::AllowedOrigins;
use service::shutdown::{self, ShutdownTrigger};
use service::ws::{ConnTasks, SocketLimits};
use tokio::task::JoinHandle;

pub use config::Config;

use connection::Shared;
use fanout::Fanout;
use presence::Presence;
use room_log::RoomLog;
use secret::TicketSecret;

/// How long a graceful shutdown waits for sockets to move (resume on
/// another node) or leave their rooms.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

pub use service::startup::StartError;

/// A running signaller node.
pub struct RunningNode {
    addr: SocketAddr,
    /// Where `--internal-listen` serves metrics and readiness.
    internal: Option<SocketAddr>,
    shared: Arc<Shared>,
    health: Health,
    subscriber: fred::prelude::Client,
    conns: ConnTasks,
    /// Stops accepting and drains the sockets.
    drain: ShutdownTrigger,
    server: Option<JoinHandle<()>>,
    /// Heartbeat, fan-out and secret tasks.
    tasks: Vec<JoinHandle<()>>,
}

/// Check `config`, bind, connect to Redis and start serving. Returns once
/// the node listens (port 0 picks a free one) and heartbeats.
///
/// The error is typed (not `anyhow`) because this is
/// a library; it converts into `anyhow::Error` with `?` where wanted.
pub async fn spawn(config: Config) -> Result<RunningNode, StartError> {
    let checked = service::startup::Checked::new(&config.shared)?;
    if config.heartbeat_ms == 0 || config.node_ttl_ms <= config.heartbeat_ms {
        return Err(StartError::Invalid {
            setting: "--node-ttl-ms",
            reason: format!(
                "({}) must be larger than --heartbeat-ms ({}), and both above 0",
                config.node_ttl_ms, config.heartbeat_ms
            ),
        });
    }
    if config.idle_timeout_secs == 0 || config.room_log_ttl_secs == 0 {
        return Err(StartError::Invalid {
            setting: "--idle-timeout-secs, --room-log-ttl-secs",
            reason: "must be above 0".into(),
        });
    }
    if config.closed_room_ttl_secs == 0 || config.closed_room_ttl_secs > config.room_log_ttl_secs {
        return Err(StartError::Invalid {
            setting: "--closed-room-ttl-secs",
            reason: format!(
                "({}) must be above 0 and at most --room-log-ttl-secs ({})",
                config.closed_room_ttl_secs, config.room_log_ttl_secs
            ),
        });
    }
    if config.room_log_budget_bytes < Config::MIN_ROOM_LOG_BUDGET {
        return Err(StartError::Invalid {
            setting: "--room-log-budget-bytes",
            reason: format!(
                "({}) must be at least {} (the join reserve and one largest signal)",
                config.room_log_budget_bytes,
                Config::MIN_ROOM_LOG_BUDGET
            ),
        });
    }
    if config.resume_grace_secs == 0 || config.resume_grace_secs >= config.room_log_ttl_secs {
        return Err(StartError::Invalid {
            setting: "--resume-grace-secs",
            reason: format!(
                "({}) must be above 0 and below --room-log-ttl-secs ({})",
                config.resume_grace_secs, config.room_log_ttl_secs
            ),
        });
    }
    if config.max_rooms_per_user == 0 {
        return Err(StartError::Invalid {
            setting: "--max-rooms-per-user",
            reason: "must be above 0".into(),
        });
    }
    let listen_error = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let node_id = config
        .node_id
        .clone()
        .unwrap_or_else(|| ulid::Ulid::new().to_string());

    let redis = checked.connect(service::metrics::Role::Signaller).await?;
    let subscriber = service::redis_conn::connect_shard_subscriber(&checked.redis).await?;
    let mut tasks = Vec::new();
    let secret = match checked.secret {
        Some(secret) => TicketSecret::configured(secret),
        None => {
            let (secret, task) = TicketSecret::shared(redis.clone());
            tasks.push(task);
            secret
        }
    };
    let (fanout, fanout_tasks) = Fanout::start(subscriber.clone());
    tasks.extend(fanout_tasks);
    // Heartbeats get a connection of their own, so that they are never
    // queued behind a burst of relayed messages: a late heartbeat would
    // look like a dead node.
    let presence_redis = service::redis_conn::connect(&checked.redis).await?;
    let (presence, presence_task) = Presence::start(
        presence_redis,
        node_id.clone(),
        config.heartbeat(),
        config.node_ttl(),
    )
    .await;
    tasks.push(presence_task);

    let (drain, drain_rx) = shutdown::channel();
    let shared = Arc::new(Shared {
        node: node_id.clone(),
        redis: redis.clone(),
        room_log: RoomLog::new(redis.clone(), node_id.clone(), config.room_limits()),
        fanout,
        presence,
        secret,
        limits: SocketLimits::new(config.idle_timeout(), config.rate_limit, config.rate_burst),
        drain: drain_rx.clone(),
        resume_grace: config.resume_grace(),
        resume_valid: config.room_log_ttl(),
        metrics: stages::RelayMetrics::new(),
    });
    let health = Health::new(redis.clone());
    let conns = ConnTasks::default();
    let addresses = config
        .shared
        .start_address_limits(&redis, "signaller", &node_id, &mut tasks);
    let origins = AllowedOrigins::new(&config.shared.allowed_origins);
    origins.warn_if_open();
    let app = server::router(
        shared.clone(),
        conns.clone(),
        origins,
        health.clone(),
        addresses,
        config.shared.trusted_proxies.clone(),
    );
    let app = service::internal::public(app, &config.shared);
    let internal = service::internal::start(&config.shared, health.clone(), std::future::pending())
        .await?
        .map(|internal| {
            tasks.push(internal.task);
            internal.addr
        });
    let mut stop_accepting = drain_rx;
    let connections = config.shared.connections.clone();
    let server = tokio::spawn(async move {
        let stop = async move { stop_accepting.wait().await };
        service::listener::serve(listener, app, &connections, stop).await;
    });
    tracing::info!(node = %node_id, %addr, "signaller listening");
    Ok(RunningNode {
        addr,
        internal,
        shared,
        health,
        subscriber,
        conns,
        drain,
        server: Some(server),
        tasks,
    })
}

impl RunningNode {
    /// Where the node listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the internal listener (metrics, readiness) listens, if configured.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal
    }

    /// Number of rooms this node is subscribed to.
    pub fn rooms(&self) -> usize {
        self.shared.fanout.rooms()
    }

    /// Stop at once without any clean-up, as a crash would: sockets drop,
    /// nobody is told, heartbeats stop (the liveness key expires on its own).
    pub fn kill(mut self) {
        self.abort_everything();
    }

    /// Graceful shutdown: report not-ready, stop accepting, tell every
    /// native socket in a room to `reconnect` (with its resume credential
    /// and cursor) and serve it until it has resumed elsewhere or closed;
    /// other sockets leave their rooms (peers get `peer-disconnected` or
    /// `peer-left` `drained`) and close with 1001. After at most the drain
    /// grace, retire the liveness key and stop.
    pub async fn shutdown(mut self) {
        metrics::counter!(service::metrics::DRAINS).increment(1);
        self.health.start_draining();
        tracing::info!(sockets = self.conns.len(), "draining");
        self.drain.trigger();
        if tokio::time::timeout(DRAIN_GRACE, self.conns.wait_empty())
            .await
            .is_err()
        {
            tracing::warn!(
                sockets = self.conns.len(),
                "sockets still open after the grace period"
            );
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
        self.shared.presence.retire().await;
        self.abort_everything();
        tracing::info!("stopped");
    }

    fn abort_everything(&mut self) {
        self.conns.abort_all();
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        // Close the Redis connections too, as a dead process would.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (redis, subscriber) = (self.shared.redis.clone(), self.subscriber.clone());
            runtime.spawn(async move {
                let _ = subscriber.quit().await;
                let _ = redis.quit().await;
            });
        }
    }
}

impl Drop for RunningNode {
    /// A node dropped without `shutdown` stops like `kill`.
    fn drop(&mut self) {
        self.abort_everything();
    }
}
