//! A Redis outage or restart is survived without restarting
//! anything; waiting users are put back by their gateway.

mod common;

use std::time::Duration;

use serde_json::json;
use testkit::RedisServer;

/// Reconnecting takes up to the 2 s reconnect back-off plus command
/// timeouts; on a loaded machine give it room, still bounded.
const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_worker_survive_a_redis_restart() {
    let _panics = testkit::panics::guard();
    let mut redis = RedisServer::start();
    let m = common::start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();
    assert_eq!(common::get_status(addr, "/readyz").await, 200);

    // Ann waits alone when Redis goes away.
    let (mut ann, _) = common::native_waiting(addr, "ann").await;
    redis.stop();
    testkit::eventually(testkit::STEP, "/readyz fails during the outage", || async {
        (common::get_status(addr, "/readyz").await == 503).then_some(())
    })
    .await;
    assert_eq!(common::get_status(addr, "/healthz").await, 200);

    // During the outage a register gets a clear error, not a hang.
    let (mut early, _) = common::native(addr).await;
    early.send_json(&json!({"event": "register"})).await;
    let refused = early.recv_event_within("error", LONG).await;
    assert_eq!(refused["code"], "unavailable");
    early.close().await;

    // Redis comes back empty (no persistence).
    redis.restart();
    testkit::eventually(LONG, "/readyz recovers", || async {
        (common::get_status(addr, "/readyz").await == 200).then_some(())
    })
    .await;

    // Ann was put back in the pool by her gateway: a newcomer meets her.
    let (mut bob, _) = common::native_waiting(addr, "bob").await;
    let a = ann.recv_event_within("matched", LONG).await;
    let b = bob.recv_event_within("matched", LONG).await;
    assert_eq!(a["room_code"], b["room_code"]);

    // And users who arrive after the restart are matched too.
    let (mut cy, _) = common::native_waiting(addr, "cy").await;
    let (mut di, _) = common::native_waiting(addr, "di").await;
    common::matched_together(&mut cy, &mut di).await;
}
