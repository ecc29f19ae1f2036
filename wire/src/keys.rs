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
///
/// The names below are joined with `concat`, which makes one allocation of
/// the exact size: a gateway builds about seven per register and a node
/// three per relayed message, and `format!` took about four times as long.
pub const PREFIX: &str = "rvc";

/// Consumer group of the matcher workers on [`register_stream`].
pub const WORKER_GROUP: &str = "matchers";

/// Stream of register requests, written by gateways (`XADD`) and read by the
/// matcher workers through [`WORKER_GROUP`].
pub fn register_stream() -> String {
    [PREFIX, ":{m}:register"].concat()
}

/// Sorted set of waiting users (member: user key, score: register time in ms).
pub fn pool() -> String {
    [PREFIX, ":{m}:pool"].concat()
}

/// Sorted set of waiting users not yet tried as the first of a pair since they
/// entered the pool or since their wishes last relaxed: the pairing script
/// starts each pair from one of them.
pub fn pool_fresh() -> String {
    [PREFIX, ":{m}:pool:fresh"].concat()
}

/// Sorted set of the times waiting users' wishes relax (member
/// `<kind>:<user>`, score: ms, Redis clock): the same-region window ends,
/// the interest window ends, the last partner becomes acceptable, or a
/// search that could not look at every candidate is due again. The pairing
/// script wakes the due ones, and tells the worker when the next is.
pub fn pool_relax() -> String {
    [PREFIX, ":{m}:pool:relax"].concat()
}

/// A waiting user's matchmaking wishes (MessagePack
/// [`crate::internal::PoolPreferences`]); only for users who have some.
pub fn prefs(user: &UserKey) -> String {
    [PREFIX, ":{m}:prefs:", user.as_str()].concat()
}

/// Sorted set of the waiting users who gave interest `tag` (normalised;
/// score: entry time).
pub fn interest(tag: &str) -> String {
    [PREFIX, ":{m}:interest:", tag].concat()
}

/// The id of the registration that put `user` in the pool. Set by the gateway
/// before the register is queued; the pool accepts a stream entry only while
/// this still names that registration, so a withdrawn or already matched user
/// is never put back by a late or re-delivered entry.
pub fn waiting(user: &UserKey) -> String {
    [PREFIX, ":{m}:wait:", user.as_str()].concat()
}

/// Where `user`'s matching socket is: `<gateway id>/<connection id>`.
pub fn location(user: &UserKey) -> String {
    [PREFIX, ":{m}:loc:", user.as_str()].concat()
}

/// The `matched` notice (MessagePack [`crate::internal::Inbox`]) waiting to be
/// delivered to `user`. Taken with `GETDEL`, so it is delivered exactly once,
/// whichever gateway gets there first.
pub fn notice(user: &UserKey) -> String {
    [PREFIX, ":{m}:notice:", user.as_str()].concat()
}

/// `user`'s current partner: `<room code> <partner user key>`. Routes legacy chat.
pub fn partner(user: &UserKey) -> String {
    [PREFIX, ":{m}:partner:", user.as_str()].concat()
}

/// The client address a legacy name is bound to (set by its register, kept
/// for the match): a socket for that name from another address never gets
/// the name's notice, and cannot take the name over from it.
pub fn binding(user: &UserKey) -> String {
    [PREFIX, ":{m}:bind:", user.as_str()].concat()
}

/// A native session whose matching socket closed and that may come back
/// within the resume grace window: MessagePack `{since, prefs}` (when it
/// entered the pool, ms, and its wishes as stored, each absent when none);
/// lapses with the window.
pub fn parked(user: &UserKey) -> String {
    [PREFIX, ":{m}:parked:", user.as_str()].concat()
}

/// The partner `user` just left; not handed to them again while others wait.
pub fn last_partner(user: &UserKey) -> String {
    [PREFIX, ":{m}:last:", user.as_str()].concat()
}

/// A ban of `subject` (`d:<device>`, `a:<address>` or `u:<user key>`,
/// see [`crate::moderation`]): holds the ban's id, lapses when it lifts.
pub fn ban(subject: &str) -> String {
    [PREFIX, ":{m}:ban:", subject].concat()
}

