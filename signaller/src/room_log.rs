//! The room log: a Redis stream per room holding, in order, everything its
//! peers said and did (invariant 7).
//!
//! Every event is appended and published in one atomic step by
//! `publish.lua` (one `PUBLISH` per message, no polling). The stream ids are
//! the sequence numbers that make delivery exactly-once: a socket joins by
//! subscribing first, then running `join.lua`, which logs its `Joined` event
//! and returns the log up to that entry; from then on only publications with
//! a larger id are new. Whatever a socket misses (a lagging subscriber, a
//! reconnect), it reads back with [`RoomLog::read_after`].
//!
//! The log is capped at about [`MAX_LEN`] entries and expires
//! `--room-log-ttl-secs` after its last entry. It also carries the room's
//! member list (user → node) and its `closed` mark.

use fred::prelude::*;
use fred::types::scripts::Script;
use wire::internal::{LeaveReason, RoomBody, RoomEvent, StreamId};

use crate::admission::Member;
use crate::session::{JoinOutcome, PeerInfo};

/// About how many entries a room log keeps (`XADD MAXLEN ~`). A peer that
/// sends more than this before the other joins loses the oldest; the rate
/// limit makes that a matter of abuse, not of normal calls.
pub const MAX_LEN: i64 = 500;

/// Stream field holding the MessagePack [`RoomEvent`].
const FIELD: &str = "m";

/// Why the room log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RoomLogError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
}

/// What the join script decided.
#[derive(Debug)]
pub enum JoinReply {
    Joined(JoinOutcome),
    /// Someone left the room: it is over.
    Closed,
    /// This user already joined on another socket.
    AlreadyJoined,
    /// Two other users are in the room.
    Full,
}

/// Appends to and reads room logs.
#[derive(Clone)]
pub struct RoomLog {
    redis: Client,
    node: String,
    ttl_ms: i64,
    join: Script,
    publish: Script,
}

impl RoomLog {
    pub fn new(redis: Client, node: impl Into<String>, ttl: std::time::Duration) -> RoomLog {
        RoomLog {
            redis,
            node: node.into(),
            ttl_ms: ttl.as_millis().clamp(1, i64::MAX as u128) as i64,
            join: Script::from_lua(include_str!("join.lua")),
            publish: Script::from_lua(include_str!("publish.lua")),
        }
    }

    /// Join `room` as `me` (the caller has subscribed to the room channel).
    pub async fn join(&self, room: &str, me: &Member) -> Result<JoinReply, RoomLogError> {
        let joined = RoomEvent {
            from: me.user.to_string(),
            from_name: me.name.clone(),
            sent_ms: service::clock::now_ms(),
            body: RoomBody::Joined {
                node: self.node.clone(),
            },
        };
        let reply: Value = self
            .join
            .evalsha_with_reload(
                &self.redis,
                vec![wire::keys::room_members(room), wire::keys::room_log(room)],
                vec![
                    Value::from(wire::keys::room_channel(room)),
                    Value::from(me.user.as_str()),
                    Value::from(self.node.as_str()),
                    Value::from(me.name.as_str()),
                    Value::from(&wire::internal::encode(&joined)[..]),
                    Value::from(self.ttl_ms),
                    Value::from(MAX_LEN),
                ],
            )
            .await?;
        let mut parts = reply.into_array().into_iter();
        let status = parts.next().and_then(|v| v.as_string()).unwrap_or_default();
        match status.as_str() {
            "closed" => return Ok(JoinReply::Closed),
            "already_joined" => return Ok(JoinReply::AlreadyJoined),
            "full" => return Ok(JoinReply::Full),
            "ok" => {}
            other => return Err(RoomLogError::Reply(format!("join status {other:?}"))),
        }
        let mut text = || parts.next().and_then(|v| v.as_string()).unwrap_or_default();
        let joined_id = StreamId::parse(&text())
            .ok_or_else(|| RoomLogError::Reply("join: bad stream id".into()))?;
        let (peer, peer_node, peer_name) = (text(), text(), text());
        let backlog = parts.next().map(entries).unwrap_or_default();
        Ok(JoinReply::Joined(JoinOutcome {
            room: room.to_string(),
            me: me.clone(),
            joined_id,
            peer: (!peer.is_empty()).then(|| PeerInfo {
                user: peer,
                name: peer_name,
                node: (!peer_node.is_empty()).then_some(peer_node),
            }),
            backlog,
        }))
    }

    /// Append `event` to `room`'s log and publish it. A `Left` event closes
    /// the room.
    pub async fn append(&self, room: &str, event: &RoomEvent) -> Result<StreamId, RoomLogError> {
        let closes = match event.body {
            RoomBody::Left { reason } => reason.as_str(),
            _ => "",
        };
        let id: String = self
            .publish
            .evalsha_with_reload(
                &self.redis,
                vec![wire::keys::room_log(room), wire::keys::room_members(room)],
                vec![
                    Value::from(wire::keys::room_channel(room)),
                    Value::from(&wire::internal::encode(event)[..]),
                    Value::from(self.ttl_ms),
                    Value::from(MAX_LEN),
                    Value::from(closes),
                ],
            )
            .await?;
        StreamId::parse(&id).ok_or_else(|| RoomLogError::Reply(format!("bad stream id {id:?}")))
    }

    /// Append `user`'s `Left` with `reason` (ours, or on behalf of a peer
    /// whose node was lost).
    pub async fn leave(
        &self,
        room: &str,
        user: &str,
        name: &str,
        reason: LeaveReason,
    ) -> Result<StreamId, RoomLogError> {
        let event = RoomEvent {
            from: user.to_string(),
            from_name: name.to_string(),
            sent_ms: service::clock::now_ms(),
            body: RoomBody::Left { reason },
        };
        self.append(room, &event).await
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

/// Decode an `XRANGE` reply: `[[id, [field, value, ...]], ...]`. An entry
/// that does not decode is skipped with a warning (only this service
/// writes these streams).
pub fn entries(reply: Value) -> Vec<(StreamId, RoomEvent)> {
    let mut out = Vec::new();
    for entry in reply.into_array() {
        let mut entry = entry.into_array().into_iter();
        let Some(id) = entry
            .next()
            .and_then(|v| v.as_string())
            .and_then(|s| StreamId::parse(&s))
        else {
            tracing::warn!("room log entry without a valid id; skipped");
            continue;
        };
        let fields = entry.next().map(Value::into_array).unwrap_or_default();
        let payload = fields
            .chunks(2)
            .find(|kv| kv[0].as_str().as_deref() == Some(FIELD))
            .and_then(|kv| kv.get(1))
            .and_then(|v| v.as_bytes().map(<[u8]>::to_vec));
        match payload.map(|p| wire::internal::decode::<RoomEvent>(&p)) {
            Some(Ok(event)) => out.push((id, event)),
            _ => tracing::warn!(%id, "undecodable room log entry; skipped"),
        }
    }
    out
}
