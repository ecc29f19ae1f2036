//! Invariant 2: when more than two users wait, each is equally likely to be
//! picked. Runs the real pairing script against a real Redis many times.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;
use matcher::scripts::Scripts;
use matcher::worker::{pair_once, WorkerSettings};
use testkit::RedisServer;
use wire::keys;
use wire::user::UserKey;

fn settings(last_partner: Duration) -> WorkerSettings {
    WorkerSettings {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        claim_idle: Duration::from_secs(5),
        purge_interval: Duration::from_secs(1),
        read_batch: 100,
        pairs_per_call: 1,
        room_ttl: Duration::from_secs(60),
        last_partner,
        // No sockets in this test: the users are legacy users registered
        // over HTTP whose socket has not connected yet, which the pool
        // accepts for this long.
        socket_grace: Duration::from_secs(3600),
        notice_ttl: Duration::from_secs(60),
    }
}

/// Put `users` in the pool as registrations would, in one round trip.
async fn add_waiting(redis: &Client, users: &[&str]) {
    let now = service::clock::now_ms();
    let pipe = redis.pipeline();
    for user in users {
        let key = UserKey::from_raw(*user);
        let _: () = pipe
            .set(
                keys::waiting(&key),
                format!("r{now} {user}"),
                None,
                None,
                false,
            )
            .await
            .unwrap();
        let _: () = pipe
            .zadd(keys::pool(), None, None, false, false, (now as f64, *user))
            .await
            .unwrap();
    }
    let _: Vec<Value> = pipe.all().await.unwrap();
}

#[tokio::test]
async fn every_waiting_user_is_equally_likely_to_be_picked() {
    const K: usize = 20;
    const PAIRINGS: usize = 10_000;
    // Chi-square critical value for K-1 = 19 degrees of freedom at p = 1e-4:
    // a fair picker fails this test once in ten thousand runs.
    const CRITICAL: f64 = 51.0;

    let server = RedisServer::start();
    let redis = service::redis_conn::connect(&server.url()).await.unwrap();
    let scripts = Scripts::default();
    let s = settings(Duration::ZERO);
    let users: Vec<String> = (0..K).map(|i| format!("n:user{i:02}")).collect();
    add_waiting(
        &redis,
        &users.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let mut picked: HashMap<String, u64> = HashMap::new();
    let mut initiator: HashMap<String, u64> = HashMap::new();
    for _ in 0..PAIRINGS {
        let pairs = pair_once(&scripts, &redis, &s).await.unwrap();
        assert_eq!(pairs.len(), 1, "with {K} waiting, one pair per call");
        let (a, b) = &pairs[0];
        assert_ne!(a, b);
        *picked.entry(a.clone()).or_default() += 1;
        *picked.entry(b.clone()).or_default() += 1;
        *initiator.entry(a.clone()).or_default() += 1;
        add_waiting(&redis, &[a, b]).await;
    }

    let chi_square = |counts: &HashMap<String, u64>, total: f64| -> f64 {
        let expected = total / K as f64;
        users
            .iter()
            .map(|u| {
                let o = *counts.get(u).unwrap_or(&0) as f64;
                (o - expected).powi(2) / expected
            })
            .sum()
    };
    let picks = chi_square(&picked, 2.0 * PAIRINGS as f64);
    let initiators = chi_square(&initiator, PAIRINGS as f64);
    println!("chi-square picks = {picks:.2}, initiators = {initiators:.2} (critical {CRITICAL})");
    assert!(
        picks < CRITICAL,
        "picks are not uniform: chi-square {picks:.2}, counts {picked:?}"
    );
    assert!(
        initiators < CRITICAL,
        "initiator role is not uniform: chi-square {initiators:.2}"
    );
}

#[tokio::test]
async fn the_partner_just_left_is_avoided_while_anyone_else_waits() {
    let server = RedisServer::start();
    let redis = service::redis_conn::connect(&server.url()).await.unwrap();
    let scripts = Scripts::default();
    let s = settings(Duration::from_secs(60));
    // a and b were just paired.
    add_waiting(&redis, &["n:a", "n:b"]).await;
    let first = pair_once(&scripts, &redis, &s).await.unwrap();
    assert_eq!(first.len(), 1);
    // Both come back, with c waiting: a and b must never meet again.
    for _ in 0..100 {
        add_waiting(&redis, &["n:a", "n:b", "n:c"]).await;
        let pairs = pair_once(&scripts, &redis, &s).await.unwrap();
        let (x, y) = &pairs[0];
        let mut pair = [x.as_str(), y.as_str()];
        pair.sort();
        assert_ne!(pair, ["n:a", "n:b"], "re-paired with the partner just left");
        // Empty the pool for the next round. The new pair now remembers
        // each other; a and b are kept as each other's last partner.
        let _: () = redis.del(keys::pool()).await.unwrap();
        for (u, last) in [("n:a", "n:b"), ("n:b", "n:a")] {
            let _: () = redis
                .set(
                    keys::last_partner(&UserKey::from_raw(u)),
                    last,
                    None,
                    None,
                    false,
                )
                .await
                .unwrap();
        }
    }
    // Alone together, they may be paired again rather than wait forever.
    add_waiting(&redis, &["n:a", "n:b"]).await;
    assert_eq!(pair_once(&scripts, &redis, &s).await.unwrap().len(), 1);
}
