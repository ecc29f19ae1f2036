//! The fan-out's promise to a joiner: once `Fanout::join` returns, Redis
//! has the node subscribed, so an event published after the joiner reads
//! the room log reaches it live.

use fred::prelude::*;
use service::redis_conn::{connect, connect_shard_subscriber, RedisTarget};
use signaller::fanout::Fanout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_returns_once_redis_has_subscribed_the_node() {
    let redis = testkit::RedisServer::start();
    join_returns_once_subscribed(&redis.url()).await;
}

/// 300 joins in a row, each checked with an `SPUBLISH` right after it
/// returns: the node must count as a receiver every time. Also run on the
/// cluster (`cluster.rs`), where each room's channel is on its slot's node.
pub async fn join_returns_once_subscribed(url: &str) {
    let target = RedisTarget::new(url, None).unwrap();
    let publisher = connect(&target).await.unwrap();
    let subscriber = connect_shard_subscriber(&target).await.unwrap();
    let (fanout, _tasks) = Fanout::start(subscriber);
    let (mailbox, _inbox) = signaller::mailbox::new();
    let conn = ulid::Ulid::new();
    // Before the fix, about one join in ten (more under load) returned
    // before Redis ran the SUBSCRIBE; leaving the previous room in between
    // interleaves UNSUBSCRIBEs as real sockets do.
    for i in 0..300 {
        let room = format!("room{i}");
        fanout.join(&room, conn, mailbox.clone()).await.unwrap();
        let channel = wire::keys::room_channel(&room);
        let receivers: i64 = publisher.spublish(channel.as_str(), "x").await.unwrap();
        assert_eq!(
            receivers, 1,
            "join {i} returned before the node was subscribed"
        );
        if i > 0 {
            fanout.leave(&format!("room{}", i - 1), conn);
        }
    }
}
