//! `/metrics` of real `signaller` processes, one per node, so each scrape
//! moves only with what this test does: the relay counters move by exactly
//! one relayed signal on the receiving node, the error counter by exactly one
//! bad frame on the sender's node, under its `kind` label.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use serde_json::json;
use testkit::prometheus::{delta, scrape, series};
use testkit::RedisServer;
use wire::user::Role;

use crate::common::*;

/// A `signaller` process, killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn node_process(redis: &RedisServer) -> Node {
    let addr: SocketAddr = format!("127.0.0.1:{}", testkit::free_port())
        .parse()
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_signaller"))
        .args(&args(redis, &["--listen", &addr.to_string()])[1..])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("run the signaller binary");
    let ready = format!("http://{addr}/readyz");
    testkit::eventually(testkit::STEP, "signaller ready", || async {
        let ok = reqwest::get(&ready)
            .await
            .is_ok_and(|r| r.status().is_success());
        ok.then_some(())
    })
    .await;
    Node { child, addr }
}

async fn join(node: &Node, ticket: &str) -> testkit::WsClient {
    let mut ws = testkit::WsClient::connect(&format!("ws://{}/ws", node.addr))
        .await
        .expect("connect");
    ws.send_json(&json!({"event":"join","ticket":ticket})).await;
    assert_eq!(ws.recv().await["event"], "joined");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_error_counters_move_by_exactly_what_happened() {
    let _panics = testkit::panics::guard();
    const SOCKETS: &str = r#"rvc_sockets_open{role="signaller"}"#;
    const BAD_INPUT: &str = r#"rvc_errors_total{kind="bad_input"}"#;
    let redis = RedisServer::start();
    let (n1, n2) = (node_process(&redis).await, node_process(&redis).await);
    let room = new_room();
    let mut a = join(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let mut b = join(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    a.recv_event("peer-joined").await;

    let (before1, before2) = (scrape(n1.addr).await, scrape(n2.addr).await);
    a.send_json(&signal(&room, &json!({"type":"offer","sdp":"v=0"})))
        .await;
    b.recv_event("signal").await;
    a.send_text("{broken").await;
    expect_error(&mut a, "bad_json").await;
    let (after1, after2) = (scrape(n1.addr).await, scrape(n2.addr).await);

    // Delivered on n2, to b: counted there, once.
    assert_eq!(delta(&before2, &after2, "rvc_signals_relayed_total"), 1.0);
    assert_eq!(
        delta(&before2, &after2, "rvc_relay_latency_seconds_count"),
        1.0
    );
    assert_eq!(delta(&before1, &after1, "rvc_signals_relayed_total"), 0.0);
    // The bad frame was a's, on n1.
    assert_eq!(delta(&before1, &after1, BAD_INPUT), 1.0);
    assert_eq!(delta(&before2, &after2, BAD_INPUT), 0.0);
    assert_eq!(series(&after1, SOCKETS), 1.0);
    assert_eq!(series(&after2, SOCKETS), 1.0);
}
