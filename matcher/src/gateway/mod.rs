//! The matcher gateway: WebSocket + HTTP front door. It holds sockets and
//! nothing else; registers go to the stream, word of notices and chat comes
//! back through this gateway's channel.
//!
//! | file | what |
//! |---|---|
//! | `session.rs` | the protocol of one socket, as a state machine (no I/O) |
//! | `connection.rs` | the async shell that feeds a session and performs its actions |
//! | `sockets.rs` | the sockets this gateway holds, by user, and their mailboxes |
//! | `channel.rs` | routes this gateway's channel messages to its sockets |
//! | `heartbeat.rs` | liveness in Redis, and restores after an outage |
//! | `ice_servers.rs` | STUN/TURN servers for the browsers, TURN credentials minted per session (no I/O) |
//! | `http.rs`, `web.rs` | routes: legacy register, sockets, health, the page |

pub mod admin;
mod channel;
mod connection;
pub mod heartbeat;
mod http;
pub mod ice_servers;
pub mod session;
pub mod sockets;
mod web;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use service::address_limit::AddressLimits;
use service::client_addr::TrustedProxies;
use service::health::Health;
use service::origin::AllowedOrigins;
use service::shutdown::Shutdown;
use service::ws::{ConnTasks, SocketLimits};
use wire::user::UserKey;

use crate::store::{Registered, Store, StoreError};
use ice_servers::IceSettings;
use session::Waiting;
use sockets::{SocketMsg, Sockets};

pub use channel::run as run_channel;
pub use heartbeat::run as run_heartbeat;
pub use http::router;

/// Settings of a gateway, taken from [`crate::Config`].
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub signaller_url: Option<String>,
    pub web_dir: Option<std::path::PathBuf>,
    pub origins: AllowedOrigins,
    /// Whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: TrustedProxies,
    pub heartbeat: Duration,
    pub gateway_ttl: Duration,
    pub ticket_ttl: Duration,
    pub socket: SocketLimits,
    pub drain_grace: Duration,
    /// How long a native session whose socket closed may come back.
    pub resume_grace: Duration,
    /// Whether the original React client's API is served.
    pub legacy_api: bool,
    /// This gateway's region and the interest window told to clients.
    pub matchmaking: session::Matchmaking,
    /// How reports turn into bans, and how long a block lasts.
    pub report_policy: crate::store::ReportPolicy,
    pub block_for: Duration,
}

impl From<&crate::Config> for GatewaySettings {
    /// Assumes a validated configuration ([`crate::Config::validate`]).
    fn from(c: &crate::Config) -> Self {
        use crate::Config;
        GatewaySettings {
            signaller_url: c.signaller_url.clone(),
            web_dir: c.web_dir.clone(),
            origins: AllowedOrigins::new(&c.shared.allowed_origins),
            trusted_proxies: c.shared.trusted_proxies.clone(),
            heartbeat: Config::ms(c.heartbeat_ms),
            gateway_ttl: Config::ms(c.gateway_ttl_ms),
            ticket_ttl: Duration::from_secs(c.ticket_ttl_secs),
            socket: SocketLimits::new(
                Duration::from_secs(c.idle_timeout_secs),
                c.rate_limit,
                c.rate_limit.saturating_mul(4),
            ),
            drain_grace: Duration::from_secs(c.drain_grace_secs),
            resume_grace: Duration::from_secs(c.resume_grace_secs),
            legacy_api: c.legacy_api == crate::config::Switch::On,
            matchmaking: session::Matchmaking {
                region: c.region.clone(),
                interest_wait_ms: c.interest_wait_ms,
            },
            report_policy: c.report_policy(),
            block_for: Duration::from_secs(c.block_days * 24 * 3600),
        }
    }
}

