//! Redis connections that survive outages.
//!
//! Every client reconnects by itself, forever, with exponential backoff
//! capped at two seconds, so a Redis restart never needs a service restart.
//! Commands fail after a bounded time instead of waiting out an outage, so
//! callers can report not-ready and retry.
//!
//! `rediss://` is TLS with certificate verification (rustls): against the
//! system's roots, or only against `--redis-ca-file` when set. A server that
//! does not complete a verified handshake is refused at start with one line
//! (see [`RedisTarget::check_tls`]); later connections are verified the same way
//! and never fall back to plaintext. Errors and logs never show the URL's
//! password ([`redact`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::config::{TlsConfig, UnresponsiveConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::settings::SharedSettings;
use crate::startup::StartError;

/// How long an ordinary command may take before it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the start-up TLS check waits for a connection and a handshake.
const TLS_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest reconnect back-off of every client made here.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(2_000);

/// Retries of a script Redis Cluster refused while its slot migrates
/// (about 1.5 s in all, on top of the redirections fred follows).
const MIGRATION_RETRIES: u32 = 12;

/// Why a Redis URL was refused at start. `url` never holds the password.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct BadRedisUrl {
    pub url: String,
    pub reason: String,
}

impl BadRedisUrl {
    fn new(url: &str, reason: impl Into<String>) -> Self {
        BadRedisUrl {
            url: redact(url),
            reason: reason.into(),
        }
    }
}

/// `url` with the password (if any) replaced by `***`, for errors and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Check a Redis URL (`redis://`, `rediss://`, `redis-cluster://`) without connecting.
pub fn parse_url(url: &str) -> Result<Config, BadRedisUrl> {
    const SCHEMES: [&str; 4] = [
        "redis://",
        "rediss://",
        "redis-cluster://",
        "rediss-cluster://",
    ];
    if !SCHEMES.iter().any(|s| url.starts_with(s)) {
        return Err(BadRedisUrl::new(
            url,
            format!("the scheme must be one of {}", SCHEMES.join(", ")),
        ));
    }
    Config::from_url(url)
        .map_err(|e| BadRedisUrl::new(url, format!("invalid URL: {}", e.details())))
}

/// Where and how to reach Redis: the parsed URL and, for `rediss://`, the
/// verifying TLS configuration. Made once at start, used by every client.
#[derive(Clone)]
pub struct RedisTarget {
    config: Config,
    /// The URL without its password.
    shown: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &self.shown)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl RedisTarget {
    /// Parse `--redis-url`, load the TLS roots (for `rediss://`), without
    /// connecting.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<RedisTarget, StartError> {
        let mut config = parse_url(url)?;
        let tls = if config.tls.is_some() {
            let roots = match ca_file {
                Some(path) => roots_from_file(path)?,
                None => system_roots().map_err(|reason| BadRedisUrl::new(url, reason))?,
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let client = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| BadRedisUrl::new(url, format!("TLS set-up: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
            config.tls = Some(TlsConfig::from(connector.clone()));
            Some(connector)
        } else {
            if ca_file.is_some() {
                return Err(StartError::Invalid {
                    setting: "--redis-ca-file",
                    reason: "is only used with a rediss:// --redis-url".into(),
                });
            }
            None
        };
        Ok(RedisTarget {
            config,
            shown: redact(url),
            tls,
        })
    }

    /// [`RedisTarget::new`] from the shared settings.
    pub fn from_settings(settings: &SharedSettings) -> Result<RedisTarget, StartError> {
        RedisTarget::new(&settings.redis_url, settings.redis_ca_file.as_deref())
    }

    /// Whether connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// This target refused at start, for `reason`.
    fn refused(&self, reason: impl Into<String>) -> BadRedisUrl {
        BadRedisUrl {
            url: self.shown.clone(),
            reason: reason.into(),
        }
    }

    /// For `rediss://`, one verified TLS handshake with the (first)
    /// server: a server that answers but does not complete it (a plaintext
    /// server, an unknown or wrong certificate) is a start error, one line.
    /// A server not reachable yet is left to the clients' retries (which
    /// verify the same way).
    pub async fn check_tls(&self) -> Result<(), BadRedisUrl> {
        let Some(connector) = &self.tls else {
            return Ok(());
        };
        let Some(server) = self.config.server.hosts().into_iter().next() else {
            return Ok(());
        };
        let host = server.host.to_string();
        let name = server
            .tls_server_name
            .as_ref()
            .map_or(host.clone(), |n| n.to_string());
        let name = ServerName::try_from(name.clone())
            .map_err(|e| self.refused(format!("{name:?} is not a TLS server name: {e}")))?;
        let connect = tokio::net::TcpStream::connect((host.as_str(), server.port));
        let Ok(Ok(tcp)) = tokio::time::timeout(TLS_CHECK_TIMEOUT, connect).await else {
            tracing::warn!(url = %self.shown, "Redis is not reachable yet; its TLS is checked on connection");
            return Ok(());
        };
        match tokio::time::timeout(TLS_CHECK_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.refused(format!(
                "TLS handshake with {host}:{} failed: {e} (is it a TLS port? for a private CA set --redis-ca-file)",
                server.port
            ))),
            Err(_) => Err(self.refused(format!(
                "no TLS handshake from {host}:{} within {TLS_CHECK_TIMEOUT:?} (is it a TLS port?)",
                server.port
            ))),
        }
    }
}

/// The certificates in a PEM file, as the only trusted roots.
fn roots_from_file(path: &Path) -> Result<rustls::RootCertStore, StartError> {
    let bad = |reason: String| StartError::Invalid {
        setting: "--redis-ca-file",
        reason: format!("{}: {reason}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("holds no usable certificate".into()));
    }
    Ok(roots)
}

/// The system's trusted roots.
fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(match found.errors.first() {
            Some(e) => format!("no system TLS roots: {e} (set --redis-ca-file)"),
            None => "no system TLS roots (set --redis-ca-file)".into(),
        });
    }
    Ok(roots)
}