/// The record of ban `id` (MessagePack [`crate::moderation::Ban`]).
pub fn ban_record(id: &str) -> String {
    [PREFIX, ":{m}:banrec:", id].concat()
}

/// Sorted set of ban ids (score: when each lifts, ms), for the admin API.
pub fn bans() -> String {
    [PREFIX, ":{m}:bans"].concat()
}

/// How many times `subject` was banned in the last week (doubles the next ban).
pub fn ban_count(subject: &str) -> String {
    [PREFIX, ":{m}:bancount:", subject].concat()
}

/// Sorted set of the identities `subject` is never paired with (score:
/// until when, ms); a block is written in both directions.
pub fn blocks(subject: &str) -> String {
    [PREFIX, ":{m}:blocks:", subject].concat()
}

/// Whom `user` was last paired with (MessagePack `{room, peer, identity,
/// address, at}`): the target of a report or block, kept while the room
/// lasts and for a minute after the user asks for the next partner.
pub fn met(user: &UserKey) -> String {
    [PREFIX, ":{m}:met:", user.as_str()].concat()
}

/// Stream of reports (fields: time, room, reporter and reported identity
/// and address, reason, note, chat).
pub fn reports() -> String {
    [PREFIX, ":{m}:reports"].concat()
}

/// Sorted sets of who reported `subject` lately, by reporter identity and
/// by reporter address (score: when, ms): distinct reporters count.
pub fn reporters(subject: &str) -> String {
    [PREFIX, ":{m}:reporters:", subject].concat()
}

pub fn reporter_addresses(subject: &str) -> String {
    [PREFIX, ":{m}:reporteraddrs:", subject].concat()
}

/// Reports `subject` made in the current hour (the reporter's own limit).
pub fn report_rate(subject: &str) -> String {
    [PREFIX, ":{m}:reportrate:", subject].concat()
}

/// The last chat lines of a room whose chat goes through the matcher
/// (legacy chat), kept for reports.
pub fn room_chat(code: &str) -> String {
    [PREFIX, ":{m}:chat:", code].concat()
}

/// Prefix every matcher key starts with (all in the `{m}` slot).
pub fn matcher_prefix() -> String {
    [PREFIX, ":{m}:"].concat()
}

/// Room record (hash): `<user key>` → role, `name:<user key>` → display name.
/// Lets the signaller check a legacy client's membership.
pub fn room(code: &str) -> String {
    [PREFIX, ":{m}:room:", code].concat()
}

/// Liveness of a matcher gateway, with a TTL refreshed by its heartbeat.
pub fn gateway_alive(gateway: &str) -> String {
    [PREFIX, ":{m}:gw:", gateway].concat()
}

/// Present while a matcher gateway drains: its users are no longer paired.
pub fn gateway_draining(gateway: &str) -> String {
    [PREFIX, ":{m}:draining:", gateway].concat()
}

/// Set of every matcher gateway that has announced itself.
pub fn gateways() -> String {
    [PREFIX, ":{m}:gateways"].concat()
}

/// Set of the users whose matching socket is on `gateway`, purged with it.
pub fn gateway_users(gateway: &str) -> String {
    [PREFIX, ":{m}:gwusers:", gateway].concat()
}

/// Pub/sub channel of one matcher gateway: word of `matched` notices and
/// chat lines for the users whose sockets it holds.
pub fn gateway_channel(gateway: &str) -> String {
    [PREFIX, ":gwch:", gateway].concat()
}

/// The ticket secret shared by matcher and signaller when none is configured
/// (set once with `SET NX` by the first process).
pub fn ticket_secret() -> String {
    [PREFIX, ":ticket-secret"].concat()
}

/// Per-room log (stream) of everything the peers sent: the backlog that lets
/// a late joiner receive what was sent before, in order.
pub fn room_log(code: &str) -> String {
    [PREFIX, ":{r:", code, "}:log"].concat()
}

