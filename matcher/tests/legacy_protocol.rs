//! The original React client's protocol, step by step as that client
//! speaks it (see "The original React client" in `wire/PROTOCOL.md`),
//! against a real gateway.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use testkit::{Next, RedisServer};

#[tokio::test]
async fn scripted_legacy_client_round() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start(&redis.url(), "gateway", &[]).await;
    let addr = m.gateway_addr().unwrap();
    // A worker process, paused below so that three users wait at once.
    // Alice and Bob are paired again alone below, which the last-partner
    // rule allows once both waited --rematch-after-ms: kept short here.
    let worker = common::MatcherProcess::worker(&redis, &["--rematch-after-ms", "200"]).await;
    let http = reqwest::Client::new();

    // CORS preflight for the JSON POST, from the page's own origin.
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{addr}/registerForMatching"),
        )
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-origin"));

    // Each client opens its socket and POSTs right after, without waiting.
    let names = ["Alice Smith", "bob"];
    let (alice_ws, alice_post) = tokio::join!(
        common::legacy_socket(addr, names[0]),
        common::post_register(addr, names[0])
    );
    let (bob_ws, bob_post) = tokio::join!(
        common::legacy_socket(addr, names[1]),
        common::post_register(addr, names[1])
    );
    let (mut alice, mut bob) = (alice_ws, bob_ws);
    for (status, body) in [alice_post, bob_post] {
        assert_eq!(status, 200);
        // A fresh first registration is queued (never "exists").
        assert_eq!(body["status"], "queued", "{body}");
        assert!(body["message"].is_string());
    }

    let (a, b) = common::matched_together(&mut alice, &mut bob).await;
    for m in [&a, &b] {
        assert!(m["room_code"].is_string());
        assert!(m["initiator"].is_boolean());
    }
    assert_ne!(a["initiator"], b["initiator"], "exactly one initiator");

    // Chat, addressed the way the client does it (derived peer name).
    let code = a["room_code"].as_str().unwrap();
    alice
        .send_json(
            &json!({"event":"chat","peer": common::peer_from_code(code, names[0]),"message":"hi bob"}),
        )
        .await;
    let chat = bob.recv_event("chat").await;
    assert_eq!(chat["sender"], names[0]);
    assert_eq!(chat["message"], "hi bob");
    assert!(chat["timestamp"].is_f64(), "timestamp is a float: {chat}");

    // Invalid JSON gets an error event (which the legacy client ignores);
    // the socket stays open and keeps working.
    bob.send_text("{not json").await;
    assert_eq!(bob.recv_event("error").await["code"], "bad_json");
    bob.send_json(&json!({"event":"chat","peer":"x","message":"still here"}))
        .await;
    let back = alice.recv_event("chat").await;
    assert_eq!(back["message"], "still here");
    assert_eq!(back["sender"], "bob");

    // A second socket for a connected name is refused.
    let mut dup = common::legacy_socket(addr, names[1]).await;
    match dup.next_within(testkit::STEP).await {
        Some(Next::Json(v)) => assert_eq!(v["code"], "name_taken"),
        other => panic!("expected name_taken, got {other:?}"),
    }
    assert_eq!(dup.recv_close().await, Some(4409));

    // "Next": both register again over the same sockets while a third user
    // waits; all three are in the pool at once (the worker process is
    // paused while they register), and neither gets the partner they just
    // left: carol is paired with one of them, the other waits. Repeated, as
    // one round passes by chance one time in three without the avoidance.
    let mut carol = common::legacy_socket(addr, "carol").await;
    let mut last_room = a["room_code"].clone();
    let (mut first, mut second) = ((&mut alice, names[0]), (&mut bob, names[1]));
    for round in 0..12 {
        worker.pause().await;
        assert_eq!(
            common::post_register(addr, "carol").await.1["status"],
            "queued"
        );
        if round == 0 {
            // Registering again while waiting answers "exists".
            assert_eq!(
                common::post_register(addr, "carol").await.1["status"],
                "exists"
            );
        }
        for name in [first.1, second.1] {
            assert_eq!(
                common::post_register(addr, name).await.1["status"],
                "queued"
            );
        }
        worker.resume();
        let c = carol.recv_event("matched").await;
        assert_ne!(c["room_code"], last_room);
        let partner = c["peer_name"].as_str().unwrap().to_string();
        assert!(
            partner == names[0] || partner == names[1],
            "round {round}: carol paired with {partner}"
        );
        if partner != first.1 {
            std::mem::swap(&mut first, &mut second);
        }
        assert_eq!(
            first.0.recv_event("matched").await["room_code"],
            c["room_code"]
        );
        // The other still waits, in the pool, told nothing.
        let left = wire::user::UserKey::legacy(second.1);
        assert_ne!(
            redis.command(&["ZSCORE", &wire::keys::pool(), left.as_str()]),
            "",
            "round {round}: {} is not waiting",
            second.1
        );
        // Alone together, alice and bob are paired again once both waited
        // the rematch window (for the next round).
        assert_eq!(
            common::post_register(addr, first.1).await.1["status"],
            "queued"
        );
        let (r1, _) = common::matched_together(first.0, second.0).await;
        last_room = r1["room_code"].clone();
    }

    // Bad names and bodies get a clear error status.
    let bad: Value = http
        .post(format!("http://{addr}/registerForMatching"))
        .body("nonsense")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["status"], "error");
    let (status, body) = common::post_register(addr, "").await;
    assert_eq!((status, body["status"].as_str()), (400, Some("error")));
    // Nothing more for either socket: no second `matched`, nothing from the
    // refused requests.
    for ws in [&mut alice, &mut bob] {
        ws.expect_silence(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn register_before_the_socket_connects_still_delivers_matched() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();
    // Both POST first. Nobody is handed out before their socket is there
    // (a registration alone is no proof of a person): no pair is made yet.
    assert_eq!(
        common::post_register(addr, "early1").await.1["status"],
        "queued"
    );
    assert_eq!(
        common::post_register(addr, "early2").await.1["status"],
        "queued"
    );
    testkit::eventually(testkit::STEP, "both in the pool", || async {
        (redis.command(&["ZCARD", &wire::keys::pool()]).trim() == "2").then_some(())
    })
    .await;
    let mut one = common::legacy_socket(addr, "early1").await;
    one.expect_silence(Duration::from_millis(500)).await;
    let notice = wire::keys::notice(&wire::user::UserKey::legacy("early1"));
    assert_eq!(
        redis.command(&["EXISTS", &notice]).trim(),
        "0",
        "paired too early"
    );
    // The second socket comes: the pair is made and each gets `matched`.
    let mut two = common::legacy_socket(addr, "early2").await;
    common::matched_together(&mut one, &mut two).await;
    // Exactly once: no second notice.
    one.expect_silence(Duration::from_millis(200)).await;
    two.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn register_on_one_gateway_with_the_socket_on_another() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let a = common::start_all(&redis.url()).await;
    let b = common::start(&redis.url(), "gateway", &[]).await;
    let (addr_a, addr_b) = (a.gateway_addr().unwrap(), b.gateway_addr().unwrap());
    let mut x = common::legacy_socket(addr_b, "xavier").await;
    let mut y = common::legacy_socket(addr_a, "yolanda").await;
    // Each registers through the *other* gateway than its socket's.
    assert_eq!(
        common::post_register(addr_a, "xavier").await.1["status"],
        "queued"
    );
    assert_eq!(
        common::post_register(addr_b, "yolanda").await.1["status"],
        "queued"
    );
    common::matched_together(&mut x, &mut y).await;
}
