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

/// Whether a display name is acceptable: 1 to [`MAX_NAME_CHARS`] characters
/// once normalised ([`normalize_name`]), no control characters, no
/// invisible or direction-changing characters ([`is_hidden`]: a name that
/// shows as another, or that reverses the text after it), not only white
/// space.
pub fn valid_name(name: &str) -> bool {
    let name = normalize_name(name);
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && !name.chars().any(|c| c.is_control() || is_hidden(c))
        && !name.trim().is_empty()
}

/// A name in Unicode NFC, so that names that look the same are the same
/// (`"e\u{301}"` and `"é"`). Store and compare names in this form.
pub fn normalize_name(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.nfc().collect()
}

/// Characters that do not show, or that change the direction of the text
/// around them: the format characters (general category Cf: zero-width
/// spaces and joiners, bidirectional marks, embeddings, overrides and
/// isolates, soft hyphen, tags, …) and the fillers that render as nothing.
fn is_hidden(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format
        || matches!(
            c,
            '\u{034F}' // combining grapheme joiner
                | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
                | '\u{2800}' // braille blank
                | '\u{180B}'..='\u{180D}' // Mongolian variation selectors
        )
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

    #[test]
    fn names_that_hide_or_reverse_text_are_refused() {
        // Right-to-left override: "alice\u{202E}txt.exe" shows as "aliceexe.txt".
        assert!(!valid_name("alice\u{202E}txt.exe"));
        assert!(!valid_name("al\u{200B}ice")); // zero-width space
        assert!(!valid_name("al\u{200D}ice")); // zero-width joiner
        assert!(!valid_name("\u{200F}bob")); // right-to-left mark
        assert!(!valid_name("bob\u{2066}")); // left-to-right isolate
        assert!(!valid_name("\u{FEFF}bob")); // byte-order mark
        assert!(!valid_name("bo\u{00AD}b")); // soft hyphen
        assert!(!valid_name("\u{3164}")); // Hangul filler, shows as nothing
        assert!(!valid_name("bob\u{E0041}")); // tag character
                                              // Letters of any script, accents and emoji stay welcome.
        assert!(valid_name("Zoë"));
        assert!(valid_name("محمد"));
        assert!(valid_name("李小龙"));
        assert!(valid_name("sam \u{1F600}"));
        assert!(valid_name("\u{2764}\u{FE0F}")); // emoji variation selector (Mn)
    }

    #[test]
    fn names_are_normalised_to_nfc() {
        assert_eq!(normalize_name("Zoe\u{0308}"), "Zo\u{00EB}");
        assert_eq!(normalize_name("Zo\u{00EB}"), "Zo\u{00EB}");
        // Length counts the normalised form: 64 letters with combining
        // accents are 64 characters.
        assert!(valid_name(&"e\u{0301}".repeat(64)));
        assert!(!valid_name(&"e\u{0301}".repeat(65)));
    }
}
