//! The handshake settings every WebSocket endpoint uses.

use axum::extract::WebSocketUpgrade;

/// Read buffer per socket. Frames are small (ICE candidates and matcher
/// events of a few hundred bytes, an SDP of a few KiB) and most sockets are
/// idle for minutes, each holding this buffer all along, so keep it small:
/// a bigger frame grows the buffer as needed, up to the message limit, and
/// is read in pieces of this size (a few reads for an SDP). The whole
/// buffer is touched at the socket's first read, so each idle socket holds
/// all of it in RSS: 2 KiB instead of 4 is 2 KiB less per idle socket.
pub const READ_BUFFER: usize = 2 * 1024;

/// Below this much buffered output a write is not yet flushed; the shell
/// flushes after every batch anyway, so keep it small too.
pub const WRITE_BUFFER: usize = 4 * 1024;

/// Apply the message and frame limit ([`wire::limits::MAX_MESSAGE_BYTES`]:
/// a larger one is refused with close 1009 by [`super::Socket`]) and the
/// small buffers to a handshake.
pub fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(wire::limits::MAX_MESSAGE_BYTES)
        .max_frame_size(wire::limits::MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
}