/// Who is in a room on the signalling side (hash): user key → signaller node.
pub fn room_members(code: &str) -> String {
    [PREFIX, ":{r:", code, "}:members"].concat()
}

/// Pub/sub channel of one room, shared by the signaller nodes of its peers.
pub fn room_channel(code: &str) -> String {
    [PREFIX, ":{r:", code, "}:ch"].concat()
}

/// The rooms `user` is in on the signalling side (sorted set: room code →
/// when the claim lapses, ms), to limit how many rooms one user holds at
/// once. A key of its own slot (`{u:<user>}`): it is checked by its own
/// script before the room's join script, never from it.
pub fn user_rooms(user: &UserKey) -> String {
    [PREFIX, ":{u:", user.as_str(), "}:rooms"].concat()
}

/// Liveness of a signaller node, with a TTL refreshed by its heartbeat.
pub fn signaller_alive(node: &str) -> String {
    [PREFIX, ":sig:", node].concat()
}

/// Per-client-address rate limit (GCRA): the address's theoretical arrival
/// time, in microseconds of Redis time, with a TTL. Shared by every
/// gateway and signaller node, so they enforce one budget. `address` is a
/// `service::client_addr::AddressKey` (an IPv4 address or an IPv6 /64).
pub fn address_rate(address: &str) -> String {
    [PREFIX, ":addr:{", address, "}:rate"].concat()
}

/// Sockets one client address holds on `service` (`matcher`, `signaller`),
/// by node (hash: node id → count), for the per-address socket cap.
pub fn address_sockets(address: &str, service: &str) -> String {
    [PREFIX, ":addr:{", address, "}:sockets:", service].concat()
}

/// When each node's counts in [`address_sockets`] lapse (sorted set: node
/// id → lease end, ms of Redis time). Nodes renew their leases while they
/// live; a crashed node's counts are dropped once its lease ends.
pub fn address_socket_leases(address: &str, service: &str) -> String {
    [PREFIX, ":addr:{", address, "}:leases:", service].concat()
}

/// Builds one key from its one argument (a user key, room code or gateway id).
type KeyBuilder = fn(&str) -> String;

