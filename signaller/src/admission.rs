//! Who may join a room: only its two matched users.
//!
//! A native client shows the ticket the matcher signed for it; it is checked
//! with the shared secret alone, without a Redis round trip. A legacy client
//! has only its name, so the room record the matcher wrote is read and must
//! list that name. Both checks are plain functions of their inputs; the one
//! Redis read is [`fetch_room_record`].
//!
//! Being admitted is necessary, not sufficient: the join script in
//! [`crate::room_log`] still refuses a closed room, a third member, a room
//! whose log is full and a user in too many rooms already (a second socket
//! of a member replaces the first).

use std::collections::HashMap;

use fred::prelude::*;
use wire::resume::{ResumeClaims, ResumeError};
use wire::ticket::{Ticket, TicketError};
use wire::user::{Role, UserKey};

/// Who a socket is in its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: UserKey,
    /// Display name, shown to the peer as `from` / `sender`.
    pub name: String,
    pub role: Role,
}

/// A room and who joins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub room: String,
    pub me: Member,
}

/// Why a join was refused. Each maps to the `code` of the `error` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("{0}")]
    Ticket(#[from] TicketError),
    #[error("{0}")]
    Resume(#[from] ResumeError),
    #[error("this session was already resumed elsewhere: a resume credential works once")]
    ResumeUsed,
    #[error("this session's grace window has passed: it cannot resume")]
    GraceOver,
    #[error("the room no longer knows this session: it cannot resume")]
    SessionGone,
    #[error("Invalid room: it does not exist or has expired")]
    NoRoom,
    #[error("Not a member of this room")]
    NotMember,
    #[error("the ticket is for another room")]
    WrongRoom,
    #[error("the room already has its two members")]
    RoomFull,
    #[error("the room is over")]
    RoomClosed,
    #[error(
        "this user is already in {0} rooms, the most one user may be in at once; leave one first"
    )]
    TooManyRooms(u64),
    #[error("the room's log has used its byte budget: this join was refused")]
    RoomLogFull,
    #[error("the service is unavailable; retry shortly")]
    Unavailable,
    #[error("this user is banned: the session cannot resume")]
    Banned,
}

use wire::ErrorCode;

impl JoinRefusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            JoinRefusal::Ticket(e) => e.code(),
            JoinRefusal::Resume(e) => e.code(),
            JoinRefusal::ResumeUsed => ErrorCode::ResumeUsed,
            JoinRefusal::GraceOver | JoinRefusal::SessionGone => ErrorCode::ExpiredResume,
            JoinRefusal::NoRoom => ErrorCode::NoRoom,
            JoinRefusal::NotMember | JoinRefusal::WrongRoom | JoinRefusal::RoomFull => {
                ErrorCode::NotMember
            }
            JoinRefusal::RoomClosed => ErrorCode::RoomClosed,
            JoinRefusal::TooManyRooms(_) => ErrorCode::TooManyRooms,
            JoinRefusal::RoomLogFull => ErrorCode::RoomLogFull,
            JoinRefusal::Unavailable => ErrorCode::Unavailable,
            JoinRefusal::Banned => ErrorCode::Banned,
        }
    }
}

/// Longest room code looked up, in characters: `<name>_<name>_<ULID>`.
const MAX_ROOM_CODE: usize = wire::limits::MAX_ROOM_CODE_CHARS;

/// Check a native ticket. `room_hint` is the `room_code` the client sent
/// along, if any: it must be the ticket's room.
pub fn admit_native(
    secret: &[u8],
    token: &str,
    room_hint: Option<&str>,
    now_ms: u64,
) -> Result<Admitted, JoinRefusal> {
    let Ticket {
        room,
        user,
        name,
        role,
        ..
    } = wire::ticket::verify(secret, token, now_ms)?;
    if let Some(hint) = room_hint {
        if !hint.is_empty() && hint != room {
            return Err(JoinRefusal::WrongRoom);
        }
    }
    Ok(Admitted {
        room,
        me: Member {
            user: UserKey::from_raw(user),
            name,
            role,
        },
    })
}

/// A resume, admitted: the room and member, and the connection whose
/// place it takes (the room log checks that it still holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedResume {
    pub admitted: Admitted,
    pub from_conn: String,
}

/// Check a resume credential. `room_hint` is the `room_code` the client
/// sent along, if any: it must be the credential's room. Whether the
/// session may still come back (not resumed already, within its grace, the
/// room open: a user who left cannot resume) is the room log's to say.
pub fn admit_resume(
    secret: &[u8],
    token: &str,
    room_hint: Option<&str>,
    now_ms: u64,
) -> Result<AdmittedResume, JoinRefusal> {
    let ResumeClaims {
        room,
        user,
        name,
        role,
        conn,
        ..
    } = wire::resume::verify(secret, token, now_ms)?;
    if let Some(hint) = room_hint {
        if !hint.is_empty() && hint != room {
            return Err(JoinRefusal::WrongRoom);
        }
    }
    // A banned user must not resume: the shell checks the session's ban
    // (in Redis) right after this, before the room log hands its place back.
    Ok(AdmittedResume {
        admitted: Admitted {
            room,
            me: Member {
                user: UserKey::from_raw(user),
                name,
                role,
            },
        },
        from_conn: conn,
    })
}

/// Sign the credential that lets `me`'s session in `room`, now on
/// connection `conn`, resume until `now_ms + valid_ms`.
pub fn resume_credential(
    secret: &[u8],
    room: &str,
    me: &Member,
    conn: &str,
    now_ms: u64,
    valid_ms: u64,
) -> String {
    wire::resume::sign(
        secret,
        &ResumeClaims {
            room: room.to_string(),
            user: me.user.to_string(),
            name: me.name.clone(),
            role: me.role,
            conn: conn.to_string(),
            exp_ms: now_ms.saturating_add(valid_ms),
        },
    )
}

