//! One socket per (room, user): a member's newer socket replaces the older,
//! which is closed with 4410, on whichever node it is; the older can no
//! longer write to the room, nor close it.

use std::time::Duration;

use serde_json::json;
use signaller::room_log::{Appended, JoinReply, Limits, RoomLog, Writer};
use testkit::{RedisServer, STEP};
use wire::internal::{RoomBody, RoomEvent};
use wire::user::{Role, UserKey};

use crate::common::*;

/// Ann's first socket is on node 1, bob on node 2. Ann opens a second
/// socket, on node 2, with the same ticket: it joins and gets what bob
/// sent, the first is closed with 4410 at once, bob is told nothing and
/// the room carries on between bob and the newer socket. The same for a
/// legacy user opening a second socket under its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_second_socket_replaces_the_first_across_nodes() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let (n1, n2) = two_nodes(&redis).await;

    let room = new_room();
    let ticket_a = ticket(&room, "s:A", "ann", Role::Initiator);
    let (mut a1, _) = join_native(&n1, &ticket_a).await;
    let (mut b, _) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(a1.recv().await["event"], "peer-joined");
    b.send_json(&signal(&room, &json!({"n":1}))).await;
    assert_eq!(a1.recv().await["data"], json!({"n":1}));

    let (mut a2, joined) = join_native(&n2, &ticket_a).await;
    assert_eq!(
        bare(joined),
        json!({"event":"joined","room_code":room,"role":"initiator",
               "peer_present":true,"peer_name":"bob"})
    );
    // The newer socket gets the backlog as any joiner does.
    assert_eq!(a2.recv().await["data"], json!({"n":1}));
    // The older one is closed, promptly, with the code that says why.
    let closed = tokio::time::timeout(Duration::from_secs(2), a1.recv_close())
        .await
        .expect("the older socket is closed within 2 s");
    assert_eq!(closed, Some(4410));

    // Bob notices nothing (the older socket's closing did not end the
    // room), and talks with the newer socket both ways.
    b.expect_silence(QUIET).await;
    b.send_json(&signal(&room, &json!({"n":2}))).await;
    assert_eq!(a2.recv().await["data"], json!({"n":2}));
    a2.send_json(&signal(&room, &json!({"n":3}))).await;
    let got = b.recv().await;
    assert_eq!(
        (got["from"].clone(), got["data"].clone()),
        (json!("ann"), json!({"n":3}))
    );
    // The room ends as usual when the newer socket leaves.
    a2.send_json(&json!({"event":"leave"})).await;
    assert_eq!(
        bare(b.recv().await),
        json!({"event":"peer-left","peer_name":"ann","reason":"left"})
    );

    // Legacy: alice's second socket (same name, other node) replaces the first.
    let legacy = new_room();
    legacy_room(&redis, &legacy, "alice", "bob");
    let mut l1 = join_legacy(&n1, "alice", &legacy, "initiator").await;
    let mut lbob = join_legacy(&n2, "bob", &legacy, "responder").await;
    let mut l2 = join_legacy(&n2, "alice", &legacy, "initiator").await;
    let closed = tokio::time::timeout(Duration::from_secs(2), l1.recv_close())
        .await
        .expect("the older legacy socket is closed within 2 s");
    assert_eq!(closed, Some(4410));
    lbob.send_json(&json!({"event":"chat","message":"still there?"}))
        .await;
    assert_eq!(l2.recv().await["message"], "still there?");
    lbob.expect_silence(QUIET).await;
}

/// A socket whose node has not yet seen the newer `Joined` (or a node that
/// is slow) must not write for its user: the room log fences each write
/// with the writer's connection. Checked on the room log itself, with the
/// writes a replaced socket could still attempt: a signal, its `Left`
/// (which would close the room under the newer socket) and a stale
/// node-loss verdict about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_socket_can_neither_write_to_nor_close_the_room() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let client = service::redis_conn::connect(
        &service::redis_conn::RedisTarget::new(&redis.url(), None).unwrap(),
    )
    .await
    .expect("redis");
    // The room log as three nodes use it.
    let on = |node: &str| RoomLog::new(client.clone(), node, Limits::with_ttl(STEP * 6));
    let (log, log2, log3) = (on("node-1"), on("node-2"), on("node-3"));
    let room = new_room();
    let member = |user: &str, name: &str, role| signaller::admission::Member {
        user: UserKey::from_raw(user),
        name: name.into(),
        role,
    };
    let (ann, bob) = (
        member("s:A", "ann", Role::Initiator),
        member("s:B", "bob", Role::Responder),
    );
    let joined = |reply| match reply {
        JoinReply::Joined { replaced, .. } => replaced,
        other => panic!("join refused: {other:?}"),
    };
    assert!(!joined(log.join(&room, &ann, "node-1/old").await.unwrap()));
    assert!(!joined(log2.join(&room, &bob, "node-2/b").await.unwrap()));
    assert!(joined(log3.join(&room, &ann, "node-3/new").await.unwrap()));

    let said = RoomEvent {
        from: "s:A".into(),
        from_name: "ann".into(),
        sent_ms: 0,
        body: RoomBody::Chat {
            message: "from the old socket".into(),
        },
    };
    let old = Writer::Conn {
        user: &ann.user,
        conn: "node-1/old",
    };
    let new = Writer::Conn {
        user: &ann.user,
        conn: "node-3/new",
    };
    let entries = || {
        redis
            .command(&["XLEN", &wire::keys::room_log(&room)])
            .parse::<i64>()
            .unwrap()
    };
    let before = entries();
    assert_eq!(
        log.append(&room, &said, old).await.unwrap(),
        Appended::Fenced
    );
    let left = wire::internal::LeaveReason::Disconnected;
    assert_eq!(
        log.leave(&room, "s:A", "ann", left, old).await.unwrap(),
        Appended::Fenced
    );
    // Bob's node judging ann's old node dead: she is on node-3 now.
    let stale = Writer::DeclaringLost {
        user: "s:A",
        node: "node-1",
    };
    let lost = wire::internal::LeaveReason::NodeLost;
    assert_eq!(
        log.leave(&room, "s:A", "ann", lost, stale).await.unwrap(),
        Appended::Fenced
    );
    assert_eq!(entries(), before, "nothing was logged");
    let members = wire::keys::room_members(&room);
    assert_eq!(redis.command(&["HEXISTS", &members, "closed"]), "0");

    // The newer socket writes, and its leaving closes the room.
    assert!(matches!(
        log.append(&room, &said, new).await.unwrap(),
        Appended::Logged(_)
    ));
    assert!(matches!(
        log.leave(&room, "s:A", "ann", left, new).await.unwrap(),
        Appended::Logged(_)
    ));
    assert_eq!(redis.command(&["HGET", &members, "closed"]), "disconnected");
    // A closed room takes nothing more, from anyone.
    assert_eq!(
        log.append(&room, &said, new).await.unwrap(),
        Appended::Closed
    );
}
