//! The matcher's Redis: the only code of the matcher that talks to it.
//!
//! Every key comes from `wire::keys`, every stored value is built and read
//! through `wire::stored`, and every script gets its keys through `KEYS`
//! when they are known before the call, or from the generated Lua prelude
//! when the script must compute them (the keys of a randomly picked user).
//! Callers see typed methods: what a gateway does ([`gateway_ops`]), what a
//! worker does ([`worker_ops`]), the register stream read ([`register_reader`])
//! and a gateway's channel ([`channel`]).

pub mod channel;
mod gateway_ops;
mod moderation_ops;
pub mod register_reader;
mod scripts;
mod worker_ops;

use std::sync::Arc;

use fred::prelude::*;

pub use gateway_ops::{Beat, ChatOutcome, Located, Registered, Unparked, WAIT_REFRESH};
pub use moderation_ops::{ReportEntry, ReportPolicy, Reported, Stats};
pub use scripts::SOURCES as SCRIPT_SOURCES;
pub use worker_ops::{PairRun, PairSettings};

/// A Redis failure, as the matcher's callers see it.
pub type StoreError = fred::error::Error;

/// The matcher's handle on Redis: cheap to clone.
#[derive(Clone)]
pub struct Store {
    redis: Client,
    scripts: Arc<scripts::Scripts>,
}

impl Store {
    pub fn new(redis: Client) -> Store {
        Store {
            redis,
            scripts: Arc::new(scripts::Scripts::default()),
        }
    }

    /// The connection, for what is not the matcher's own data (health
    /// checks, the shared ticket secret, reconnect events).
    pub fn client(&self) -> &Client {
        &self.redis
    }

    /// How many users wait in the pool.
    pub async fn pool_size(&self) -> Result<u64, StoreError> {
        self.redis.zcard(wire::keys::pool()).await
    }
}
