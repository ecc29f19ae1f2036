//! The room log: a Redis stream per room holding, in order, everything its
//! peers said and did, so that every signal and chat message reaches the
//! other peer once and in order, even one sent before that peer joined.
//!
//! Every event is appended and published in one atomic step by
//! `publish.lua` (one `PUBLISH` per message, no polling). The stream ids are
//! the sequence numbers that make delivery exactly-once: a socket joins by
//! subscribing first, then running `join.lua`, which logs its `Joined` event
//! and returns the log up to that entry; from then on only publications with
//! a larger id are new. Whatever a socket misses (a lagging subscriber, a
//! reconnect), it reads back with [`RoomLog::read_after`].
//!
//! What one room may keep is bounded (see [`Limits`]): a byte budget,
//! counted in the members hash and checked by the scripts atomically, refuses
//! what would pass it (the sender is told; nothing is trimmed or dropped),
//! so the log, and the backlog a join returns, never exceed it. A closed
//! room's log is deleted within `--closed-room-ttl-secs`; only a tombstone
//! (its `closed` mark) stays for `--room-log-ttl-secs`, so no ticket
//! reopens it. Live rooms expire at least `--room-log-ttl-secs` after their
//! last entry: every script gives the log and member list that lifetime
//! plus [`Limits::refresh_every`], and a socket's appends set it again only
//! once per that period (most messages cost no `PEXPIRE`).
//!
//! One socket per (room, user): a newer socket of a member replaces the
//! older one. Each write is fenced with the writer's connection (the
//! members hash names the one connection that may write for each user), so
//! a replaced socket can neither relay nor close the room.
//!
//! How many rooms one user is in at once is limited too ([`RoomLog::claim`]),
//! on a key of the user's own (a different cluster slot than the room's).
//!
//! Resume: a native session whose socket is gone is marked away with a
//! deadline ([`RoomLog::away`], `away.lua`); a new connection with the
//! session's credential takes its place back ([`RoomLog::resume`],
//! `resume.lua`), which returns the entries after the client's `last_id`,
//! exactly as a join returns the log so far. A session not back by its
//! deadline is closed by the peer with a `Left` fenced on the away mark
//! ([`Writer::Away`]).

use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use wire::internal::{LeaveReason, RoomBody, RoomEvent, StreamId};
use wire::user::UserKey;

use crate::admission::Member;
use crate::session::{JoinOutcome, PeerInfo};

/// Stream field holding the MessagePack [`RoomEvent`].
const FIELD: &str = "m";

/// Bytes of the budget a member replacing its socket may not use while its
/// peer has not joined: the peer's own first `Joined` (a user key, a name
/// of at most 64 characters and a node id) always fits, so no member can
/// keep its peer out by rejoining.
pub const PEER_JOIN_RESERVE_BYTES: i64 = 1024;

/// Why the room log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RoomLogError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
}

/// What one room and one user may hold (from the signaller's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Lifetime of a live room's log and member list after its last entry.
    pub ttl: Duration,
    /// Lifetime of a closed room's log.
    pub closed_ttl: Duration,
    /// Most bytes of events one room's log holds
    /// ([`wire::limits::ROOM_LOG_BUDGET_BYTES`] by default). Signals and
    /// chat may fill it up to [`wire::limits::ROOM_LOG_JOIN_RESERVE_BYTES`]
    /// below; the rest is for `Joined` entries.
    pub budget_bytes: u64,
    /// Most rooms one user is in at once.
    pub max_rooms_per_user: u64,
}

impl Limits {
    /// The defaults of the wire crate, with lifetime `ttl`.
    pub fn with_ttl(ttl: Duration) -> Limits {
        Limits {
            ttl,
            closed_ttl: Duration::from_secs(wire::limits::CLOSED_ROOM_TTL_SECS),
            budget_bytes: wire::limits::ROOM_LOG_BUDGET_BYTES as u64,
            max_rooms_per_user: wire::limits::MAX_ROOMS_PER_USER as u64,
        }
    }

    /// How often one socket's appends set the room's lifetime again: a
    /// message in between costs no `PEXPIRE` (see `publish.lua`).
    pub fn refresh_every(&self) -> Duration {
        self.ttl / 8
    }

