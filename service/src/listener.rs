//! Accepting connections for a role's HTTP + WebSocket server.

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// A listener that sets `TCP_NODELAY` on every accepted socket.
pub type NoDelayListener = TapIo<TcpListener, fn(&mut TcpStream)>;

/// `listener`, with `TCP_NODELAY` set on every accepted socket. Our frames
/// are small and latency-bound: without it a `matched` frame waits behind
/// the unacknowledged `queued` frame for the client's delayed ACK (~40 ms).
pub fn no_delay(listener: TcpListener) -> NoDelayListener {
    listener.tap_io(set_no_delay as fn(&mut TcpStream))
}

fn set_no_delay(tcp: &mut TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}
