//! The HMAC secret that matcher and signaller share for room tickets.
//!
//! Production sets one (`--ticket-secret`). Without it, the first process to
//! start makes a random 32-byte secret and shares it through Redis with
//! `SET NX`; every other process reads that one. There is no built-in secret
//! that an attacker could know.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fred::prelude::*;
use fred::types::SetOptions;
use rand::RngCore;
use std::time::Duration;
use wire::ticket::MIN_SECRET_BYTES;

/// Why no secret could be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "--ticket-secret (RVC_TICKET_SECRET) must be at least {MIN_SECRET_BYTES} bytes, got {0}"
    )]
    TooShort(usize),
    #[error("the shared ticket secret in Redis is corrupt")]
    Corrupt,
}

/// Check a configured secret.
pub fn check_configured(secret: &str) -> Result<Vec<u8>, SecretError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort(secret.len()));
    }
    Ok(secret.as_bytes().to_vec())
}

/// The configured secret, or the one shared through Redis (made now if no
/// process made it yet). Waits for Redis when it is not reachable yet.
pub async fn resolve(configured: Option<&str>, redis: &Client) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        return check_configured(secret);
    }
    tracing::warn!(
        "no --ticket-secret set: sharing a random one through Redis; set RVC_TICKET_SECRET in production"
    );
    let mut mine = [0u8; MIN_SECRET_BYTES];
    rand::rng().fill_bytes(&mut mine);
    let mine = STANDARD.encode(mine);
    loop {
        match share(redis, &mine).await {
            Ok(shared) => {
                return STANDARD.decode(shared).map_err(|_| SecretError::Corrupt);
            }
            Err(e) => {
                tracing::warn!(error = %e, "waiting for Redis to share the ticket secret");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// `SET NX` our candidate, then read whichever one won.
async fn share(redis: &Client, candidate: &str) -> Result<String, fred::error::Error> {
    let key = wire::keys::ticket_secret();
    let _: Option<String> = redis
        .set(&key, candidate, None, Some(SetOptions::NX), false)
        .await?;
    let shared: Option<String> = redis.get(&key).await?;
    shared
        .ok_or_else(|| fred::error::Error::new(fred::error::ErrorKind::NotFound, "secret vanished"))
}

/// After a Redis restart (an empty Redis), put the secret this process
/// already uses back, so that processes started later agree with it.
pub async fn reassert(redis: &Client, secret: &[u8]) {
    let key = wire::keys::ticket_secret();
    let _: Result<Option<String>, _> = redis
        .set(
            &key,
            STANDARD.encode(secret),
            None,
            Some(SetOptions::NX),
            false,
        )
        .await;
}
