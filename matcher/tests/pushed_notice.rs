//! A native user's `matched` notice travels with the pairing's message to
//! the socket the pairing saw, which writes it without taking it from Redis;
//! the stored copy is there for the paths the push misses. Whichever copy
//! comes first, a registration is delivered once: a socket that dropped
//! after its `matched` and resumes gets no second one, and the copy left
//! in Redis is forgotten by the socket's next register or its park.

mod common;

use testkit::{RedisServer, WsClient};
use wire::keys;
use wire::user::UserKey;

/// How long a test waits to be sure nothing more arrives.
const QUIET: std::time::Duration = std::time::Duration::from_millis(300);

fn notice_stored(redis: &RedisServer, user: &UserKey) -> bool {
    redis.command(&["EXISTS", &keys::notice(user)]) == "1"
}

#[tokio::test]
async fn a_pushed_match_is_not_delivered_again_to_the_session_resuming_after_a_drop() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let one = common::start_all(&redis.url()).await;
    let two = common::start(&redis.url(), "gateway", &[]).await;
    let addr = one.gateway_addr().unwrap();
    let (mut ann, session) = common::native_waiting(addr, "ann").await;
    let (mut bob, _) = common::native_waiting(addr, "bob").await;
    common::matched_together(&mut ann, &mut bob).await;
    let ann_key = UserKey::native(&session);
    // Pushed, and stored too (by the same pairing run, before the push).
    assert!(notice_stored(&redis, &ann_key));
    ann.close().await;
    common::until_parked(&redis, &ann_key).await;
    // The park forgot the copy of what the socket delivered.
    assert!(!notice_stored(&redis, &ann_key));
    let url = common::ws_url(
        two.gateway_addr().unwrap(),
        &format!("/ws?resume={session}"),
    );
    let mut back = WsClient::connect(&url).await.expect("connect");
    back.recv_event("hello").await;
    // Back, neither waiting nor matched: told so, and nothing else.
    let next = back.recv().await;
    assert_eq!(next["event"], "cancelled", "{next}");
    back.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn the_next_register_forgets_the_stored_copy_of_a_pushed_match() {
    let _panics = testkit::panics::guard();
    let (redis, _m, addr) = common::redis_and_matcher().await;
    let (mut ann, ann_session) = common::native_waiting(addr, "ann").await;
    let (mut bob, _) = common::native_waiting(addr, "bob").await;
    common::matched_together(&mut ann, &mut bob).await;
    let ann_key = UserKey::native(&ann_session);
    assert!(notice_stored(&redis, &ann_key));
    ann.send_json(&serde_json::json!({"event": "register", "name": "ann"}))
        .await;
    ann.recv_event("queued").await;
    assert!(!notice_stored(&redis, &ann_key));
    ann.expect_silence(QUIET).await;
}
