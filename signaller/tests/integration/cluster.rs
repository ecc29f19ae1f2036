//! The signaller on a 6-node Redis Cluster (3 primaries, 3 replicas): the
//! relay tests of a single Redis, a node drained mid-call, a script that
//! touches a key of another slot refused, rooms spread over every primary,
//! and relay that loses, repeats and reorders nothing while slots move or
//! a primary dies.
//!
//! Every test here is named `cluster_*`: `scripts/test` runs them in a pass
//! of their own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{Next, RedisCluster, Reply, TestRedis, WsClient};
use wire::user::Role;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cross_node_relay_and_before_join_backlog() {
    let _panics = testkit::panics::guard();
    let cluster = RedisCluster::start();
    crate::relay::cross_node_relay(&cluster).await;
    crate::relay::before_join_backlog(&cluster).await;
    crate::fanout::join_returns_once_subscribed(&cluster.url()).await;
}

/// A node draining (SIGTERM) mid-call on the cluster: both sessions move
/// to the other node and resume there (the room's away marks, resume and
/// shard subscription on the cluster), nobody is told `peer-left`,
/// nothing is lost or repeated, and the process exits within its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_draining_node_moves_both_peers_without_loss() {
    let _panics = testkit::panics::guard();
    let cluster = RedisCluster::start();
    crate::resume::draining_node_moves_both_peers(&cluster).await;
}

/// A script may touch only keys in the slot of the keys it declares: on a
/// cluster, one that writes the log of a room in another slot is refused,
/// and so is one that publishes on another room's channel. (The room
/// scripts declare the room's log and members, and the channel they
/// publish on carries the same hash tag.)
#[test]
fn cluster_a_script_touching_another_slot_is_refused() {
    let cluster = RedisCluster::start();
    // Two rooms in different slots.
    let a = "roomA";
    let b = (0..)
        .map(|i| format!("roomB{i}"))
        .find(|b| {
            cluster.query(&["CLUSTER", "KEYSLOT", &wire::keys::room_log(b)])
                != cluster.query(&["CLUSTER", "KEYSLOT", &wire::keys::room_log(a)])
        })
        .unwrap();
    let (log_a, log_b) = (wire::keys::room_log(a), wire::keys::room_log(&b));
    let same =
        "redis.call('XADD', KEYS[1], '*', 'm', 'x') return redis.call('SPUBLISH', ARGV[1], 'x')";
    let ok = cluster.query(&["EVAL", same, "1", &log_a, &wire::keys::room_channel(a)]);
    assert!(matches!(ok, Reply::Int(_)), "same slot runs: {ok:?}");
    let other_key = "return redis.call('XADD', ARGV[1], '*', 'm', 'x')";
    let refused = cluster.query(&["EVAL", other_key, "1", &log_a, &log_b]);
    assert!(
        matches!(&refused, Reply::Error(e) if e.contains("slot") || e.contains("node")),
        "an undeclared key of another slot is refused: {refused:?}"
    );
    let other_channel = "return redis.call('SPUBLISH', ARGV[1], 'x')";
    let refused = cluster.query(&[
        "EVAL",
        other_channel,
        "1",
        &log_a,
        &wire::keys::room_channel(&b),
    ]);
    assert!(
        matches!(&refused, Reply::Error(e) if e.contains("slot") || e.contains("node")),
        "a channel of another slot is refused: {refused:?}"
    );
}

/// One pair's traffic: A (on node 1) and B (on node 2) each send `seq`
/// 0.. until told to stop; each side checks that what it receives is
/// exactly 0, 1, 2, ... with nothing missing, repeated or out of order.
struct Pair {
    a: WsClient,
    b: WsClient,
    sent_a: u64,
    sent_b: u64,
    got_a: u64,
    got_b: u64,
}

