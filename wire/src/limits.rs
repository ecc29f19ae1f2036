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
