//! The targets, one module per decoder family.

use std::borrow::Cow;

use crate::Target;

pub mod internal;
pub mod json_api;
pub mod matcher_session;
pub mod replies;
pub mod signaller_admission;
pub mod signaller_session;
pub mod stored;
pub mod ticket;

/// The ticket secret the targets sign with.
pub const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0123";
/// Another secret: nothing signed with [`SECRET`] may verify under it.
pub const OTHER_SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0124";
/// "Now", in ms since the epoch, for expiry checks.
pub const NOW_MS: u64 = 1_800_000_000_000;

/// Separates the frames of one input for the session targets.
pub const FRAME_SEP: u8 = 0x1e;

pub fn all() -> Vec<Target> {
    vec![
        json_api::MATCHER_WS,
        json_api::MATCHER_REGISTER,
        json_api::SIGNALLER_WS,
        internal::MSGPACK,
        internal::ROUND_TRIP,
        ticket::VERIFY,
        ticket::SIGN,
        stored::VALUES,
        replies::STREAM_REPLY,
        replies::ROOM_LOG_REPLY,
        signaller_admission::ADMISSION,
        signaller_session::SESSION,
        matcher_session::SESSION,
    ]
}

/// What a WebSocket text frame would be: invalid UTF-8 never reaches the
/// decoders (the socket layer refuses it), so it is replaced.
pub fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Join frames into one input for the session targets.
pub fn frames<S: AsRef<[u8]>>(parts: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(FRAME_SEP);
        }
        out.extend_from_slice(p.as_ref());
    }
    out
}
