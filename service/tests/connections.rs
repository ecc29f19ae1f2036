//! The accept loop (`service::listener::serve`) against real sockets over
//! loopback: clients that hold connections without using them are closed
//! in time, and connection floods are capped per address and in all.
//! Distinct client addresses are distinct loopback addresses (127.0.0.x),
//! bound before connecting.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::WebSocketUpgrade;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use service::listener::ConnectionSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// A server on a free port with these limits; stops when the test ends.
async fn server(header_timeout_secs: u64, max: usize, per_ip: usize) -> SocketAddr {
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/upload",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route("/ws", any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = ConnectionSettings {
        header_timeout_secs,
        max_connections: max,
        max_connections_per_ip: per_ip,
    };
    tokio::spawn(async move {
        service::listener::serve(listener, router, &settings, std::future::pending()).await
    });
    addr
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            if socket.send(msg).await.is_err() {
                return;
            }
        }
    })
}

/// A TCP connection to `server` from the loopback address `ip`.
async fn connect_from(ip: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.expect("connect")
}

/// Wait until the server closes `tcp` (end of stream or reset), ignoring
/// whatever it sends first; `None` if it is still open after `limit`.
async fn closed_after(tcp: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(start + limit, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Send `GET /ok` on `tcp` and say whether it was answered 200.
async fn served(tcp: &mut TcpStream) -> bool {
    if tcp
        .write_all(b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(testkit::STEP, tcp.read(&mut buf)).await {
            Err(_) => panic!("no answer and no close within {:?}", testkit::STEP),
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if text.contains("\r\n\r\nok") {
                    return text.starts_with("HTTP/1.1 200");
                }
            }
        }
    }
}

/// A server with a one-second header timeout (and room for every test's
/// connections), and a connection to it from 127.0.0.1.
async fn one_second_header_timeout() -> (SocketAddr, TcpStream) {
    let addr = server(1, 100, 10).await;
    let tcp = connect_from("127.0.0.1", addr).await;
    (addr, tcp)
}

/// The server closes `tcp` once the one-second header timeout has run
/// from now, not before and not much later.
async fn assert_closed_by_the_header_timeout(tcp: &mut TcpStream, what: &str) {
    let took = closed_after(tcp, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{what} is not closed"));
    assert!(
        took >= Duration::from_millis(900),
        "{what} closed too early: {took:?}"
    );
}

/// A WebSocket to `server` from `ip`, upgraded and checked with one echo.
async fn websocket_from(
    ip: &str,
    server: SocketAddr,
) -> Option<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let tcp = connect_from(ip, server).await;
    let handshake = tokio_tungstenite::client_async(format!("ws://{server}/ws"), tcp);
    let (mut ws, _) = tokio::time::timeout(testkit::STEP, handshake)
        .await
        .expect("handshake answered or refused in time")
        .ok()?;
    ws.send(Message::text("ping")).await.ok()?;
    match tokio::time::timeout(testkit::STEP, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "ping" => Some(ws),
        _ => None,
    }
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_header_timeout() {
    let _panics = testkit::panics::guard();
    let (_, mut tcp) = one_second_header_timeout().await;
    assert_closed_by_the_header_timeout(&mut tcp, "a connection that never sends a request").await;
}

#[tokio::test]
async fn slowloris_trickling_a_header_is_closed_after_the_header_timeout() {
    let _panics = testkit::panics::guard();
    let (_, mut tcp) = one_second_header_timeout().await;
    let start = Instant::now();
    // One header byte every 100 ms: each read makes progress, but the head
    // as a whole is due within the timeout.
    let head = b"GET /ok HTTP/1.1\r\nHost: test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in head {
        if tcp.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let left = Duration::from_secs(5).saturating_sub(start.elapsed());
    closed_after(&mut tcp, left)
        .await
        .expect("the trickling client is closed");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn unfinished_websocket_handshake_is_closed_after_the_header_timeout() {
    let _panics = testkit::panics::guard();
    let (_, mut tcp) = one_second_header_timeout().await;
    // An upgrade request without its final blank line.
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await
    .unwrap();
    assert_closed_by_the_header_timeout(&mut tcp, "the unfinished handshake").await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let _panics = testkit::panics::guard();
    let (_, mut tcp) = one_second_header_timeout().await;
    assert!(served(&mut tcp).await);
    assert_closed_by_the_header_timeout(&mut tcp, "an idle keep-alive connection").await;
}

#[tokio::test]
async fn trickled_request_body_is_answered_408_after_the_request_deadline() {
    let _panics = testkit::panics::guard();
    let (_, mut tcp) = one_second_header_timeout().await;
    // The head arrives; the promised body never does.
    tcp.write_all(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\nabc")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(8);
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
}

#[tokio::test]
async fn websocket_outlives_the_header_timeout() {
    let _panics = testkit::panics::guard();
    let addr = server(1, 100, 10).await;
    let mut ws = websocket_from("127.0.0.1", addr).await.expect("upgraded");
    // Past the header deadline (time must pass: not a synchronisation),
    // the upgraded socket is no longer HTTP.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.send(Message::text("still here")).await.unwrap();
    match tokio::time::timeout(testkit::STEP, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), "still here"),
        other => panic!("the WebSocket was closed: {other:?}"),
    }
}

#[tokio::test]
async fn connection_flood_from_one_address_is_capped_per_address() {
    let _panics = testkit::panics::guard();
    let addr = server(10, 100, 3).await;
    // Three WebSockets from 127.0.0.2 fill its share; a WebSocket counts
    // for as long as it is open.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            websocket_from("127.0.0.2", addr)
                .await
                .expect("within the cap"),
        );
    }
    let mut fourth = connect_from("127.0.0.2", addr).await;
    assert!(
        !served(&mut fourth).await,
        "a fourth connection from 127.0.0.2 is refused"
    );
    // Other addresses are not affected.
    let mut other = connect_from("127.0.0.3", addr).await;
    assert!(served(&mut other).await, "127.0.0.3 is served");
    // A closed socket gives its place back.
    let mut first = held.remove(0);
    first.close(None).await.unwrap();
    while let Ok(Some(_)) = tokio::time::timeout(testkit::STEP, first.next()).await {}
    drop(first);
    testkit::eventually(testkit::STEP, "127.0.0.2 has a place again", || async {
        let mut again = connect_from("127.0.0.2", addr).await;
        served(&mut again).await.then_some(())
    })
    .await;
}

#[tokio::test]
async fn connection_flood_from_many_addresses_is_capped_in_all() {
    let _panics = testkit::panics::guard();
    // No per-address cap: only the total holds.
    let addr = server(10, 4, 0).await;
    let mut held = Vec::new();
    for i in 2..6 {
        let mut tcp = connect_from(&format!("127.0.0.{i}"), addr).await;
        assert!(served(&mut tcp).await, "connection {i} is within the cap");
        held.push(tcp);
    }
    let mut fifth = connect_from("127.0.0.6", addr).await;
    assert!(!served(&mut fifth).await, "a fifth connection is refused");
    drop(held.pop());
    testkit::eventually(testkit::STEP, "a place is free again", || async {
        let mut again = connect_from("127.0.0.6", addr).await;
        served(&mut again).await.then_some(())
    })
    .await;
}

#[tokio::test]
async fn per_address_cap_zero_means_no_per_address_cap() {
    let _panics = testkit::panics::guard();
    let addr = server(10, 1000, 0).await;
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(connect_from("127.0.0.7", addr).await);
    }
    let mut last = connect_from("127.0.0.7", addr).await;
    assert!(
        served(&mut last).await,
        "the 301st connection from one address is served"
    );
}
