//! The matcher on a 6-node Redis Cluster (3 primaries, 3 replicas): the
//! atomicity test of a single Redis, gateway restarts (a drain, a crash)
//! while users wait, and matching that goes on, without a double match or
//! a stuck worker, after the primary of the `{m}` slot is killed. Every test here is named `cluster_*`: `scripts/test` runs them
//! in a pass of their own.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use testkit::{Next, RedisCluster, TestRedis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_four_workers_two_gateways_2000_users_each_matched_exactly_once() {
    let _panics = testkit::panics::guard();
    let cluster = RedisCluster::start();
    common::atomicity::two_thousand_users(&cluster).await;
}

/// A gateway restarted while a user waits on it: drained (SIGTERM), its
/// user moves to another gateway and is matched there exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_draining_gateways_waiting_user_is_matched_once_elsewhere() {
    let _panics = testkit::panics::guard();
    let cluster = RedisCluster::start();
    common::restart::sigterm_drains_the_gateway(&cluster).await;
}

/// A gateway killed (SIGKILL) while its user waits, a new one started:
/// the dead gateway's user is never handed out, the new users are matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_killed_gateways_user_is_never_handed_out_after_a_new_one_starts() {
    let _panics = testkit::panics::guard();
    let cluster = RedisCluster::start();
    common::restart::a_dead_gateways_user_is_never_handed_out(&cluster).await;
}

/// `n` users register through `addrs` (alternating) and wait for
/// `matched`; returns the room of each. Users refused with an error or a
/// closed socket (the shard was down) are retried on a new socket.
async fn match_users(addrs: &[std::net::SocketAddr], n: usize, tag: &str) -> Vec<String> {
    let users = (0..n).map(|i| {
        let addr = addrs[i % addrs.len()];
        let name = format!("{tag}{i}");
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                assert!(Instant::now() < deadline, "{name}: never matched");
                let (mut ws, _) = common::native(addr).await;
                ws.send_json(&json!({"event": "register", "name": name}))
                    .await;
                loop {
                    match ws.next_within(Duration::from_secs(30)).await {
                        Some(Next::Json(v)) if v["event"] == "matched" => {
                            // Exactly one `matched` per socket.
                            ws.expect_silence(Duration::from_millis(300)).await;
                            return v["room_code"].as_str().unwrap().to_string();
                        }
                        Some(Next::Json(v)) if v["event"] == "queued" => continue,
                        _ => break,
                    }
                }
            }
        }
    });
    join_all(users).await
}

/// Matching goes on after the primary serving the `{m}` slot is killed
/// (SIGKILL) and its replica promoted: 200 users who come after are all
/// matched, each pair in a room of its own (no user in two rooms), with
/// no worker stuck; the time from the kill until matching works again is
/// reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_of_the_matching_slot_keeps_matching_once() {
    let _panics = testkit::panics::guard();
    let mut cluster = RedisCluster::start();
    let gateways = [
        common::start(&cluster.url(), "gateway", &[]).await,
        common::start(&cluster.url(), "gateway", &[]).await,
    ];
    let _workers = [
        common::start(&cluster.url(), "worker", &[]).await,
        common::start(&cluster.url(), "worker", &[]).await,
    ];
    let addrs: Vec<_> = gateways.iter().map(|g| g.gateway_addr().unwrap()).collect();
    let before = match_users(&addrs, 100, "a").await;
    assert_eq!(before.iter().collect::<HashSet<_>>().len(), 50);

    let victim = cluster.owner_of(&wire::keys::pool());
    cluster.kill(victim);
    let killed = Instant::now();
    let failover = cluster.wait_failed_over(victim, Duration::from_secs(30));
    let after = match_users(&addrs, 200, "b").await;
    let recovered = killed.elapsed();
    let rooms: HashSet<&String> = after.iter().collect();
    assert_eq!(
        rooms.len(),
        100,
        "200 users, 100 rooms: nobody in two rooms"
    );
    assert!(
        rooms.is_disjoint(&before.iter().collect()),
        "no room reused"
    );
    println!(
        "{{m}} primary killed: cluster failed over in {failover:?}; 200 more users matched {recovered:?} after the kill"
    );
    assert_eq!(cluster.command(&["ZCARD", &wire::keys::pool()]), "0");
}
