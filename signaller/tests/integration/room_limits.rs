//! What one room and one user may keep in Redis is bounded: a signal's
//! size, a room log's bytes, a closed room's lifetime, the rooms one user
//! is in at once. Whatever is refused is answered, naming what was refused.

use serde_json::{json, Value};
use testkit::{RedisServer, WsClient, STEP};
use wire::user::Role;

use crate::common::*;

/// Send `frame`, then a ping: `None` if the server took the frame without
/// a word (a relayed signal or chat), else the error it answered with.
async fn refusal(ws: &mut WsClient, frame: &Value) -> Option<Value> {
    ws.send_json(frame).await;
    ws.send_json(&json!({"event":"ping"})).await;
    let first = ws.recv().await;
    if first["event"] == "pong" {
        return None;
    }
    assert_eq!(first["event"], "error", "{first}");
    assert_eq!(ws.recv().await["event"], "pong");
    Some(first)
}

/// A signal whose `data` is a JSON string of `len` bytes (quotes included).
fn signal_of(room: &str, len: usize) -> Value {
    signal(room, &json!("x".repeat(len - 2)))
}

fn redis_int(redis: &RedisServer, args: &[&str]) -> i64 {
    redis
        .command(args)
        .parse()
        .unwrap_or_else(|_| panic!("{args:?}"))
}

/// A member alone in its room (the peer has not joined) sends 15 KB
/// signals, then chat, as fast as it likes: past the room's byte budget
/// each is refused with `room_log_full` naming it; the log holds at most
/// the budget, and the peer, joining later, gets exactly what was accepted
/// (nothing trimmed), no more than the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_fill_redis_with_a_room_log() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    const BUDGET: usize = 64 * 1024;
    let flags = ["--room-log-budget-bytes", "65536"];
    let (n1, n2) = (node(&redis, &flags).await, node(&redis, &flags).await);
    let room = new_room();
    let (mut a, _) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;

    // Signals and chat may fill the budget up to its 16 KiB join reserve:
    // three 15 KB signals (with ann's Joined) fit in 48 KiB, a fourth not.
    let mut accepted = Vec::new();
    for i in 0..6 {
        let frame = signal_of(&room, 15_000 + i);
        match refusal(&mut a, &frame).await {
            None => accepted.push(frame["data"].clone()),
            Some(e) => {
                assert_eq!(e["code"], "room_log_full", "{e}");
                assert!(e["message"].as_str().unwrap().contains("signal"), "{e}");
            }
        }
    }
    assert_eq!(accepted.len(), 3, "accepted before the budget ran out");
    let mut chats = Vec::new();
    for i in 0..4 {
        let message = format!("{i}{}", "y".repeat(1_999));
        match refusal(&mut a, &json!({"event":"chat","message":message})).await {
            None => chats.push(message),
            Some(e) => {
                assert_eq!(e["code"], "room_log_full", "{e}");
                assert!(e["message"].as_str().unwrap().contains("chat"), "{e}");
            }
        }
    }
    assert!(chats.len() < 4, "chat is refused past the budget too");

    // What Redis holds for the room: the counter and the stream's memory.
    let log = wire::keys::room_log(&room);
    let members = wire::keys::room_members(&room);
    let counted = redis_int(&redis, &["HGET", &members, "bytes"]);
    assert!(counted as usize <= BUDGET, "{counted} bytes counted");
    let memory = redis_int(&redis, &["MEMORY", "USAGE", &log]);
    assert!(
        (memory as usize) < BUDGET + 8 * 1024,
        "the log takes {memory} bytes of Redis"
    );

    // Bob joins on the other node: everything accepted arrives, in order,
    // and nothing else; the replay is within the budget.
    let (mut b, joined) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(joined["peer_present"], true);
    let mut replayed = 0;
    for data in &accepted {
        let got = b.recv().await;
        assert_eq!(got["data"], *data);
        replayed += got.to_string().len();
    }
    for message in &chats {
        let got = b.recv().await;
        assert_eq!(got["message"], message.as_str(), "{got}");
        replayed += got.to_string().len();
    }
    assert!(replayed <= BUDGET, "the join replayed {replayed} bytes");
    b.expect_silence(QUIET).await;

    // The budget is the room's, not the sender's: bob is refused as well.
    let e = refusal(&mut b, &signal_of(&room, 15_000)).await;
    assert_eq!(e.expect("refused")["code"], "room_log_full");
    // Small control traffic still works: leaving tells the peer.
    b.send_json(&json!({"event":"leave"})).await;
    assert_eq!(a.recv_event("peer-left").await["reason"], "left");
}

