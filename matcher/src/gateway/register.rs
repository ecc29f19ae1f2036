//! Putting a user in line for the pool: one atomic script sets the user's
//! waiting key (refusing a second registration) and appends the register
//! request to the stream the workers read.

use fred::prelude::*;
use wire::internal::{self, RegisterRequest};
use wire::keys;
use wire::user::UserKey;

use super::{Gateway, Waiting};
use crate::scripts;

/// Backstop TTL of a waiting key; gateways and workers clean up long before.
const WAITING_TTL_MS: u64 = 24 * 3600 * 1000;

/// Approximate cap on the register stream's length (acknowledged entries
/// are trimmed away as new ones arrive).
const STREAM_MAX_LEN: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    Queued,
    AlreadyWaiting,
}

/// Register `user` under display name `name`.
pub async fn register(gw: &Gateway, user: &UserKey, name: &str) -> Result<RegisterOutcome, Error> {
    let waiting = Waiting {
        reg: ulid::Ulid::new().to_string(),
        name: name.to_string(),
        since: std::time::Instant::now(),
    };
    let queued = requeue(gw, user, &waiting).await?;
    if queued {
        metrics::counter!(service::metrics::REGISTRATIONS).increment(1);
        gw.conns.set_waiting(user, Some(waiting));
        Ok(RegisterOutcome::Queued)
    } else {
        Ok(RegisterOutcome::AlreadyWaiting)
    }
}

/// Run the register script for an existing registration (also used to put
/// waiting users back after a Redis restart). `true` when queued.
pub async fn requeue(gw: &Gateway, user: &UserKey, waiting: &Waiting) -> Result<bool, Error> {
    let request = internal::encode(&RegisterRequest {
        v: wire::PROTOCOL_VERSION,
        user: user.to_string(),
        reg: waiting.reg.clone(),
    });
    let args: Vec<Value> = vec![
        waiting.reg.clone().into(),
        waiting.name.clone().into(),
        Value::Bytes(request.into()),
        WAITING_TTL_MS.to_string().into(),
        STREAM_MAX_LEN.to_string().into(),
    ];
    let queued: i64 = scripts::run(
        &gw.scripts.register,
        &gw.redis,
        vec![keys::waiting(user), keys::register_stream()],
        args,
    )
    .await?;
    Ok(queued == 1)
}

/// Take `user` out of the pool (native `cancel`). `true` if they were waiting.
pub async fn withdraw(gw: &Gateway, user: &UserKey) -> Result<bool, Error> {
    gw.conns.set_waiting(user, None);
    let was: i64 = scripts::run(
        &gw.scripts.withdraw,
        &gw.redis,
        vec![keys::waiting(user), keys::pool()],
        vec![user.to_string()],
    )
    .await?;
    Ok(was == 1)
}