/// Join `rooms` pairs, A on `n1` and B on `n2`.
async fn pairs(
    n1: &signaller::RunningNode,
    n2: &signaller::RunningNode,
    rooms: usize,
) -> Vec<Pair> {
    let mut out = Vec::new();
    for r in 0..rooms {
        let room = new_room();
        let (a, _) = join_native(
            n1,
            &ticket(&room, &format!("s:A{r}"), "ann", Role::Initiator),
        )
        .await;
        let (mut b, _) = join_native(
            n2,
            &ticket(&room, &format!("s:B{r}"), "bob", Role::Responder),
        )
        .await;
        let mut a = a;
        assert_eq!(a.recv().await["event"], "peer-joined");
        b.expect_silence(Duration::from_millis(1)).await;
        out.push(Pair {
            a,
            b,
            sent_a: 0,
            sent_b: 0,
            got_a: 0,
            got_b: 0,
        });
    }
    out
}

/// Receive one signal on `ws` and check it is `want`.
fn check_seq(frame: Option<Next>, who: &str, r: usize, want: u64) {
    let got = match frame {
        Some(Next::Json(got)) => got,
        other => panic!("room {r} at {who}: signal {want} missing: {other:?}"),
    };
    assert_eq!(got["event"], "signal", "room {r} at {who}: {got}");
    assert_eq!(
        got["data"]["seq"],
        json!(want),
        "room {r} at {who}: expected signal {want} (lost, repeated or reordered): {got}"
    );
}

/// Send one round (one signal each way in every room), then receive it.
async fn round(pairs: &mut [Pair], wait: Duration) {
    for p in pairs.iter_mut() {
        p.a.send_json(&json!({"event":"signal","data":{"seq":p.sent_a}}))
            .await;
        p.sent_a += 1;
        p.b.send_json(&json!({"event":"signal","data":{"seq":p.sent_b}}))
            .await;
        p.sent_b += 1;
    }
    for (r, p) in pairs.iter_mut().enumerate() {
        while p.got_b < p.sent_a {
            check_seq(p.b.next_within(wait).await, "B", r, p.got_b);
            p.got_b += 1;
        }
        while p.got_a < p.sent_b {
            check_seq(p.a.next_within(wait).await, "A", r, p.got_a);
            p.got_a += 1;
        }
    }
}

/// Every room is silent now: nothing more than what was sent arrives.
async fn all_quiet(pairs: &mut [Pair]) {
    for p in pairs.iter_mut() {
        p.a.expect_silence(Duration::from_millis(50)).await;
        p.b.expect_silence(Duration::from_millis(50)).await;
    }
}

const FAST: [&str; 8] = [
    "--rate-limit",
    "100000",
    "--rate-burst",
    "100000",
    "--heartbeat-ms",
    "1000",
    "--node-ttl-ms",
    "30000",
];

/// While 40 pairs exchange signals across two signaller nodes, half of
/// one primary's slots move to another (`redis-cli --cluster reshard`,
/// keys and all): every signal arrives exactly once, in order. Rooms are
/// spread: every primary holds room keys before the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_resharding_under_traffic_loses_repeats_and_reorders_nothing() {
    let _panics = testkit::panics::guard();
    let cluster = RedisCluster::start();
    let (n1, n2) = (node(&cluster, &FAST).await, node(&cluster, &FAST).await);
    let mut pairs = pairs(&n1, &n2, 40).await;
    round(&mut pairs, testkit::STEP).await;

    // Rooms spread: every primary serves some.
    let per_primary: HashMap<u16, usize> =
        cluster.primaries().into_iter().map(|p| (p, 0)).collect();
    let logs = cluster.keys(&wire::keys::room_log("*"));
    let mut per_primary = per_primary;
    for key in &logs {
        *per_primary.get_mut(&cluster.owner_of(key)).unwrap() += 1;
    }
    assert!(
        per_primary.values().all(|&n| n > 0),
        "room logs on every primary: {per_primary:?}"
    );

    let primaries = cluster.primaries();
    let (from, to) = (primaries[0], primaries[1]);
    let moving = per_primary[&from];
    let started = Instant::now();
    let reshard = std::thread::spawn({
        let node_from = cluster.node_id(from);
        let node_to = cluster.node_id(to);
        let seed = from;
        move || {
            let out = std::process::Command::new("redis-cli")
                .args(["--cluster", "reshard", &format!("127.0.0.1:{seed}")])
                .args(["--cluster-from", &node_from, "--cluster-to", &node_to])
                .args(["--cluster-slots", "2730", "--cluster-yes"])
                .args(["--cluster-pipeline", "100"])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("redis-cli --cluster reshard");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    });
    let mut rounds = 0;
    while !reshard.is_finished() {
        round(&mut pairs, Duration::from_secs(20)).await;
        rounds += 1;
    }
    reshard.join().unwrap();
    cluster.wait_ok(Duration::from_secs(20)).unwrap();
    println!(
        "resharded 2730 slots ({moving} of 40 rooms' primary) in {:?} under {rounds} rounds of traffic",
        started.elapsed()
    );
    // And after: the moved rooms are live on their new node.
    for _ in 0..3 {
        round(&mut pairs, Duration::from_secs(20)).await;
    }
    all_quiet(&mut pairs).await;
}

