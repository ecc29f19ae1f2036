//! The gateway's liveness in Redis. When the heartbeat stops (the process
//! died without cleaning up), workers purge its users after the TTL.

use std::sync::atomic::Ordering;

use fred::prelude::*;
use fred::types::Expiration;
use wire::keys;

use super::Gateway;

/// Refresh liveness every heartbeat period until the gateway is killed.
/// If the liveness key had expired (this process was stalled for longer
/// than the TTL, and workers may have purged its users), restore the state.
pub async fn run(gw: std::sync::Arc<Gateway>) {
    let mut kill = gw.kill.clone();
    let mut tick = tokio::time::interval(gw.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if beat(&gw).await == Beat::Lapsed {
                    tracing::warn!("heartbeat had lapsed; restoring this gateway's users");
                    gw.needs_restore.store(true, Ordering::SeqCst);
                }
                if gw.needs_restore.swap(false, Ordering::SeqCst) {
                    if let Err(e) = super::restore(&gw).await {
                        tracing::warn!(error = %e, "restore failed; retrying");
                        gw.needs_restore.store(true, Ordering::SeqCst);
                    }
                }
            }
            _ = kill.wait() => return,
        }
    }
}

/// What one heartbeat found.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    /// The liveness key was still there.
    Alive,
    /// The liveness key had expired (or Redis was emptied).
    Lapsed,
    /// Redis did not answer.
    Failed,
}

/// One heartbeat: the liveness key with its TTL, and membership of the set
/// of gateways that workers check.
pub async fn beat(gw: &Gateway) -> Beat {
    let ttl = gw.settings.gateway_ttl.as_millis() as i64;
    let result: Result<(Option<String>, i64), Error> = async {
        let pipe = gw.redis.pipeline();
        let _: () = pipe
            .set(
                keys::gateway_alive(&gw.id),
                1,
                Some(Expiration::PX(ttl)),
                None,
                true,
            )
            .await?;
        let _: () = pipe.sadd(keys::gateways(), gw.id.as_str()).await?;
        pipe.all().await
    }
    .await;
    match result {
        Ok((Some(_), _)) => Beat::Alive,
        Ok((None, _)) => Beat::Lapsed,
        Err(e) => {
            tracing::debug!(error = %e, "heartbeat failed");
            Beat::Failed
        }
    }
}
