//! What a gateway asks of Redis: its liveness, where its sockets are,
//! registrations, notices and chat.

use std::time::Duration;

use fred::prelude::*;
use fred::types::Expiration;
use wire::internal::{self, MatchedNotice, PoolPreferences, RegisterRequest};
use wire::keys;
use wire::moderation::Who;
use wire::stored::Location;
use wire::user::UserKey;

use super::{Store, StoreError};
use service::redis_conn::run_script as run;

/// Lifetime of a waiting key. The user's socket refreshes it every
/// [`WAIT_REFRESH`] while it waits; a registration whose socket is gone
/// (and whose gateway could not clean up) ends by itself this soon.
pub const WAITING_TTL: Duration = Duration::from_secs(60);

/// How often a waiting user's socket refreshes its waiting key.
pub const WAIT_REFRESH: Duration = Duration::from_secs(20);

/// Lifetime of a legacy name's binding to its registrant's address until
/// it is matched (then it lasts as long as the room).
const BINDING_TTL: Duration = Duration::from_secs(300);

/// How long the last partner may still be reported or blocked once the
/// user asked for the next one.
pub const REPORT_AFTER_SKIP: Duration = Duration::from_secs(60);

/// What a register came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Queued,
    AlreadyWaiting,
    /// This very registration was matched meanwhile (a restore racing the
    /// pairing): its notice waits.
    AlreadyMatched,
    /// The legacy name is bound to another client address.
    BoundElsewhere,
    /// The identity or the address is banned for this many more seconds.
    Banned {
        retry_after: u64,
    },
}

/// What one heartbeat found.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    /// The liveness key was still there.
    Alive,
    /// The liveness key had expired (or Redis was emptied).
    Lapsed,
    /// Redis did not answer.
    Failed,
}

/// The outcome of recording a socket's location.
#[derive(Debug, PartialEq, Eq)]
pub enum Located {
    /// Recorded; with the `matched` notice that was waiting, if any.
    Here(Option<MatchedNotice>),
    /// Another live socket holds this legacy name.
    NameTaken,
}

/// The outcome of a native session coming back ([`Store::unpark`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Unparked {
    /// Not parked (never was, or its grace window passed): start anew.
    Gone,
    /// Back, with the `matched` notice made while it was gone.
    Matched(MatchedNotice),
    /// Back in line for the pool with its registration (`reg`, display
    /// `name`, wishes `prefs`).
    Waiting {
        reg: String,
        name: String,
        prefs: Option<PoolPreferences>,
    },
    /// Back, neither waiting nor matched.
    Idle,
    /// Banned (identity, address or session) for this many more seconds.
    Banned { retry_after: u64 },
}

/// The outcome of a legacy chat line.
#[derive(Debug, PartialEq, Eq)]
pub enum ChatOutcome {
    Relayed,
    NoPartner,
    PeerOffline,
}

fn decode_notice(user: &UserKey, bytes: &[u8]) -> Option<MatchedNotice> {
    match internal::decode::<MatchedNotice>(bytes) {
        Ok(notice) => Some(notice),
        Err(e) => {
            tracing::warn!(%user, error = %e, "undecodable matched notice dropped");
            None
        }
    }
}

