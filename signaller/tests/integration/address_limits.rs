//! Per-client-address limits on signaller handshakes, with clients on
//! distinct loopback addresses and two nodes on one Redis.

use std::net::SocketAddr;

use testkit::RedisServer;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite;

use crate::common::*;

/// A WebSocket handshake to `server` from loopback address `from`: the
/// socket, or the refusal's status and `Retry-After`.
async fn ws_from(
    from: &str,
    server: SocketAddr,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, (u16, Option<u64>)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(server).await.expect("connect");
    let handshake = tokio_tungstenite::client_async(format!("ws://{server}/ws"), tcp);
    match tokio::time::timeout(testkit::STEP, handshake)
        .await
        .expect("a handshake answer in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => Err((
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse().unwrap()),
        )),
        Err(e) => panic!("handshake failed: {e}"),
    }
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
