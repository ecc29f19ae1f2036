//! WebSocket close codes this server sends (see `wire/PROTOCOL.md`).

/// The node is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// A binary frame: only JSON text frames are spoken here.
pub const UNSUPPORTED: u16 = 1003;
/// A policy violation: a bad legacy name in the URL.
pub const POLICY: u16 = 1008;
/// A frame or message over `wire::limits::MAX_MESSAGE_BYTES`.
pub const TOO_BIG: u16 = 1009;
/// The client stopped answering pings.
pub const IDLE: u16 = 4408;
