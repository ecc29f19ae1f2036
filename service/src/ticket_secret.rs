//! The HMAC secret that matcher and signaller share for room tickets.
//!
//! Production sets one (`--ticket-secret`, or `--ticket-secret-file` so it
//! need not be on the command line or in the environment). Without it, the
//! first process to start makes a random 32-byte secret and shares it
//! through Redis with `SET NX`; every process, the first included, then
//! reads back and uses the stored one, after checking its length. There is
//! no built-in secret that an attacker could know.
//!
//! After a Redis restart (an empty Redis) each process puts its secret back
//! ([`reassert`]). If another one got there first (a process started in
//! between made a new one), the processes would verify with different
//! secrets: that is not hidden. The process reports it (an error in the log,
//! [`CHANGED_METRIC`] at 1) and is not ready ([`changed`], read by
//! `/readyz`) until the stored secret is its own again; restarting it makes
//! it take the stored one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fred::prelude::*;
use fred::types::SetOptions;
use rand::RngCore;
use wire::ticket::MIN_SECRET_BYTES;

use crate::settings::SharedSettings;

/// 1 while the shared secret stored in Redis is not the one this process
/// uses (see [`reassert`]), else 0.
pub const CHANGED_METRIC: &str = "rvc_ticket_secret_changed";

/// Whether this process found the shared secret in Redis changed under it.
/// Process-wide: a process verifies and signs with one secret.
static CHANGED: AtomicBool = AtomicBool::new(false);

/// Why no secret could be had. The messages never hold the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "--ticket-secret (RVC_TICKET_SECRET) must be at least {MIN_SECRET_BYTES} bytes, got {0}"
    )]
    TooShort(usize),
    #[error("--ticket-secret-file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("the shared ticket secret in Redis is unusable ({0}); delete the key or set --ticket-secret")]
    Corrupt(String),
}

/// Check a configured secret.
pub fn check_configured(secret: &str) -> Result<Vec<u8>, SecretError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort(secret.len()));
    }
    Ok(secret.as_bytes().to_vec())
}

/// The configured secret (`--ticket-secret` or `--ticket-secret-file`),
/// checked; `None` when neither is set.
pub fn configured(settings: &SharedSettings) -> Result<Option<Vec<u8>>, SecretError> {
    let secret = match (&settings.ticket_secret_file, &settings.ticket_secret) {
        (Some(path), _) => read_file(path)?,
        (None, Some(secret)) => check_configured(secret)?,
        (None, None) => return Ok(None),
    };
    Ok(Some(secret))
}

/// The secret in `path`: its bytes, less one trailing line end.
fn read_file(path: &Path) -> Result<Vec<u8>, SecretError> {
    let bad = |reason: String| SecretError::File {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(bad(format!(
            "the secret must be at least {MIN_SECRET_BYTES} bytes, got {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The configured secret, or the one shared through Redis (made now if no
/// process made it yet). Waits for Redis when it is not reachable yet.
pub async fn resolve(configured: Option<&[u8]>, redis: &Client) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        return Ok(secret.to_vec());
    }
    tracing::warn!(
        "no --ticket-secret set: sharing a random one through Redis; set RVC_TICKET_SECRET_FILE in production"
    );
    let mut mine = [0u8; MIN_SECRET_BYTES];
    rand::rng().fill_bytes(&mut mine);
    let mine = STANDARD.encode(mine);
    loop {
        match share(redis, &mine).await {
            Ok(shared) => return decode(&shared),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for Redis to share the ticket secret");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// A stored secret, checked: base64 of at least [`MIN_SECRET_BYTES`].
fn decode(stored: &str) -> Result<Vec<u8>, SecretError> {
    let secret = STANDARD
        .decode(stored)
        .map_err(|_| SecretError::Corrupt("not base64".into()))?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SecretError::Corrupt(format!(
            "{} bytes, fewer than {MIN_SECRET_BYTES}",
            secret.len()
        )));
    }
    Ok(secret)
}

/// `SET NX` our candidate, then read back whichever one is stored.
async fn share(redis: &Client, candidate: &str) -> Result<String, fred::error::Error> {
    let key = wire::keys::ticket_secret();
    let _: Option<String> = redis
        .set(&key, candidate, None, Some(SetOptions::NX), false)
        .await?;
    let shared: Option<String> = redis.get(&key).await?;
    shared
        .ok_or_else(|| fred::error::Error::new(fred::error::ErrorKind::NotFound, "secret vanished"))
}

/// After a Redis restart (an empty Redis), put the shared secret this
/// process already uses back, so that processes started later agree with
/// it; then read back what is stored. Returns whether it is ours. When it is
/// not (another process stored a different one first), this is reported and
/// the process is not ready until it is ours again. A Redis error changes
/// nothing (the next reconnect tries again). Only for a secret shared
/// through Redis: a configured one is never written there.
pub async fn reassert(redis: &Client, secret: &[u8]) -> bool {
    let ours = STANDARD.encode(secret);
    let stored = match share(redis, &ours).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(error = %e, "could not check the shared ticket secret");
            return !changed();
        }
    };
    let agrees = stored == ours;
    let was_changed = CHANGED.swap(!agrees, Ordering::SeqCst);
    metrics::gauge!(CHANGED_METRIC).set(if agrees { 0.0 } else { 1.0 });
    if !agrees {
        tracing::error!(
            "the shared ticket secret in Redis is not the one this process uses (another process stored a new one after a Redis restart): tickets would not verify across processes; not ready until restarted or the secret is restored"
        );
    } else if was_changed {
        tracing::info!("the shared ticket secret in Redis is this process's again");
    }
    agrees
}

/// Whether this process found the shared secret in Redis changed under it
/// (see [`reassert`]): it is then not ready.
pub fn changed() -> bool {
    CHANGED.load(Ordering::SeqCst)
}
