//! The unchanged React client shows the stranger's name again: a pair with
//! a legacy user gets the room code `<initiator name>_<responder name>_<ULID>`,
//! from which that client derives its partner's name (it splits the code on
//! `_` and shows the first part that is not its own name). Codes stay unique
//! when the same two names meet again, and the signaller accepts the longer
//! codes on every node.

mod common;

use common::*;
use serde_json::json;
use testkit::WsClient;

/// The room `a` and `b` are matched into, and whether `a` initiates (one
/// of them does).
async fn matched(a: &mut WsClient, b: &mut WsClient) -> (String, bool) {
    let (ma, mb) = matched_together(a, b).await;
    assert_ne!(
        ma["initiator"], mb["initiator"],
        "one initiator: {ma} / {mb}"
    );
    (
        ma["room_code"].as_str().unwrap().to_string(),
        ma["initiator"].as_bool().unwrap(),
    )
}

fn ends_with_a_ulid(code: &str) -> bool {
    code.rsplit('_')
        .next()
        .is_some_and(|last| ulid::Ulid::from_string(last).is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_pair_derives_each_others_names_from_unique_codes() {
    let _panics = testkit::panics::guard();
    let redis = testkit::RedisServer::start();
    // The same two meet twice below: no last-partner memory.
    let _m = common::start(&redis.url(), "all", &["--last-partner-secs", "0"]).await;
    let addr = _m.gateway_addr().unwrap();

    let mut alice = legacy_user(addr, "Alice Smith").await;
    let mut bob = legacy_user(addr, "bob").await;
    let (code, alice_initiates) = matched(&mut alice, &mut bob).await;
    let expected = if alice_initiates {
        "Alice Smith_bob_".to_string()
    } else {
        "bob_Alice Smith_".to_string()
    };
    assert!(code.starts_with(&expected), "{code}");
    assert!(ends_with_a_ulid(&code), "{code}");
    assert_eq!(peer_from_code(&code, "Alice Smith"), "bob");
    assert_eq!(peer_from_code(&code, "bob"), "Alice Smith");
    // The room record is under the long code (the signaller's legacy check).
    assert_eq!(
        redis.command(&["EXISTS", &wire::keys::room(&code)]).trim(),
        "1"
    );

    // The same two names meet again (nobody else waits): another code.
    post_register(addr, "Alice Smith").await;
    post_register(addr, "bob").await;
    let (again, _) = matched(&mut alice, &mut bob).await;
    assert_ne!(again, code);
    assert_eq!(peer_from_code(&again, "bob"), "Alice Smith");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_pair_carries_names_and_a_native_pair_a_bare_ulid() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = redis_and_matcher().await;

    let mut ann = legacy_user(addr, "ann").await;
    let (mut zoe, _) = native_waiting(addr, "Zoë").await;
    let (code, _) = matched(&mut ann, &mut zoe).await;
    assert_eq!(peer_from_code(&code, "ann"), "Zoë");
    assert!(ends_with_a_ulid(&code));

    let (mut n1, _) = native_waiting(addr, "one").await;
    let (mut n2, _) = native_waiting(addr, "two").await;
    let (native_code, _) = matched(&mut n1, &mut n2).await;
    assert!(
        ulid::Ulid::from_string(&native_code).is_ok(),
        "{native_code}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signaller_accepts_the_longest_codes_on_both_nodes() {
    let _panics = testkit::panics::guard();
    let (redis, _m, addr) = redis_and_matcher().await;
    // Two names of the longest length, in multi-byte characters.
    let (a, b) = ("é".repeat(64), "ж".repeat(64));
    let mut wa = legacy_user(addr, &a).await;
    let mut wb = legacy_user(addr, &b).await;
    let (code, a_initiates) = matched(&mut wa, &mut wb).await;
    assert_eq!(code.chars().count(), wire::limits::MAX_ROOM_CODE_CHARS);

    let n1 = signaller::spawn(signaller_config(&redis, &[]))
        .await
        .expect("node 1");
    let n2 = signaller::spawn(signaller_config(&redis, &[]))
        .await
        .expect("node 2");
    let mut joins = Vec::new();
    for (name, n, initiates) in [(&a, &n1, a_initiates), (&b, &n2, !a_initiates)] {
        let url = format!("ws://{}/ws/{}", n.addr(), encode(name));
        let mut ws = WsClient::connect(&url).await.expect("signaller socket");
        let role = if initiates { "initiator" } else { "responder" };
        ws.send_json(&json!({"event":"join","room_code":code,"target":"","role":role}))
            .await;
        assert_eq!(ws.recv().await["event"], "verified");
        joins.push(ws);
    }
    joins[0]
        .send_json(&json!({"event":"signal","room_code":code,"data":{"sdp":"x"}}))
        .await;
    let got = joins[1].recv_event("signal").await;
    assert_eq!(got["from"], a.as_str());
    assert_eq!(got["data"], json!({"sdp":"x"}));
}
