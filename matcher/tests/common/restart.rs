//! Gateway restarts, shared by the single-server tests (`operations`,
//! `gateways`) and the cluster test (`cluster`): a gateway drained
//! (SIGTERM) while a user waits on it, and one killed (SIGKILL) with a
//! user waiting, then a new one started.

use std::time::{Duration, Instant};

use testkit::{Next, TestRedis, WsClient};
use wire::keys;
use wire::user::UserKey;

/// A gateway drained (SIGTERM, the first half of a restart) while ann
/// waits on it: not ready at once, ann told to `reconnect` and withdrawn
/// cleanly (not in the pool, not waiting); she moves to the other gateway
/// and is matched there exactly once; the legacy socket is closed when
/// the grace ends and the process exits within it.
pub async fn sigterm_drains_the_gateway(redis: &impl TestRedis) {
    let addr = super::free_addr();
    let url = redis.url();
    let mut proc = super::MatcherProcess::run(
        [
            "--role",
            "gateway",
            "--listen",
            &addr.to_string(),
            "--redis-url",
            &url,
            "--ticket-secret",
            super::SECRET,
            "--drain-grace-secs",
            "3",
        ]
        .map(String::from)
        .to_vec(),
    );
    super::until_ready(addr).await;
    let other = super::start_all(&url).await;
    let other_addr = other.gateway_addr().unwrap();

    // Ann waits on the draining gateway; a legacy user is connected too.
    let (mut ann, ann_session) = super::native_waiting(addr, "ann").await;
    let mut legacy = WsClient::connect(&super::ws_url(addr, "/ws/leo"))
        .await
        .unwrap();
    let term_sent = Instant::now();
    proc.terminate();

    // Not ready at once; native clients are told to move.
    testkit::eventually(Duration::from_secs(2), "/readyz fails", || async {
        (super::get_status(addr, "/readyz").await != 200).then_some(())
    })
    .await;
    let moved = ann.recv_event("reconnect").await;
    assert_eq!(moved["reason"], "draining");
    // Ann was withdrawn cleanly: not in the pool, not waiting.
    let ann_key = UserKey::native(&ann_session);
    testkit::eventually(testkit::STEP, "ann withdrawn", || async {
        (redis.command(&["EXISTS", &keys::waiting(&ann_key)]) == "0").then_some(())
    })
    .await;
    assert!(!super::in_pool(redis, &ann_key));
    ann.close().await;

    // Ann moves to the other gateway and is matched there exactly once.
    let (mut ann2, _) = super::native_waiting(other_addr, "ann").await;
    let (mut bob, _) = super::native_waiting(other_addr, "bob").await;
    super::matched_together(&mut ann2, &mut bob).await;
    ann2.expect_silence(Duration::from_millis(200)).await;

    // The legacy socket is closed when the grace period ends, and the
    // process exits within it (plus a little).
    match legacy.next_within(Duration::from_secs(6)).await {
        Some(Next::Closed(code)) => assert_eq!(code, Some(1001)),
        other => panic!("legacy socket not closed at grace end: {other:?}"),
    }
    let status = testkit::eventually(
        Duration::from_secs(8),
        "the gateway exits after the grace period",
        || std::future::ready(proc.try_wait()),
    )
    .await;
    assert!(status.success(), "clean exit: {status:?}");
    let took = term_sent.elapsed();
    assert!(took < Duration::from_secs(7), "exited after {took:?}");
}

/// A gateway killed (SIGKILL) while its user waits in the pool, a new
/// gateway started: the dead gateway's user is never handed out as a
/// partner, even before the purge (the pairing itself drops it), and the
/// users of the new gateway are matched, once.
pub async fn a_dead_gateways_user_is_never_handed_out(redis: &impl TestRedis) {
    let doomed = super::start(
        &redis.url(),
        "gateway",
        &["--gateway-ttl-ms", "1000", "--gateway-id", "doomed"],
    )
    .await;
    let (_ghost_socket, session) =
        super::native_waiting(doomed.gateway_addr().unwrap(), "ghost").await;
    let ghost = UserKey::native(&session);
    // No purge during the test: only the pairing itself can keep the ghost
    // from a newcomer.
    let _worker = super::start(&redis.url(), "worker", &["--purge-interval-ms", "600000"]).await;
    super::until_in_pool(redis, &ghost).await;
    doomed.kill();
    testkit::eventually(
        testkit::STEP,
        "the dead gateway's liveness lapses",
        || async {
            (redis.command(&["EXISTS", &keys::gateway_alive("doomed")]) == "0").then_some(())
        },
    )
    .await;
    // Not purged (the purge is off). The ghost may be out of the pool
    // already: the pairing retries a partnerless user every second and
    // drops it then, as it does for the newcomer below; either way only
    // the pairing kept it from anyone. (Asserting it still in the pool
    // here raced that retry.)

    // A newcomer: the ghost is dropped, not handed to her; she waits.
    let live = super::start(&redis.url(), "gateway", &[]).await;
    let (mut ann, ann_session) = super::native_waiting(live.gateway_addr().unwrap(), "ann").await;
    super::until_in_pool(redis, &UserKey::native(&ann_session)).await;
    testkit::eventually(
        testkit::STEP,
        "the ghost dropped by the pairing",
        || async { (!super::in_pool(redis, &ghost)).then_some(()) },
    )
    .await;
    ann.expect_silence(Duration::from_millis(300)).await;
    let (mut bob, _) = super::native_waiting(live.gateway_addr().unwrap(), "bob").await;
    super::matched_together(&mut ann, &mut bob).await;
}