fn builder(target: &RedisTarget, for_blocking: bool) -> Builder {
    let mut config = target.config.clone();
    config.fail_fast = false;
    let clustered = config.server.is_clustered();
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            50,
            MAX_RECONNECT_DELAY.as_millis() as u32,
            2,
        ))
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            // One attempt: during an outage a caller hears "unavailable"
            // within the command timeout instead of after retries. On a
            // cluster fred counts following a MOVED or ASK redirection
            // (a slot that moved or is moving) as another attempt: allow
            // several, still within the command timeout: while a slot
            // migrates under traffic a command may be sent on (ASK) more
            // than a few times, and giving up then loses a relay.
            c.max_command_attempts = if clustered { 16 } else { 1 };
            c.tcp = fred::types::config::TcpConfig {
                nodelay: Some(true),
                ..Default::default()
            };
            if !for_blocking {
                // A connection that stops answering (a frozen or unplugged
                // server) is dropped and reconnected rather than waited on.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(Duration::from_secs(5)),
                    interval: Duration::from_secs(1),
                };
            }
        })
        .with_performance_config(|p| {
            p.default_command_timeout = if for_blocking {
                Duration::ZERO
            } else {
                COMMAND_TIMEOUT
            };
        });
    builder
}

/// How long a new client waits for its first connection before it is
/// returned anyway (it keeps connecting in the background).
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(3);

/// Start connecting in the background and wait up to [`FIRST_CONNECT_WAIT`]
/// for the first connection. Returns the client either way: when Redis is
/// not up yet the client keeps trying, and readiness reports the outage
/// meanwhile.
async fn start<C: ClientLike>(client: C) -> C {
    client.connect();
    if tokio::time::timeout(FIRST_CONNECT_WAIT, client.wait_for_connect())
        .await
        .is_err()
    {
        tracing::warn!("Redis is not reachable yet; retrying in the background");
    }
    client
}

async fn connect_with(target: &RedisTarget, for_blocking: bool) -> Result<Client, BadRedisUrl> {
    let client = builder(target, for_blocking)
        .build()
        .map_err(|e| target.refused(e.details()))?;
    Ok(start(client).await)
}

/// An ordinary command client.
pub async fn connect(target: &RedisTarget) -> Result<Client, BadRedisUrl> {
    connect_with(target, false).await
}

/// A client for blocking commands (`XREADGROUP ... BLOCK`): no default
/// timeout and no unresponsiveness check, since a blocked read is silent by
/// design. Callers bound each blocking call themselves.
pub async fn connect_blocking(target: &RedisTarget) -> Result<Client, BadRedisUrl> {
    connect_with(target, true).await
}