/// A signal over 16 KiB (its `data` and `type` as JSON) is refused with
/// `too_large` and never reaches the log or the peer; one of exactly
/// 16 KiB passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_relay_a_signal_over_16_kib() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let n1 = node(&redis, &[]).await;
    let room = new_room();
    let (mut a, _) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let (mut b, _) = join_native(&n1, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(a.recv().await["event"], "peer-joined");
    let entries = || redis_int(&redis, &["XLEN", &wire::keys::room_log(&room)]);
    let before = entries();

    // `"signal"` is 8 bytes of the 16 KiB.
    let limit = wire::limits::MAX_SIGNAL_BYTES - 8;
    let e = refusal(&mut a, &signal_of(&room, limit + 1)).await;
    let e = e.expect("refused");
    assert_eq!(e["code"], "too_large", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("signal") && message.contains("16384"),
        "{e}"
    );
    assert_eq!(entries(), before, "nothing logged");
    b.expect_silence(QUIET).await;

    assert_eq!(refusal(&mut a, &signal_of(&room, limit)).await, None);
    assert_eq!(b.recv().await["data"].as_str().unwrap().len(), limit - 2);
    assert_eq!(entries(), before + 1);
}

/// Once a room is closed its log goes within `--closed-room-ttl-secs`
/// (60 s by default), and its member list shrinks to the `closed` mark,
/// which still refuses the members' tickets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_room_does_not_keep_its_log_for_long() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let n1 = node(&redis, &[]).await;
    let quick = node(&redis, &["--closed-room-ttl-secs", "1"]).await;

    for (n, bound_ms) in [(&n1, 60_000), (&quick, 1_000)] {
        let room = new_room();
        let ticket_a = ticket(&room, "s:A", "ann", Role::Initiator);
        let (mut a, _) = join_native(n, &ticket_a).await;
        let (mut b, _) = join_native(n, &ticket(&room, "s:B", "bob", Role::Responder)).await;
        assert_eq!(a.recv().await["event"], "peer-joined");
        a.send_json(&signal(&room, &json!({"sdp":"offer"}))).await;
        assert_eq!(b.recv().await["data"], json!({"sdp":"offer"}));
        a.send_json(&json!({"event":"leave"})).await;
        assert_eq!(b.recv().await["reason"], "left");

        let log = wire::keys::room_log(&room);
        let members = wire::keys::room_members(&room);
        let ttl = redis_int(&redis, &["PTTL", &log]);
        assert!(
            0 < ttl && ttl <= bound_ms,
            "closed room log PTTL {ttl} ms, bound {bound_ms}"
        );
        let fields = redis.query(&["HGETALL", &members]).items();
        assert_eq!(
            fields.iter().map(testkit::Reply::text).collect::<Vec<_>>(),
            ["closed", "left"],
            "only the tombstone is left"
        );
        if bound_ms <= 1_000 {
            testkit::eventually(STEP, "the closed room's log expires", || async {
                (redis_int(&redis, &["EXISTS", &log]) == 0).then_some(())
            })
            .await;
        }
        // The tombstone still refuses a member's ticket.
        let mut again = WsClient::connect(&native_url(n)).await.unwrap();
        again
            .send_json(&json!({"event":"join","ticket":ticket_a}))
            .await;
        expect_error(&mut again, "room_closed").await;
    }
}

