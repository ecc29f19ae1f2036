//! Bad input gets a clear error event or close code; the
//! server keeps running and nobody else is affected.

use serde_json::json;
use testkit::{Next, RedisServer, WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use wire::user::Role;

use crate::common::*;

/// Malformed JSON, unknown events, bad messages, frames before the
/// join, an oversized frame (1009), a binary frame (1003), a flood (slowed
/// down, nothing lost; past the bound `rate_limited` then 1008), a bad
/// legacy name (1008), a foreign Origin (403) and
/// a silent client (4408): each is answered, and a room on the same nodes
/// carries on undisturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_and_harms_nobody() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let (n1, n2) = two_nodes(&redis).await;
    let strict = node(
        &redis,
        &[
            "--allowed-origins",
            "https://chat.example",
            "--idle-timeout-secs",
            "1",
        ],
    )
    .await;

    let tight = node(&redis, &["--rate-limit", "10", "--rate-burst", "5"]).await;

    let room = new_room();
    let (mut a, _) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let (mut b, _) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(a.recv().await["event"], "peer-joined");

    // Errors that leave the socket open.
    let mut x = WsClient::connect(&native_url(&n1)).await.unwrap();
    for (frame, code) in [
        ("{not json", "bad_json"),
        ("", "bad_json"),
        (r#""just a string""#, "bad_json"),
        (r#"{"no":"event"}"#, "bad_message"),
        (r#"{"event":"dance"}"#, "unknown_event"),
        (r#"{"event":42}"#, "bad_message"),
        (r#"{"event":"signal"}"#, "bad_message"),
        (r#"{"event":"join"}"#, "bad_message"),
        (
            r#"{"event":"signal","data":{"type":"offer"}}"#,
            "not_joined",
        ),
        (r#"{"event":"chat","message":"hi"}"#, "not_joined"),
        (r#"{"event":"leave"}"#, "not_joined"),
    ] {
        x.send_text(frame).await;
        expect_error(&mut x, code).await;
    }
    sync(&mut x).await;

    // An oversized frame closes with 1009.
    let mut big = WsClient::connect(&native_url(&n1)).await.unwrap();
    let text = format!(
        r#"{{"event":"chat","message":"{}"}}"#,
        "x".repeat(wire::limits::MAX_MESSAGE_BYTES + 1)
    );
    big.send_text(&text).await;
    assert_eq!(big.recv_close().await, Some(1009));

    // A binary frame closes with 1003.
    let mut bin = WsClient::connect(&native_url(&n1)).await.unwrap();
    bin.send_raw(Message::binary(vec![0u8, 1, 2]))
        .await
        .unwrap();
    assert_eq!(bin.recv_close().await, Some(1003));

    // A flood is slowed down, not cut (default: 50/s, bursts of 200, up
    // to 400 frames held back): every one of 400 pings is answered, in
    // turn, nothing refused; the 200 over the burst take 4 s at least.
    let mut flood = WsClient::connect(&native_url(&n1)).await.unwrap();
    let started = std::time::Instant::now();
    for _ in 0..400 {
        flood.send_text(r#"{"event":"ping"}"#).await;
    }
    for i in 0..400 {
        let frame = flood.recv().await;
        assert_eq!(frame["event"], "pong", "pong {i} of 400: {frame}");
    }
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(4),
        "(400 - 200) / 50 s at least: {took:?}"
    );
    sync(&mut flood).await;

    // A client that keeps flooding past the bound (here 10/s, bursts of
    // 5, so 10 held back) has the frame in hand refused by name, then is
    // closed with 1008.
    let mut flooder = WsClient::connect(&native_url(&tight)).await.unwrap();
    for _ in 0..40 {
        flooder.send_text(r#"{"event":"ping"}"#).await;
    }
    // At least the burst and the bound are served (more when the server,
    // slowed by a loaded machine, reads at the rate anyway); never all 40.
    let mut pongs = 0;
    let refused = loop {
        let frame = flooder.recv().await;
        if frame["event"] == "pong" {
            pongs += 1;
            continue;
        }
        break frame;
    };
    assert!(
        (15..40).contains(&pongs),
        "{pongs} pongs before the refusal"
    );
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("\"ping\""),
        "{refused}"
    );
    assert_eq!(flooder.recv_close().await, Some(1008));

    // A legacy name with a control character: error, then close 1008.
    let mut bad_name = WsClient::connect(&legacy_url(&n1, "bad%07name"))
        .await
        .unwrap();
    expect_error(&mut bad_name, "bad_name").await;
    assert_eq!(bad_name.recv_close().await, Some(1008));

    // A foreign Origin is refused at the handshake; an allowed one passes.
    let mut request = native_url(&strict).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    let mut request = native_url(&strict).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://chat.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());

    // A client that never answers pings is closed with 4408 (here: 1 s).
    assert_eq!(silent_client_close_code(&strict).await, Some(4408));

    // The server is up, and the room carried on untouched.
    let health = reqwest::get(http_url(&n1, "/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    a.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
    a.send_json(&signal(&room, &json!({"n":1}))).await;
    assert_eq!(b.recv().await["data"], json!({"n":1}));
    b.send_json(&signal(&room, &json!({"n":2}))).await;
    assert_eq!(a.recv().await["data"], json!({"n":2}));
    let (mut fresh, _) = join_native(&n1, &ticket(&new_room(), "s:C", "cy", Role::Initiator)).await;
    sync(&mut fresh).await;
    assert!(!matches!(x.next_within(QUIET).await, Some(Next::Closed(_))));
}

/// Open a WebSocket by hand and never answer anything; return the close
/// code the server sends (pings are read and ignored).
async fn silent_client_close_code(node: &signaller::RunningNode) -> Option<u16> {
    let mut tcp = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        node.addr()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + testkit::STEP;
    // Skip the HTTP response head.
    let mut head_done = false;
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .expect("server closes the silent client in time")
            .unwrap();
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if !head_done {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            assert!(buf.starts_with(b"HTTP/1.1 101"));
            buf.drain(..end + 4);
            head_done = true;
        }
        // Server frames are unmasked: [fin|opcode] [len] [ext len] payload.
        while buf.len() >= 2 {
            let opcode = buf[0] & 0x0f;
            let (len, start) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < start + len {
                break;
            }
            if opcode == 0x8 {
                return (len >= 2).then(|| u16::from_be_bytes([buf[start], buf[start + 1]]));
            }
            buf.drain(..start + len);
        }
    }
}
