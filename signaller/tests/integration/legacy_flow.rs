//! The original React client's flow end to end at protocol level,
//! starting from the matcher's `matched` notice, with a scripted client
//! that does what that client does (see "The original React client" in
//! `wire/PROTOCOL.md`).

use std::net::SocketAddr;

use clap::Parser;
use serde_json::{json, Value};
use testkit::{RedisServer, WsClient};

use crate::common::*;

/// The matcher (gateway and worker in one process) on a free port.
async fn matcher(redis: &RedisServer) -> matcher::Running {
    let url = redis.url();
    let config = matcher::Config::parse_from([
        "matcher",
        "--role",
        "all",
        "--listen",
        "127.0.0.1:0",
        "--redis-url",
        &url,
        "--ticket-secret",
        SECRET,
    ]);
    matcher::spawn(config).await.expect("matcher starts")
}

/// URL-encode a display name for the `/ws/{name}` path, as the client does.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How the React client derives the peer's name from the room code.
fn peer_from_code(code: &str, me: &str) -> String {
    code.split('_')
        .find(|p| *p != me)
        .unwrap_or(code)
        .to_string()
}

/// One user of the React client: a matching socket kept across rounds.
struct LegacyUser {
    name: String,
    matching: WsClient,
}

impl LegacyUser {
    /// Open `/ws/{name}` on the matcher and POST the register right after,
    /// without waiting for the socket (the client's race).
    async fn arrive(matcher: SocketAddr, name: &str) -> LegacyUser {
        let url = format!("ws://{matcher}/ws/{}", encode(name));
        let (socket, _) = tokio::join!(WsClient::connect(&url), register(matcher, name));
        LegacyUser {
            name: name.to_string(),
            matching: socket.expect("matching socket"),
        }
    }

    /// The `matched` notice: (room code, initiator).
    async fn matched(&mut self) -> (String, bool) {
        let m = self.matching.recv_event("matched").await;
        (
            m["room_code"].as_str().unwrap().to_string(),
            m["initiator"].as_bool().unwrap(),
        )
    }

    /// Open the signalling socket and send `join` the way the client does.
    async fn join(
        &self,
        signaller: &signaller::RunningNode,
        room: &str,
        initiator: bool,
    ) -> WsClient {
        let mut ws = WsClient::connect(&format!(
            "ws://{}/ws/{}",
            signaller.addr(),
            encode(&self.name)
        ))
        .await
        .expect("signalling socket");
        let role = if initiator { "initiator" } else { "responder" };
        ws.send_json(&json!({"event":"join","room_code":room,
                             "target":peer_from_code(room, &self.name),"role":role}))
            .await;
        ws
    }
}

async fn register(matcher: SocketAddr, name: &str) {
    let reply: Value = reqwest::Client::new()
        .post(format!("http://{matcher}/registerForMatching"))
        .json(&json!({ "name": name }))
        .timeout(testkit::STEP)
        .send()
        .await
        .expect("POST /registerForMatching")
        .json()
        .await
        .expect("JSON reply");
    assert_eq!(reply["status"], "queued", "{reply}");
}

fn offer() -> Value {
    json!({"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"})
}

fn answer() -> Value {
    json!({"type":"answer","sdp":"v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\n"})
}

fn candidate(who: &str, i: u32) -> Value {
    json!({"candidate":{"candidate":format!("candidate:{i} 1 udp 1 10.0.0.{i} 9 typ host {who}"),
                        "sdpMLineIndex":0,"sdpMid":"0"}})
}