/// One user (one session, many tickets) joins rooms on two nodes: the
/// fourth at once is refused with `too_many_rooms`; leaving a room, or the
/// peer leaving it, frees a place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_hold_more_than_three_rooms_at_once() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let (n1, n2) = two_nodes(&redis).await;
    let rooms: Vec<String> = (0..5).map(|_| new_room()).collect();
    let ann = |i: usize| ticket(&rooms[i], "s:A", "ann", Role::Initiator);

    let (mut r0, _) = join_native(&n1, &ann(0)).await;
    let (mut r1, _) = join_native(&n2, &ann(1)).await;
    let (_r2, _) = join_native(&n1, &ann(2)).await;
    let (mut bob1, _) = join_native(&n1, &ticket(&rooms[1], "s:B", "bob", Role::Responder)).await;
    assert_eq!(r1.recv().await["event"], "peer-joined");

    let mut fourth = WsClient::connect(&native_url(&n2)).await.unwrap();
    fourth
        .send_json(&json!({"event":"join","ticket":ann(3)}))
        .await;
    let e = expect_error(&mut fourth, "too_many_rooms").await;
    assert!(e["message"].as_str().unwrap().contains('3'), "{e}");
    // Another user is not affected.
    let (_cy, _) = join_native(&n2, &ticket(&rooms[3], "s:C", "cy", Role::Responder)).await;

    // Leaving room 0 frees a place (the pong comes after the release).
    r0.send_json(&json!({"event":"leave"})).await;
    sync(&mut r0).await;
    fourth
        .send_json(&json!({"event":"join","ticket":ann(3)}))
        .await;
    let joined = fourth.recv().await;
    assert_eq!(joined["event"], "joined", "{joined}");

    // Full again; then bob leaves room 1, and that frees ann's place too.
    let mut fifth = WsClient::connect(&native_url(&n1)).await.unwrap();
    fifth
        .send_json(&json!({"event":"join","ticket":ann(4)}))
        .await;
    expect_error(&mut fifth, "too_many_rooms").await;
    bob1.send_json(&json!({"event":"leave"})).await;
    assert_eq!(r1.recv().await["event"], "peer-left");
    fifth
        .send_json(&json!({"event":"join","ticket":ann(4)}))
        .await;
    let joined = fifth.recv().await;
    assert_eq!(joined["event"], "joined", "{joined}");
}

/// Rejoining is no way around the budget: a member whose room log is
/// full of signals replaces its socket again and again (each newer socket
/// logs a `Joined`); once the part of the budget kept for joins is used
/// up, the join is refused with `room_log_full` and the log stays within
/// the budget; the peer can still join (rejoining cannot keep it out), and
/// its join replays no more than the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_grow_the_room_log_by_rejoining() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    const BUDGET: usize = 32 * 1024;
    let n1 = node(&redis, &["--room-log-budget-bytes", "32768"]).await;
    let room = new_room();
    let ticket_a = ticket(&room, "s:A", "ann", Role::Initiator);
    let (mut a, _) = join_native(&n1, &ticket_a).await;
    // One 15 KB signal is all the 16 KiB left for signals takes.
    assert_eq!(refusal(&mut a, &signal_of(&room, 15_000)).await, None);
    let e = refusal(&mut a, &signal_of(&room, 2_000)).await;
    assert_eq!(e.expect("refused")["code"], "room_log_full");

    let mut refused = None;
    for _ in 0..1_000 {
        let mut newer = WsClient::connect(&native_url(&n1)).await.unwrap();
        newer
            .send_json(&json!({"event":"join","ticket":ticket_a}))
            .await;
        let reply = newer.recv().await;
        if reply["event"] == "error" {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply["event"], "joined", "{reply}");
        assert_eq!(a.recv_close().await, Some(4410));
        a = newer;
    }
    let refused = refused.expect("rejoining stops at the budget");
    assert_eq!(refused["code"], "room_log_full", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("join"));
    let counted = redis_int(&redis, &["HGET", &wire::keys::room_members(&room), "bytes"]);
    assert!(counted as usize <= BUDGET, "{counted} bytes counted");

    // The latest socket still holds the room; the peer joins and gets the
    // one signal, and the join replayed within the budget.
    sync(&mut a).await;
    let (mut b, _) = join_native(&n1, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    let got = b.recv().await;
    assert_eq!(got["data"].as_str().unwrap().len(), 15_000 - 2);
    b.expect_silence(QUIET).await;
}

