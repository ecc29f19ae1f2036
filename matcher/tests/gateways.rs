//! Users on different gateways; withdrawal on close; dead gateways purged:
//! a closed or dead-gateway user is never handed out as a partner.

mod common;

use std::time::Duration;

use serde_json::json;
use testkit::RedisServer;
use wire::keys;
use wire::user::UserKey;

#[tokio::test]
async fn users_on_different_gateways_are_matched_and_both_notified() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let one = common::start_all(&redis.url()).await;
    let two = common::start(&redis.url(), "gateway", &[]).await;
    let (mut ann, _) = common::native_waiting(one.gateway_addr().unwrap(), "ann").await;
    let (mut bob, _) = common::native_waiting(two.gateway_addr().unwrap(), "bob").await;
    let (a, b) = common::matched_together(&mut ann, &mut bob).await;
    assert_eq!(a["peer_name"], "bob");
    assert_eq!(b["peer_name"], "ann");
    assert_ne!(a["initiator"], b["initiator"]);
    // Native extensions: a ticket the signaller can verify, and its URL.
    for (m, user) in [(&a, "ann"), (&b, "bob")] {
        let t = wire::ticket::verify(
            common::SECRET.as_bytes(),
            m["ticket"].as_str().unwrap(),
            service::clock::now_ms(),
        )
        .expect("valid ticket");
        assert_eq!(t.room, m["room_code"].as_str().unwrap());
        assert_eq!(t.name, user);
        assert_eq!(m["signaller_url"], "ws://127.0.0.1:4000/ws");
    }
}

#[tokio::test]
async fn closing_the_socket_withdraws_a_waiting_user_from_the_pool() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    // A native user may come back within the resume grace window; past
    // it, it is withdrawn.
    let m = common::start(&redis.url(), "all", &["--resume-grace-secs", "1"]).await;
    let addr = m.gateway_addr().unwrap();
    let (ghost, session) = common::native_waiting(addr, "ghost").await;
    let ghost_key = UserKey::native(&session);
    // Really waiting: in the pool, where a partner could be handed it.
    common::until_in_pool(&redis, &ghost_key).await;
    ghost.close().await;
    testkit::eventually(testkit::STEP, "ghost withdrawn", || async {
        (!common::in_pool(&redis, &ghost_key)
            && redis.command(&["EXISTS", &keys::waiting(&ghost_key)]) == "0"
            && m.sockets() == 0)
            .then_some(())
    })
    .await;
    let (mut ann, _) = common::native_waiting(addr, "ann").await;
    let (mut bob, _) = common::native_waiting(addr, "bob").await;
    common::matched_together(&mut ann, &mut bob).await;
    assert_eq!(redis.command(&["ZCARD", &keys::pool()]), "0");
}

#[tokio::test]
async fn a_dead_gateways_users_are_purged_in_bounded_time() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let doomed = common::start(&redis.url(), "gateway", &["--gateway-ttl-ms", "1000"]).await;
    let (_ghost_socket, session) =
        common::native_waiting(doomed.gateway_addr().unwrap(), "ghost").await;
    let _worker = common::start(&redis.url(), "worker", &[]).await;
    common::until_in_pool(&redis, &UserKey::native(&session)).await;

    // The gateway dies without cleaning up. With a 1 s TTL and a 200 ms
    // purge period, the ghost must be gone within about 1.2 s.
    let died = std::time::Instant::now();
    doomed.kill();
    testkit::eventually(Duration::from_secs(5), "ghost purged", || async {
        (redis.command(&["ZCARD", &keys::pool()]) == "0").then_some(())
    })
    .await;
    let took = died.elapsed();
    assert!(took < Duration::from_secs(3), "purged after {took:?}");
}

#[tokio::test]
async fn a_dead_gateways_user_is_never_handed_out_even_before_the_purge() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    common::restart::a_dead_gateways_user_is_never_handed_out(&redis).await;
}