    /// The lifetime every room script gives the log and member list: the
    /// live lifetime plus one refresh period, so that a room still lives
    /// at least [`Limits::ttl`] after its last entry, though that entry's
    /// append may not have set it again.
    pub fn live_lifetime(&self) -> Duration {
        self.ttl + self.refresh_every()
    }

    /// Most bytes the log may hold once a signal or chat is in it.
    pub fn relay_budget(&self) -> u64 {
        self.budget_bytes
            .saturating_sub(wire::limits::ROOM_LOG_JOIN_RESERVE_BYTES as u64)
    }
}

/// What the join script decided.
#[derive(Debug)]
pub enum JoinReply {
    /// Joined; `replaced` when this user's older socket was in the room
    /// (that socket's node learns it from our `Joined` entry).
    Joined {
        outcome: Box<JoinOutcome>,
        replaced: bool,
    },
    /// Someone left the room: it is over.
    Closed,
    /// Two other users are in the room.
    Full,
    /// The room's log has no room left for another `Joined` entry.
    LogFull,
}

/// Who is writing, which the script checks before it appends.
#[derive(Debug, Clone, Copy)]
pub enum Writer<'a> {
    /// The connection `conn` of `user`: it must still be that user's newest.
    Conn { user: &'a UserKey, conn: &'a str },
    /// A node declaring `user` lost: its socket must still be on `node`.
    DeclaringLost { user: &'a str, node: &'a str },
    /// The peer of `user` declaring it timed out: it must still be away
    /// with deadline `until_ms` (it has not resumed).
    Away { user: &'a str, until_ms: u64 },
}

impl Writer<'_> {
    fn fence(&self) -> (String, String) {
        match self {
            Writer::Conn { user, conn } => (format!("conn:{user}"), conn.to_string()),
            Writer::DeclaringLost { user, node } => (user.to_string(), node.to_string()),
            Writer::Away { user, until_ms } => (format!("away:{user}"), until_ms.to_string()),
        }
    }

    /// Whether a missing fence field refuses the write (see publish.lua).
    fn strict(&self) -> bool {
        matches!(self, Writer::Away { .. })
    }
}

/// What the resume script decided.
#[derive(Debug)]
pub enum ResumeReply {
    /// Resumed: the outcome holds the entries after the client's `last_id`.
    Resumed(Box<JoinOutcome>),
    /// Someone left the room (with this reason): it is over.
    Closed(String),
    /// The room does not know this user (its state expired).
    Gone,
    /// Another connection holds the session's place.
    Used,
    /// The session's grace deadline has passed.
    TimedOut,
    /// The room's log has no room left for another `Resumed` entry.
    LogFull,
}

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Logged and published with this id.
    Logged(StreamId),
    /// The room is over: nothing was logged.
    Closed,
    /// The writer was replaced (a newer socket of the user joined, or the
    /// peer declared lost is on another node now): nothing was logged.
    Fenced,
    /// The room log's budget would be passed: nothing was logged.
    LogFull,
}

/// How [`RoomLog::append_with`] appends.
#[derive(Debug, Clone, Copy)]
pub struct AppendOptions {
    /// Set the log's and member list's lifetime again.
    pub refresh: bool,
    /// The sender's publish stamp (µs since the Unix epoch), carried in
    /// the publication for the receiving node's fan-out stage.
    pub stamp_us: Option<u64>,
}

impl Default for AppendOptions {
    fn default() -> Self {
        AppendOptions {
            refresh: true,
            stamp_us: None,
        }
    }
}

/// Whether a user may join one more room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed now: release it if the join is refused.
    New,
    /// The user is in that room already (a replacing socket).
    Held,
    /// The user is in as many rooms as allowed.
    Refused,
}

/// Appends to and reads room logs.
#[derive(Clone)]
pub struct RoomLog {
    redis: Client,
    node: String,
    limits: Limits,
    join: Script,
    publish: Script,
    claim: Script,
    away: Script,
    resume: Script,
}