/// While 30 pairs exchange signals, a primary is killed (SIGKILL): its
/// replica takes over, relay resumes within a bounded time, and every
/// signal still arrives exactly once, in order (the sender is told of
/// any it must send again: `unavailable`, which this test counts and
/// resends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_under_traffic_resumes_relay_exactly_once() {
    let _panics = testkit::panics::guard();
    let mut cluster = RedisCluster::start();
    let (n1, n2) = (node(&cluster, &FAST).await, node(&cluster, &FAST).await);
    let mut pairs = pairs(&n1, &n2, 30).await;
    round(&mut pairs, testkit::STEP).await;

    let victim = cluster.primaries()[2];
    cluster.kill(victim);
    let killed = Instant::now();
    let failover = cluster.wait_failed_over(victim, Duration::from_secs(30));

    // Resend whatever the nodes refused while the shard was down, until
    // every room relays again.
    let recovered = resend_until_relayed(&mut pairs, Duration::from_secs(30)).await;
    println!(
        "primary killed: cluster failed over in {failover:?}, relay in every room resumed {:?} after the kill",
        recovered.duration_since(killed)
    );
    for _ in 0..3 {
        round(&mut pairs, Duration::from_secs(10)).await;
    }
    all_quiet(&mut pairs).await;
}

/// One signal each way per room, resent while refused (`error`
/// `unavailable`), received exactly once and in order; returns when every
/// room has relayed one.
async fn resend_until_relayed(pairs: &mut [Pair], limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    for (r, p) in pairs.iter_mut().enumerate() {
        for side in [true, false] {
            loop {
                assert!(
                    Instant::now() < deadline,
                    "room {r}: relay not back within {limit:?}"
                );
                let (tx, rx, seq, got) = if side {
                    (&mut p.a, &mut p.b, p.sent_a, &mut p.got_b)
                } else {
                    (&mut p.b, &mut p.a, p.sent_b, &mut p.got_a)
                };
                tx.send_json(&json!({"event":"signal","data":{"seq":seq}}))
                    .await;
                // Either the peer receives it, or the sender is told it
                // was not relayed.
                tokio::select! {
                    frame = rx.next_within(Duration::from_secs(5)) => {
                        check_seq(frame, if side { "B" } else { "A" }, r, *got);
                        *got += 1;
                        if side { p.sent_a += 1 } else { p.sent_b += 1 }
                        break;
                    }
                    frame = tx.next_within(Duration::from_secs(5)) => {
                        match frame {
                            Some(Next::Json(v)) if v["event"] == "error" => {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            other => panic!("room {r}: unexpected at the sender: {other:?}"),
                        }
                    }
                }
            }
        }
    }
    Instant::now()
}
