//! The client side of a WebSocket, as every simulated user opens it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest a connection handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client's read buffer. tungstenite zero-fills the free part of its
/// read buffer, up to this size, before every read: with its default of
/// 128 KiB that memset was a quarter of the load generator's CPU, taken
/// from the two cores it shares with the services it measures, and it
/// delayed every frame it received. The frames here are at most a few
/// KiB (a bigger one grows the buffer as needed).
const READ_BUFFER: usize = 4 * 1024;

fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// Open a WebSocket to `url` with Nagle off: the frames are small and the
/// point is to measure latency, not to let the kernel batch writes.
///
/// Every simulated user comes from this one machine's address, so the
/// services must run with their per-address limits off
/// (`--ip-rate-limit 0 --max-sockets-per-ip 0`, as `scripts/bench` starts
/// them); a `429` says so instead of counting as a failed user.
pub async fn connect(url: &str) -> Result<Ws> {
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(config()), true);
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow!("connecting to {url} timed out"))?;
    refusal(url, connected.map(|(ws, _)| ws))
}

/// Like [`connect`], from a chosen local address: one source address has
/// one range of ephemeral ports (about 28,000 by default) towards one
/// server address, so many sockets are spread over 127.0.0.2, 127.0.0.3, …
/// (all of 127/8 is loopback on Linux). `IP_BIND_ADDRESS_NO_PORT` lets the
/// kernel pick the port at connect, by the whole 4-tuple.
pub async fn connect_from(url: &str, source: Ipv4Addr) -> Result<Ws> {
    let request = url
        .into_client_request()
        .with_context(|| format!("{url}: not a WebSocket URL"))?;
    let host = request.uri().host().unwrap_or("127.0.0.1").to_string();
    let port = request.uri().port_u16().unwrap_or(80);
    let handshake = async {
        let server: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| anyhow!("{host} has no IPv4 address"))?;
        let socket = TcpSocket::new_v4()?;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket
            .bind(SocketAddr::new(IpAddr::V4(source), 0))
            .with_context(|| format!("binding to {source}"))?;
        let stream = socket
            .connect(server)
            .await
            .with_context(|| format!("connecting from {source} to {server}"))?;
        stream.set_nodelay(true)?;
        anyhow::Ok(
            tokio_tungstenite::client_async_with_config(
                request,
                tokio_tungstenite::MaybeTlsStream::Plain(stream),
                Some(config()),
            )
            .await,
        )
    };
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| anyhow!("connecting to {url} timed out"))??;
    refusal(url, connected.map(|(ws, _)| ws))
}

/// A handshake's outcome, with a refusal for too many sockets per address
/// named as such.
fn refusal(url: &str, connected: Result<Ws, tokio_tungstenite::tungstenite::Error>) -> Result<Ws> {
    match connected {
        Ok(ws) => Ok(ws),
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
