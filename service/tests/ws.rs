//! The WebSocket shell against real clients over loopback TCP: each rule
//! of `service::ws::Socket` as a client meets it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};
use service::origin::AllowedOrigins;
use service::ws::{self, EndReason, Gone, Inbound, Socket, SocketLimits};
use testkit::WsClient;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// What a server-side socket task reports when it ends.
#[derive(Debug)]
struct Ended {
    reason: EndReason,
    /// For `/flood`: how long the write that gave up took.
    last_write: Option<Duration>,
}

#[derive(Clone)]
struct App {
    limits: SocketLimits,
    ended: mpsc::UnboundedSender<Ended>,
}

struct Server {
    base: String,
    ended: mpsc::UnboundedReceiver<Ended>,
}

impl Server {
    async fn start(limits: SocketLimits) -> Server {
        let (tx, ended) = mpsc::unbounded_channel();
        let app = App { limits, ended: tx };
        let origins = Arc::new(AllowedOrigins::new(&["https://chat.example".into()]));
        let router = Router::new()
            .route("/echo", any(echo))
            .route("/busy", any(busy))
            .route("/flood", any(flood))
            .route("/sink", any(sink))
            .route_layer(axum::middleware::from_fn_with_state(
                origins,
                ws::check_origin,
            ))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server {
            base: format!("ws://{addr}"),
            ended,
        }
    }

    async fn connect(&self, path: &str) -> WsClient {
        WsClient::connect(&format!("{}{path}", self.base))
            .await
            .unwrap()
    }

    /// How the next server-side socket ended.
    async fn ended(&mut self) -> Ended {
        tokio::time::timeout(testkit::STEP, self.ended.recv())
            .await
            .expect("a socket ended in time")
            .unwrap()
    }
}

fn limits(idle_ms: u64, rate: u32, burst: u32, send_ms: u64) -> SocketLimits {
    SocketLimits {
        idle_timeout: Duration::from_millis(idle_ms),
        rate,
        burst,
        flood_frames: burst.saturating_mul(2),
        send_timeout: Duration::from_millis(send_ms),
    }
}

fn flood_limits(rate: u32, burst: u32, flood_frames: u32) -> SocketLimits {
    SocketLimits {
        flood_frames,
        ..limits(60_000, rate, burst, 1000)
    }
}

impl From<EndReason> for Ended {
    fn from(reason: EndReason) -> Self {
        Ended {
            reason,
            last_write: None,
        }
    }
}

/// Upgrade with the shell's handshake settings, serve the socket with
/// `serve`, and report how it ended.
fn upgrade<F, Fut>(app: App, ws: WebSocketUpgrade, serve: F) -> Response
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = Ended> + Send,
{
    ws::configure(ws).on_upgrade(move |ws| async move {
        let ended = serve(Socket::new(ws, app.limits)).await;
        let _ = app.ended.send(ended);
    })
}

/// Echo accepted frames; answer refused ones with `{"limited": frame}`.
async fn echo(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    upgrade(app, ws, |mut socket| async move {
        loop {
            let sent = match socket.next().await {
                Inbound::Text(text) => socket.send(text).await,
                Inbound::RateLimited(text) => {
                    socket
                        .send(json!({ "limited": text.as_str() }).to_string())
                        .await
                }
                Inbound::End(reason) => break reason.into(),
            };
            if let Err(Gone(reason)) = sent {
                break reason.into();
            }
        }
    })
}

/// Echo, with `next` raced against a timer that fires every millisecond:
/// nothing may be lost to the cancelled reads.
async fn busy(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    upgrade(app, ws, |mut socket| async move {
        let mut timer = tokio::time::interval(Duration::from_millis(1));
        loop {
            tokio::select! {
                inbound = socket.next() => match inbound {
                    Inbound::Text(text) | Inbound::RateLimited(text) => {
                        if let Err(Gone(reason)) = socket.send(text).await {
                            break reason.into();
                        }
                    }
                    Inbound::End(reason) => break reason.into(),
                },
                _ = timer.tick() => {}
            }
        }
    })
}

/// Read and answer nothing.
async fn sink(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    upgrade(app, ws, |mut socket| async move {
        loop {
            if let Inbound::End(reason) = socket.next().await {
                break reason.into();
            }
        }
    })
}

/// Write 64 KiB frames until the client is given up.
async fn flood(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    upgrade(app, ws, |mut socket| async move {
        let frame = json!({ "pad": "x".repeat(64 * 1024) }).to_string();
        loop {
            let started = Instant::now();
            if let Err(Gone(reason)) = socket.send(frame.clone()).await {
                break Ended {
                    reason,
                    last_write: Some(started.elapsed()),
                };
            }
        }
    })
}

#[tokio::test]
async fn a_silent_client_is_closed_with_4408() {
    let mut server = Server::start(limits(300, 50, 200, 1000)).await;
    // A client that never reads, so never answers a ping; its bytes are
    // read raw afterwards (a WebSocket client would try to answer the
    // pings, on a socket the server has closed).
    let tcp = tokio::net::TcpStream::connect(server.base.trim_start_matches("ws://"))
        .await
        .unwrap();
    let (mut client, _) = tokio_tungstenite::client_async(format!("{}/echo", server.base), tcp)
        .await
        .unwrap();
    let started = Instant::now();
    let ended = server.ended().await;
    assert_eq!(ended.reason, EndReason::Idle);
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(300) && after < Duration::from_secs(2),
        "{after:?}"
    );
    let mut bytes = Vec::new();
    tokio::time::timeout(testkit::STEP, client.get_mut().read_to_end(&mut bytes))
        .await
        .expect("the server hangs up")
        .unwrap();
    let reason = wire::CloseCode::Idle.reason().as_bytes();
    let mut close = vec![0x88, 2 + reason.len() as u8];
    close.extend_from_slice(&4408u16.to_be_bytes());
    close.extend_from_slice(reason);
    assert!(
        bytes.ends_with(&close),
        "the last frame is a close 4408: {bytes:x?}"
    );
}

