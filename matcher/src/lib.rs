//! The matcher: pairs strangers at random and tells each their room.
//!
//! One binary, roles chosen by flag: `gateway` (WebSocket + HTTP, holds
//! sockets only), `worker` (pairs users), or `all`. Any number of each may
//! run at once against one Redis. [`spawn`] starts the chosen roles in this
//! process; the binary, tests and benchmarks all use it.

pub mod config;
pub mod gateway;
pub mod stages;
pub mod store;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use service::health::Health;
use service::shutdown::{self, ShutdownTrigger};
use tokio::task::JoinHandle;

pub use config::{Config, Role};
use gateway::{Gateway, GatewaySettings, SharedGateway};
use store::Store;
use worker::{Worker, WorkerSettings};

pub use service::startup::StartError;

/// A running matcher (some roles, in this process).
pub struct Running {
    gateway: Option<(SocketAddr, SharedGateway)>,
    /// Where `--internal-listen` serves metrics and readiness.
    internal: Option<SocketAddr>,
    /// Where the admin API listens (when a token is set).
    admin: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    drain: ShutdownTrigger,
    kill: ShutdownTrigger,
}

/// Start the roles `config` names. Returns once the gateway listens (its
/// port may be 0 to pick a free one) and the worker runs.
pub async fn spawn(config: Config) -> Result<Running, StartError> {
    config.validate()?;
    let ice = config.ice_settings()?;
    let admin_token = config.admin_token()?;
    let checked = service::startup::Checked::new(&config.shared)?;
    // Bind first: a port in use is a configuration error to report at once.
    let listener = if config.runs_gateway() {
        Some(
            tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?,
        )
    } else {
        None
    };
    let (drain, drain_rx) = shutdown::channel();
    let (kill, kill_rx) = shutdown::channel();
    let redis = checked.connect(service::metrics::Role::Matcher).await?;
    let store = Store::new(redis.clone());
    let mut tasks = Vec::new();
    let mut gateway = None;

    if let Some(listener) = listener {
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let secret = service::ticket_secret::resolve(checked.secret.as_deref(), &redis).await?;
        let id = config
            .gateway_id
            .clone()
            .unwrap_or_else(|| ulid::Ulid::new().to_string());
        let addresses = config
            .shared
            .start_address_limits(&redis, "matcher", &id, &mut tasks);
        let gw = Arc::new(Gateway {
            id,
            store: store.clone(),
            secret: secret.into(),
            secret_shared: checked.secret.is_none(),
            settings: GatewaySettings::from(&config),
            ice,
            sockets: Default::default(),
            tasks: Default::default(),
            health: Health::new(redis.clone()),
            addresses,
            drain: drain_rx.clone(),
            kill: kill_rx.clone(),
            needs_restore: Default::default(),
            pending_releases: Default::default(),
        });
        gw.store.heartbeat(&gw.id, gw.settings.gateway_ttl).await;
        let subscriber = service::redis_conn::connect_subscriber(&checked.redis).await?;
        let channel = store::channel::GatewayChannel::new(subscriber, &gw.id);
        tasks.push(tokio::spawn(gateway::run_channel(gw.clone(), channel)));
        tasks.push(tokio::spawn(gateway::run_heartbeat(gw.clone())));
        tasks.push(tokio::spawn(watch_reconnects(gw.clone())));
        let app = service::internal::public(gateway::router(gw.clone()), &config.shared);
        let mut stop_accepting = drain_rx.clone();
        let connections = config.shared.connections.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move { stop_accepting.wait().await };
            service::listener::serve(listener, app, &connections, stop).await;
        }));
        gw.settings.origins.warn_if_open();
        tracing::info!(gateway = %gw.id, %addr, "gateway listening");
        gateway = Some((addr, gw));
    }

    // The admin API, beside a gateway, only when a token is configured.
    let mut admin = None;
    if let (Some(token), true) = (&admin_token, config.runs_gateway()) {
        let listener = tokio::net::TcpListener::bind(config.admin_listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.admin_listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.admin_listen,
            source,
        })?;
        let app =
            gateway::admin::router(Arc::new(gateway::admin::Admin::new(store.clone(), token)));
        // The same accept loop as the public port (header timeout, request
        // deadline, connection caps).
        let mut stop = kill_rx.clone();
        let connections = config.shared.connections.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move { stop.wait().await };
            service::listener::serve(listener, app, &connections, stop).await;
        }));
        tracing::info!(%addr, "admin API listening");
        admin = Some(addr);
    }

    if config.runs_worker() {
        let reader = service::redis_conn::connect_blocking(&checked.redis).await?;
        let worker = Worker::new(store.clone(), reader, WorkerSettings::from(&config));
        tasks.push(tokio::spawn(worker.run(drain_rx.clone())));
    }

    let health = match &gateway {
        Some((_, gw)) => gw.health.clone(),
        None => Health::new(redis.clone()),
    };
    let mut stop_internal = kill_rx.clone();
    let internal =
        service::internal::start(
            &config.shared,
            health,
            async move { stop_internal.wait().await },
        )
        .await?
        .map(|internal| {
            tasks.push(internal.task);
            internal.addr
        });

    Ok(Running {
        gateway,
        internal,
        admin,
        tasks,
        drain,
        kill,
    })
}

/// Put the gateway's state back each time its Redis connection is re-made.
async fn watch_reconnects(gw: SharedGateway) {
    use fred::interfaces::EventInterface;
    let mut reconnects = gw.store.client().reconnect_rx();
    let mut kill = gw.kill.clone();
    loop {
        tokio::select! {
            r = reconnects.recv() => match r {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // The heartbeat task does the work, one restore at a time.
                    gw.request_restore();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = kill.wait() => return,
        }
    }
}

impl Running {
    /// Where the gateway listens, if this process runs one.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|(a, _)| *a)
    }

    /// Where the internal listener (metrics, readiness) listens, if configured.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal
    }

    /// The admin API's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Number of sockets the gateway holds.
    pub fn sockets(&self) -> usize {
        self.gateway.as_ref().map_or(0, |(_, g)| g.sockets.len())
    }

    /// Stop at once without any clean-up, as a crash would: heartbeats stop,
    /// nothing is withdrawn; sockets are dropped.
    pub fn kill(self) {
        self.kill.trigger();
        if let Some((_, gw)) = &self.gateway {
            gw.tasks.abort_all();
        }
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Graceful drain: report not-ready, stop accepting, ask native clients
    /// to move, give sockets the grace period, withdraw who is left, stop the
    /// worker after its current batch, and leave.
    pub async fn shutdown(self) {
        metrics::counter!(service::metrics::DRAINS).increment(1);
        if let Some((_, gw)) = &self.gateway {
            gw.health.start_draining();
            tracing::info!(sockets = gw.sockets.len(), "draining");
            let marked = gw
                .store
                .mark_draining(&gw.id, gw.settings.drain_grace + Duration::from_secs(10))
                .await;
            if let Err(e) = marked {
                tracing::warn!(error = %e, "could not mark the gateway draining in Redis");
            }
        }
        self.drain.trigger();
        if let Some((_, gw)) = &self.gateway {
            let limit = gw.settings.drain_grace + Duration::from_secs(2);
            let _ = tokio::time::timeout(limit, gw.tasks.wait_empty()).await;
            // Leave no trace: workers need not wait for the TTL.
            let _ = gw.store.forget_gateway(&gw.id).await;
        }
        self.kill.trigger();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }
}
