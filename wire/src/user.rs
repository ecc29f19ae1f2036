//! How a user is named across services.
//!
//! Legacy clients are identified by their display name, which is unique among
//! connected users (a second socket for the same name is refused). Native
//! clients get a fresh session id (a ULID) from the gateway and may choose any
//! display name, unique or not. Both kinds meet in one waiting pool, so each
//! is written as a [`UserKey`] string with a prefix that keeps them apart.

use std::fmt;

/// A user's identity in Redis and in internal messages: `l:<name>` for a
/// legacy user, `s:<session id>` for a native one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey(String);

impl UserKey {
    /// Prefix of a legacy user's key (the user is named by its display name).
    pub const LEGACY_PREFIX: &'static str = "l:";

    /// Prefix of a native user's key (the user is named by its session id).
    pub const NATIVE_PREFIX: &'static str = "s:";

    /// The key of a legacy user, identified by display name.
    pub fn legacy(name: &str) -> Self {
        UserKey(format!("{}{name}", Self::LEGACY_PREFIX))
    }

    /// The key of a native user, identified by the session id its gateway gave it.
    pub fn native(session: &str) -> Self {
        UserKey(format!("{}{session}", Self::NATIVE_PREFIX))
    }

    /// Whether this is a legacy user (named by its display name).
    pub fn is_legacy(&self) -> bool {
        self.0.starts_with(Self::LEGACY_PREFIX)
    }

    /// Rebuild a key that was sent as a string (from Redis or a message).
    pub fn from_raw(raw: impl Into<String>) -> Self {
        UserKey(raw.into())
    }

    /// The key as stored in Redis.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two roles of a room: the initiator makes the WebRTC offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Initiator,
    Responder,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "initiator" => Some(Role::Initiator),
            "responder" => Some(Role::Responder),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_kinds_apart() {
        assert_eq!(UserKey::legacy("bob").as_str(), "l:bob");
        assert_eq!(UserKey::native("01H").as_str(), "s:01H");
        assert!(UserKey::legacy("s:x").is_legacy());
        assert!(!UserKey::native("l:x").is_legacy());
        assert_ne!(UserKey::legacy("x"), UserKey::native("x"));
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("initiator"), Some(Role::Initiator));
        assert_eq!(Role::parse(Role::Responder.as_str()), Some(Role::Responder));
        assert_eq!(Role::parse("offer"), None);
    }
}
