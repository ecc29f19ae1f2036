//! Every Redis key and channel name, built in one place.
//!
//! Redis Cluster runs a Lua script only when all the keys it touches live in
//! one hash slot. The matcher's scripts touch the pool and the records of
//! randomly picked users, so every matcher key carries the hash tag `{m}`:
//! they all live in one slot, and the scripts stay atomic on a cluster. The
//! signaller's per-room keys carry the tag `{r:<room>}`, so rooms spread over
//! the cluster while each room's log and channel stay together.

use crate::user::UserKey;

/// Prefix of every name, so the service can share a Redis with others.
pub const PREFIX: &str = "rvc";

/// Consumer group of the matcher workers on [`register_stream`].
pub const WORKER_GROUP: &str = "matchers";

/// Stream of register requests, written by gateways (`XADD`) and read by the
/// matcher workers through [`WORKER_GROUP`].
pub fn register_stream() -> String {
    format!("{PREFIX}:{{m}}:register")
}

/// Sorted set of waiting users (member: user key, score: register time in ms).
pub fn pool() -> String {
    format!("{PREFIX}:{{m}}:pool")
}

/// The id of the registration that put `user` in the pool. Set by the gateway
/// before the register is queued; the pool accepts a stream entry only while
/// this still names that registration, so a withdrawn or already matched user
/// is never put back by a late or re-delivered entry.
pub fn waiting(user: &UserKey) -> String {
    format!("{PREFIX}:{{m}}:wait:{user}")
}

/// Where `user`'s matching socket is: `<gateway id>/<connection id>`.
pub fn location(user: &UserKey) -> String {
    format!("{PREFIX}:{{m}}:loc:{user}")
}

/// The `matched` notice (MessagePack [`crate::internal::Inbox`]) waiting to be
/// delivered to `user`. Taken with `GETDEL`, so it is delivered exactly once,
/// whichever gateway gets there first.
pub fn notice(user: &UserKey) -> String {
    format!("{PREFIX}:{{m}}:notice:{user}")
}

/// `user`'s current partner: `<room code> <partner user key>`. Routes legacy chat.
pub fn partner(user: &UserKey) -> String {
    format!("{PREFIX}:{{m}}:partner:{user}")
}

/// The partner `user` just left; not handed to them again while others wait.
pub fn last_partner(user: &UserKey) -> String {
    format!("{PREFIX}:{{m}}:last:{user}")
}

/// Prefix of the per-user keys above, for the Lua scripts that build them from
/// user keys picked at random. The scripts append `<kind>:<user key>`.
pub fn matcher_prefix() -> String {
    format!("{PREFIX}:{{m}}:")
}

/// Room record (hash): `<user key>` → role, `name:<user key>` → display name.
/// Lets the signaller check a legacy client's membership.
pub fn room(code: &str) -> String {
    format!("{PREFIX}:{{m}}:room:{code}")
}

/// Liveness of a matcher gateway, with a TTL refreshed by its heartbeat.
pub fn gateway_alive(gateway: &str) -> String {
    format!("{PREFIX}:{{m}}:gw:{gateway}")
}

/// Present while a matcher gateway drains: its users are no longer paired.
pub fn gateway_draining(gateway: &str) -> String {
    format!("{PREFIX}:{{m}}:draining:{gateway}")
}

/// Set of every matcher gateway that has announced itself.
pub fn gateways() -> String {
    format!("{PREFIX}:{{m}}:gateways")
}

/// Set of the users whose matching socket is on `gateway`, purged with it.
pub fn gateway_users(gateway: &str) -> String {
    format!("{PREFIX}:{{m}}:gwusers:{gateway}")
}

/// Pub/sub channel of one matcher gateway: `matched` notices and chat for its users.
pub fn gateway_inbox(gateway: &str) -> String {
    format!("{PREFIX}:inbox:{gateway}")
}

/// The ticket secret shared by matcher and signaller when none is configured
/// (set once with `SET NX` by the first process).
pub fn ticket_secret() -> String {
    format!("{PREFIX}:ticket-secret")
}

/// Per-room log (stream) of everything the peers sent: the backlog that lets
/// a late joiner receive what was sent before, in order.
pub fn room_log(code: &str) -> String {
    format!("{PREFIX}:{{r:{code}}}:log")
}

/// Who is in a room on the signalling side (hash): user key → signaller node.
pub fn room_members(code: &str) -> String {
    format!("{PREFIX}:{{r:{code}}}:members")
}

/// Pub/sub channel of one room, shared by the signaller nodes of its peers.
pub fn room_channel(code: &str) -> String {
    format!("{PREFIX}:{{r:{code}}}:ch")
}

/// Liveness of a signaller node, with a TTL refreshed by its heartbeat.
pub fn signaller_alive(node: &str) -> String {
    format!("{PREFIX}:sig:{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster uses: the text between the first `{` and
    /// the next `}`, when not empty.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open + 1..].find('}').unwrap() + open + 1;
        &key[open + 1..close]
    }

    #[test]
    fn matcher_keys_share_one_slot_even_with_braces_in_names() {
        let user = UserKey::legacy("we}ird{name");
        for key in [
            register_stream(),
            pool(),
            waiting(&user),
            location(&user),
            notice(&user),
            partner(&user),
            last_partner(&user),
            room("01ABC"),
            gateway_alive("g1"),
            gateway_draining("g1"),
            gateways(),
            gateway_users("g1"),
        ] {
            assert_eq!(hash_tag(&key), "m", "{key}");
            assert!(key.starts_with(&matcher_prefix()), "{key}");
        }
    }

    #[test]
    fn room_keys_share_the_room_slot() {
        for key in [room_log("R1"), room_members("R1"), room_channel("R1")] {
            assert_eq!(hash_tag(&key), "r:R1");
        }
        assert_ne!(room_log("R1"), room_log("R2"));
    }
}
