//! The unchanged React client shows the stranger's name again: a pair with
//! a legacy user gets the room code `<initiator name>_<responder name>_<ULID>`,
//! from which that client derives its partner's name (it splits the code on
//! `_` and shows the first part that is not its own name). Codes stay unique
//! when the same two names meet again, and the signaller accepts the longer
//! codes on every node.

mod common;

use clap::Parser;
use common::*;
use serde_json::json;
use testkit::{RedisServer, WsClient};

/// How the React client derives the peer's name from the room code.
fn peer_from_code(code: &str, me: &str) -> String {
    code.split('_')
        .find(|p| *p != me)
        .unwrap_or(code)
        .to_string()
}

/// A legacy user: the matching socket, then the register POST.
async fn legacy(addr: std::net::SocketAddr, name: &str) -> WsClient {
    let ws = WsClient::connect(&ws_url(addr, &format!("/ws/{}", encode(name))))
        .await
        .expect("connect");
    let (status, body) = post_register(addr, name).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("queued")),
        "{body}"
    );
    ws
}

/// (room code, initiator) of the next `matched`.
async fn matched(ws: &mut WsClient) -> (String, bool) {
    let m = ws.recv_event("matched").await;
    (
        m["room_code"].as_str().unwrap().to_string(),
        m["initiator"].as_bool().unwrap(),
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
    let redis = RedisServer::start();
    let m = start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();

    let mut alice = legacy(addr, "Alice Smith").await;
    let mut bob = legacy(addr, "bob").await;
    let (code, alice_initiates) = matched(&mut alice).await;
    assert_eq!(matched(&mut bob).await.0, code);
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
    let (again, _) = matched(&mut alice).await;
    assert_eq!(matched(&mut bob).await.0, again);
    assert_ne!(again, code);
    assert_eq!(peer_from_code(&again, "bob"), "Alice Smith");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_pair_carries_names_and_a_native_pair_a_bare_ulid() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();

    let mut ann = legacy(addr, "ann").await;
    let (mut zoe, _) = native_waiting(addr, "Zoë").await;
    let (code, _) = matched(&mut ann).await;
    assert_eq!(matched(&mut zoe).await.0, code);
    assert_eq!(peer_from_code(&code, "ann"), "Zoë");
    assert!(ends_with_a_ulid(&code));

    let (mut n1, _) = native_waiting(addr, "one").await;
    let (mut n2, _) = native_waiting(addr, "two").await;
    let (native_code, _) = matched(&mut n1).await;
    assert_eq!(matched(&mut n2).await.0, native_code);
    assert!(
        ulid::Ulid::from_string(&native_code).is_ok(),
        "{native_code}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signaller_accepts_the_longest_codes_on_both_nodes() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();
    // Two names of the longest length, in multi-byte characters.
    let (a, b) = ("é".repeat(64), "ж".repeat(64));
    let mut wa = legacy(addr, &a).await;
    let mut wb = legacy(addr, &b).await;
    let (code, a_initiates) = matched(&mut wa).await;
    assert_eq!(matched(&mut wb).await.0, code);
    assert_eq!(code.chars().count(), wire::limits::MAX_ROOM_CODE_CHARS);

    let node = |redis: &RedisServer| {
        signaller::Config::parse_from([
            "signaller",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            &redis.url(),
            "--ticket-secret",
            SECRET,
        ])
    };
    let n1 = signaller::spawn(node(&redis)).await.expect("node 1");
    let n2 = signaller::spawn(node(&redis)).await.expect("node 2");
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
