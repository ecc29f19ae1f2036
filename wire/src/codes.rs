//! Every error code and WebSocket close code either service sends, in one
//! place: clients react to them, metrics label by them, and
//! `wire/PROTOCOL.md` lists them.

use serde::{Deserialize, Serialize};

/// The `code` of an `{"event":"error",...}` frame (and of the legacy HTTP
/// error replies). Serialised as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    BadJson,
    /// `event` is not known on this endpoint.
    UnknownEvent,
    /// A known event with missing or mistyped fields.
    BadMessage,
    /// A display name that is empty, too long or has control characters.
    BadName,
    /// A legacy name already held by another live socket.
    NameTaken,
    /// Register while already in the pool.
    AlreadyWaiting,
    /// Cancel while not in the pool.
    NotWaiting,
    /// Chat with nobody to chat to.
    NoPartner,
    /// Chat while the partner's socket is not connected.
    PeerOffline,
    /// A chat message over the length limit.
    TooLong,
    /// Too many frames; the frame named in the message was not processed.
    RateLimited,
    /// Redis is unreachable; retry later.
    Unavailable,
    /// The node is shutting down; reconnect elsewhere.
    Draining,
    /// A ticket that does not parse.
    BadTicket,
    /// A ticket whose signature does not verify.
    ForgedTicket,
    /// A ticket past its expiry.
    ExpiredTicket,
    /// The room does not exist (or has expired).
    NoRoom,
    /// Not one of the room's two members.
    NotMember,
    /// Signal, chat or leave before a successful join.
    NotJoined,
    /// A second join on the same socket.
    AlreadyJoined,
    /// The room is over.
    RoomClosed,
    /// A signal over `wire::limits::MAX_SIGNAL_BYTES`; not relayed.
    TooLarge,
    /// The room's log has used its byte budget; the signal, chat or join
    /// named in the message was refused.
    RoomLogFull,
    /// The user is already in as many rooms as one user may be at once.
    TooManyRooms,
    /// Matchmaking preferences (interests, language, strict) that are not
    /// acceptable; the message names the field.
    BadPreferences,
    /// A resume credential that does not parse.
    BadResume,
    /// A resume credential whose signature does not verify.
    ForgedResume,
    /// A resume credential past its expiry, or a session whose grace
    /// window has passed.
    ExpiredResume,
    /// The session was resumed already (on another socket): a credential
    /// resumes once.
    ResumeUsed,
    /// The user (its identity or its address) is banned for now; the event
    /// carries `retry_after` (seconds).
    Banned,
    /// A report whose reason is not one of the known ones, or whose note is
    /// too long.
    BadReport,
}

/// How an error counts in the `rvc_errors_total{kind}` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client sent something it should not have.
    BadInput,
    /// A join or identity check refused the client.
    AuthRefused,
    /// Redis failed.
    Redis,
    /// The client sent too fast.
    RateLimited,
    /// A normal outcome reported as an error event (already waiting, …):
    /// not counted.
    Expected,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::AuthRefused => "auth_refused",
            ErrorKind::Redis => "redis",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Expected => "expected",
        }
    }
}

