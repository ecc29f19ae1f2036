//! The Lua scripts and the Rust code agree on every key and stored value:
//! the scripts build keys only through the prelude generated from
//! `wire::keys`, and the prelude's functions, run in a real Redis, give
//! exactly what the Rust functions give.

use testkit::RedisServer;
use wire::keys;
use wire::stored::{legacy_room_code, Location, PartnerValue, WaitingValue};

/// Run `body` (after the prelude) in Redis with `EVAL` and return its reply.
fn eval(redis: &RedisServer, body: &str, args: &[&str]) -> String {
    let script = format!("{}{body}", keys::lua_prelude());
    let mut cmd = vec!["EVAL", script.as_str(), "0"];
    cmd.extend_from_slice(args);
    redis.command(&cmd).trim_end().to_string()
}

const AWKWARD: [&str; 5] = ["l:bob", "s:01JABC", "l:we}ird{name", "l:a b/c_d", "l:é'\\x"];

#[test]
fn every_computed_key_is_built_alike_in_lua_and_rust() {
    let redis = RedisServer::start();
    for name in keys::computed_key_names() {
        for arg in AWKWARD {
            let lua = eval(&redis, &format!("return K.{name}(ARGV[1])"), &[arg]);
            assert_eq!(
                Some(lua),
                keys::computed_key(name, arg),
                "K.{name}({arg:?}) differs between Lua and Rust"
            );
        }
    }
}

#[test]
fn every_stored_value_is_read_alike_in_lua_and_rust() {
    let redis = RedisServer::start();
    for name in ["bob", "a b", "x/y", "5 9", "é日本"] {
        // Waiting value: Lua builds, Rust reads, and back.
        let lua = eval(
            &redis,
            "return V.waiting(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])",
            &["01J", "::1", "d:01D", "a:::/64", name],
        );
        let w = WaitingValue {
            reg: "01J".into(),
            addr: "::1".into(),
            identity: "d:01D".into(),
            address: "a:::/64".into(),
            name: name.into(),
        };
        assert_eq!(lua, w.encode());
        let parsed = eval(
            &redis,
            "local r, a, i, s, n = V.waiting_parse(ARGV[1]) \
             return r .. '|' .. a .. '|' .. i .. '|' .. s .. '|' .. n",
            &[&w.encode()],
        );
        assert_eq!(parsed, format!("01J|::1|d:01D|a:::/64|{name}"));

        // Partner value.
        let p = PartnerValue {
            room: legacy_room_code(name, "z", "01J"),
            peer: format!("l:{name}"),
        };
        let lua = eval(
            &redis,
            "return V.partner(ARGV[1], ARGV[2])",
            &[&p.room, &p.peer],
        );
        assert_eq!(lua, p.encode());
        let parsed = eval(
            &redis,
            "local room, peer = V.partner_parse(ARGV[1]) return room .. '|' .. peer",
            &[&p.encode()],
        );
        assert_eq!(parsed, format!("{}|{}", p.room, p.peer));

        // Legacy room code.
        let lua = eval(
            &redis,
            "return V.legacy_room_code(ARGV[1], ARGV[2], ARGV[3])",
            &[name, "z", "01J"],
        );
        assert_eq!(lua, legacy_room_code(name, "z", "01J"));
    }
    // Location value: gateway ids may hold the separator, socket ids never.
    let l = Location {
        addr: "127.0.0.9".into(),
        gateway: "pod/a".into(),
        socket: "01K".into(),
    };
    let lua = eval(
        &redis,
        "return V.location(ARGV[1], ARGV[2], ARGV[3])",
        &["127.0.0.9", "pod/a", "01K"],
    );
    assert_eq!(lua, l.encode());
    assert_eq!(
        eval(&redis, "return V.gateway_of(ARGV[1])", &[&l.encode()]),
        "pod/a"
    );
    let parsed = eval(
        &redis,
        "local a, g, s = V.location_parse(ARGV[1]) return a .. '|' .. g .. '|' .. s",
        &[&l.encode()],
    );
    assert_eq!(parsed, "127.0.0.9|pod/a|01K");
    // Legacy and native user keys.
    let legacy = wire::user::UserKey::legacy("x");
    let native = wire::user::UserKey::native("x");
    let is_legacy = "if V.is_legacy(ARGV[1]) then return 1 else return 0 end";
    assert_eq!(eval(&redis, is_legacy, &[legacy.as_str()]), "1");
    assert_eq!(eval(&redis, is_legacy, &[native.as_str()]), "0");
}

/// No script builds a key of its own: key names appear only in the
/// generated prelude. (A script that wrote `'rvc:{m}:wait:' .. user` would
/// silently diverge the day the Rust name changes.)
#[test]
fn no_script_writes_a_key_name_of_its_own() {
    let fragments: Vec<String> = keys::computed_key_names()
        .into_iter()
        .map(|name| {
            let key = keys::computed_key(name, "\u{1}").unwrap();
            let (before, _) = key.split_once('\u{1}').unwrap();
            // The kind part of the key, e.g. `wait:` or `gwch:`.
            before
                .rsplit('}')
                .next()
                .unwrap()
                .trim_start_matches(':')
                .to_string()
        })
        .filter(|f| !f.is_empty())
        .collect();
    for (script, source) in matcher::store::SCRIPT_SOURCES {
        assert!(
            !source.contains(keys::PREFIX),
            "{script}.lua names the key prefix itself"
        );
        for fragment in &fragments {
            assert!(
                !source.contains(&format!("'{fragment}")),
                "{script}.lua builds a {fragment} key itself; use the K.* prelude"
            );
        }
    }
}
