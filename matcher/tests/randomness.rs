//! When more than two users wait, every pair of them is equally
//! likely to be matched, and either may be the initiator; the partner a user
//! just left is avoided while anyone else waits.
//!
//! Everything goes through the public paths: native sockets register on a
//! real gateway, a real `matcher --role worker` process pairs them. To have
//! all K users in the pool when pairing happens, the worker process is paused
//! (SIGSTOP) while they register and resumed after: it then reads them all
//! and pairs them from a full pool, which is what a busy pool looks like.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use testkit::{RedisServer, WsClient};

/// Register every socket in `users` with its name, in this order; each is
/// answered `queued`.
async fn register_all(users: &mut [(&mut WsClient, &str)]) {
    for (ws, name) in users.iter_mut() {
        ws.send_json(&json!({"event": "register", "name": name}))
            .await;
        ws.recv_event("queued").await;
    }
}

/// Chi-square over the unordered pairs of K users after `rounds` rounds of
/// a pool of K drained into K/2 pairs. Each round, a given pair is matched
/// with probability p = 1/(K-1) (a uniform random perfect matching), so its
/// count is Binomial(rounds, p); the statistic normalises by that variance.
/// With one linear constraint (K/2 pairs per round) it follows chi-square
/// with K(K-1)/2 - 1 degrees of freedom.
fn pair_chi_square(counts: &HashMap<(usize, usize), u64>, k: usize, rounds: usize) -> f64 {
    let p = 1.0 / (k - 1) as f64;
    let expected = rounds as f64 * p;
    let variance = expected * (1.0 - p);
    let mut sum = 0.0;
    for i in 0..k {
        for j in i + 1..k {
            let o = *counts.get(&(i, j)).unwrap_or(&0) as f64;
            sum += (o - expected).powi(2) / variance;
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_of_waiting_users_is_equally_likely() {
    let _panics = testkit::panics::guard();
    const K: usize = 20;
    const ROUNDS: usize = 400;
    // Chi-square with 189 degrees of freedom: P(X < 125.1) = P(X > 270.0)
    // = 1e-4. A fair picker fails either bound once in 5,000 runs; a picker
    // that favours some pairs (FIFO, "partner = next in line") goes over the
    // upper bound, one that is too regular (a fixed rotation) under the lower.
    const PAIRS_LOW: f64 = 125.1;
    const PAIRS_HIGH: f64 = 270.0;
    // Initiator counts per user, 19 degrees of freedom, same p-values.
    const INIT_LOW: f64 = 3.97;
    const INIT_HIGH: f64 = 50.8;

    let redis = RedisServer::start();
    // Each socket registers once per round, faster than the flood limit.
    let gateway = common::start(&redis.url(), "gateway", &["--rate-limit", "10000"]).await;
    let addr = gateway.gateway_addr().unwrap();
    // No last-partner memory: it deliberately skews who meets whom.
    let worker = common::MatcherProcess::worker(&redis, &["--last-partner-secs", "0"]).await;

    let mut users = Vec::new();
    for _ in 0..K {
        users.push(common::native(addr).await.0);
    }
    let mut pairs: HashMap<(usize, usize), u64> = HashMap::new();
    let mut initiator = vec![0u64; K];
    let started = std::time::Instant::now();
    for round in 0..ROUNDS {
        worker.pause().await;
        register_all(&mut users.iter_mut().map(|ws| (ws, "u")).collect::<Vec<_>>()).await;
        worker.resume();
        let mut rooms: HashMap<String, Vec<(usize, bool)>> = HashMap::new();
        for (i, ws) in users.iter_mut().enumerate() {
            let m = ws.recv_event("matched").await;
            rooms
                .entry(m["room_code"].as_str().unwrap().to_string())
                .or_default()
                .push((i, m["initiator"].as_bool().unwrap()));
        }
        assert_eq!(rooms.len(), K / 2, "round {round}: everyone paired once");
        for (room, members) in rooms {
            let [(a, a_init), (b, b_init)] = members[..] else {
                panic!("room {room} has {members:?}");
            };
            assert!(a_init != b_init, "room {room}: exactly one initiator");
            *pairs.entry((a.min(b), a.max(b))).or_default() += 1;
            initiator[if a_init { a } else { b }] += 1;
        }
    }
    let pair_stat = pair_chi_square(&pairs, K, ROUNDS);
    // Each user is in one pair per round and initiates with probability 1/2.
    let init_stat: f64 = initiator
        .iter()
        .map(|&o| (o as f64 - ROUNDS as f64 / 2.0).powi(2) / (ROUNDS as f64 / 4.0))
        .sum();
    println!(
        "{ROUNDS} rounds of {K} in {:?}: pair chi-square {pair_stat:.1} (df 189), \
         initiator chi-square {init_stat:.1} (df 19); {} of 190 pairs seen",
        started.elapsed(),
        pairs.len()
    );
    assert!(
        pair_stat < PAIRS_HIGH,
        "some pairs are matched far more often than others: chi-square {pair_stat:.1} > {PAIRS_HIGH}; counts {pairs:?}"
    );
    assert!(
        pair_stat > PAIRS_LOW,
        "pairs are too regular to be random: chi-square {pair_stat:.1} < {PAIRS_LOW}; counts {pairs:?}"
    );
    assert!(
        (INIT_LOW..INIT_HIGH).contains(&init_stat),
        "initiator role is not a fair coin: chi-square {init_stat:.1}; counts {initiator:?}"
    );
    assert_eq!(redis.command(&["ZCARD", &wire::keys::pool()]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partner_just_left_is_avoided_even_when_alone_until_both_waited() {
    let _panics = testkit::panics::guard();
    // Without the avoidance, a and b meet again one time in three: passing
    // 30 rounds by chance has probability (2/3)^30 < 1e-5.
    const ROUNDS: usize = 30;
    const REMATCH_AFTER_MS: u64 = 300;
    let redis = RedisServer::start();
    let gateway = common::start(&redis.url(), "gateway", &[]).await;
    let addr = gateway.gateway_addr().unwrap();
    // The real default memory (60 s), set explicitly; a short rematch
    // window so the rounds are quick.
    let worker = common::MatcherProcess::worker(
        &redis,
        &[
            "--last-partner-secs",
            "60",
            "--rematch-after-ms",
            &REMATCH_AFTER_MS.to_string(),
        ],
    )
    .await;
    let (mut a, _) = common::native(addr).await;
    let (mut b, _) = common::native(addr).await;
    let (mut c, _) = common::native(addr).await;
    let names = ["a", "b", "c"];
    let register = |name: &'static str| json!({"event": "register", "name": name});

    for round in 0..ROUNDS {
        // a and b, alone together: from the second round on, one of them
        // just left the other, so they meet again only once both have
        // waited the rematch window, never sooner.
        a.send_json(&register(names[0])).await;
        b.send_json(&register(names[1])).await;
        let sent = std::time::Instant::now();
        common::matched_together(&mut a, &mut b).await;
        if round > 0 {
            let waited = sent.elapsed();
            assert!(
                waited >= Duration::from_millis(REMATCH_AFTER_MS),
                "round {round}: a and b met again alone after {waited:?}"
            );
        }

        // Both come back while c waits; all three are in the pool at once.
        worker.pause().await;
        register_all(&mut [(&mut c, "c"), (&mut a, "a"), (&mut b, "b")]).await;
        worker.resume();
        // Avoidance leaves one pairing: c with a or with b.
        let mc = c.recv_event("matched").await;
        let (partner, left) = match mc["peer_name"].as_str() {
            Some("a") => (&mut a, &mut b),
            Some("b") => (&mut b, &mut a),
            other => panic!("round {round}: c paired with {other:?}"),
        };
        assert_eq!(
            partner.recv_event("matched").await["room_code"],
            mc["room_code"]
        );
        // The one left over still waits (its next frame answers the cancel,
        // not a `matched` with the partner it just left).
        left.send_json(&json!({"event": "cancel"})).await;
        let next = left.recv().await;
        assert_eq!(next["event"], "cancelled", "round {round}: {next}");
    }
}