#[tokio::test]
async fn native_cancel_and_bad_input() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();
    let (mut ws, session) = common::native_waiting(addr, "ann").await;
    let ann = UserKey::native(&session);
    common::until_in_pool(&redis, &ann).await;
    ws.send_json(&json!({"event": "register"})).await;
    assert_eq!(ws.recv_event("error").await["code"], "already_waiting");
    ws.send_json(&json!({"event": "cancel"})).await;
    ws.recv_event("cancelled").await;
    // Cancelled in Redis too, by the time the answer comes.
    assert!(
        !common::in_pool(&redis, &ann),
        "cancelled but still in the pool"
    );
    assert_eq!(redis.command(&["EXISTS", &keys::waiting(&ann)]), "0");
    ws.send_json(&json!({"event": "cancel"})).await;
    assert_eq!(ws.recv_event("error").await["code"], "not_waiting");
    ws.send_text("{oops").await;
    assert_eq!(ws.recv_event("error").await["code"], "bad_json");
    ws.send_json(&json!({"event": "teleport"})).await;
    assert_eq!(ws.recv_event("error").await["code"], "unknown_event");
    ws.send_json(&json!({"event": "register", "name": "x\u{7}y"}))
        .await;
    assert_eq!(ws.recv_event("error").await["code"], "bad_name");
    ws.send_json(&json!({"event": "chat", "message": "anyone?"}))
        .await;
    assert_eq!(ws.recv_event("error").await["code"], "no_partner");
    ws.send_json(&json!({"event": "ping"})).await;
    ws.recv_event("pong").await;

    // Oversized and binary frames close the socket with the right code;
    // the gateway keeps serving others.
    let (mut big, _) = common::native(addr).await;
    big.send_text(&"x".repeat(wire::limits::MAX_MESSAGE_BYTES + 1))
        .await;
    assert_eq!(big.recv_close().await, Some(1009));
    let (mut bin, _) = common::native(addr).await;
    bin.send_raw(tokio_tungstenite::tungstenite::Message::binary(vec![
        1, 2, 3,
    ]))
    .await
    .unwrap();
    assert_eq!(bin.recv_close().await, Some(1003));
    ws.send_json(&json!({"event": "ping"})).await;
    ws.recv_event("pong").await;
    assert_eq!(common::get_status(addr, "/healthz").await, 200);
}

#[tokio::test]
async fn a_flooding_socket_is_slowed_then_closed_and_others_are_not() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    // 5 frames a second, bursts of 20; past 40 frames held back, closed.
    let m = common::start(&redis.url(), "gateway", &["--rate-limit", "5"]).await;
    let addr = m.gateway_addr().unwrap();
    let (mut flood, _) = common::native(addr).await;
    let (mut calm, _) = common::native(addr).await;

    // A burst a little over the rate is slowed down, and nothing is lost.
    let started = tokio::time::Instant::now();
    for _ in 0..26 {
        flood.send_json(&json!({"event": "ping"})).await;
    }
    for i in 0..26 {
        assert_eq!(flood.recv().await["event"], "pong", "pong {i} of 26");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "6 frames over the burst at 5/s take about a second: {:?}",
        started.elapsed()
    );
    // Another socket is not affected meanwhile.
    calm.send_json(&json!({"event": "ping"})).await;
    assert_eq!(calm.recv().await["event"], "pong");

    // A flood past the bound is told which frame was refused, then closed.
    for _ in 0..200 {
        if flood
            .send_raw(tokio_tungstenite::tungstenite::Message::text(
                r#"{"event":"ping"}"#,
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut pongs = 0;
    loop {
        match flood.next_within(testkit::STEP).await {
            Some(testkit::Next::Json(v)) if v["event"] == "pong" => pongs += 1,
            Some(testkit::Next::Json(v)) => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                assert!(v["message"].as_str().unwrap().contains("ping"), "{v}");
                break;
            }
            other => panic!("expected rate_limited, got {other:?} after {pongs} pongs"),
        }
    }
    assert!(pongs < 200, "the flood was not served whole: {pongs} pongs");
    assert_eq!(flood.recv_close().await, Some(1008));
    calm.send_json(&json!({"event": "ping"})).await;
    assert_eq!(calm.recv().await["event"], "pong");
}