impl ErrorCode {
    /// Every code, for documentation tests and metric pre-registration.
    pub const ALL: [ErrorCode; 31] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownEvent,
        ErrorCode::BadMessage,
        ErrorCode::BadName,
        ErrorCode::NameTaken,
        ErrorCode::AlreadyWaiting,
        ErrorCode::NotWaiting,
        ErrorCode::NoPartner,
        ErrorCode::PeerOffline,
        ErrorCode::TooLong,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Draining,
        ErrorCode::BadTicket,
        ErrorCode::ForgedTicket,
        ErrorCode::ExpiredTicket,
        ErrorCode::NoRoom,
        ErrorCode::NotMember,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::RoomClosed,
        ErrorCode::TooLarge,
        ErrorCode::RoomLogFull,
        ErrorCode::TooManyRooms,
        ErrorCode::BadPreferences,
        ErrorCode::BadResume,
        ErrorCode::ForgedResume,
        ErrorCode::ExpiredResume,
        ErrorCode::ResumeUsed,
        ErrorCode::Banned,
        ErrorCode::BadReport,
    ];

    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownEvent => "unknown_event",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::BadName => "bad_name",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::AlreadyWaiting => "already_waiting",
            ErrorCode::NotWaiting => "not_waiting",
            ErrorCode::NoPartner => "no_partner",
            ErrorCode::PeerOffline => "peer_offline",
            ErrorCode::TooLong => "too_long",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Draining => "draining",
            ErrorCode::BadTicket => "bad_ticket",
            ErrorCode::ForgedTicket => "forged_ticket",
            ErrorCode::ExpiredTicket => "expired_ticket",
            ErrorCode::NoRoom => "no_room",
            ErrorCode::NotMember => "not_member",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::RoomClosed => "room_closed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RoomLogFull => "room_log_full",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::BadPreferences => "bad_preferences",
            ErrorCode::BadResume => "bad_resume",
            ErrorCode::ForgedResume => "forged_resume",
            ErrorCode::ExpiredResume => "expired_resume",
            ErrorCode::ResumeUsed => "resume_used",
            ErrorCode::Banned => "banned",
            ErrorCode::BadReport => "bad_report",
        }
    }

    /// How this error counts in the errors metric.
    pub fn kind(self) -> ErrorKind {
        match self {
            ErrorCode::BadJson
            | ErrorCode::UnknownEvent
            | ErrorCode::BadMessage
            | ErrorCode::BadName
            | ErrorCode::TooLong
            | ErrorCode::TooLarge
            | ErrorCode::RoomLogFull
            | ErrorCode::TooManyRooms
            | ErrorCode::BadPreferences
            | ErrorCode::NotJoined
            | ErrorCode::BadReport
            | ErrorCode::AlreadyJoined => ErrorKind::BadInput,
            ErrorCode::NameTaken
            | ErrorCode::BadTicket
            | ErrorCode::ForgedTicket
            | ErrorCode::ExpiredTicket
            | ErrorCode::BadResume
            | ErrorCode::ForgedResume
            | ErrorCode::ExpiredResume
            | ErrorCode::ResumeUsed
            | ErrorCode::Banned
            | ErrorCode::NoRoom
            | ErrorCode::NotMember
            | ErrorCode::RoomClosed => ErrorKind::AuthRefused,
            ErrorCode::Unavailable => ErrorKind::Redis,
            ErrorCode::RateLimited => ErrorKind::RateLimited,
            ErrorCode::AlreadyWaiting
            | ErrorCode::NotWaiting
            | ErrorCode::NoPartner
            | ErrorCode::PeerOffline
            | ErrorCode::Draining => ErrorKind::Expected,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes either service sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// The node is shutting down (drain).
    GoingAway,
    /// A binary frame: only JSON text frames are spoken.
    Unsupported,
    /// A policy violation: a bad legacy name in the URL.
    Policy,
    /// A client that kept sending over its rate past the flood bound
    /// (1008, like [`CloseCode::Policy`], with its own reason).
    Flooding,
    /// A frame or message over `wire::limits::MAX_MESSAGE_BYTES`.
    TooBig,
    /// The client stopped answering pings.
    Idle,
    /// Another live socket holds this legacy name.
    NameTaken,
    /// A newer socket took this one's place: a legacy name's registrant
    /// took the name over from a stranger's matching socket, or a member's
    /// newer socket joined the same room (signaller).
    Replaced,
    /// The user is banned (after the `banned` error event).
    Banned,
}

impl CloseCode {
    pub const ALL: [CloseCode; 9] = [
        CloseCode::GoingAway,
        CloseCode::Unsupported,
        CloseCode::Policy,
        CloseCode::Flooding,
        CloseCode::TooBig,
        CloseCode::Idle,
        CloseCode::NameTaken,
        CloseCode::Replaced,
        CloseCode::Banned,
    ];

    /// The number sent in the close frame.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::Unsupported => 1003,
            CloseCode::Policy | CloseCode::Flooding => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Idle => 4408,
            CloseCode::NameTaken => 4409,
            CloseCode::Replaced => 4410,
            CloseCode::Banned => 4403,
        }
    }

    /// The reason text sent with it.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::GoingAway => "server going away",
            CloseCode::Unsupported => "binary frames are not supported",
            CloseCode::Policy => "policy violation",
            CloseCode::Flooding => "flooding: too many frames for too long",
            CloseCode::TooBig => "message too big",
            CloseCode::Idle => "idle timeout",
            CloseCode::NameTaken => "name already connected",
            CloseCode::Replaced => "replaced by a newer connection",
            CloseCode::Banned => "banned",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_is_the_wire_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn protocol_doc_lists_every_code() {
        let doc = include_str!("../PROTOCOL.md");
        for code in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("`{}`", code.as_str())),
                "{code} missing from PROTOCOL.md"
            );
        }
        for close in CloseCode::ALL {
            assert!(
                doc.contains(&close.code().to_string()),
                "close code {} missing from PROTOCOL.md",
                close.code()
            );
        }
    }
}
