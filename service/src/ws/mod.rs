//! The WebSocket shell both services put around every socket, so that a
//! client meets the same rules on the matcher and on the signaller: the
//! handshake (Origin allow-list, message and frame limits, small buffers),
//! the flood limit, the keep-alive and idle timeout, refusal of binary and
//! oversized frames with the close codes of [`wire::CloseCode`], writes
//! bounded by a send timeout, and the registry of socket tasks a node
//! aborts (crash) or waits for (drain).
//!
//! What a socket *means* (its protocol) is not here: each service feeds the
//! [`Inbound`]s of its [`Socket`] to its own session and writes back what
//! the session says.

pub mod limits;
pub mod origin;
pub mod socket;
pub mod tasks;
pub mod upgrade;

pub use axum::extract::ws::Utf8Bytes;
pub use limits::{SocketLimits, SEND_TIMEOUT};
pub use origin::check_origin;
pub use socket::{rate_limited_message, EndReason, Gone, Inbound, Socket};
pub use tasks::{ConnId, ConnTasks};
pub use upgrade::configure;