impl Store {
    /// One heartbeat: the liveness key with its TTL, and membership of the
    /// set of gateways that workers check.
    pub async fn heartbeat(&self, gateway: &str, ttl: Duration) -> Beat {
        let result: Result<(Option<String>, i64), StoreError> = async {
            let pipe = self.redis.pipeline();
            let _: () = pipe
                .set(
                    keys::gateway_alive(gateway),
                    1,
                    Some(Expiration::PX(ttl.as_millis() as i64)),
                    None,
                    true,
                )
                .await?;
            let _: () = pipe.sadd(keys::gateways(), gateway).await?;
            pipe.all().await
        }
        .await;
        match result {
            Ok((Some(_), _)) => Beat::Alive,
            Ok((None, _)) => Beat::Lapsed,
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed");
                Beat::Failed
            }
        }
    }

    /// Mark `gateway` draining for `ttl`: workers no longer pair its users.
    pub async fn mark_draining(&self, gateway: &str, ttl: Duration) -> Result<(), StoreError> {
        self.redis
            .set(
                keys::gateway_draining(gateway),
                1,
                Some(Expiration::PX(ttl.as_millis() as i64)),
                None,
                false,
            )
            .await
    }

    /// Remove `gateway`'s liveness at once (a clean exit): workers need not
    /// wait for the TTL to purge what it left.
    pub async fn forget_gateway(&self, gateway: &str) -> Result<(), StoreError> {
        self.redis.del(keys::gateway_alive(gateway)).await
    }

    /// Record that `user`'s socket is at `location`, and take the notice
    /// that waits for it (for a legacy name, only one made for this
    /// address). With `exclusive` (a legacy socket's first location),
    /// refuse when the name is bound to another address or held by another
    /// live socket of this address, and take it over from a socket of
    /// another address.
    pub async fn locate(
        &self,
        user: &UserKey,
        location: &Location,
        exclusive: bool,
    ) -> Result<Located, StoreError> {
        let (located, notice): (i64, bytes::Bytes) = run(
            &self.scripts.locate,
            &self.redis,
            vec![
                keys::location(user),
                keys::gateway_users(&location.gateway),
                keys::notice(user),
                keys::binding(user),
                keys::waiting(user),
                keys::register_stream(),
            ],
            vec![
                location.encode(),
                user.to_string(),
                flag(exclusive),
                location.addr.clone(),
                wire::PROTOCOL_VERSION.to_string(),
            ],
        )
        .await?;
        if located != 1 {
            return Ok(Located::NameTaken);
        }
        let notice = (!notice.is_empty())
            .then(|| decode_notice(user, &notice))
            .flatten();
        Ok(Located::Here(notice))
    }

    /// `user`'s socket at `location` closed: forget it and withdraw the user,
    /// unless another socket took the user over. `true` when released.
    pub async fn release(&self, user: &UserKey, location: &Location) -> Result<bool, StoreError> {
        let released: i64 = run(
            &self.scripts.release,
            &self.redis,
            vec![
                keys::location(user),
                keys::pool(),
                keys::gateway_users(&location.gateway),
                keys::waiting(user),
                keys::notice(user),
                keys::partner(user),
                keys::binding(user),
            ],
            vec![location.encode(), user.to_string(), location.addr.clone()],
        )
        .await?;
        Ok(released == 1)
    }

    /// `user`'s native socket at `location` closed: take the user out of
    /// the pool but keep its registration, place and pending notice for
    /// `grace`, so that it may come back ([`Store::unpark`]), unless another
    /// socket took the user over. The notice of registration `delivered`
    /// (the `matched` this socket wrote last), if still stored, is
    /// forgotten. `true` when parked.
    pub async fn park(
        &self,
        user: &UserKey,
        location: &Location,
        grace: Duration,
        delivered: Option<&str>,
    ) -> Result<bool, StoreError> {
        let parked: i64 = run(
            &self.scripts.park,
            &self.redis,
            vec![
                keys::location(user),
                keys::pool(),
                keys::gateway_users(&location.gateway),
                keys::waiting(user),
                keys::parked(user),
            ],
            vec![
                location.encode(),
                user.to_string(),
                grace.as_millis().max(1).to_string(),
                delivered.unwrap_or("").to_string(),
            ],
        )
        .await?;
        Ok(parked == 1)
    }

    /// A parked native session comes back with its socket at `location`:
    /// its pending notice, or its place in the pool, exactly once.
    pub async fn unpark(
        &self,
        user: &UserKey,
        location: &Location,
        who: &Who,
    ) -> Result<Unparked, StoreError> {
        let (back, notice, waiting, prefs): (i64, bytes::Bytes, String, bytes::Bytes) = run(
            &self.scripts.unpark,
            &self.redis,
            vec![
                keys::parked(user),
                keys::location(user),
                keys::gateway_users(&location.gateway),
                keys::waiting(user),
                keys::pool(),
                keys::notice(user),
                keys::register_stream(),
            ],
            vec![
                location.encode(),
                user.to_string(),
                WAITING_TTL.as_millis().to_string(),
                wire::PROTOCOL_VERSION.to_string(),
                who.identity.clone(),
                who.address.clone(),
            ],
        )
        .await?;
        if back == -2 {
            let ms = std::str::from_utf8(&notice)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            return Ok(Unparked::Banned {
                retry_after: retry_after_secs(ms),
            });
        }
        if back != 1 {
            return Ok(Unparked::Gone);
        }
        if !notice.is_empty() {
            return Ok(decode_notice(user, &notice).map_or(Unparked::Idle, Unparked::Matched));
        }
        Ok(match wire::stored::WaitingValue::parse(&waiting) {
            Some(w) if !waiting.is_empty() => Unparked::Waiting {
                reg: w.reg,
                name: w.name,
                prefs: (!prefs.is_empty())
                    .then(|| internal::decode::<PoolPreferences>(&prefs).ok())
                    .flatten(),
            },
            _ => Unparked::Idle,
        })
    }

    /// Put `user` in line for the pool under registration `reg`, made from
    /// client address `addr` (a legacy name is bound to it).
    /// `again` marks a registration made before, registered again by a
    /// restore: it is refused if it was matched meanwhile. `prefs` travel
    /// with the request to the worker, which puts them beside the pool.
    /// `delivered`: the registration whose `matched` this socket delivered
    /// last (None when none): that notice, if still stored (it came with
    /// the pairing's message), is forgotten in the same step.
    #[allow(clippy::too_many_arguments)]
    pub async fn register(
        &self,
        user: &UserKey,
        reg: &str,
        addr: &str,
        name: &str,
        who: &Who,
        prefs: Option<&PoolPreferences>,
        again: bool,
        delivered: Option<&str>,
    ) -> Result<Registered, StoreError> {
        let request = internal::encode(&RegisterRequest {
            v: wire::PROTOCOL_VERSION,
            user: user.to_string(),
            reg: reg.to_string(),
            prefs: prefs.cloned(),
            since_ms: None,
        });
        let args: Vec<Value> = vec![
            reg.into(),
            addr.into(),
            wire::stored::WaitingValue::encode_parts(reg, addr, &who.identity, &who.address, name)
                .into(),
            Value::Bytes(request.into()),
            WAITING_TTL.as_millis().to_string().into(),
            flag(user.is_legacy()).into(),
            BINDING_TTL.as_millis().to_string().into(),
            flag(again).into(),
            REPORT_AFTER_SKIP.as_millis().to_string().into(),
            service::clock::now_us().to_string().into(),
            delivered.unwrap_or("").into(),
        ];
        let outcome: Vec<i64> = run(
            &self.scripts.register,
            &self.redis,
            vec![
                keys::waiting(user),
                keys::register_stream(),
                keys::binding(user),
                keys::notice(user),
                keys::met(user),
                keys::ban(&who.identity),
                keys::ban(&who.address),
            ],
            args,
        )
        .await?;
        Ok(match outcome.first().copied().unwrap_or(-1) {
            1 => Registered::Queued,
            0 => Registered::AlreadyWaiting,
            2 => Registered::AlreadyMatched,
            -2 => Registered::Banned {
                retry_after: retry_after_secs(outcome.get(1).copied().unwrap_or(1)),
            },
            _ => Registered::BoundElsewhere,
        })
    }

    /// Keep `user`'s registration `reg` alive while its socket waits.
    pub async fn refresh_wait(&self, user: &UserKey, reg: &str) -> Result<(), StoreError> {
        let _: i64 = run(
            &self.scripts.refresh_wait,
            &self.redis,
            vec![keys::waiting(user)],
            vec![reg.to_string(), WAITING_TTL.as_millis().to_string()],
        )
        .await?;
        Ok(())
    }

    /// Take `user` out of the pool. `true` if they were waiting.
    pub async fn withdraw(&self, user: &UserKey) -> Result<bool, StoreError> {
        let was: i64 = run(
            &self.scripts.withdraw,
            &self.redis,
            vec![keys::waiting(user), keys::pool()],
            vec![user.to_string()],
        )
        .await?;
        Ok(was == 1)
    }

    /// Take `user`'s pending notice, if any (exactly once, whichever
    /// gateway asks first); for a legacy name, only a notice made for a
    /// registration from `addr`.
    pub async fn take_notice(
        &self,
        user: &UserKey,
        addr: &str,
    ) -> Result<Option<MatchedNotice>, StoreError> {
        if !user.is_legacy() {
            // A native session id is a credential of its own: no address check.
            let taken: Option<bytes::Bytes> = self.redis.getdel(keys::notice(user)).await?;
            return Ok(taken.and_then(|bytes| decode_notice(user, &bytes)));
        }
        let taken: bytes::Bytes = run(
            &self.scripts.take_notice,
            &self.redis,
            vec![keys::notice(user)],
            vec![addr.to_string()],
        )
        .await?;
        Ok((!taken.is_empty())
            .then(|| decode_notice(user, &taken))
            .flatten())
    }

    /// Relay a legacy chat line from `user` (display name `name`) to its
    /// current partner's gateway.
    pub async fn chat(
        &self,
        user: &UserKey,
        name: &str,
        message: &str,
        sent_ms: u64,
    ) -> Result<ChatOutcome, StoreError> {
        let relayed: i64 = run(
            &self.scripts.chat,
            &self.redis,
            vec![keys::partner(user)],
            vec![
                user.to_string(),
                name.to_string(),
                message.to_string(),
                sent_ms.to_string(),
                wire::moderation::REPORT_CHAT_LINES.to_string(),
            ],
        )
        .await?;
        Ok(match relayed {
            1 => ChatOutcome::Relayed,
            0 => ChatOutcome::NoPartner,
            _ => ChatOutcome::PeerOffline,
        })
    }
}

/// Seconds until a ban with `ms` left lifts (at least 1).
pub fn retry_after_secs(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_string()
}