/// Match on the matcher; the initiator joins and, once `verified`,
/// sends its held offer and candidates at once; the responder (on another
/// signaller node) joins afterwards and gets them all, creates its peer on
/// the first, answers with `"from":""` and a wrong `target`; then the
/// initiator skips: closes its signalling socket, registers again over the
/// same matching socket and at once opens a new signalling socket under
/// the same name for its next room. The old peer is told; the new room
/// works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_react_client_flow_end_to_end() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let matcher = matcher(&redis).await;
    let m = matcher.gateway_addr().expect("gateway runs");
    let (n1, n2) = two_nodes(&redis).await;

    let mut alice = LegacyUser::arrive(m, "Alice Smith").await;
    let mut bob = LegacyUser::arrive(m, "bob").await;
    let (room, alice_initiates) = alice.matched().await;
    let (bob_room, bob_initiates) = bob.matched().await;
    assert_eq!(room, bob_room);
    assert_ne!(alice_initiates, bob_initiates, "exactly one initiator");
    // Script the two roles, whoever got which.
    let (mut init, mut resp, init_node, resp_node) = if alice_initiates {
        (alice, bob, &n1, &n2)
    } else {
        (bob, alice, &n1, &n2)
    };

    // Initiator: join, hold the signals until `verified`, then send them all.
    let mut init_sig = init.join(init_node, &room, true).await;
    assert_eq!(
        init_sig.recv().await,
        json!({"event":"verified","room_code":room,"role":"initiator"})
    );
    let mut held = vec![offer()];
    held.extend((0..5).map(|i| candidate("init", i)));
    for data in &held {
        init_sig
            .send_json(&json!({"event":"signal","room_code":room,
                               "target":peer_from_code(&room, &init.name),
                               "from":init.name,"type":"signal","data":data}))
            .await;
    }
    sync(&mut init_sig).await;

    // Responder: joins after all that was sent (nothing is lost), creates
    // its peer on the first signal, then answers.
    let mut resp_sig = resp.join(resp_node, &room, false).await;
    assert_eq!(resp_sig.recv().await["event"], "verified");
    for data in &held {
        let got = resp_sig.recv().await;
        assert_eq!(
            got,
            json!({"event":"signal","room_code":room,"from":init.name,"type":"signal","data":data})
        );
    }
    let mut reply = vec![answer()];
    reply.extend((0..5).map(|i| candidate("resp", i)));
    for data in &reply {
        // One client version always sends "from":"", and addresses the
        // reply to the `from` it received.
        resp_sig
            .send_json(
                &json!({"event":"signal","room_code":room,"target":init.name,
                               "from":"","type":"signal","data":data}),
            )
            .await;
    }
    for data in &reply {
        let got = init_sig.recv().await;
        assert_eq!(got["from"], resp.name.as_str(), "{got}");
        assert_eq!(got["data"], *data);
    }
    init_sig.expect_silence(QUIET).await;
    resp_sig.expect_silence(QUIET).await;

    // Skip ("Next") by the initiator: close the signalling socket, register
    // again over the same matching socket; carol is waiting too.
    let mut carol = LegacyUser::arrive(m, "carol").await;
    init_sig.close().await;
    register(m, &init.name).await;
    assert_eq!(
        resp_sig.recv().await,
        json!({"event":"peer-disconnected","message":format!("{} has disconnected", init.name)})
    );
    let (room2, init_again) = init.matched().await;
    let (carol_room, carol_initiates) = carol.matched().await;
    assert_eq!(room2, carol_room);
    assert_ne!(room2, room);
    assert_ne!(init_again, carol_initiates);

    // The new signalling socket, same name, same node, moments later.
    let mut init_sig2 = init.join(init_node, &room2, init_again).await;
    assert_eq!(init_sig2.recv().await["event"], "verified");
    let mut carol_sig = carol.join(resp_node, &room2, carol_initiates).await;
    assert_eq!(carol_sig.recv().await["event"], "verified");
    init_sig2
        .send_json(&json!({"event":"signal","room_code":room2,"data":{"hello":"carol"}}))
        .await;
    let got = carol_sig.recv().await;
    assert_eq!(
        (got["from"].clone(), got["data"].clone()),
        (json!(init.name), json!({"hello":"carol"}))
    );
    carol_sig
        .send_json(&json!({"event":"signal","room_code":room2,"from":"","data":{"hello":"back"}}))
        .await;
    let got = init_sig2.recv().await;
    assert_eq!(
        (got["from"].clone(), got["data"].clone()),
        (json!("carol"), json!({"hello":"back"}))
    );
    // The old room's clean-up touched nothing here.
    init_sig2.expect_silence(QUIET).await;
    carol_sig.expect_silence(QUIET).await;
    resp_sig.expect_silence(QUIET).await;
    resp.matching.expect_silence(QUIET).await;
}