impl RoomLog {
    /// Whether the matcher banned this session (after reports, or the
    /// admin): a banned user cannot resume.
    pub async fn is_banned(&self, user: &str) -> Result<bool, fred::error::Error> {
        let key = wire::keys::ban(&wire::moderation::user_subject(user));
        let n: i64 = self.redis.exists(key).await?;
        Ok(n > 0)
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().clamp(1, i64::MAX as u128) as i64
}

fn status(reply: Value) -> (String, std::vec::IntoIter<Value>) {
    let mut parts = reply.into_array().into_iter();
    let status = parts.next().and_then(|v| v.as_string()).unwrap_or_default();
    (status, parts)
}

impl RoomLog {
    pub fn new(redis: Client, node: impl Into<String>, limits: Limits) -> RoomLog {
        RoomLog {
            redis,
            node: node.into(),
            limits,
            join: Script::from_lua(include_str!("join.lua")),
            publish: Script::from_lua(include_str!("publish.lua")),
            away: Script::from_lua(include_str!("away.lua")),
            resume: Script::from_lua(include_str!("resume.lua")),
            claim: Script::from_lua(include_str!("claim.lua")),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Count `room` among `user`'s rooms, unless that would pass the limit.
    pub async fn claim(&self, user: &UserKey, room: &str) -> Result<Claim, RoomLogError> {
        let reply: String = service::redis_conn::run_script(
            &self.claim,
            &self.redis,
            vec![wire::keys::user_rooms(user)],
            vec![
                Value::from(room),
                Value::from(service::clock::now_ms() as i64),
                Value::from(ms(self.limits.ttl)),
                Value::from(self.limits.max_rooms_per_user as i64),
            ],
        )
        .await?;
        match reply.as_str() {
            "new" => Ok(Claim::New),
            "held" => Ok(Claim::Held),
            "refused" => Ok(Claim::Refused),
            other => Err(RoomLogError::Reply(format!("claim status {other:?}"))),
        }
    }

    /// `user` is no longer in `room`.
    pub async fn release(&self, user: &UserKey, room: &str) -> Result<(), RoomLogError> {
        let _: i64 = self.redis.zrem(wire::keys::user_rooms(user), room).await?;
        Ok(())
    }

    /// Join `room` as `me` on connection `conn` (the caller has subscribed
    /// to the room channel).
    pub async fn join(
        &self,
        room: &str,
        me: &Member,
        conn: &str,
    ) -> Result<JoinReply, RoomLogError> {
        let joined = RoomEvent {
            from: me.user.to_string(),
            from_name: me.name.clone(),
            sent_ms: service::clock::now_ms(),
            body: RoomBody::Joined {
                node: self.node.clone(),
            },
        };
        let args = vec![
            Value::from(wire::keys::room_channel(room)),
            Value::from(me.user.as_str()),
            Value::from(self.node.as_str()),
            Value::from(me.name.as_str()),
            Value::from(&wire::internal::encode(&joined)[..]),
            Value::from(ms(self.limits.live_lifetime())),
            Value::from(self.limits.budget_bytes as i64),
            Value::from(conn),
            Value::from(PEER_JOIN_RESERVE_BYTES),
        ];
        let reply: Value = service::redis_conn::run_script(
            &self.join,
            &self.redis,
            vec![wire::keys::room_members(room), wire::keys::room_log(room)],
            args,
        )
        .await?;
        let (status, mut parts) = status(reply);
        match status.as_str() {
            "closed" => return Ok(JoinReply::Closed),
            "full" => return Ok(JoinReply::Full),
            "log_full" => return Ok(JoinReply::LogFull),
            "ok" => {}
            other => return Err(RoomLogError::Reply(format!("join status {other:?}"))),
        }
        let mut text = || parts.next().and_then(|v| v.as_string()).unwrap_or_default();
        let joined_id = StreamId::parse(&text())
            .ok_or_else(|| RoomLogError::Reply("join: bad stream id".into()))?;
        let (peer, peer_node, peer_name) = (text(), text(), text());
        let backlog = parts.next().map(entries).unwrap_or_default();
        let replaced = parts.next().and_then(|v| v.as_string()).as_deref() == Some("1");
        Ok(JoinReply::Joined {
            outcome: Box::new(JoinOutcome {
                room: room.to_string(),
                me: me.clone(),
                joined_id,
                peer: (!peer.is_empty()).then(|| PeerInfo {
                    user: peer,
                    name: peer_name,
                    node: (!peer_node.is_empty()).then_some(peer_node),
                }),
                backlog,
                resume: None,
                resumed: false,
                peer_away: None,
            }),
            replaced,
        })
    }

    /// Mark `user` (`name`) away in `room` until `until_ms` and log its
    /// `Away`, if `writer` may still speak for it.
    pub async fn away(
        &self,
        room: &str,
        user: &str,
        name: &str,
        until_ms: u64,
        writer: Writer<'_>,
    ) -> Result<Appended, RoomLogError> {
        let event = RoomEvent {
            from: user.to_string(),
            from_name: name.to_string(),
            sent_ms: service::clock::now_ms(),
            body: RoomBody::Away { until_ms },
        };
        let (fence, fence_value) = writer.fence();
        let args = vec![
            Value::from(wire::keys::room_channel(room)),
            Value::from(&wire::internal::encode(&event)[..]),
            Value::from(ms(self.limits.live_lifetime())),
            Value::from(fence),
            Value::from(fence_value),
            Value::from(user),
            Value::from(until_ms as i64),
        ];
        let reply: Value = service::redis_conn::run_script(
            &self.away,
            &self.redis,
            vec![wire::keys::room_members(room), wire::keys::room_log(room)],
            args,
        )
        .await?;
        let (status, mut parts) = status(reply);
        match status.as_str() {
            "ok" => {
                let id = parts.next().and_then(|v| v.as_string()).unwrap_or_default();
                StreamId::parse(&id)
                    .map(Appended::Logged)
                    .ok_or_else(|| RoomLogError::Reply(format!("bad stream id {id:?}")))
            }
            "closed" => Ok(Appended::Closed),
            // Marked away already: as good as logged, nothing to add.
            "fenced" | "away" => Ok(Appended::Fenced),
            other => Err(RoomLogError::Reply(format!("away status {other:?}"))),
        }
    }

    /// Resume `me`'s session in `room` on connection `conn`, taking the
    /// place of connection `from_conn` (the credential's), and return the
    /// entries after `after` (the caller has subscribed to the room).
    pub async fn resume(
        &self,
        room: &str,
        me: &Member,
        from_conn: &str,
        conn: &str,
        after: StreamId,
    ) -> Result<ResumeReply, RoomLogError> {
        let resumed = RoomEvent {
            from: me.user.to_string(),
            from_name: me.name.clone(),
            sent_ms: service::clock::now_ms(),
            body: RoomBody::Resumed {
                node: self.node.clone(),
            },
        };
        let first = StreamId {
            ms: after.ms,
            seq: after.seq.saturating_add(1),
        };
        let args = vec![
            Value::from(wire::keys::room_channel(room)),
            Value::from(me.user.as_str()),
            Value::from(from_conn),
            Value::from(conn),
            Value::from(self.node.as_str()),
            Value::from(&wire::internal::encode(&resumed)[..]),
            Value::from(ms(self.limits.live_lifetime())),
            Value::from(self.limits.budget_bytes as i64),
            Value::from(service::clock::now_ms() as i64),
            Value::from(first.to_string()),
        ];
        let reply: Value = service::redis_conn::run_script(
            &self.resume,
            &self.redis,
            vec![wire::keys::room_members(room), wire::keys::room_log(room)],
            args,
        )
        .await?;
        let (status, mut parts) = status(reply);
        let mut text = || parts.next().and_then(|v| v.as_string()).unwrap_or_default();
        match status.as_str() {
            "closed" => return Ok(ResumeReply::Closed(text())),
            "gone" => return Ok(ResumeReply::Gone),
            "used" => return Ok(ResumeReply::Used),
            "timed_out" => return Ok(ResumeReply::TimedOut),
            "log_full" => return Ok(ResumeReply::LogFull),
            "ok" => {}
            other => return Err(RoomLogError::Reply(format!("resume status {other:?}"))),
        }
        let joined_id = StreamId::parse(&text())
            .ok_or_else(|| RoomLogError::Reply("resume: bad stream id".into()))?;
        let (peer, peer_node, peer_name, peer_away) = (text(), text(), text(), text());
        let backlog = parts.next().map(entries).unwrap_or_default();
        Ok(ResumeReply::Resumed(Box::new(JoinOutcome {
            room: room.to_string(),
            me: me.clone(),
            joined_id,
            peer: (!peer.is_empty()).then(|| PeerInfo {
                user: peer,
                name: peer_name,
                node: (!peer_node.is_empty()).then_some(peer_node),
            }),
            backlog,
            resume: None,
            resumed: true,
            peer_away: peer_away.parse().ok(),
        })))
    }

    /// Append `event` to `room`'s log and publish it, if `writer` may still
    /// write and the budget allows. A `Left` event closes the room (and is
    /// never refused for the budget). Sets the room's lifetime again.
    pub async fn append(
        &self,
        room: &str,
        event: &RoomEvent,
        writer: Writer<'_>,
    ) -> Result<Appended, RoomLogError> {
        self.append_with(room, event, writer, AppendOptions::default())
            .await
    }

    /// [`RoomLog::append`], setting the room's lifetime again only when
    /// `options.refresh` (a socket asks once per [`Limits::refresh_every`];
    /// a key the script makes again always gets it), and framing the
    /// publication with the sender's stamp for the fan-out stage.
    pub async fn append_with(
        &self,
        room: &str,
        event: &RoomEvent,
        writer: Writer<'_>,
        options: AppendOptions,
    ) -> Result<Appended, RoomLogError> {
        let (closes, limit) = match event.body {
            RoomBody::Left { reason } => (reason.as_str(), String::new()),
            RoomBody::Joined { .. } | RoomBody::Resumed { .. } | RoomBody::Away { .. } => {
                ("", self.limits.budget_bytes.to_string())
            }
            RoomBody::Signal { .. } | RoomBody::Chat { .. } => {
                ("", self.limits.relay_budget().to_string())
            }
        };
        let (fence, fence_value) = writer.fence();
        let encoded = wire::internal::encode(event);
        let args = vec![
            Value::from(wire::keys::room_channel(room)),
            Value::from(&encoded[..]),
            Value::from(ms(self.limits.live_lifetime())),
            Value::from(limit),
            Value::from(closes),
            Value::from(fence),
            Value::from(fence_value),
            Value::from(ms(self.limits.closed_ttl)),
            Value::from(if writer.strict() { "1" } else { "" }),
            Value::from(if options.refresh { "1" } else { "" }),
            Value::from(match options.stamp_us {
                Some(us) => format!("@{us}"),
                None => String::new(),
            }),
        ];
        let reply: Value = service::redis_conn::run_script(
            &self.publish,
            &self.redis,
            vec![wire::keys::room_log(room), wire::keys::room_members(room)],
            args,
        )
        .await?;
        let (status, mut parts) = status(reply);
        match status.as_str() {
            "ok" => {
                let id = parts.next().and_then(|v| v.as_string()).unwrap_or_default();
                StreamId::parse(&id)
                    .map(Appended::Logged)
                    .ok_or_else(|| RoomLogError::Reply(format!("bad stream id {id:?}")))
            }
            "closed" => Ok(Appended::Closed),
            "fenced" => Ok(Appended::Fenced),
            "log_full" => Ok(Appended::LogFull),
            other => Err(RoomLogError::Reply(format!("append status {other:?}"))),
        }
    }

    /// Append `user`'s `Left` with `reason`: ours (`writer` is our
    /// connection), or on behalf of a peer whose node was lost.
    pub async fn leave(
        &self,
        room: &str,
        user: &str,
        name: &str,
        reason: LeaveReason,
        writer: Writer<'_>,
    ) -> Result<Appended, RoomLogError> {
        let event = RoomEvent {
            from: user.to_string(),
            from_name: name.to_string(),
            sent_ms: service::clock::now_ms(),
            body: RoomBody::Left { reason },
        };
        self.append(room, &event, writer).await
    }

    /// The entries of `room`'s log after `after`, in order.
    pub async fn read_after(
        &self,
        room: &str,
        after: StreamId,
    ) -> Result<Vec<(StreamId, RoomEvent)>, RoomLogError> {
        let reply: Value = self
            .redis
            .xrange(wire::keys::room_log(room), format!("({after}"), "+", None)
            .await?;
        Ok(entries(reply))
    }
}

/// Decode an `XRANGE` reply (or a join's backlog, in the same shape). An
/// entry that does not decode is skipped with a warning (only this service
/// writes these streams).
pub fn entries(reply: Value) -> Vec<(StreamId, RoomEvent)> {
    let mut out = Vec::new();
    for entry in service::stream_reply::entries(reply) {
        let Some(id) = StreamId::parse(&entry.id) else {
            tracing::warn!("room log entry without a valid id; skipped");
            continue;
        };
        match entry
            .field(FIELD)
            .map(|p| wire::internal::decode::<RoomEvent>(p))
        {
            Some(Ok(event)) => out.push((id, event)),
            _ => tracing::warn!(%id, "undecodable room log entry; skipped"),
        }
    }
    out
}
