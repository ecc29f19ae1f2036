//! Size limits shared by every service, so a client meets the same rules everywhere.

/// Largest WebSocket message a gateway accepts (64 KiB). An SDP offer with many
/// candidates is a few KiB; anything larger is abuse.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Longest room code, in characters: `<name>_<name>_<ULID>` for a pair with
/// a legacy user (see `wire::stored::legacy_room_code`), a bare ULID otherwise.
pub const MAX_ROOM_CODE_CHARS: usize = 2 * MAX_NAME_CHARS + 2 + 26;

/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;

/// Largest signal a peer may relay, in bytes: its `data` plus its `type`,
/// as JSON (16 KiB). An SDP offer is a few KiB, an ICE candidate a few
/// hundred bytes; anything larger is refused with `too_large`.
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;

/// Default byte budget of one room's log (256 KiB): the room's signals,
/// chat and `Joined` entries together, as stored. Past it a signal or chat
/// is refused with `room_log_full`; it bounds what one room may keep in
/// Redis, and so what a join replays. The signaller's
/// `--room-log-budget-bytes` sets it.
pub const ROOM_LOG_BUDGET_BYTES: usize = 256 * 1024;

/// The last part of a room log's budget, kept for `Joined` entries (a
/// member's socket replacing its older one logs one each time): signals
/// and chat may fill the budget only up to this much below it (16 KiB).
pub const ROOM_LOG_JOIN_RESERVE_BYTES: usize = 16 * 1024;

/// Default number of rooms one user may be in at once, on any number of
/// sockets and nodes (`--max-rooms-per-user`).
pub const MAX_ROOMS_PER_USER: usize = 3;

/// Default lifetime of a closed room's log and member list, seconds
/// (`--closed-room-ttl-secs`). Only a one-field tombstone saying the room
/// is closed outlives it.
pub const CLOSED_ROOM_TTL_SECS: u64 = 60;

/// Whether a display name is acceptable: 1 to [`MAX_NAME_CHARS`] characters,
/// no control characters, not only white space.
pub fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && !name.chars().any(char::is_control)
        && !name.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("alice"));
        assert!(valid_name("Zoë 42"));
        assert!(!valid_name(""));
        assert!(!valid_name("   "));
        assert!(!valid_name("a\nb"));
        assert!(!valid_name(&"x".repeat(65)));
        assert!(valid_name(&"x".repeat(64)));
    }
}
