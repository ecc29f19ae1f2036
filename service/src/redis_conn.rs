//! Redis connections that survive outages.
//!
//! Every client reconnects by itself, forever, with exponential backoff
//! capped at two seconds, so a Redis restart never needs a service restart.
//! Commands fail after a bounded time instead of waiting out an outage, so
//! callers can report not-ready and retry.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::config::UnresponsiveConfig;

/// How long an ordinary command may take before it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a Redis URL was refused at start.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL {url:?}: {reason}")]
pub struct BadRedisUrl {
    pub url: String,
    pub reason: String,
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
        return Err(BadRedisUrl {
            url: url.to_string(),
            reason: format!("the scheme must be one of {}", SCHEMES.join(", ")),
        });
    }
    Config::from_url(url).map_err(|e| BadRedisUrl {
        url: url.to_string(),
        reason: e.details().to_string(),
    })
}

fn builder(url: &str, for_blocking: bool) -> Result<Builder, BadRedisUrl> {
    let mut config = parse_url(url)?;
    config.fail_fast = false;
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            // One attempt: during an outage a caller hears "unavailable"
            // within the command timeout instead of after retries.
            c.max_command_attempts = 1;
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
    Ok(builder)
}

/// Start connecting in the background and wait up to `wait` for the first
/// connection. Returns the client either way: when Redis is not up yet the
/// client keeps trying, and readiness reports the outage meanwhile.
async fn start<C: ClientLike>(client: C, wait: Duration) -> C {
    client.connect();
    if tokio::time::timeout(wait, client.wait_for_connect())
        .await
        .is_err()
    {
        tracing::warn!("Redis is not reachable yet; retrying in the background");
    }
    client
}

fn refused(url: &str, e: fred::error::Error) -> BadRedisUrl {
    BadRedisUrl {
        url: url.to_string(),
        reason: e.details().to_string(),
    }
}

/// An ordinary command client.
pub async fn connect(url: &str) -> Result<Client, BadRedisUrl> {
    let client = builder(url, false)?.build().map_err(|e| refused(url, e))?;
    Ok(start(client, Duration::from_secs(3)).await)
}

/// A client for blocking commands (`XREADGROUP ... BLOCK`): no default
/// timeout and no unresponsiveness check, since a blocked read is silent by
/// design. Callers bound each blocking call themselves.
pub async fn connect_blocking(url: &str) -> Result<Client, BadRedisUrl> {
    let client = builder(url, true)?.build().map_err(|e| refused(url, e))?;
    Ok(start(client, Duration::from_secs(3)).await)
}

/// A pub/sub client. Its subscriptions are restored after every reconnect.
pub async fn connect_subscriber(url: &str) -> Result<SubscriberClient, BadRedisUrl> {
    let mut builder = builder(url, false)?;
    // Pub/sub messages are fanned out through a broadcast channel; a
    // receiver that lags loses messages, so leave ample room (only here:
    // every client allocates several such channels).
    builder.with_performance_config(|p| p.broadcast_channel_capacity = 65_536);
    let client = builder
        .build_subscriber_client()
        .map_err(|e| refused(url, e))?;
    let client = start(client, Duration::from_secs(3)).await;
    // Detached: re-subscribes after every reconnect for as long as the client lives.
    drop(client.manage_subscriptions());
    Ok(client)
}

/// Whether Redis answers a `PING` within half a second.
pub async fn is_reachable(client: &Client) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(500), client.ping::<String>(None)).await,
        Ok(Ok(_))
    )
}
