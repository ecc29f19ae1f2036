//! Per-address limits against a real Redis: two nodes (two
//! `AddressLimits` on one Redis, as two gateways) share one budget.

use std::net::IpAddr;
use std::time::Duration;

use service::address_limit::{AddressLimitSettings, AddressLimits, Refused};
use service::client_addr::AddressKey;
use testkit::RedisServer;

fn key(ip: &str) -> AddressKey {
    AddressKey::of(ip.parse::<IpAddr>().unwrap())
}

fn settings(rate: u32, burst: u32, max_sockets: u32, lease_ms: u64) -> AddressLimitSettings {
    AddressLimitSettings {
        rate,
        burst,
        max_sockets,
        lease: Duration::from_millis(lease_ms),
    }
}

async fn client(redis: &RedisServer) -> fred::prelude::Client {
    let target = service::redis_conn::RedisTarget::new(&redis.url(), None).unwrap();
    service::redis_conn::connect(&target).await.unwrap()
}

async fn node(redis: &RedisServer, s: AddressLimitSettings, id: &str) -> AddressLimits {
    AddressLimits::start(client(redis).await, s, "matcher", id).0
}

#[tokio::test]
async fn one_address_cannot_exceed_its_burst_by_spreading_requests_over_two_nodes() {
    let redis = RedisServer::start();
    let s = settings(2, 5, 0, 30_000);
    let (a, b) = (node(&redis, s, "g1").await, node(&redis, s, "g2").await);
    let flooder = key("192.0.2.1");
    let mut allowed = 0;
    let mut retry = None;
    for i in 0..10 {
        let limits = if i % 2 == 0 { &a } else { &b };
        match limits.admit(&flooder).await {
            Ok(()) => allowed += 1,
            Err(refusal) => retry = Some(refusal.retry_after),
        }
    }
    // The burst, once: not once per node (a few ms may refill none at 2/s).
    assert_eq!(allowed, 5, "one budget over both nodes");
    let retry = retry.expect("refused");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(500),
        "retry after one emission interval at most: {retry:?}"
    );
    // Another address has its own budget.
    assert_eq!(a.admit(&key("192.0.2.2")).await, Ok(()));
    // An IPv6 client cannot escape by changing the low 64 bits.
    for i in 0..5 {
        let ip = format!("2001:db8:1:2::{i:x}");
        assert_eq!(b.admit(&key(&ip)).await, Ok(()));
    }
    assert!(a.admit(&key("2001:db8:1:2::ffff")).await.is_err());
    // The key has a TTL: idle addresses leave nothing behind.
    let ttl: i64 = redis
        .command(&["PTTL", &wire::keys::address_rate("192.0.2.1")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 3_000, "{ttl}");
}

#[tokio::test]
async fn the_rate_refills_after_retry_after() {
    let redis = RedisServer::start();
    let a = node(&redis, settings(20, 2, 0, 30_000), "g1").await;
    let k = key("192.0.2.9");
    assert_eq!(a.admit(&k).await, Ok(()));
    assert_eq!(a.admit(&k).await, Ok(()));
    let retry_after = a.admit(&k).await.expect_err("over the burst").retry_after;
    // Waiting what the refusal says is the point: not a synchronisation.
    tokio::time::sleep(retry_after).await;
    assert_eq!(a.admit(&k).await, Ok(()), "after {retry_after:?}");
}

#[tokio::test]
async fn zero_turns_both_limits_off() {
    let redis = RedisServer::start();
    let a = node(&redis, settings(0, 1, 0, 30_000), "g1").await;
    let k = key("192.0.2.1");
    let mut permits = Vec::new();
    for _ in 0..1000 {
        assert_eq!(a.admit(&k).await, Ok(()));
        permits.push(a.admit_socket(&k).await.expect("no cap"));
    }
    assert_eq!(redis.command(&["DBSIZE"]).trim(), "0", "nothing in Redis");
}

#[tokio::test]
async fn one_address_cannot_hold_more_sockets_than_the_cap_across_two_nodes() {
    let redis = RedisServer::start();
    let s = settings(0, 1, 3, 30_000);
    let (a, b) = (node(&redis, s, "g1").await, node(&redis, s, "g2").await);
    let k = key("192.0.2.1");
    let p1 = a.open_socket(&k).await.unwrap();
    let _p2 = b.open_socket(&k).await.unwrap();
    let _p3 = a.open_socket(&k).await.unwrap();
    let refused = b.open_socket(&k).await.expect_err("over the cap");
    assert_eq!(refused.what, Refused::Sockets);
    assert!(a.open_socket(&k).await.is_err());
    // Another address is unaffected.
    let _other = b.open_socket(&key("192.0.2.2")).await.unwrap();
    // Closing one frees a place (the release is sent when the permit drops).
    drop(p1);
    let p4 = testkit::eventually(testkit::STEP, "a socket closed frees a place", || async {
        b.open_socket(&k).await.ok()
    })
    .await;
    assert_eq!((a.held(&k), b.held(&k)), (1, 2));
    drop(p4);
}

#[tokio::test]
async fn a_crashed_gateways_socket_counts_expire_with_its_lease() {
    let redis = RedisServer::start();
    let s = settings(0, 1, 3, 400);
    let (crashing, renewer) = AddressLimits::start(client(&redis).await, s, "matcher", "crashing");
    let survivor = node(&redis, s, "survivor").await;
    let k = key("192.0.2.1");
    // The survivor's own socket keeps the address's keys alive: the dead
    // node's counts must go by themselves, not with the keys.
    let _mine = survivor.open_socket(&k).await.unwrap();
    let held = [
        crashing.open_socket(&k).await.unwrap(),
        crashing.open_socket(&k).await.unwrap(),
    ];
    assert!(survivor.open_socket(&k).await.is_err(), "capped");
    // Renewals keep the counts while the node lives, well past one lease.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(survivor.open_socket(&k).await.is_err(), "still capped");
    // A crash: no more renewals, and no releases ever.
    renewer.abort();
    std::mem::forget(held);
    let started = std::time::Instant::now();
    let _p = testkit::eventually(testkit::STEP, "the dead node's counts lapse", || async {
        survivor.open_socket(&k).await.ok()
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(400 + 500),
        "within the lease: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_lets_requests_through_without_stalling_them() {
    let mut redis = RedisServer::start();
    let a = node(&redis, settings(1, 1, 1, 30_000), "g1").await;
    let k = key("192.0.2.1");
    let _held = a.admit_socket(&k).await.unwrap();
    assert!(
        a.admit_socket(&k).await.is_err(),
        "limited while Redis is up"
    );
    redis.stop();
    let started = std::time::Instant::now();
    assert_eq!(a.admit(&k).await, Ok(()));
    assert!(a.admit_socket(&k).await.is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the check timeout: {:?}",
        started.elapsed()
    );
}
