//! The gateway's liveness in Redis. When the heartbeat stops (the process
//! died without cleaning up), workers purge its users after the TTL.

use std::sync::atomic::Ordering;

use crate::store::Beat;

use super::SharedGateway;

/// Refresh liveness every heartbeat period until the gateway is killed.
/// If the liveness key had expired (this process was stalled for longer
/// than the TTL, and workers may have purged its users), restore the state.
pub async fn run(gw: SharedGateway) {
    let mut kill = gw.kill.clone();
    let mut tick = tokio::time::interval(gw.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let beat = gw.store.heartbeat(&gw.id, gw.settings.gateway_ttl).await;
                if beat == Beat::Lapsed {
                    tracing::warn!("heartbeat had lapsed; restoring this gateway's users");
                    gw.request_restore();
                }
                // With Redis unreachable, the restore waits for a beat that
                // gets through (its liveness is the restore's first step).
                if beat != Beat::Failed {
                    gw.retry_releases().await;
                    if gw.needs_restore.swap(false, Ordering::SeqCst) {
                        super::restore(&gw).await;
                    }
                }
            }
            _ = kill.wait() => return,
        }
    }
}