/// A user whose node died is not held to the rooms it was in: the peers'
/// nodes, declaring it timed out once its grace window passed, release its rooms, and it can join as many
/// new ones as before at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_whose_node_died_is_not_held_to_its_rooms() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let grace = ["--resume-grace-secs", "1"];
    let (n1, n3) = (node(&redis, &grace).await, node(&redis, &grace).await);
    let mut peers = Vec::new();
    let mut lost = Vec::new();
    for _ in 0..3 {
        let room = new_room();
        lost.push(join_native(&n3, &ticket(&room, "s:A", "ann", Role::Initiator)).await);
        peers.push(join_native(&n1, &ticket(&room, "s:B", "bob", Role::Responder)).await);
    }
    n3.kill();
    for (peer, _) in &mut peers {
        // Away first (it may resume), then gone for good once its grace passed.
        assert_eq!(peer.recv_event("peer-left").await["reason"], "timeout");
    }
    let key = wire::keys::user_rooms(&wire::user::UserKey::native("A"));
    testkit::eventually(STEP, "the lost user's rooms are released", || async {
        (redis_int(&redis, &["ZCARD", &key]) == 0).then_some(())
    })
    .await;
    let mut again = Vec::new();
    for _ in 0..3 {
        let room = new_room();
        again.push(join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await);
    }
}

/// A live room lives at least `--room-log-ttl-secs` after its last entry,
/// though a socket sets the room's lifetime again only once per eighth of
/// it (not with every message): a message sent a moment after another
/// (which set the lifetime) leaves the log and the member list at least
/// the full lifetime, and at most an eighth more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_room_lives_its_full_lifetime_after_its_last_message() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let ttl_ms = 8_000;
    let n = node(
        &redis,
        &[
            "--room-log-ttl-secs",
            "8",
            "--resume-grace-secs",
            "1",
            "--closed-room-ttl-secs",
            "1",
        ],
    )
    .await;
    let room = new_room();
    let (mut a, _) = join_native(&n, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let (mut b, _) = join_native(&n, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(a.recv().await["event"], "peer-joined");
    let keys = [wire::keys::room_log(&room), wire::keys::room_members(&room)];
    let mut first_sent = None;
    for i in 0..3 {
        // Well within one refresh period (1 s) of the first message.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let sent = std::time::Instant::now();
        let first = *first_sent.get_or_insert(sent);
        a.send_json(&signal(&room, &json!({ "n": i }))).await;
        assert_eq!(b.recv().await["data"], json!({ "n": i }));
        for key in &keys {
            let ttl = redis_int(&redis, &["PTTL", key]);
            let since = sent.elapsed().as_millis() as i64;
            assert!(
                ttl >= ttl_ms - since && ttl <= ttl_ms + ttl_ms / 8,
                "message {i}: {key} PTTL {ttl} ms, {since} ms after it was sent"
            );
            // Only the first message set the lifetime: the later ones left
            // it counting down from then (100 ms of slack for the clocks).
            let since_first = first.elapsed().as_millis() as i64;
            assert!(
                i == 0 || ttl <= ttl_ms + ttl_ms / 8 - since_first + 100,
                "message {i} set {key}'s lifetime again: PTTL {ttl} ms, \
                 {since_first} ms after the first message"
            );
        }
    }
}
