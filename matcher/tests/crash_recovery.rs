//! The worker process: a register accepted by a gateway reaches the pool
//! even if the worker that read it is killed before acknowledging it
//! (nothing is lost), and an idle worker pairs a new arrival at once, whatever
//! its back-off (the back-off paces idle upkeep, never a pairing).

mod common;

use std::time::{Duration, Instant};

use testkit::RedisServer;
use wire::keys;

/// Pending (read, not acknowledged) entries of the workers' group.
fn pending(redis: &RedisServer) -> i64 {
    match redis
        .query(&["XPENDING", &keys::register_stream(), keys::WORKER_GROUP])
        .items()
        .first()
    {
        Some(testkit::Reply::Int(n)) => *n,
        other => panic!("XPENDING: {other:?}"),
    }
}

/// The blocked stream reader of the (only) worker, as a `CLIENT LIST` line.
fn blocked_reader(redis: &RedisServer) -> Option<String> {
    redis
        .clients()
        .into_iter()
        .find(|c| c.contains(" cmd=xreadgroup") && common::field(c, "flags").contains('b'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_read_by_a_killed_worker_process_are_taken_over() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let gateway = common::start(&redis.url(), "gateway", &[]).await;
    let addr = gateway.gateway_addr().unwrap();

    // A real worker process, each of its blocking reads 5 s long (no upkeep
    // in between), caught early in one of them and frozen there.
    let mut doomed = common::MatcherProcess::worker(
        &redis,
        &[
            "--backoff-initial-ms",
            "5000",
            "--backoff-max-ms",
            "5000",
            "--purge-interval-ms",
            "60000",
        ],
    )
    .await;
    testkit::eventually(testkit::STEP, "a fresh 5 s read", || async {
        blocked_reader(&redis)
            .filter(|c| common::field(c, "idle").parse::<u64>().unwrap() < 2)
            .map(|_| ())
    })
    .await;
    doomed.pause().await;

    // Ann's registration is handed to the frozen worker's read (Redis serves
    // a blocked read at once): read, never acknowledged. Bob's is not read.
    let (mut ann, _) = common::native_waiting(addr, "ann").await;
    let (mut bob, _) = common::native_waiting(addr, "bob").await;
    assert_eq!(
        pending(&redis),
        1,
        "the worker holds ann's entry unacknowledged"
    );
    assert_eq!(redis.command(&["ZCARD", &keys::pool()]), "0");
    doomed.kill();

    // A healthy worker takes the pending entry over and pairs the users.
    let _worker = common::MatcherProcess::worker(&redis, &["--claim-idle-ms", "300"]).await;
    common::matched_together(&mut ann, &mut bob).await;
    assert_eq!(pending(&redis), 0, "every entry acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_at_its_longest_back_off_pairs_a_new_arrival_at_once() {
    let _panics = testkit::panics::guard();
    const AT_ONCE: Duration = Duration::from_millis(300);
    let redis = RedisServer::start();
    let gateway = common::start(&redis.url(), "gateway", &[]).await;
    let addr = gateway.gateway_addr().unwrap();
    // The real back-off defaults (10 ms doubling to 5 s); upkeep rare, so
    // the back-off alone paces the idle worker.
    let _worker = common::MatcherProcess::worker(
        &redis,
        &[
            "--backoff-initial-ms",
            "10",
            "--backoff-max-ms",
            "5000",
            "--purge-interval-ms",
            "60000",
        ],
    )
    .await;
    // Idle until it is more than 3 s into one wait: only the 5 s maximum is
    // that long (the step before is 2.56 s). `idle` counts whole seconds of
    // the wall clock, so 4 means more than 3 s.
    testkit::eventually(
        Duration::from_secs(30),
        "the worker idles at 5 s",
        || async {
            redis
                .clients()
                .into_iter()
                .find(|c| c.contains(" cmd=xreadgroup"))
                .filter(|c| common::field(c, "idle").parse::<u64>().unwrap() >= 4)
                .map(|_| ())
        },
    )
    .await;

    let (mut ann, _) = common::native_waiting(addr, "ann").await;
    let registered = Instant::now();
    let (mut bob, _) = common::native_waiting(addr, "bob").await;
    common::matched_together(&mut ann, &mut bob).await;
    let took = registered.elapsed();
    assert!(
        took < AT_ONCE,
        "paired {took:?} after the register: the worker slept out its back-off"
    );
}
