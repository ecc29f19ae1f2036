//! A real WebSocket client for tests, with bounded waits.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket client speaking JSON text frames.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a socket delivered next.
#[derive(Debug)]
pub enum Next {
    Json(Value),
    /// The server closed the socket, with its close code if any.
    Closed(Option<u16>),
}

impl WsClient {
    /// Connect to `url` (`ws://...`), failing after [`crate::STEP`].
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        let (ws, _) = tokio::time::timeout(crate::STEP, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| anyhow::anyhow!("connect {url}: timed out"))??;
        Ok(WsClient { ws })
    }

    /// Connect to `url` from the local address `from` (any 127.x.y.z works
    /// on Linux), so that a test can play several clients of different
    /// addresses.
    pub async fn connect_from(url: &str, from: std::net::IpAddr) -> anyhow::Result<WsClient> {
        let tcp = crate::tcp_from(from, server_of(url)?).await?;
        let (ws, _) = tokio::time::timeout(
            crate::STEP,
            tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("handshake {url}: timed out"))??;
        Ok(WsClient { ws })
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send text frame");
    }

    pub async fn send_raw(
        &mut self,
        msg: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(msg).await
    }

    /// The next JSON frame or close, within `limit`; `None` on timeout.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Next> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(Next::Closed(None)),
                Ok(Some(Err(_))) => return Some(Next::Closed(None)),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    return Some(Next::Json(
                        serde_json::from_str(t.as_str()).expect("server sent invalid JSON"),
                    ))
                }
                Message::Close(frame) => {
                    return Some(Next::Closed(frame.map(|f| u16::from(f.code))))
                }
                _ => continue,
            }
        }
    }

    /// The next JSON frame; panics on close or after [`crate::STEP`].
    pub async fn recv(&mut self) -> Value {
        match self.next_within(crate::STEP).await {
            Some(Next::Json(v)) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// Skip frames until one whose `event` is `event`; panics after [`crate::STEP`].
    pub async fn recv_event(&mut self, event: &str) -> Value {
        self.recv_event_within(event, crate::STEP).await
    }

    /// Skip frames until one whose `event` is `event`; panics after `limit`.
    pub async fn recv_event_within(&mut self, event: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(Next::Json(v)) if v["event"] == event => return v,
                Some(Next::Json(_)) => continue,
                other => panic!("expected event {event:?}, got {other:?}"),
            }
        }
    }

    /// Assert that no frame arrives within `quiet` (for "nothing twice" checks).
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Some(next) = self.next_within(quiet).await {
            panic!("expected silence, got {next:?}");
        }
    }

    /// Wait for the server to close the socket; returns the close code.
    pub async fn recv_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + crate::STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(Next::Closed(code)) => return code,
                Some(Next::Json(_)) => continue,
                None => panic!("socket was not closed within {:?}", crate::STEP),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A refused WebSocket handshake: the HTTP status and `Retry-After` (s).
pub type Refused = (u16, Option<u64>);

/// A raw WebSocket handshake to `url` (`ws://host:port/path`) from the local
/// address `from` (any 127.x.y.z works on Linux): the socket, or the
/// refusal's status and `Retry-After`.
pub async fn handshake_from(from: &str, url: &str) -> Result<WebSocketStream<TcpStream>, Refused> {
    let server = server_of(url).expect("ws://ip:port/...");
    let tcp = crate::tcp_from(from.parse().expect("an IP address"), server)
        .await
        .expect("connect in time");
    let handshake = tokio_tungstenite::client_async(url, tcp);
    match tokio::time::timeout(crate::STEP, handshake)
        .await
        .expect("a handshake answer in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err((
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse().unwrap()),
        )),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// The `ip:port` of a `ws://ip:port/...` URL.
fn server_of(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    let host = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default();
    Ok(host.parse()?)
}