/// The per-user and per-gateway keys a Lua script computes itself (for users
/// it picks at random, or reads from another key), by the name the scripts
/// call them: `K.<name>(x)`.
fn computed_keys() -> [(&'static str, KeyBuilder); 23] {
    [
        ("parked", |u| parked(&UserKey::from_raw(u))),
        ("ban_record", ban_record),
        ("ban_count", ban_count),
        ("report_rate", report_rate),
        ("reporters", reporters),
        ("reporter_addresses", reporter_addresses),
        ("room_chat", room_chat),
        ("ban", ban),
        ("blocks", blocks),
        ("met", |u| met(&UserKey::from_raw(u))),
        ("prefs", |u| prefs(&UserKey::from_raw(u))),
        ("interest", interest),
        ("binding", |u| binding(&UserKey::from_raw(u))),
        ("waiting", |u| waiting(&UserKey::from_raw(u))),
        ("location", |u| location(&UserKey::from_raw(u))),
        ("notice", |u| notice(&UserKey::from_raw(u))),
        ("partner", |u| partner(&UserKey::from_raw(u))),
        ("last_partner", |u| last_partner(&UserKey::from_raw(u))),
        ("room", room),
        ("gateway_alive", gateway_alive),
        ("gateway_draining", gateway_draining),
        ("gateway_users", gateway_users),
        ("gateway_channel", gateway_channel),
    ]
}

/// The keys a script names without an argument: `K.<name>`.
fn fixed_keys() -> [(&'static str, String); 4] {
    [
        ("bans", bans()),
        ("pool", pool()),
        ("pool_fresh", pool_fresh()),
        ("pool_relax", pool_relax()),
    ]
}

/// Every fixed key, by the name scripts use, for the prelude tests.
pub fn fixed_key_names() -> Vec<(&'static str, String)> {
    fixed_keys().to_vec()
}

/// A Lua string literal holding `s`.
fn lua_string(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The Lua prelude every matcher script starts with: `K.<key>(x)` builds
/// the keys of [`computed_keys`] exactly as the functions of this module
/// do (it is generated from them), and `V.*` builds and reads the stored
/// values of [`crate::stored`]. No script writes a key name or a value
/// format of its own.
pub fn lua_prelude() -> String {
    use crate::stored::{FIELD_SEP, LOCATION_SEP, ROOM_CODE_SEP};
    const HOLE: &str = "\u{1}";
    let mut lua = String::from(
        "-- Generated from wire/src/keys.rs and wire/src/stored.rs (keys::lua_prelude).\nlocal K, V = {}, {}\n",
    );
    for (name, key) in fixed_keys() {
        lua.push_str(&format!("K.{name} = {}\n", lua_string(&key)));
    }
    for (name, build) in computed_keys() {
        let key = build(HOLE);
        let (before, after) = key.split_once(HOLE).expect("the key holds its argument");
        let body = match (before.is_empty(), after.is_empty()) {
            (true, true) => "x".to_string(),
            (false, true) => format!("{} .. x", lua_string(before)),
            (true, false) => format!("x .. {}", lua_string(after)),
            (false, false) => format!("{} .. x .. {}", lua_string(before), lua_string(after)),
        };
        lua.push_str(&format!("function K.{name}(x) return {body} end\n"));
    }
    let field = lua_string(&FIELD_SEP.to_string());
    let loc = lua_string(&LOCATION_SEP.to_string());
    let room_sep = lua_string(&ROOM_CODE_SEP.to_string());
    let legacy = lua_string(UserKey::LEGACY_PREFIX);
    lua.push_str(&format!(
        r"function V.waiting(reg, addr, identity, address, name)
  return reg .. {field} .. addr .. {field} .. identity .. {field} .. address .. {field} .. name
end
function V.waiting_parse(v)
  local parts, from = {{}}, 1
  for _ = 1, 4 do
    local i = string.find(v, {field}, from, true)
    if not i then return nil end
    parts[#parts + 1] = string.sub(v, from, i - 1)
    from = i + 1
  end
  return parts[1], parts[2], parts[3], parts[4], string.sub(v, from)
end
function V.location(addr, gateway, socket) return addr .. {field} .. gateway .. {loc} .. socket end
function V.location_parse(v)
  local i = string.find(v, {field}, 1, true)
  if not i then return nil end
  local last = nil
  local j = string.find(v, {loc}, i + 1, true)
  while j do last = j; j = string.find(v, {loc}, j + 1, true) end
  if not last then return nil end
  return string.sub(v, 1, i - 1), string.sub(v, i + 1, last - 1), string.sub(v, last + 1)
end
function V.gateway_of(v)
  local _, gateway = V.location_parse(v)
  return gateway
end
function V.partner(room, peer) return #peer .. {field} .. peer .. room end
function V.partner_parse(v)
  local i = string.find(v, {field}, 1, true)
  if not i then return nil end
  local n = tonumber(string.sub(v, 1, i - 1))
  if not n or i + n > #v then return nil end
  return string.sub(v, i + n + 1), string.sub(v, i + 1, i + n)
end
function V.now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[1]) * 1000000 + tonumber(t[2])
end
function V.user_subject(user) return {user_subject} .. user end
function V.is_legacy(user) return string.sub(user, 1, {legacy_len}) == {legacy} end
function V.legacy_room_code(a, b, ulid) return a .. {room_sep} .. b .. {room_sep} .. ulid end
V.register_field = {register_field}
V.register_stamp_field = {register_stamp_field}
",
        register_field = lua_string(crate::internal::REGISTER_FIELD),
        register_stamp_field = lua_string(crate::internal::REGISTER_STAMP_FIELD),
        user_subject = lua_string(&crate::moderation::user_subject("")),
        legacy_len = UserKey::LEGACY_PREFIX.len(),
    ));
    lua
}

/// The part of [`lua_prelude`] that `body` uses: the definitions it names
/// (`K.x`, `V.y`), and those they name in turn. Every script run executes
/// its prelude, so a script carries only what it needs.
pub fn lua_prelude_for(body: &str) -> String {
    lua_library_for(&lua_prelude(), &["K.", "V."], body)
}

/// The part of Lua `library` that `body` uses: the lines before its first
/// definition (comments, the tables' `local`), then each definition whose
/// name (`function P.x`, `P.y =`, for a name starting with one of
/// `prefixes`) `body` names, or a definition taken already names. A
/// definition runs to the next one. Defining a function costs a script run
/// time (a closure made per run: the matcher's pool library alone took
/// 1.6 µs of every run that carried it), so a script carries only what it
/// uses.
pub fn lua_library_for(library: &str, prefixes: &[&str], body: &str) -> String {
    let mut header = String::new();
    // Each definition: its name (`K.x`) and its text.
    let mut defs: Vec<(String, String)> = Vec::new();
    for line in library.lines() {
        let starts = line.strip_prefix("function ").unwrap_or(line);
        if prefixes.iter().any(|p| starts.starts_with(p)) {
            let name: String = starts
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            defs.push((name, format!("{line}\n")));
        } else if let Some((_, text)) = defs.last_mut() {
            text.push_str(line);
            text.push('\n');
        } else {
            header.push_str(line);
            header.push('\n');
        }
    }
    let mut wanted = vec![false; defs.len()];
    // What the body names outside its comment lines (a comment that
    // mentions `K.pool` takes nothing in).
    let mut uses: String = body
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .flat_map(|l| [l, "\n"])
        .collect();
    loop {
        let mut grew = false;
        for (i, (name, text)) in defs.iter().enumerate() {
            let used = uses.match_indices(name.as_str()).any(|(at, _)| {
                !uses[at + name.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if !wanted[i] && used {
                wanted[i] = true;
                uses.push_str(text);
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    let mut lua = header;
    for (i, (_, text)) in defs.iter().enumerate() {
        if wanted[i] {
            lua.push_str(text);
        }
    }
    lua
}

/// Every computed key, for tests comparing the prelude with this module.
pub fn computed_key_names() -> Vec<&'static str> {
    computed_keys().iter().map(|(n, _)| *n).collect()
}

/// Build computed key `name` for `arg` the Rust way (for the same tests).
pub fn computed_key(name: &str, arg: &str) -> Option<String> {
    computed_keys()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, build)| build(arg))
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
            binding(&user),
            parked(&user),
            register_stream(),
            pool(),
            waiting(&user),
            location(&user),
            notice(&user),
            partner(&user),
            last_partner(&user),
            pool_fresh(),
            pool_relax(),
            prefs(&user),
            interest("we}ird{tag"),
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
    fn address_keys_share_the_address_slot() {
        for address in ["192.0.2.1", "2001:db8:1:2::/64"] {
            for key in [
                address_rate(address),
                address_sockets(address, "matcher"),
                address_socket_leases(address, "matcher"),
            ] {
                assert_eq!(hash_tag(&key), address, "{key}");
            }
        }
        assert_ne!(
            address_sockets("192.0.2.1", "matcher"),
            address_sockets("192.0.2.1", "signaller")
        );
    }

    #[test]
    fn a_script_gets_the_definitions_it_uses_and_theirs() {
        let lua = lua_prelude_for("local g = V.gateway_of(redis.call('GET', K.location(u)))");
        assert!(lua.contains("function V.gateway_of("));
        assert!(
            lua.contains("function V.location_parse("),
            "gateway_of needs it"
        );
        assert!(lua.contains("function K.location("));
        assert!(!lua.contains("function K.waiting("));
        assert!(!lua.contains("function V.location("), "not a prefix match");
        assert!(lua.starts_with("-- Generated"));
        assert!(lua.contains("local K, V = {}, {}"));
    }

    #[test]
    fn room_keys_share_the_room_slot() {
        for key in [room_log("R1"), room_members("R1"), room_channel("R1")] {
            assert_eq!(hash_tag(&key), "r:R1");
        }
        assert_ne!(room_log("R1"), room_log("R2"));
    }
}
