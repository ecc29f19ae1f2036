//! The gateway's liveness in Redis. When the heartbeat stops (the process
//! died without cleaning up), workers purge its users after the TTL.

use fred::prelude::*;
use fred::types::Expiration;
use wire::keys;

use super::Gateway;

/// Refresh liveness every heartbeat period until the gateway is killed.
pub async fn run(gw: std::sync::Arc<Gateway>) {
    let mut kill = gw.kill.clone();
    let mut tick = tokio::time::interval(gw.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => beat(&gw).await,
            _ = kill.wait() => return,
        }
    }
}

/// One heartbeat: the liveness key with its TTL, and membership of the set
/// of gateways that workers check.
pub async fn beat(gw: &Gateway) {
    let ttl = gw.settings.gateway_ttl.as_millis() as i64;
    let result: Result<((), ()), Error> = async {
        let pipe = gw.redis.pipeline();
        let _: () = pipe
            .set(
                keys::gateway_alive(&gw.id),
                1,
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await?;
        let _: () = pipe.sadd(keys::gateways(), gw.id.as_str()).await?;
        pipe.all().await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "heartbeat failed");
    }
}
