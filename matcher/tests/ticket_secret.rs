//! A configured ticket secret stays out of Redis: a gateway's restore after
//! a Redis restart puts back only a secret that was shared through Redis.

mod common;

use std::time::Duration;

use testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_secret_is_never_copied_into_redis() {
    let _panics = testkit::panics::guard();
    let mut redis = RedisServer::start();
    // The test configuration sets --ticket-secret.
    let m = common::start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();
    let (_ann, _) = common::native_waiting(addr, "ann").await;

    // Redis comes back empty; the gateway restores ann into the pool.
    redis.restart();
    testkit::eventually(Duration::from_secs(30), "ann restored", || async {
        (redis.command(&["ZCARD", &wire::keys::pool()]).trim() == "1").then_some(())
    })
    .await;
    assert_eq!(
        redis
            .command(&["EXISTS", &wire::keys::ticket_secret()])
            .trim(),
        "0",
        "the restore wrote the configured secret into Redis"
    );
}
