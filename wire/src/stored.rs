//! What the matcher's string keys hold, built and read in one place.
//!
//! The Lua scripts build and read the same values; they get the functions
//! to do so from [`crate::keys::lua_prelude`], which is generated from the
//! separators below, so Rust and Lua cannot disagree.

/// Separates the parts of a waiting value and of a partner value. A display
/// name may contain one, so whatever may hold a name comes last.
pub const FIELD_SEP: char = ' ';

/// Separates a gateway id from a socket id in a location value. Gateway ids
/// may contain `/` (they are configurable), socket ids (ULIDs) never do, so
/// a location is split at its last `/`.
pub const LOCATION_SEP: char = '/';

/// Separates the parts of a legacy room code.
pub const ROOM_CODE_SEP: char = '_';

/// The value of a user's waiting key: `<registration id> <client address>
/// <identity> <address subject> <display name>` (none but the name holds a
/// space). The identity and address subject (see [`crate::moderation`])
/// are what bans and blocks name; the pairing script checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingValue {
    pub reg: String,
    pub addr: String,
    pub identity: String,
    pub address: String,
    pub name: String,
}

impl WaitingValue {
    pub fn encode(&self) -> String {
        WaitingValue::encode_parts(
            &self.reg,
            &self.addr,
            &self.identity,
            &self.address,
            &self.name,
        )
    }

    /// The value [`WaitingValue::encode`] makes of these parts, without an
    /// owned `WaitingValue` first (a gateway builds one per register). One
    /// allocation of the exact size; `format!` took about four times as long.
    pub fn encode_parts(
        reg: &str,
        addr: &str,
        identity: &str,
        address: &str,
        name: &str,
    ) -> String {
        let mut sep = [0; 4];
        let sep: &str = FIELD_SEP.encode_utf8(&mut sep);
        [reg, addr, identity, address, name].join(sep)
    }

    pub fn parse(v: &str) -> Option<WaitingValue> {
        let (reg, rest) = v.split_once(FIELD_SEP)?;
        let (addr, rest) = rest.split_once(FIELD_SEP)?;
        let (identity, rest) = rest.split_once(FIELD_SEP)?;
        let (address, name) = rest.split_once(FIELD_SEP)?;
        Some(WaitingValue {
            reg: reg.to_string(),
            addr: addr.to_string(),
            identity: identity.to_string(),
            address: address.to_string(),
            name: name.to_string(),
        })
    }
}

/// Where a user's matching socket is, and from which client address:
/// `<client address> <gateway id>/<socket id>`. Gateway ids hold no spaces
/// (checked at start) but may hold `/`; socket ids (ULIDs) hold neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub addr: String,
    pub gateway: String,
    pub socket: String,
}

impl Location {
    pub fn encode(&self) -> String {
        format!(
            "{}{FIELD_SEP}{}{LOCATION_SEP}{}",
            self.addr, self.gateway, self.socket
        )
    }

    pub fn parse(v: &str) -> Option<Location> {
        let (addr, rest) = v.split_once(FIELD_SEP)?;
        let (gateway, socket) = rest.rsplit_once(LOCATION_SEP)?;
        Some(Location {
            addr: addr.to_string(),
            gateway: gateway.to_string(),
            socket: socket.to_string(),
        })
    }
}

/// A user's current partner and their room. Both the partner's user key and
/// a legacy room code may hold names (with spaces), so the value is
/// `<byte length of the key> <key><room code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerValue {
    pub room: String,
    pub peer: String,
}

impl PartnerValue {
    pub fn encode(&self) -> String {
        format!("{}{FIELD_SEP}{}{}", self.peer.len(), self.peer, self.room)
    }

    pub fn parse(v: &str) -> Option<PartnerValue> {
        let (len, rest) = v.split_once(FIELD_SEP)?;
        let len: usize = len.parse().ok()?;
        if !rest.is_char_boundary(len) {
            return None;
        }
        let (peer, room) = rest.split_at(len);
        Some(PartnerValue {
            peer: peer.to_string(),
            room: room.to_string(),
        })
    }
}

/// The room code of a pair with a legacy user: `<initiator name>_<responder
/// name>_<ULID>`. The original React client shows the part of the code that
/// is not its own name as the stranger's name; the ULID keeps codes unique.
pub fn legacy_room_code(initiator_name: &str, responder_name: &str, ulid: &str) -> String {
    format!("{initiator_name}{ROOM_CODE_SEP}{responder_name}{ROOM_CODE_SEP}{ulid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_awkward_names() {
        for name in ["bob", "a b c", "x/y", "5 9", "_", "é 日本"] {
            let w = WaitingValue {
                reg: "01J".into(),
                addr: "::1".into(),
                identity: "d:01D".into(),
                address: "a:::/64".into(),
                name: name.into(),
            };
            assert_eq!(WaitingValue::parse(&w.encode()), Some(w));
            let p = PartnerValue {
                room: legacy_room_code(name, "z", "01J"),
                peer: format!("l:{name}"),
            };
            assert_eq!(PartnerValue::parse(&p.encode()), Some(p));
        }
        let l = Location {
            addr: "127.0.0.9".into(),
            gateway: "pod/a".into(),
            socket: "01K".into(),
        };
        assert_eq!(Location::parse(&l.encode()), Some(l));
        assert_eq!(WaitingValue::parse("nospace"), None);
        assert_eq!(PartnerValue::parse("99 short"), None);
    }

    #[test]
    fn the_legacy_client_derives_the_partners_name_from_the_code() {
        // The original client: split on `_`, take the first part that is not
        // my own name.
        fn derive<'a>(code: &'a str, me: &str) -> Option<&'a str> {
            code.split('_').find(|part| *part != me)
        }
        let code = legacy_room_code("alice", "bob", "01JABCDEFGHJKMNPQRSTVWXYZ0");
        assert_eq!(derive(&code, "alice"), Some("bob"));
        assert_eq!(derive(&code, "bob"), Some("alice"));
    }
}
