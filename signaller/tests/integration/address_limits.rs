//! Per-client-address limits on signaller handshakes, with clients on
//! distinct loopback addresses and two nodes on one Redis.

use std::net::SocketAddr;

use testkit::RedisServer;

use crate::common::*;

/// A WebSocket handshake to `server` from loopback address `from`.
async fn ws_from(
    from: &str,
    server: SocketAddr,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, testkit::Refused> {
    testkit::handshake_from(from, &format!("ws://{server}/ws")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_open_signaller_sockets_past_its_rate_through_two_nodes() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let flags = ["--ip-rate-limit", "1", "--ip-rate-burst", "3"];
    let (n1, n2) = (node(&redis, &flags).await, node(&redis, &flags).await);
    let mut held = Vec::new();
    for n in [&n1, &n2, &n1] {
        held.push(
            ws_from("127.0.1.2", n.addr())
                .await
                .expect("within the burst"),
        );
    }
    let refused = ws_from("127.0.1.2", n2.addr()).await.err();
    assert!(matches!(refused, Some((429, Some(1..=2)))), "{refused:?}");
    assert!(
        ws_from("127.0.1.3", n2.addr()).await.is_ok(),
        "another address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_signaller_sockets_than_the_cap_across_two_nodes() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let flags = ["--max-sockets-per-ip", "2"];
    let (n1, n2) = (node(&redis, &flags).await, node(&redis, &flags).await);
    let mut first = ws_from("127.0.1.4", n1.addr()).await.unwrap();
    let _second = ws_from("127.0.1.4", n2.addr()).await.unwrap();
    let refused = ws_from("127.0.1.4", n1.addr()).await.err();
    assert!(matches!(refused, Some((429, Some(_)))), "{refused:?}");
    assert!(
        ws_from("127.0.1.5", n1.addr()).await.is_ok(),
        "another address"
    );
    first.close(None).await.unwrap();
    drop(first);
    testkit::eventually(testkit::STEP, "a closed socket frees a place", || async {
        ws_from("127.0.1.4", n2.addr()).await.ok()
    })
    .await;
}
