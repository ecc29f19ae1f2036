//! Accepting connections for a role's HTTP + WebSocket server.
//!
//! [`serve`] is the accept loop both services run (instead of `axum::serve`,
//! which has no header deadline and no caps). It defends the process
//! against clients that hold connections without using them:
//!
//! * **Caps at accept time**: at most `--max-connections` open connections
//!   in all, and `--max-connections-per-ip` from one address (0: no
//!   per-address cap). A connection over a cap is closed at once, before a
//!   byte is read. A connection counts for its whole life, WebSocket
//!   included (the count is held by the socket itself, so it follows the
//!   socket through the upgrade).
//! * **Header deadline**: a request's head (request line and headers) must
//!   arrive within `--header-timeout-secs` of the connection opening or of
//!   the previous response; otherwise the connection is closed. This bounds
//!   a silent connection, a half-sent header (slowloris), an idle
//!   keep-alive connection and a WebSocket handshake that never finishes.
//! * **Request deadline**: a handler (say, one waiting for a body that
//!   trickles in) must answer within three header timeouts; otherwise the
//!   client gets 408 and the connection closes. Upgraded WebSockets are not
//!   requests any more: their own idle timeout applies.
//!
//! Every accepted socket gets `TCP_NODELAY`: our frames are small and
//! latency-bound; without it a `matched` frame waits behind the
//! unacknowledged `queued` frame for the client's delayed ACK (~40 ms).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Args;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// Connections opened at once through one listener: opened at accept time,
/// counted down when the socket closes.
pub const CONNECTIONS_OPEN: &str = "rvc_connections_open";
/// Connections closed at accept time, by `reason`: `max_connections` or
/// `max_connections_per_ip`.
pub const CONNECTIONS_REFUSED: &str = "rvc_connections_refused_total";
/// Connections closed because a request head did not arrive in time.
pub const HEADER_TIMEOUTS: &str = "rvc_header_timeouts_total";

/// The reasons [`CONNECTIONS_REFUSED`] is labelled with.
pub const REFUSAL_REASONS: [&str; 2] = ["max_connections", "max_connections_per_ip"];

const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
const DEFAULT_MAX_CONNECTIONS: usize = 50_000;
const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// Connection caps and deadlines, shared by both services' flags.
#[derive(Debug, Clone, Args)]
pub struct ConnectionSettings {
    /// A request's head (request line and headers) must arrive within this
    /// long of the connection opening or of the previous response, or the
    /// connection is closed (slow or silent clients, unfinished WebSocket
    /// handshakes), s.
    #[arg(long, env = "RVC_HEADER_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout_secs: u64,

    /// Most connections open at once (HTTP and WebSocket); more are closed
    /// at accept.
    #[arg(long, env = "RVC_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Most connections open at once from one IP address; more are closed
    /// at accept. 0: no per-address cap (load tests run every user from one
    /// address).
    #[arg(long, env = "RVC_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,
}

impl Default for ConnectionSettings {
    /// The flags' defaults.
    fn default() -> Self {
        ConnectionSettings {
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
        }
    }
}

impl ConnectionSettings {
    /// Refuse values that would make the server useless.
    pub fn validate(&self) -> Result<(), crate::startup::StartError> {
        let invalid = |setting, reason: &str| {
            Err(crate::startup::StartError::Invalid {
                setting,
                reason: reason.into(),
            })
        };
        if self.header_timeout_secs == 0 {
            return invalid("--header-timeout-secs", "must be at least 1");
        }
        if self.max_connections == 0 {
            return invalid("--max-connections", "must be at least 1");
        }
        Ok(())
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    /// How long a handler may take to answer one HTTP request, body
    /// included: three header timeouts.
    pub fn request_timeout(&self) -> Duration {
        3 * self.header_timeout()
    }
}

/// Open connections, in all and per address. Admitted only by the one
/// accept loop; given back by any task.
struct Counts {
    max_total: usize,
    /// 0: no cap, and no per-address bookkeeping either.
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection's place in [`Counts`]; given back on drop.
struct Permit {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Counts {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        // Only the accept loop admits: the total cannot rise meanwhile.
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(REFUSAL_REASONS[0]);
        }
        if self.max_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().expect("connection counts");
            let from_ip = per_ip.entry(ip).or_insert(0);
            if *from_ip >= self.max_per_ip {
                return Err(REFUSAL_REASONS[1]);
            }
            *from_ip += 1;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        Ok(Permit {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.counts.max_per_ip > 0 {
            let mut per_ip = self.counts.per_ip.lock().expect("connection counts");
            if let Some(n) = per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&self.ip);
                }
            }
        }
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// An accepted socket that holds its place in the counts until it closes,
/// through a WebSocket upgrade too.
struct CountedStream {
    tcp: TcpStream,
    _permit: Permit,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Serve `router` on `listener` under `settings` until `shutdown`
/// resolves; then stop accepting, let requests in flight finish, and return
/// once every HTTP connection has closed (upgraded WebSockets are the
/// caller's: they live on). Handlers may extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let counts = Arc::new(Counts {
        max_total: settings.max_connections,
        max_per_ip: settings.max_connections_per_ip,
        total: AtomicUsize::new(0),
        per_ip: Mutex::new(HashMap::new()),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout());
    // Told to every connection when shutdown begins; `closed` resolves when
    // every connection task has dropped its receiver.
    let (stop_tx, stop_rx) = watch::channel(false);
    let request_timeout = settings.request_timeout();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let permit = match counts.admit(remote.ip()) {
            Ok(permit) => permit,
            Err(reason) => {
                metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
                tracing::debug!(%remote, reason, "connection refused at accept");
                drop(tcp);
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let io = TokioIo::new(CountedStream {
            tcp,
            _permit: permit,
        });
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(remote));
            let answer = router.clone().oneshot(req);
            async move {
                Ok::<_, Infallible>(match tokio::time::timeout(request_timeout, answer).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => request_timed_out(),
                })
            }
        });
        let conn = http.serve_connection(io, service).with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    metrics::counter!(HEADER_TIMEOUTS).increment(1);
                    tracing::debug!(%remote, "request head not received in time: closed");
                } else {
                    tracing::trace!(%remote, error = %e, "connection ended with an error");
                }
            }
            drop(stop);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    stop_tx.closed().await;
}

fn request_timed_out() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        "request timed out",
    )
        .into_response()
}

/// An accept error: a connection that failed before we took it is nothing
/// to wait on; anything else (out of file descriptors) is waited out
/// briefly, so the loop does not spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
