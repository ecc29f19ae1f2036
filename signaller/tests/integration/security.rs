//! Only the two matched users can join a room: a forged, expired, garbled
//! or other-room ticket, an unknown room, a third user and a second socket
//! of a member are all refused.

use serde_json::json;
use testkit::{RedisServer, WsClient};
use wire::user::Role;

use crate::common::*;

/// Forged, expired, garbled and other-room tickets, an unknown
/// room, a third user, and a second socket of a member are each refused
/// with a clear error; the refused socket stays usable; the room's peers
/// notice nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_two_matched_users_can_join() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let (n1, n2) = two_nodes(&redis).await;

    // A native room and a legacy room, each with both peers joined.
    let room = new_room();
    let ticket_a = ticket(&room, "s:A", "ann", Role::Initiator);
    let (mut a, _) = join_native(&n1, &ticket_a).await;
    let (mut b, _) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(a.recv().await["event"], "peer-joined");
    let legacy = new_room();
    legacy_room(&redis, &legacy, "alice", "bob");
    let mut alice = join_legacy(&n1, "alice", &legacy, "initiator").await;
    let mut lbob = join_legacy(&n2, "bob", &legacy, "responder").await;

    let mut eve = WsClient::connect(&native_url(&n1)).await.unwrap();
    let attempts = [
        (
            ticket_with(
                b"not the secret, but 32 bytes long!",
                &room,
                "s:E",
                "eve",
                Role::Responder,
                60_000,
            ),
            None,
            "forged_ticket",
        ),
        (
            // A member's own ticket with the claims swapped for eve's.
            {
                let eves = ticket(&room, "s:E", "eve", Role::Responder);
                let (claims, _) = eves.split_once('.').unwrap();
                let (_, sig) = ticket_a.split_once('.').unwrap();
                format!("{claims}.{sig}")
            },
            None,
            "forged_ticket",
        ),
        (
            ticket_with(SECRET.as_bytes(), &room, "s:E", "eve", Role::Responder, -1),
            None,
            "expired_ticket",
        ),
        ("garbage".to_string(), None, "bad_ticket"),
        (
            // A valid ticket for another room, presented for this one.
            ticket(&new_room(), "s:E", "eve", Role::Initiator),
            Some(room.clone()),
            "not_member",
        ),
        (
            // Even a validly signed ticket for this room cannot add a third member.
            ticket(&room, "s:E", "eve", Role::Responder),
            None,
            "not_member",
        ),
        // (A member's own ticket on another socket is that member's newer
        // socket, which replaces the older: see `replacement.rs`.)
    ];
    for (t, room_code, code) in attempts {
        let mut join = json!({"event":"join","ticket":t});
        if let Some(r) = room_code {
            join["room_code"] = json!(r);
        }
        eve.send_json(&join).await;
        expect_error(&mut eve, code).await;
    }
    sync(&mut eve).await; // still open and answering

    // Legacy: an unknown room, and a third name for a real one.
    let mut carol = WsClient::connect(&legacy_url(&n2, "carol")).await.unwrap();
    carol
        .send_json(
            &json!({"event":"join","room_code":"01NOSUCHROOM0000000000000","role":"initiator"}),
        )
        .await;
    let e = expect_error(&mut carol, "no_room").await;
    assert!(
        e["message"].as_str().unwrap().contains("Invalid room"),
        "{e}"
    );
    carol
        .send_json(&json!({"event":"join","room_code":legacy,"target":"bob","role":"responder"}))
        .await;
    expect_error(&mut carol, "not_member").await;
    // Legacy names cannot reach native rooms either.
    carol
        .send_json(&json!({"event":"join","room_code":room,"role":"responder"}))
        .await;
    expect_error(&mut carol, "no_room").await;
    sync(&mut carol).await;

    // The rooms are unaffected: nothing arrived, and both still relay.
    for ws in [&mut a, &mut b, &mut alice, &mut lbob] {
        ws.expect_silence(QUIET).await;
    }
    a.send_json(&signal(&room, &json!({"n":1}))).await;
    assert_eq!(b.recv().await["data"], json!({"n":1}));
    b.send_json(&signal(&room, &json!({"n":2}))).await;
    assert_eq!(a.recv().await["data"], json!({"n":2}));
    alice.send_json(&signal(&legacy, &json!({"n":3}))).await;
    let got = lbob.recv().await;
    assert_eq!(
        (got["from"].clone(), got["data"].clone()),
        (json!("alice"), json!({"n":3}))
    );
    for ws in [&mut a, &mut b, &mut alice, &mut lbob, &mut eve, &mut carol] {
        ws.expect_silence(QUIET).await;
    }
}
