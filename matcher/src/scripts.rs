//! The matcher's Lua scripts, each in its own `.lua` file beside this one.
//! Run with `EVALSHA`, reloaded automatically after a Redis restart.

use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{MultipleKeys, MultipleValues};

/// All scripts, loaded once per process.
#[derive(Clone)]
pub struct Scripts {
    pub register: Script,
    pub enqueue: Script,
    pub pair: Script,
    pub claim: Script,
    pub release: Script,
    pub withdraw: Script,
    pub purge: Script,
    pub chat: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            register: Script::from_lua(include_str!("lua/register.lua")),
            enqueue: Script::from_lua(include_str!("lua/enqueue.lua")),
            pair: Script::from_lua(include_str!("lua/pair.lua")),
            claim: Script::from_lua(include_str!("lua/claim.lua")),
            release: Script::from_lua(include_str!("lua/release.lua")),
            withdraw: Script::from_lua(include_str!("lua/withdraw.lua")),
            purge: Script::from_lua(include_str!("lua/purge.lua")),
            chat: Script::from_lua(include_str!("lua/chat.lua")),
        }
    }
}

/// Run `script` (EVALSHA, loading it on NOSCRIPT).
pub async fn run<R, K, V>(
    script: &Script,
    redis: &Client,
    keys: K,
    args: V,
) -> Result<R, fred::error::Error>
where
    R: FromValue,
    K: Into<MultipleKeys> + Send,
    V: TryInto<MultipleValues> + Send,
    V::Error: Into<fred::error::Error> + Send,
{
    script.evalsha_with_reload(redis, keys, args).await
}