/// Whether a legacy room code is worth looking up at all.
pub fn plausible_room_code(room: &str) -> bool {
    !room.is_empty() && room.chars().count() <= MAX_ROOM_CODE && !room.chars().any(char::is_control)
}

/// Check a legacy `name` against the room record (`HGETALL` of
/// `wire::keys::room`): `<user key>` → role, `name:<user key>` → name.
pub fn admit_legacy(
    name: &str,
    room: &str,
    record: &HashMap<String, String>,
) -> Result<Admitted, JoinRefusal> {
    if record.is_empty() {
        return Err(JoinRefusal::NoRoom);
    }
    let user = UserKey::legacy(name);
    let role = record.get(user.as_str()).ok_or(JoinRefusal::NotMember)?;
    let role = Role::parse(role).ok_or(JoinRefusal::NoRoom)?;
    let name = record
        .get(&format!("name:{user}"))
        .cloned()
        .unwrap_or_else(|| name.to_string());
    Ok(Admitted {
        room: room.to_string(),
        me: Member { user, name, role },
    })
}

/// Read a room record; empty when there is no such room.
pub async fn fetch_room_record(
    redis: &Client,
    room: &str,
) -> Result<HashMap<String, String>, fred::error::Error> {
    if !plausible_room_code(room) {
        return Ok(HashMap::new());
    }
    redis.hgetall(wire::keys::room(room)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ticket(room: &str, exp_ms: u64) -> String {
        wire::ticket::sign(
            SECRET,
            &Ticket {
                room: room.into(),
                user: "s:01U".into(),
                name: "ann".into(),
                role: Role::Responder,
                exp_ms,
            },
        )
    }

    #[test]
    fn native_ticket_grants_its_room_only() {
        let t = ticket("R1", 1_000);
        let ok = admit_native(SECRET, &t, None, 999).unwrap();
        assert_eq!(ok.room, "R1");
        assert_eq!(ok.me.user.as_str(), "s:01U");
        assert_eq!(ok.me.role, Role::Responder);
        assert!(admit_native(SECRET, &t, Some("R1"), 999).is_ok());
        assert!(admit_native(SECRET, &t, Some(""), 999).is_ok());
        assert_eq!(
            admit_native(SECRET, &t, Some("R2"), 999),
            Err(JoinRefusal::WrongRoom)
        );
        assert_eq!(
            admit_native(SECRET, &t, None, 1_000).unwrap_err().code(),
            ErrorCode::ExpiredTicket
        );
        assert_eq!(
            admit_native(b"another secret, also 32 bytes...", &t, None, 0)
                .unwrap_err()
                .code(),
            ErrorCode::ForgedTicket
        );
        assert_eq!(
            admit_native(SECRET, "junk", None, 0).unwrap_err().code(),
            ErrorCode::BadTicket
        );
    }

    fn record() -> HashMap<String, String> {
        [
            ("l:alice", "initiator"),
            ("name:l:alice", "alice"),
            ("l:bob", "responder"),
            ("name:l:bob", "bob"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn legacy_member_gets_the_role_of_the_record() {
        let ok = admit_legacy("bob", "R", &record()).unwrap();
        assert_eq!(ok.me.role, Role::Responder);
        assert_eq!(ok.me.name, "bob");
        assert_eq!(ok.me.user.as_str(), "l:bob");
        assert_eq!(
            admit_legacy("carol", "R", &record()),
            Err(JoinRefusal::NotMember)
        );
        assert_eq!(
            admit_legacy("bob", "R", &HashMap::new()),
            Err(JoinRefusal::NoRoom)
        );
        // `name:` fields are not members.
        assert_eq!(
            admit_legacy("name:l:bob", "R", &record())
                .unwrap_err()
                .code(),
            ErrorCode::NotMember
        );
    }

    #[test]
    fn a_resume_credential_resumes_its_own_room_and_connection_only() {
        let me = Member {
            user: UserKey::native("01U"),
            name: "ann".into(),
            role: Role::Initiator,
        };
        let token = resume_credential(SECRET, "R1", &me, "node-a/3", 0, 1_000);
        let ok = admit_resume(SECRET, &token, Some("R1"), 999).unwrap();
        assert_eq!(ok.admitted.room, "R1");
        assert_eq!(ok.admitted.me, me);
        assert_eq!(ok.from_conn, "node-a/3");
        assert_eq!(
            admit_resume(SECRET, &token, Some("R2"), 0),
            Err(JoinRefusal::WrongRoom)
        );
        assert_eq!(
            admit_resume(SECRET, &token, None, 1_000)
                .unwrap_err()
                .code(),
            ErrorCode::ExpiredResume
        );
        assert_eq!(
            admit_resume(b"another secret, also 32 bytes...", &token, None, 0)
                .unwrap_err()
                .code(),
            ErrorCode::ForgedResume
        );
        // A room ticket is not a resume credential.
        let ticket = ticket("R1", 1_000);
        assert_eq!(
            admit_resume(SECRET, &ticket, None, 0).unwrap_err().code(),
            ErrorCode::ForgedResume
        );
    }

    #[test]
    fn room_codes_worth_a_lookup() {
        assert!(plausible_room_code("01JD00000000000000000000AA"));
        assert!(plausible_room_code("alice_bob"));
        assert!(!plausible_room_code(""));
        assert!(!plausible_room_code(
            &"x".repeat(wire::limits::MAX_ROOM_CODE_CHARS + 1)
        ));
        assert!(plausible_room_code(&format!(
            "{}_{}_01JD00000000000000000000AA",
            "é".repeat(64),
            "b".repeat(64)
        )));
        assert!(!plausible_room_code("a\nb"));
    }
}
