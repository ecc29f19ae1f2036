//! The client side of a WebSocket, as every simulated user opens it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest a connection handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Open a WebSocket to `url` with Nagle off: the frames are small and the
/// point is to measure latency, not to let the kernel batch writes.
///
/// Every simulated user comes from this one machine's address, so the
/// services must run with their per-address limits off
/// (`--ip-rate-limit 0 --max-sockets-per-ip 0`, as `scripts/bench` starts
/// them); a `429` says so instead of counting as a failed user.
pub async fn connect(url: &str) -> Result<Ws> {
    let connect = tokio_tungstenite::connect_async_with_config(url, None, true);
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow!("connecting to {url} timed out"))?;
    match connected {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status().as_u16() == 429 => {
            bail!(
                "{url} refused the socket with 429: the per-address limits are on; \
                 start the services with --ip-rate-limit 0 --max-sockets-per-ip 0 \
                 (scripts/bench does)"
            )
        }
        Err(e) => Err(e).with_context(|| format!("connecting to {url}")),
    }
}

/// The next text frame as JSON, skipping control frames. Fails on close,
/// on a binary frame and on anything that is not JSON.
pub async fn recv_json<S>(stream: &mut S) -> Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            None => bail!("socket closed"),
            Some(Err(e)) => return Err(e).context("reading a frame"),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).context("frame is not JSON")
            }
            Some(Ok(Message::Close(frame))) => bail!("socket closed by the server: {frame:?}"),
            Some(Ok(Message::Binary(_))) => bail!("unexpected binary frame"),
            Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
        }
    }
}

/// `recv_json` with a deadline.
pub async fn recv_json_within<S>(stream: &mut S, within: Duration) -> Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(within, recv_json(stream))
        .await
        .map_err(|_| anyhow!("no frame within {within:?}"))?
}

/// The `event` field of a server frame ("" when missing).
pub fn event(v: &Value) -> &str {
    v.get("event").and_then(Value::as_str).unwrap_or("")
}