/// Everything the gateway's handlers and socket tasks share.
pub struct Gateway {
    /// This gateway's id: names its channel and its liveness key.
    pub id: String,
    pub store: Store,
    pub secret: Arc<[u8]>,
    /// The secret is shared through Redis (none was configured): a restore
    /// puts it back.
    pub secret_shared: bool,
    pub settings: GatewaySettings,
    /// The STUN/TURN servers handed to clients (`--turn-urls`, ...).
    pub ice: IceSettings,
    pub sockets: Sockets,
    /// Every socket task, to wait for on drain or abort on a kill.
    pub tasks: ConnTasks,
    pub health: Health,
    /// Per-client-address limits, shared with every gateway through Redis.
    pub addresses: AddressLimits,
    /// Fires on a graceful drain.
    pub drain: Shutdown,
    /// Fires on a hard kill (tests): tasks stop without cleaning up.
    pub kill: Shutdown,
    /// Set when Redis reconnected or the heartbeat lapsed; the heartbeat
    /// task restores this gateway's state until it succeeds.
    pub needs_restore: AtomicBool,
    /// Releases of closed sockets that Redis refused: retried on every
    /// heartbeat while this gateway lives (if it dies, the workers' purge
    /// cleans up), so a name is never left taken by a socket that is gone.
    pub pending_releases: std::sync::Mutex<Vec<(UserKey, wire::stored::Location)>>,
}

pub type SharedGateway = Arc<Gateway>;

impl Gateway {
    /// Retry the releases Redis refused; keep those that fail again.
    pub async fn retry_releases(&self) {
        let pending = std::mem::take(&mut *self.pending_releases.lock().unwrap());
        for (user, location) in pending {
            if self.store.release(&user, &location).await.is_err() {
                self.pending_releases.lock().unwrap().push((user, location));
            }
        }
    }

    /// The ICE servers for client session `session`, with a TURN
    /// credential minted now, counted under `via` (see
    /// [`service::metrics::TURN_CREDENTIAL_VIAS`]).
    pub fn mint_ice_servers(
        &self,
        session: &str,
        via: &'static str,
    ) -> wire::matcher_api::IceServers {
        let now = service::clock::now_ms() / 1000;
        if self.ice.issues_credentials() {
            metrics::counter!(service::metrics::TURN_CREDENTIALS, "via" => via).increment(1);
        }
        self.ice.mint(session, now)
    }

    /// Ask for a restore on the next heartbeat.
    pub fn request_restore(&self) {
        self.needs_restore.store(true, Ordering::SeqCst);
    }

    /// Register a legacy user over HTTP from client address `addr` (the
    /// socket may come later, or be here already); the name is bound to
    /// that address for as long as the registration and its match last.
    pub async fn register_legacy(
        &self,
        name: &str,
        prefs: &wire::preferences::Preferences,
        addr: std::net::IpAddr,
    ) -> Result<Registered, StoreError> {
        let user = UserKey::legacy(name);
        let reg = ulid::Ulid::new().to_string();
        let since = std::time::Instant::now();
        let prefs = self.settings.matchmaking.pool_preferences(prefs);
        let who =
            wire::moderation::Who::address(service::client_addr::AddressKey::of(addr).as_str());
        let outcome = self
            .store
            .register(
                &user,
                &reg,
                &addr.to_string(),
                name,
                &who,
                prefs.as_ref(),
                false,
                None,
            )
            .await?;
        if outcome == Registered::Queued {
            crate::stages::per_user().registrations.increment(1);
            if let Some(socket) = self.sockets.get(&user) {
                socket.post(SocketMsg::RegisteredElsewhere(Box::new(Waiting {
                    reg,
                    name: name.to_string(),
                    prefs,
                    since,
                })));
            }
        }
        Ok(outcome)
    }
}

/// After Redis came back (possibly empty), or after workers presumed this
/// gateway dead and purged its users, put its state back (the heartbeat
/// that just got through restored its liveness): the shared secret, and
/// through each socket's session where its user is, the notice that waits
/// for it, and its place in the pool. A socket whose part fails asks for
/// another restore.
pub async fn restore(gw: &Gateway) {
    if gw.secret_shared {
        service::ticket_secret::reassert(gw.store.client(), &gw.secret).await;
    }
    gw.sockets.post_all(|| SocketMsg::Restore);
    tracing::info!(
        sockets = gw.sockets.len(),
        "gateway restoring its users in Redis"
    );
}