/// A pub/sub client. Its subscriptions are restored after every reconnect.
pub async fn connect_subscriber(target: &RedisTarget) -> Result<SubscriberClient, BadRedisUrl> {
    let mut builder = builder(target, false);
    // Pub/sub messages are fanned out through a broadcast channel; a
    // receiver that lags loses messages, so leave ample room (only here:
    // every client allocates several such channels).
    builder.with_performance_config(|p| p.broadcast_channel_capacity = 65_536);
    let client = builder
        .build_subscriber_client()
        .map_err(|e| target.refused(e.details()))?;
    let client = start(client).await;
    // Detached: re-subscribes after every reconnect for as long as the client lives.
    drop(client.manage_subscriptions());
    Ok(client)
}

/// A client for sharded pub/sub (`SSUBSCRIBE`), used by the signaller's
/// room fan-out. A plain client rather than a [`SubscriberClient`]: the
/// fan-out tracks its shard channels itself and subscribes them again, one
/// per command, after reconnects and slot moves (fred's own re-subscribe
/// sends one `SSUBSCRIBE` per slot with every channel of that slot, whose
/// several replies it cannot match to one command, and never notices a
/// slot that moved).
pub async fn connect_shard_subscriber(target: &RedisTarget) -> Result<Client, BadRedisUrl> {
    let mut builder = builder(target, false);
    // As in `connect_subscriber`: publications go through a broadcast
    // channel; give a lagging receiver ample room.
    builder.with_performance_config(|p| p.broadcast_channel_capacity = 65_536);
    let client = builder.build().map_err(|e| target.refused(e.details()))?;
    Ok(start(client).await)
}

/// Returns once Redis has run every command queued before on `subscriber`'s
/// connection. fred 10 resolves `subscribe` as soon as the SUBSCRIBE is
/// queued, not when Redis has run it (pub/sub commands are answered out of
/// band, so fred completes them unanswered and drops the confirmation); a
/// caller that reads what the channel would announce (a room log, pending
/// notices) right after subscribing must wait for this, or an event
/// published in between reaches neither that read nor the subscriber. A
/// PING on the same connection is answered in order, after the SUBSCRIBE.
pub async fn confirm_subscriptions(
    subscriber: &SubscriberClient,
) -> Result<(), fred::error::Error> {
    let _: fred::types::Value = subscriber.ping(None).await?;
    Ok(())
}

/// Run `script` (`EVALSHA`, loading it on `NOSCRIPT`), every service's one
/// way to run a script. On Redis Cluster a slot in the middle of a
/// migration refuses a script whose keys are split between the two nodes
/// (`TRYAGAIN`, or a redirection fred gave up following) before running
/// it: nothing was written, so it is retried a bounded number of times.
pub async fn run_script<R, K, V>(
    script: &fred::types::scripts::Script,
    redis: &Client,
    keys: K,
    args: V,
) -> Result<R, fred::error::Error>
where
    R: FromValue,
    K: Into<fred::types::MultipleKeys> + Clone + Send,
    V: TryInto<fred::types::MultipleValues> + Clone + Send,
    V::Error: Into<fred::error::Error> + Send,
{
    let mut attempt = 0u32;
    loop {
        match script
            .evalsha_with_reload(redis, keys.clone(), args.clone())
            .await
        {
            Err(e) if attempt < MIGRATION_RETRIES && is_migration(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
            }
            result => return result,
        }
    }
}

/// Whether Redis refused a command, before running it, because its slot
/// is migrating between cluster nodes. fred reports a redirection it gave
/// up following as "Too many redirections." (no `MOVED` or `ASK` in it):
/// every node it tried answered with a redirection, so none ran it. That
/// happens right after a slot moved, while the nodes fred asks for the
/// slot map still name the old owner, which answers `MOVED`.
fn is_migration(e: &fred::error::Error) -> bool {
    let d = e.details();
    d.contains("TRYAGAIN")
        || d.contains("ASK")
        || d.contains("MOVED")
        || d.contains("CLUSTERDOWN")
        || d.contains("Too many redirections")
}

/// Whether Redis answers a `PING` within half a second.
pub async fn is_reachable(client: &Client) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(500), client.ping::<String>(None)).await,
        Ok(Ok(_))
    )
}
