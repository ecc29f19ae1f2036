//! The matcher's Lua scripts, each in its own `.lua` file beside this one,
//! each prefixed with the part it uses of the key and value prelude
//! generated from `wire` ([`wire::keys::lua_prelude_for`]). Run with
//! [`service::redis_conn::run_script`] (`EVALSHA`, reloaded by themselves
//! after a Redis restart or failover).

use fred::types::scripts::Script;

/// Every script, loaded once per process.
pub struct Scripts {
    pub register: Script,
    pub pair: Script,
    pub locate: Script,
    pub release: Script,
    pub withdraw: Script,
    pub purge: Script,
    pub chat: Script,
    pub take_notice: Script,
    pub refresh_wait: Script,
    pub trim: Script,
    pub park: Script,
    pub unpark: Script,
    pub report: Script,
    pub block: Script,
    pub ban: Script,
}

/// The pool library (`P.*`), prefixed to every script that uses it.
const POOL_LIB: &str = include_str!("lua/pool.lua");

/// The body of every script, by name (for the key-discipline test); `pool`
/// is the library, not a script of its own.
pub const SOURCES: [(&str, &str); 16] = [
    ("pool", POOL_LIB),
    ("register", include_str!("lua/register.lua")),
    ("pair", include_str!("lua/pair.lua")),
    ("locate", include_str!("lua/locate.lua")),
    ("release", include_str!("lua/release.lua")),
    ("withdraw", include_str!("lua/withdraw.lua")),
    ("purge", include_str!("lua/purge.lua")),
    ("chat", include_str!("lua/chat.lua")),
    ("take_notice", include_str!("lua/take_notice.lua")),
    ("refresh_wait", include_str!("lua/refresh_wait.lua")),
    ("trim", include_str!("lua/trim.lua")),
    ("park", include_str!("lua/park.lua")),
    ("unpark", include_str!("lua/unpark.lua")),
    ("report", include_str!("lua/report.lua")),
    ("block", include_str!("lua/block.lua")),
    ("ban", include_str!("lua/ban.lua")),
];

impl Default for Scripts {
    fn default() -> Self {
        let script = |name: &str| {
            let (_, body) = SOURCES
                .iter()
                .find(|(n, _)| *n == name)
                .expect("every script has a source");
            // A script that uses the pool library gets the part of it that
            // it uses, and the prelude definitions both need.
            let body = if body.contains("P.") {
                format!(
                    "{}{body}",
                    wire::keys::lua_library_for(POOL_LIB, &["P."], body)
                )
            } else {
                body.to_string()
            };
            Script::from_lua(format!("{}{body}", wire::keys::lua_prelude_for(&body)))
        };
        Scripts {
            register: script("register"),
            pair: script("pair"),
            locate: script("locate"),
            release: script("release"),
            withdraw: script("withdraw"),
            purge: script("purge"),
            chat: script("chat"),
            take_notice: script("take_notice"),
            refresh_wait: script("refresh_wait"),
            trim: script("trim"),
            park: script("park"),
            unpark: script("unpark"),
            report: script("report"),
            block: script("block"),
            ban: script("ban"),
        }
    }
}
