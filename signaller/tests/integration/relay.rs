//! Every signal and chat message reaches the other peer once,
//! in order, across nodes, including what was sent before the peer joined.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::{Next, RedisServer, TestRedis};
use wire::user::Role;

use crate::common::*;

/// A simple-peer offer with the characters that break naive relays.
fn offer() -> Value {
    json!({"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic: WMS \"Zoë\" \\ ✓\r\n"})
}

fn answer() -> Value {
    json!({"type":"answer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"})
}

fn candidate(from: &str, i: u32) -> Value {
    json!({"candidate":{"candidate":format!("candidate:{i} 1 udp 2122260223 10.0.{i}.1 5{i:04} typ host generation 0 ufrag {from}"),
                        "sdpMLineIndex":i % 2,"sdpMid":(i % 2).to_string()}})
}

/// Peer A on node 1, peer B on node 2: offer, answer and 50
/// candidates each way arrive in order, exactly once, payload unchanged,
/// `from` set by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_relay_keeps_order_and_payload_exactly_once() {
    let _panics = testkit::panics::guard();
    cross_node_relay(&RedisServer::start()).await;
}

/// The body of the test above, on any Redis (also run on the cluster).
pub async fn cross_node_relay(redis: &impl TestRedis) {
    let (n1, n2) = two_nodes(redis).await;
    let room = new_room();

    let (mut a, joined) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    assert!(joined["resume"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        bare(joined),
        json!({"event":"joined","room_code":room,"role":"initiator","peer_present":false})
    );
    let (mut b, joined) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(
        bare(joined),
        json!({"event":"joined","room_code":room,"role":"responder","peer_present":true,"peer_name":"ann"})
    );
    assert_eq!(
        bare(a.recv().await),
        json!({"event":"peer-joined","peer_name":"bob"})
    );

    a.send_json(&signal(&room, &offer())).await;
    assert_eq!(
        bare(b.recv().await),
        json!({"event":"signal","room_code":room,"from":"ann","type":"signal","data":offer()})
    );
    b.send_json(&signal(&room, &answer())).await;
    assert_eq!(
        bare(a.recv().await),
        json!({"event":"signal","room_code":room,"from":"bob","type":"signal","data":answer()})
    );

    // Both trickle 50 candidates at once, interleaved; one without `type`.
    for i in 0..50 {
        a.send_json(&signal(&room, &candidate("a", i))).await;
        b.send_json(&json!({"event":"signal","data":candidate("b", i)}))
            .await;
    }
    // Every event carries its room-log id, rising: the resume cursor.
    let mut cursor = wire::internal::StreamId::default();
    for i in 0..50 {
        let got = b.recv().await;
        assert!(last_id(&got) > cursor, "{got}");
        cursor = last_id(&got);
        assert_eq!(
            bare(got),
            json!({"event":"signal","room_code":room,"from":"ann","type":"signal","data":candidate("a", i)}),
            "candidate {i} at B"
        );
    }
    for i in 0..50 {
        let got = a.recv().await;
        assert_eq!(
            bare(got),
            json!({"event":"signal","room_code":room,"from":"bob","data":candidate("b", i)}),
            "candidate {i} at A"
        );
    }
    // Chat takes the same path.
    a.send_json(&json!({"event":"chat","message":"héllo"}))
        .await;
    let chat = b.recv().await;
    assert_eq!(chat["event"], "chat");
    assert_eq!(chat["sender"], "ann");
    assert_eq!(chat["message"], "héllo");
    assert!(chat["timestamp"].as_f64().unwrap() > 1.7e9);

    a.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
}

/// A sends 10 signals before B joins; B receives all 10 right after
/// joining, in order, and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_sent_before_the_peer_joins_are_delivered_once_in_order() {
    let _panics = testkit::panics::guard();
    before_join_backlog(&RedisServer::start()).await;
}

