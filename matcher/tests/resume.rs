//! A native matching socket that drops may come back within the resume
//! grace window, to any gateway (`/ws?resume=<session id>`): it keeps its
//! place in the pool, or gets the `matched` notice made meanwhile, exactly
//! once. While it is gone it is out of the pool, and past the window it is
//! withdrawn: nobody is ever paired with it.

mod common;

use serde_json::{json, Value};
use testkit::{RedisServer, WsClient};
use wire::keys;
use wire::user::UserKey;

/// How long a test waits to be sure nothing more arrives.
const QUIET: std::time::Duration = std::time::Duration::from_millis(300);

/// Open `/ws?resume=<session>` on `addr`; the socket and its `hello`.
async fn resume(addr: std::net::SocketAddr, session: &str) -> (WsClient, Value) {
    let mut ws = WsClient::connect(&common::ws_url(addr, &format!("/ws?resume={session}")))
        .await
        .expect("connect");
    let hello = ws.recv_event("hello").await;
    (ws, hello)
}

#[tokio::test]
async fn a_waiting_user_dropped_and_back_within_the_grace_is_matched_exactly_once() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let one = common::start_all(&redis.url()).await;
    let two = common::start(&redis.url(), "gateway", &[]).await;
    let (ann, session) = common::native_waiting(one.gateway_addr().unwrap(), "ann").await;
    let ann_key = UserKey::native(&session);
    common::until_in_pool(&redis, &ann_key).await;
    ann.close().await;
    testkit::eventually(testkit::STEP, "ann out of the pool while away", || async {
        (!common::in_pool(&redis, &ann_key)).then_some(())
    })
    .await;
    // Bob arrives while ann is away: he is not handed a ghost.
    let (mut bob, _) = common::native_waiting(two.gateway_addr().unwrap(), "bob").await;
    bob.expect_silence(QUIET).await;

    // Ann comes back on the other gateway: same session, her registration
    // kept, and she is matched with bob, once.
    let (mut ann, hello) = resume(two.gateway_addr().unwrap(), &session).await;
    assert_eq!(hello["session"], json!(session));
    assert_eq!(ann.recv().await, json!({"event":"queued"}));
    let (a, b) = common::matched_together(&mut ann, &mut bob).await;
    assert_eq!(
        (&a["peer_name"], &b["peer_name"]),
        (&json!("bob"), &json!("ann"))
    );
    ann.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_match_made_before_the_drop_is_delivered_once_to_the_returning_socket() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let one = common::start(&redis.url(), "gateway", &[]).await;
    let two = common::start(&redis.url(), "gateway", &[]).await;
    let (ann, session) = common::native_waiting(one.gateway_addr().unwrap(), "ann").await;
    let ann_key = UserKey::native(&session);
    ann.close().await;
    common::until_parked(&redis, &ann_key).await;
    // The pairing script's notice, made before ann's gateway could hand it
    // over (no worker runs in this test: it is written as pair.lua does).
    let notice = wire::internal::MatchedNotice {
        user: ann_key.to_string(),
        reg: "01REG".into(),
        addr: "127.0.0.1".into(),
        room: "01ROOMROOMROOMROOMROOMROOM".into(),
        initiator: true,
        peer: "s:BOB".into(),
        peer_name: "bob".into(),
        name: "ann".into(),
        common: vec![],
    };
    let pack = "redis.call('SET', KEYS[1], cmsgpack.pack({ user = ARGV[1], reg = ARGV[2], \
                addr = ARGV[3], room = ARGV[4], initiator = true, peer = ARGV[5], \
                peer_name = ARGV[6], name = ARGV[7] }))";
    redis.command(&[
        "EVAL",
        pack,
        "1",
        &keys::notice(&ann_key),
        &notice.user,
        &notice.reg,
        &notice.addr,
        &notice.room,
        &notice.peer,
        &notice.peer_name,
        &notice.name,
    ]);

    let (mut ann, _) = resume(two.gateway_addr().unwrap(), &session).await;
    let matched = ann.recv_event("matched").await;
    assert_eq!(matched["room_code"], json!(notice.room));
    let ticket = wire::ticket::verify(
        common::SECRET.as_bytes(),
        matched["ticket"].as_str().unwrap(),
        service::clock::now_ms(),
    )
    .expect("a valid ticket");
    assert_eq!(ticket.user, ann_key.to_string());
    ann.expect_silence(QUIET).await;
    assert_eq!(redis.command(&["EXISTS", &keys::notice(&ann_key)]), "0");
    // The session was taken back once: a second resume is refused.
    let (mut again, _) = resume(one.gateway_addr().unwrap(), &session).await;
    assert_eq!(again.recv_event("error").await["code"], "expired_resume");
}

#[tokio::test]
async fn a_dropped_user_that_never_comes_back_is_never_paired() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start(&redis.url(), "all", &["--resume-grace-secs", "1"]).await;
    let addr = m.gateway_addr().unwrap();
    let (ghost, session) = common::native_waiting(addr, "ghost").await;
    let ghost_key = UserKey::native(&session);
    common::until_in_pool(&redis, &ghost_key).await;
    ghost.close().await;
    let (mut bob, _) = common::native_waiting(addr, "bob").await;
    // The window passes: the ghost's registration is gone for good.
    testkit::eventually(testkit::STEP, "the ghost's registration lapses", || async {
        (redis.command(&["EXISTS", &keys::waiting(&ghost_key)]) == "0"
            && redis.command(&["EXISTS", &keys::parked(&ghost_key)]) == "0")
            .then_some(())
    })
    .await;
    bob.expect_silence(QUIET).await;
    let (mut carol, _) = common::native_waiting(addr, "carol").await;
    let (b, c) = common::matched_together(&mut bob, &mut carol).await;
    assert_eq!(
        (&b["peer_name"], &c["peer_name"]),
        (&json!("carol"), &json!("bob"))
    );
    assert!(!common::in_pool(&redis, &ghost_key));
    // Too late to come back: told so, and closed.
    let (mut late, _) = resume(addr, &session).await;
    let error = late.recv_event("error").await;
    assert_eq!(error["code"], "expired_resume", "{error}");
    assert_eq!(late.recv_close().await, Some(1008));
}

#[tokio::test]
async fn resume_with_something_that_is_not_a_session_id_is_refused_at_the_handshake() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = common::redis_and_matcher().await;
    let url = common::ws_url(addr, "/ws?resume=..%2F..%2Fetc");
    assert!(WsClient::connect(&url).await.is_err());
}
