//! Everything the services say to browsers and to each other, in one place.
//!
//! * [`matcher_api`] and [`signaller_api`]: the JSON that browsers speak, both the
//!   legacy protocol of the original React client and the native protocol that
//!   extends it (see `PROTOCOL.md` beside this crate).
//! * [`internal`]: the MessagePack (rmp-serde) messages that services exchange
//!   over Redis streams and pub/sub.
//! * [`keys`]: every Redis key and channel name.
//! * [`ticket`]: the signed, expiring room ticket (HMAC-SHA256).
//! * [`resume`]: the signed credential a dropped signalling session resumes with.
//! * [`user`]: how a user is identified across services.
//!
//! This crate does no I/O, so every service and test can share it freely.

pub mod codes;
pub mod error;
pub mod internal;
pub mod keys;
pub mod limits;
pub mod matcher_api;
pub mod moderation;
pub mod preferences;
pub mod resume;
pub mod signaller_api;
pub mod stored;
pub mod ticket;
pub mod user;

pub use codes::{CloseCode, ErrorCode};
pub use error::DecodeError;

/// Version of the native protocol and of the internal messages. Sent to native
/// clients in `hello`; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Peek at the `"event"` field of a client JSON frame without parsing the rest.
pub(crate) fn event_name(text: &str) -> Result<String, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Header {
        event: Option<serde_json::Value>,
    }
    let header: Header =
        serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match header.event {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(DecodeError::Invalid("\"event\" must be a string".into())),
        None => Err(DecodeError::Invalid("missing \"event\" field".into())),
    }
}

/// Parse the full body of an event whose name is already known.
pub(crate) fn body<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::Invalid(e.to_string()))
}

/// Milliseconds since the Unix epoch as a float of seconds, the `timestamp`
/// format of the legacy chat event.
pub fn unix_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