/// The body of the test above, on any Redis (also run on the cluster).
pub async fn before_join_backlog(redis: &impl TestRedis) {
    let (n1, n2) = two_nodes(redis).await;
    let room = new_room();

    let (mut a, _) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    for i in 0..10 {
        a.send_json(&signal(&room, &json!({"seq":i}))).await;
    }
    sync(&mut a).await; // all 10 are in the room log now

    let (mut b, joined) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(joined["peer_present"], true);
    for i in 0..10 {
        let got = b.recv().await;
        assert_eq!(got["event"], "signal", "{got}");
        assert_eq!(got["from"], "ann");
        assert_eq!(got["data"], json!({"seq":i}));
    }
    b.expect_silence(QUIET).await;
    assert_eq!(a.recv().await["event"], "peer-joined");
    a.expect_silence(QUIET).await;

    // And what follows is live, still once.
    a.send_json(&signal(&room, &json!({"seq":10}))).await;
    assert_eq!(b.recv().await["data"], json!({"seq":10}));
    b.expect_silence(QUIET).await;
}

/// How long the load test waits for any one message.
const LOAD_WAIT: Duration = Duration::from_secs(40);

/// 100 rooms at once, 200 messages each way per room, peers on
/// different nodes: none lost, none reordered, none in the wrong room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_under_load_across_100_rooms() {
    let _panics = testkit::panics::guard();
    const ROOMS: usize = 100;
    const MESSAGES: u64 = 200;
    let redis = RedisServer::start();
    // No flood limit, and the default liveness timing: this test is about
    // ordering, and a debug build under this load may delay a heartbeat
    // past the 500 ms the other tests use.
    let fast = [
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
        "--heartbeat-ms",
        "1000",
        "--node-ttl-ms",
        "3000",
    ];
    let (n1, n2) = (node(&redis, &fast).await, node(&redis, &fast).await);

    let mut rooms = tokio::task::JoinSet::new();
    for r in 0..ROOMS {
        let room = new_room();
        let (ta, tb) = (
            ticket(&room, &format!("s:A{r}"), &format!("a{r}"), Role::Initiator),
            ticket(&room, &format!("s:B{r}"), &format!("b{r}"), Role::Responder),
        );
        let (u1, u2) = (native_url(&n1), native_url(&n2));
        rooms.spawn(async move {
            let mut a = testkit::WsClient::connect(&u1).await.unwrap();
            let mut b = testkit::WsClient::connect(&u2).await.unwrap();
            a.send_json(&json!({"event":"join","ticket":ta})).await;
            assert_eq!(a.recv().await["event"], "joined");
            b.send_json(&json!({"event":"join","ticket":tb})).await;
            assert_eq!(b.recv().await["event"], "joined");
            assert_eq!(a.recv().await["event"], "peer-joined");
            for i in 0..MESSAGES {
                a.send_json(&json!({"event":"signal","data":{"room":r,"seq":i}}))
                    .await;
                b.send_json(&json!({"event":"signal","data":{"room":r,"seq":i}}))
                    .await;
            }
            for (who, ws, from) in [
                ("A", &mut a, format!("b{r}")),
                ("B", &mut b, format!("a{r}")),
            ] {
                for i in 0..MESSAGES {
                    // 80,000 deliveries through a debug build on 2 cores
                    // take a while: wait long (but bounded) for throughput,
                    // while loss or disorder still fails at once.
                    let got = match ws.next_within(LOAD_WAIT).await {
                        Some(Next::Json(got)) => got,
                        other => panic!("room {r} at {who}: message {i} missing: {other:?}"),
                    };
                    assert_eq!(got["event"], "signal", "room {r} {who}: {got}");
                    assert_eq!(got["from"], from.as_str(), "room {r} {who}");
                    assert_eq!(
                        got["data"],
                        json!({"room":r,"seq":i}),
                        "room {r} at {who}: message {i}"
                    );
                }
            }
            a.expect_silence(QUIET).await;
            b.expect_silence(QUIET).await;
        });
    }
    while let Some(done) = rooms.join_next().await {
        done.expect("room task");
    }
    // Every socket closed: both nodes dropped every room subscription.
    testkit::eventually(testkit::STEP, "rooms unsubscribed", || async {
        (n1.rooms() == 0 && n2.rooms() == 0).then_some(())
    })
    .await;
}