#[tokio::test]
async fn a_client_answering_pings_stays() {
    let mut server = Server::start(limits(300, 50, 200, 1000)).await;
    let mut client = server.connect("/echo").await;
    // Reading answers the server's pings.
    client.expect_silence(Duration::from_millis(1200)).await;
    client.send_json(&json!({"event": "ping"})).await;
    assert_eq!(client.recv().await["event"], "ping");
    assert!(server.ended.try_recv().is_err(), "socket still open");
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let mut server = Server::start(limits(60_000, 50, 200, 1000)).await;
    let mut client = server.connect("/echo").await;
    client
        .send_raw(Message::binary(vec![0u8, 1, 2]))
        .await
        .unwrap();
    assert_eq!(client.recv_close().await, Some(1003));
    assert_eq!(server.ended().await.reason, EndReason::Binary);
}

#[tokio::test]
async fn oversized_messages_close_with_1009() {
    let mut server = Server::start(limits(60_000, 50, 200, 1000)).await;
    let mut client = server.connect("/echo").await;
    client
        .send_text(&"x".repeat(wire::limits::MAX_MESSAGE_BYTES + 1))
        .await;
    assert_eq!(client.recv_close().await, Some(1009));
    assert_eq!(server.ended().await.reason, EndReason::TooBig);
}

#[tokio::test]
async fn a_burst_over_the_rate_is_slowed_down_and_nothing_is_lost() {
    // 100/s, bursts of 5, up to 20 frames held back: 25 frames at once are
    // all handled, in order, none refused, the last 20 at the rate.
    let server = Server::start(flood_limits(100, 5, 20)).await;
    let mut client = server.connect("/echo").await;
    let started = Instant::now();
    for i in 0..25 {
        client.send_json(&json!({"event": "ping", "n": i})).await;
    }
    for i in 0..25 {
        let frame = client.recv().await;
        assert_eq!(frame["n"], i, "in order, none refused: {frame}");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "20 frames over the burst at 100/s take 200 ms at least: {took:?}"
    );
}

#[tokio::test]
async fn a_client_flooding_past_the_bound_is_refused_by_name_then_closed_with_1008() {
    // 10/s: a slow (loaded) server never takes the 100 ms between two
    // reads that would let a token build up and break the run.
    let mut server = Server::start(flood_limits(10, 5, 10)).await;
    let mut client = server.connect("/echo").await;
    for i in 0..40 {
        client.send_json(&json!({"event": "ping", "n": i})).await;
    }
    // The burst and the 10 held back are handled; the 16th is refused,
    // named; then the socket is closed as flooding.
    for i in 0..15 {
        assert_eq!(client.recv().await["n"], i);
    }
    let refused = client.recv().await;
    let frame: Value = serde_json::from_str(refused["limited"].as_str().unwrap()).unwrap();
    assert_eq!(frame["n"], 15, "{refused}");
    assert_eq!(client.recv_close().await, Some(1008));
    assert_eq!(server.ended().await.reason, EndReason::Flooding);
}

#[tokio::test]
async fn a_flooding_client_is_slowed_by_tcp_flow_control() {
    // 1 frame/s and nothing refused: the server stops reading, so the
    // client's writes block once the TCP buffers are full (about 25 MB
    // is far more than loopback buffers hold).
    let server = Server::start(flood_limits(1, 1, 1_000_000)).await;
    let mut client = server.connect("/sink").await;
    let frame = "x".repeat(32 * 1024);
    let flood = async {
        for _ in 0..800 {
            client.send_text(&frame).await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(3), flood)
            .await
            .is_err(),
        "the flood was not slowed down: the server kept reading"
    );
}

#[tokio::test]
async fn next_is_cancel_safe() {
    let server = Server::start(limits(60_000, 10_000, 10_000, 1000)).await;
    let mut client = server.connect("/busy").await;
    for i in 0..200 {
        client.send_json(&json!({ "n": i })).await;
    }
    for i in 0..200 {
        assert_eq!(client.recv().await["n"], i);
    }
}

#[tokio::test]
async fn next_is_cancel_safe_while_frames_wait_for_the_rate() {
    // 1000/s, bursts of 10: most frames are held for their turn while the
    // timer keeps cancelling `next`.
    let server = Server::start(flood_limits(1000, 10, 1000)).await;
    let mut client = server.connect("/busy").await;
    for i in 0..200 {
        client.send_json(&json!({ "n": i })).await;
    }
    for i in 0..200 {
        assert_eq!(client.recv().await["n"], i);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_given_up_within_the_send_timeout() {
    let send_timeout = Duration::from_millis(300);
    let mut server = Server::start(limits(60_000, 50, 200, 300)).await;
    let started = Instant::now();
    let client = server.connect("/flood").await;
    let ended = server.ended().await;
    assert_eq!(ended.reason, EndReason::NotReading);
    let last = ended.last_write.unwrap();
    assert!(
        last >= send_timeout && last < send_timeout + Duration::from_secs(1),
        "the blocked write took {last:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(client);
}

#[tokio::test]
async fn foreign_origins_are_refused_at_the_handshake() {
    let server = Server::start(limits(60_000, 50, 200, 1000)).await;
    let handshake = |origin: &'static str| {
        let mut request = format!("{}/echo", server.base)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let refused = handshake("https://evil.example").await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    assert!(handshake("https://chat.example").await.is_ok());
    // Programs send no Origin and pass.
    server.connect("/echo").await;
}
