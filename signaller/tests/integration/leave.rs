//! When a peer leaves (close, `leave`, skip, or a crash of its
//! node) the other peer is told within a bounded time, across nodes, and
//! the room is closed; a native peer whose socket closed or whose node
//! died is first away, and the room closes when its grace window passes.

use std::time::Duration;

use serde_json::json;
use testkit::{RedisServer, WsClient};
use tokio::time::Instant;
use wire::user::Role;

use crate::common::*;

/// Socket close, native `leave`, a legacy skip (close, then at once
/// a new socket under the same name for a new room) and a killed node each
/// produce the peer's notice across nodes; the node loss within the
/// configured bound. Also a graceful drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_leave_skip_and_node_death_tell_the_peer() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let grace = ["--resume-grace-secs", "1"];
    let (n1, n2) = (node(&redis, &grace).await, node(&redis, &grace).await);

    // Close: ann's (native) socket closes; bob (other node) is told she is
    // reconnecting, then, once her grace window passed, peer-left
    // `timeout`; the room is closed for good.
    let room = new_room();
    let ticket_a = ticket(&room, "s:A", "ann", Role::Initiator);
    let (a, _) = join_native(&n1, &ticket_a).await;
    let (mut b, _) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    a.close().await;
    assert_eq!(b.recv().await["event"], "peer-reconnecting");
    let left = b.recv().await;
    assert_eq!(
        (&left["event"], &left["reason"]),
        (&json!("peer-left"), &json!("timeout")),
        "{left}"
    );
    b.send_json(&signal(&room, &json!({}))).await;
    expect_error(&mut b, "room_closed").await;
    let mut again = WsClient::connect(&native_url(&n1)).await.unwrap();
    again
        .send_json(&json!({"event":"join","ticket":ticket_a}))
        .await;
    expect_error(&mut again, "room_closed").await;

    // Leave: ann sends `leave`; bob gets peer-left `left`.
    let room = new_room();
    let (mut a, _) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let (mut b, _) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(a.recv().await["event"], "peer-joined");
    a.send_json(&json!({"event":"leave"})).await;
    let left = b.recv().await;
    assert_eq!(
        (&left["event"], &left["reason"]),
        (&json!("peer-left"), &json!("left")),
        "{left}"
    );
    a.expect_silence(QUIET).await;

    // Skip (legacy): alice closes her socket in room 1 and at once opens a
    // new one, under the same name on the same node, for room 2. Bob is
    // told; the old socket's clean-up leaves the new one alone.
    let (room1, room2) = (new_room(), new_room());
    legacy_room(&redis, &room1, "alice", "bob");
    legacy_room(&redis, &room2, "carol", "alice");
    let old = join_legacy(&n1, "alice", &room1, "initiator").await;
    let mut lbob = join_legacy(&n2, "bob", &room1, "responder").await;
    old.close().await;
    let mut new = WsClient::connect(&legacy_url(&n1, "alice")).await.unwrap();
    new.send_json(&json!({"event":"join","room_code":room2,"target":"carol","type":"answer"}))
        .await;
    assert_eq!(
        new.recv().await,
        json!({"event":"verified","room_code":room2,"role":"responder"})
    );
    assert_eq!(
        lbob.recv().await,
        json!({"event":"peer-disconnected","message":"alice has disconnected"})
    );
    let mut carol = join_legacy(&n2, "carol", &room2, "initiator").await;
    carol
        .send_json(&signal(&room2, &json!({"sdp":"offer"})))
        .await;
    assert_eq!(
        new.recv().await,
        json!({"event":"signal","room_code":room2,"from":"carol","type":"signal","data":{"sdp":"offer"}})
    );
    new.send_json(&signal(&room2, &json!({"sdp":"answer"})))
        .await;
    assert_eq!(carol.recv().await["data"], json!({"sdp":"answer"}));
    new.expect_silence(QUIET).await;

    // Node death: ann (native) and dave (legacy) sit on n3, which is
    // killed; their peers on n1 are told within the bound (bob that ann
    // is reconnecting: she may resume elsewhere).
    let n3 = node(&redis, &grace).await;
    let bound = super::common::config(&redis, &[]).node_loss_bound();
    let (native_room, legacy) = (new_room(), new_room());
    // Bob learns ann's node from the member list, erin dave's from his
    // `Joined` event: both ways of learning are covered.
    let (_a, _) = join_native(&n3, &ticket(&native_room, "s:A", "ann", Role::Initiator)).await;
    let (mut b, joined) =
        join_native(&n1, &ticket(&native_room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(joined["peer_present"], true);
    legacy_room(&redis, &legacy, "dave", "erin");
    let mut erin = join_legacy(&n1, "erin", &legacy, "responder").await;
    let _dave = join_legacy(&n3, "dave", &legacy, "initiator").await;
    let killed = Instant::now();
    n3.kill();
    let away = b.recv().await;
    assert_eq!(
        (&away["event"], &away["peer_name"]),
        (&json!("peer-reconnecting"), &json!("ann")),
        "{away}"
    );
    assert_eq!(
        erin.recv().await,
        json!({"event":"peer-disconnected","message":"dave has disconnected"})
    );
    let took = killed.elapsed();
    // The bound plus room for a loaded 2-core test machine.
    let slack = Duration::from_millis(700);
    assert!(
        took <= bound + slack,
        "told after {took:?}; bound {bound:?}"
    );
    assert_eq!(b.recv().await["reason"], "timeout");
    b.expect_silence(QUIET).await;
    erin.expect_silence(QUIET).await;

    // Graceful drain: the draining node's legacy sockets leave their rooms
    // (the peer gets `peer-disconnected`) and are closed with 1001.
    let n4 = node(&redis, &[]).await;
    let room = new_room();
    legacy_room(&redis, &room, "fay", "gus");
    let mut fay = join_legacy(&n4, "fay", &room, "initiator").await;
    let mut gus = join_legacy(&n1, "gus", &room, "responder").await;
    tokio::time::timeout(testkit::STEP, n4.shutdown())
        .await
        .expect("drain finishes");
    assert_eq!(fay.recv_close().await, Some(1001));
    assert_eq!(
        gus.recv().await,
        json!({"event":"peer-disconnected","message":"fay has disconnected"})
    );
}
