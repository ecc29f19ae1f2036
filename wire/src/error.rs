//! Why a client frame could not be understood.

use thiserror::Error;

/// A client frame that could not be decoded. Each variant maps to a stable
/// `code` string sent back in the `error` event, so clients can react to it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Not JSON, or not a JSON object.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// A JSON object whose `event` this endpoint does not know.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// A known event with missing or mistyped fields.
    #[error("invalid message: {0}")]
    Invalid(String),
}

impl DecodeError {
    /// The stable machine-readable code for the `error` event.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            DecodeError::Malformed(_) => crate::ErrorCode::BadJson,
            DecodeError::UnknownEvent(_) => crate::ErrorCode::UnknownEvent,
            DecodeError::Invalid(_) => crate::ErrorCode::BadMessage,
        }
    }
}
