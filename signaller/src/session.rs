//! The protocol of one signalling socket, as a plain state machine.
//!
//! A [`Session`] decides what to answer to which frame in which state, and
//! what to make of each room event, without any socket, Redis or clock of
//! its own (the sans-IO style of quinn-proto). It returns [`Action`]s; the
//! async shell in [`crate::connection`] performs them and feeds the results
//! back in (`on_join_result`, `on_declare_failed`). That keeps every rule of
//! the protocol testable in microseconds, below.
//!
//! States: `Idle` → (join) → `Joining` → `InRoom` → `Over`. A refused join
//! goes back to `Idle`. `Over` is final: the peer or this socket left, or a
//! node was lost; the room is closed for good. A socket replaced by a newer
//! one of the same user (in the same room) is `Over` too, but leaves the
//! room open for the newer socket: it is only closed, with
//! [`wire::CloseCode::Replaced`].
//!
//! Resume (native only): a native socket that closes does not leave its
//! room; it logs that it is `Away` and may come back within the grace
//! window, on a new socket on any node, with its resume credential and the
//! `last_id` of the last event it handled ([`JoinRequest::Resume`]). The
//! peer's session tells its client `peer-reconnecting`, arms a timer for
//! the deadline, and logs the peer's `Left { Timeout }` if it passes;
//! `Resumed` from the peer disarms it (`peer-resumed`). A peer whose node
//! died is declared `Away` the same way instead of lost. Legacy sockets
//! cannot resume and keep the old behaviour (`Left` on close, `NodeLost`).

use serde_json::value::RawValue;
use wire::internal::{LeaveReason, RoomBody, RoomEvent, StreamId};
use wire::signaller_api::{Join, SignallerClientMsg, SignallerEvent};

use wire::user::UserKey;

use crate::admission::{JoinRefusal, Member};

/// Which protocol the socket speaks, fixed by the URL it connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialect {
    /// `WS /ws/{name}`: the original React client; identified by name.
    Legacy { name: String },
    /// `WS /ws`: our own clients; identified by the ticket they join with.
    Native,
}

/// What a client asked to join with; checked by [`crate::admission`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRequest {
    /// A legacy join: the room record in Redis says whether `name` is a member.
    Legacy { name: String, room: String },
    /// A native join: the signed ticket says it all. `room` is the
    /// `room_code` the client also sent, if any; it must match the ticket.
    Native {
        ticket: String,
        room: Option<String>,
    },
    /// A native session resuming on this socket: the credential from
    /// `joined`/`resumed`/`reconnect`, and the id of the last room-log
    /// entry the client handled (replay starts after it).
    Resume {
        credential: String,
        last_id: StreamId,
        room: Option<String>,
    },
}

/// The other member of the room, as far as this socket knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub user: String,
    pub name: String,
    /// The signaller node the peer's socket is on, once known.
    pub node: Option<String>,
}

/// What the join script found and did (see [`crate::room_log`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinOutcome {
    pub room: String,
    pub me: Member,
    /// Id of our own `Joined` entry in the room log.
    pub joined_id: StreamId,
    /// The peer, if it had joined before us.
    pub peer: Option<PeerInfo>,
    /// The room log up to and including our `Joined` entry (after a
    /// resume: the entries after the client's `last_id`, up to and
    /// including our `Resumed` entry, whose id is `joined_id`).
    pub backlog: Vec<(StreamId, RoomEvent)>,
    /// Native: the credential this session resumes with (bound to this
    /// connection); `None` for legacy sockets, which cannot resume.
    pub resume: Option<String>,
    /// This was a resume, not a first join (the reply is `resumed`).
    pub resumed: bool,
    /// The peer's session is away until this deadline (ms), as the room's
    /// member list says at the join.
    pub peer_away: Option<u64>,
}

/// Something the shell must do, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this event to the client.
    Send(SignallerEvent),
    /// Close the socket with this code and end the connection; `reason`
    /// is for the log (the close frame carries [`wire::CloseCode::reason`]).
    Close {
        code: wire::CloseCode,
        reason: &'static str,
    },
    /// Check the request, subscribe, run the join script, and call
    /// [`Session::on_join_result`].
    Join(JoinRequest),
    /// Append this to the room log as ours (and publish it); on failure tell
    /// the client `unavailable`; if the log refuses it, call
    /// [`Session::on_publish_refused`].
    Publish(RoomBody),
    /// Append our `Left` to the room log, closing the room, then call
    /// [`Session::on_left`] with whether the log took it.
    Leave(LeaveReason),
    /// We are no longer in the room: stop counting it among our user's
    /// rooms (see [`crate::room_log::RoomLog::claim`]).
    Release,
    /// Tell this socket when `node` stops heartbeating.
    Watch { node: String },
    /// Stop watching any node for this socket.
    Unwatch,
    /// The peer's node (`node`) is gone: append a `Left { NodeLost }` in
    /// the peer's name, closing the room, unless the peer's socket has
    /// moved to another node meanwhile; its echo tells our client. If that
    /// fails, call [`Session::on_declare_failed`].
    DeclarePeerLost {
        user: String,
        name: String,
        node: String,
    },
    /// Our socket is gone but our session may resume: append our `Away`
    /// (with the grace deadline), fenced with our connection.
    GoAway,
    /// The native peer's node (`node`) is gone: append an `Away` in the
    /// peer's name, unless its socket has moved meanwhile; its echo tells
    /// our client. If that fails, call [`Session::on_declare_failed`].
    DeclarePeerAway {
        user: String,
        name: String,
        node: String,
    },
    /// Call [`Session::on_grace_expired`] at `until_ms` (ms since the Unix
    /// epoch), replacing any earlier timer (one going off once the room is
    /// over does nothing).
    ArmGrace { until_ms: u64 },
    /// Cancel the grace timer.
    DisarmGrace,
    /// The peer did not come back by `until_ms`: append its `Left
    /// { Timeout }`, unless it resumed (its away mark no longer holds
    /// `until_ms`). If that fails, call [`Session::on_timeout_failed`].
    DeclarePeerTimedOut {
        user: String,
        name: String,
        until_ms: u64,
    },
    /// Another node declared our session away while this socket is alive
    /// (it judged our node dead): take our place back at once, as a
    /// resume of this very connection would.
    Reclaim,
}

/// Equality for tests: `SignallerEvent` holds raw JSON, compared as written.
#[cfg(test)]
impl PartialEq for Action {
    fn eq(&self, other: &Action) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

#[derive(Debug, Clone, PartialEq)]
struct InRoom {
    code: String,
    me: Member,
    peer: Option<PeerInfo>,
    /// Highest room-log id delivered (or skipped as ours): the exactly-once cursor.
    last: StreamId,
    /// Our own `Joined` entry: a later `Joined` of our user is a newer
    /// socket replacing this one.
    joined_id: StreamId,
    /// A `DeclarePeerLost` was issued; do not issue another.
    declared: bool,
    /// Our resume credential (native).
    resume: Option<String>,
    /// The peer's session is away until this deadline (ms).
    peer_away: Option<u64>,
    /// A `DeclarePeerTimedOut` was issued for this deadline.
    timing_out: bool,
}

impl InRoom {
    /// Record what an event says about the peer; whether it was known before.
    fn learn_peer(&mut self, event: &RoomEvent, node: Option<&String>) -> bool {
        match &mut self.peer {
            Some(peer) => {
                if let Some(node) = node {
                    if peer.node.as_ref() != Some(node) {
                        // A new node to judge: a loss of the old one is moot.
                        self.declared = false;
                    }
                    peer.node = Some(node.clone());
                }
                true
            }
            None => {
                self.peer = Some(PeerInfo {
                    user: event.from.clone(),
                    name: event.from_name.clone(),
                    node: node.cloned(),
                });
                false
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    Joining,
    InRoom(InRoom),
    /// Final. The room the socket was in, kept for its clean-up (`None`
    /// when it ended before joining one: a bad legacy name).
    Over(Option<InRoom>),
}

/// Why the room log refused what this socket sent (see
/// [`crate::room_log::Appended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefusal {
    /// The room is over (its `Left` is on its way to us).
    RoomClosed,
    /// A newer socket of our user joined the room: this one may not write.
    Replaced,
    /// The room log has used its byte budget.
    LogFull,
}

/// One socket's protocol state.
#[derive(Debug)]
pub struct Session {
    dialect: Dialect,
    node: String,
    state: State,
}

impl Session {
    /// A session for a socket on signaller node `node`.
    pub fn new(dialect: Dialect, node: impl Into<String>) -> Session {
        Session {
            dialect,
            node: node.into(),
            state: State::Idle,
        }
    }

    /// What to do as soon as the socket is open: refuse a bad legacy name.
    pub fn on_open(&mut self) -> Vec<Action> {
        match &self.dialect {
            Dialect::Legacy { name } if !wire::limits::valid_name(name) => {
                self.state = State::Over(None);
                vec![
                    Action::Send(SignallerEvent::error(
                        wire::ErrorCode::BadName,
                        "the name must be 1 to 64 characters, without control characters",
                    )),
                    Action::Close {
                        code: wire::CloseCode::Policy,
                        reason: "bad name",
                    },
                ]
            }
            _ => Vec::new(),
        }
    }

    /// The room this socket joined (live or over), if any.
    fn joined(&self) -> Option<&InRoom> {
        match &self.state {
            State::InRoom(r) | State::Over(Some(r)) => Some(r),
            _ => None,
        }
    }

    /// The room this socket joined (or is over with), if any.
    pub fn room(&self) -> Option<&str> {
        self.joined().map(|r| r.code.as_str())
    }

    /// Who this socket is in the room it joined (or is over with), if any.
    pub fn member(&self) -> Option<&Member> {
        self.joined().map(|r| &r.me)
    }

    /// The id of the last room-log entry handled, for a resync.
    pub fn last_delivered(&self) -> Option<StreamId> {
        match &self.state {
            State::InRoom(r) => Some(r.last),
            _ => None,
        }
    }

    /// Whether the room is live for this socket (joined, not over).
    pub fn in_room(&self) -> bool {
        matches!(self.state, State::InRoom(_))
    }

    /// A text frame the flood limit refused: it is not processed, and the
    /// client is told which one, every time (nothing vanishes unanswered).
    pub fn on_rate_limited(&mut self, text: &str) -> Vec<Action> {
        vec![error(
            wire::ErrorCode::RateLimited,
            service::ws::rate_limited_message(text),
        )]
    }

    /// A text frame from the client.
    pub fn on_text(&mut self, text: &str) -> Vec<Action> {
        let msg = match SignallerClientMsg::decode(text) {
            Ok(msg) => msg,
            Err(e) => return vec![Action::Send(SignallerEvent::error(e.code(), e.to_string()))],
        };
        match msg {
            SignallerClientMsg::Ping => vec![Action::Send(SignallerEvent::Pong {})],
            SignallerClientMsg::Join(join) => self.on_join(join),
            SignallerClientMsg::Signal(signal) => {
                let size =
                    signal.data.get().len() + signal.kind.as_ref().map_or(0, |k| k.get().len());
                if size > wire::limits::MAX_SIGNAL_BYTES {
                    return vec![error(
                        wire::ErrorCode::TooLarge,
                        format!(
                            "this signal was not relayed: its data and type are {size} bytes, \
                             signals are at most {} bytes",
                            wire::limits::MAX_SIGNAL_BYTES
                        ),
                    )];
                }
                self.relay(RoomBody::Signal {
                    data_json: signal.data.get().to_string(),
                    type_json: signal.kind.map(|k| k.get().to_string()),
                })
            }
            SignallerClientMsg::Chat { message } => {
                if message.chars().count() > wire::limits::MAX_CHAT_CHARS {
                    return vec![error(
                        wire::ErrorCode::TooLong,
                        "chat messages are at most 2000 characters",
                    )];
                }
                self.relay(RoomBody::Chat { message })
            }
            SignallerClientMsg::Leave => match self.state {
                State::InRoom(_) => self.leave_with(LeaveReason::Left),
                State::Over(_) => Vec::new(),
                State::Idle | State::Joining => vec![not_joined()],
            },
        }
    }

    fn on_join(&mut self, join: Join) -> Vec<Action> {
        match self.state {
            State::Idle => {}
            State::Joining | State::InRoom(_) | State::Over(_) => {
                return vec![error(
                    wire::ErrorCode::AlreadyJoined,
                    "this socket already joined a room",
                )]
            }
        }
        let request = match &self.dialect {
            Dialect::Legacy { name } => match join.room_code {
                Some(room) if !room.is_empty() => JoinRequest::Legacy {
                    name: name.clone(),
                    room,
                },
                _ => return vec![error(wire::ErrorCode::BadMessage, "join needs a room_code")],
            },
            Dialect::Native => match (join.resume, join.ticket) {
                (Some(credential), _) => {
                    let last_id = match join.last_id.as_deref() {
                        None => StreamId::default(),
                        Some(id) => match StreamId::parse(id) {
                            Some(id) => id,
                            None => {
                                return vec![error(
                                    wire::ErrorCode::BadMessage,
                                    "last_id must be the last_id of an event this socket's \
                                     session was sent (<ms>-<seq>)",
                                )]
                            }
                        },
                    };
                    JoinRequest::Resume {
                        credential,
                        last_id,
                        room: join.room_code,
                    }
                }
                (None, Some(ticket)) => JoinRequest::Native {
                    ticket,
                    room: join.room_code,
                },
                (None, None) => {
                    return vec![error(
                        wire::ErrorCode::BadMessage,
                        "join needs the ticket from matched (or resume and last_id)",
                    )]
                }
            },
        };
        self.state = State::Joining;
        vec![Action::Join(request)]
    }

    fn relay(&mut self, body: RoomBody) -> Vec<Action> {
        match self.state {
            State::InRoom(_) => vec![Action::Publish(body)],
            State::Over(_) => vec![error(wire::ErrorCode::RoomClosed, "the room is over")],
            State::Idle | State::Joining => vec![not_joined()],
        }
    }

    /// The outcome of an [`Action::Join`].
    pub fn on_join_result(&mut self, result: Result<JoinOutcome, JoinRefusal>) -> Vec<Action> {
        if self.state != State::Joining {
            return Vec::new();
        }
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(refusal) => {
                self.state = State::Idle;
                return vec![error(refusal.code(), refusal.to_string())];
            }
        };
        let role = outcome.me.role.as_str().to_string();
        let resume = match self.dialect {
            Dialect::Native => outcome.resume.clone(),
            Dialect::Legacy { .. } => None,
        };
        let peer_away = outcome.peer.as_ref().and(outcome.peer_away);
        let mut actions = vec![Action::Send(match self.dialect {
            Dialect::Legacy { .. } => SignallerEvent::Verified {
                room_code: outcome.room.clone(),
                role,
            },
            Dialect::Native if outcome.resumed => SignallerEvent::Resumed {
                room_code: outcome.room.clone(),
                role,
                peer_present: outcome.peer.is_some(),
                peer_name: outcome.peer.as_ref().map(|p| p.name.clone()),
                peer_reconnecting: peer_away.is_some(),
                resume: resume.clone().unwrap_or_default(),
            },
            Dialect::Native => SignallerEvent::Joined {
                room_code: outcome.room.clone(),
                role,
                peer_present: outcome.peer.is_some(),
                peer_name: outcome.peer.as_ref().map(|p| p.name.clone()),
                resume: resume.clone(),
            },
        })];
        // An away peer's node may be dead: nothing to watch until it is back.
        if let Some(node) = outcome.peer.as_ref().and_then(|p| p.node.clone()) {
            if node != self.node && peer_away.is_none() {
                actions.push(Action::Watch { node });
            }
        }
        self.state = State::InRoom(InRoom {
            code: outcome.room,
            me: outcome.me,
            peer: outcome.peer,
            last: StreamId::default(),
            joined_id: outcome.joined_id,
            declared: false,
            resume,
            peer_away: None,
            timing_out: false,
        });
        for (id, event) in &outcome.backlog {
            actions.extend(self.on_room_event(*id, event));
        }
        if let State::InRoom(r) = &mut self.state {
            r.last = r.last.max(outcome.joined_id);
            // The member list is the truth at the join, whatever the
            // replayed part of the log said.
            r.peer_away = peer_away;
            if let Some(until_ms) = peer_away {
                actions.push(Action::ArmGrace { until_ms });
            }
        }
        actions
    }

    /// An entry of the room log (live or replayed). Entries at or below the
    /// cursor were handled already and are skipped: exactly once, in order.
    pub fn on_room_event(&mut self, id: StreamId, event: &RoomEvent) -> Vec<Action> {
        let State::InRoom(room) = &mut self.state else {
            return Vec::new();
        };
        if id <= room.last {
            return Vec::new();
        }
        room.last = id;
        let native = self.dialect == Dialect::Native;
        let last_id = native.then(|| id.to_string());
        if event.from == room.me.user.as_str() {
            // A `Joined` (or `Resumed`) of our user after ours: a newer
            // socket of the same user joined and replaces this one. The
            // room stays open for it; this socket is closed without a word
            // to the peer.
            if matches!(
                event.body,
                RoomBody::Joined { .. } | RoomBody::Resumed { .. }
            ) && id > room.joined_id
            {
                return self.replaced();
            }
            // A peer's node judged ours dead and declared us away while
            // this socket is alive: take our place back.
            if matches!(event.body, RoomBody::Away { .. }) && id > room.joined_id {
                return vec![Action::Reclaim];
            }
            // Our own entries are not echoed, except a verdict that ends
            // our session (a peer's node judged us dead, or our grace ran
            // out): the room is over.
            if let RoomBody::Left {
                reason: reason @ (LeaveReason::NodeLost | LeaveReason::Timeout),
            } = event.body
            {
                let name = room
                    .peer
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                return self.end(&name, reason, None);
            }
            return Vec::new();
        }
        if let Some(peer) = &room.peer {
            if peer.user != event.from {
                // A third party cannot be in the room (the join script
                // refuses it); never relay one.
                return Vec::new();
            }
        }
        match &event.body {
            RoomBody::Signal {
                data_json,
                type_json,
            } => {
                room.learn_peer(event, None);
                let Ok(data) = RawValue::from_string(data_json.clone()) else {
                    return Vec::new();
                };
                let kind = type_json
                    .as_ref()
                    .and_then(|t| RawValue::from_string(t.clone()).ok());
                vec![Action::Send(SignallerEvent::Signal {
                    room_code: room.code.clone(),
                    from: event.from_name.clone(),
                    kind,
                    data,
                    last_id,
                })]
            }
            RoomBody::Chat { message } => {
                room.learn_peer(event, None);
                vec![Action::Send(SignallerEvent::Chat {
                    sender: event.from_name.clone(),
                    message: message.clone(),
                    timestamp: wire::unix_seconds(event.sent_ms),
                    last_id,
                })]
            }
            RoomBody::Away { until_ms } => {
                room.learn_peer(event, None);
                room.peer_away = Some(*until_ms);
                room.timing_out = false;
                let mut actions = vec![
                    Action::Unwatch,
                    Action::ArmGrace {
                        until_ms: *until_ms,
                    },
                ];
                if native {
                    actions.push(Action::Send(SignallerEvent::PeerReconnecting {
                        peer_name: event.from_name.clone(),
                        last_id: id.to_string(),
                    }));
                }
                actions
            }
            RoomBody::Joined { node } | RoomBody::Resumed { node } => {
                let was_known = room.learn_peer(event, Some(node));
                // Back from away (a resume, or a fresh join with its ticket).
                let was_away = room.peer_away.take().is_some();
                let resumed = matches!(event.body, RoomBody::Resumed { .. });
                let mut actions = Vec::new();
                if was_away {
                    actions.push(Action::DisarmGrace);
                }
                // The peer's newest socket decides which node to watch: a
                // replacing socket may have moved it (or onto our own node,
                // which needs no watching).
                actions.push(if *node != self.node {
                    Action::Watch { node: node.clone() }
                } else {
                    Action::Unwatch
                });
                if native && !was_known {
                    actions.push(Action::Send(SignallerEvent::PeerJoined {
                        peer_name: event.from_name.clone(),
                        last_id,
                    }));
                } else if native && (resumed || was_away) {
                    actions.push(Action::Send(SignallerEvent::PeerResumed {
                        peer_name: event.from_name.clone(),
                        last_id: id.to_string(),
                    }));
                }
                actions
            }
            RoomBody::Left { reason } => self.end(&event.from_name, *reason, last_id),
        }
    }

    /// The room is over because the peer left (or was lost): tell the client.
    fn end(
        &mut self,
        peer_name: &str,
        reason: LeaveReason,
        last_id: Option<String>,
    ) -> Vec<Action> {
        if !self.close_room() {
            return Vec::new();
        }
        let notice = match self.dialect {
            Dialect::Legacy { .. } => SignallerEvent::PeerDisconnected {
                message: format!("{peer_name} has disconnected"),
            },
            Dialect::Native => SignallerEvent::PeerLeft {
                peer_name: peer_name.to_string(),
                reason: reason.as_str().to_string(),
                last_id,
            },
        };
        vec![Action::Unwatch, Action::Release, Action::Send(notice)]
    }

    /// A newer socket of our user joined the room: close this one, leaving
    /// the room (and the user's claim on it) to the newer socket.
    fn replaced(&mut self) -> Vec<Action> {
        if !self.close_room() {
            return Vec::new();
        }
        vec![
            Action::Unwatch,
            Action::Close {
                code: wire::CloseCode::Replaced,
                reason: "replaced by a newer socket of the same user",
            },
        ]
    }

    /// Our `Left` was handled (see [`Action::Leave`]); `fenced` when the
    /// log refused it because a newer socket of our user had joined the
    /// room meanwhile (before this socket heard of it): the room, and the
    /// user's claim on it, are that socket's, so nothing is released.
    pub fn on_left(&mut self, fenced: bool) -> Vec<Action> {
        if fenced {
            Vec::new()
        } else {
            vec![Action::Release]
        }
    }

    /// The room log refused `body` (see [`Action::Publish`]): the client is
    /// told what was not relayed, and why.
    pub fn on_publish_refused(&mut self, body: &RoomBody, refusal: PublishRefusal) -> Vec<Action> {
        let what = match body {
            RoomBody::Signal { .. } => "signal",
            RoomBody::Chat { .. } => "chat",
            RoomBody::Joined { .. } | RoomBody::Resumed { .. } => "join",
            RoomBody::Away { .. } => "away",
            RoomBody::Left { .. } => "leave",
        };
        match refusal {
            PublishRefusal::Replaced => self.replaced(),
            // The `Left` that closed the room is on its way and ends the
            // room for this socket when it arrives.
            PublishRefusal::RoomClosed => vec![error(
                wire::ErrorCode::RoomClosed,
                format!("the room is over: this {what} was not relayed"),
            )],
            PublishRefusal::LogFull => vec![error(
                wire::ErrorCode::RoomLogFull,
                format!(
                    "this {what} was not relayed: the room has stored as much as one room may \
                     (its log's byte budget is used up)"
                ),
            )],
        }
    }

    /// Signaller node `node` stopped heartbeating.
    pub fn on_node_lost(&mut self, node: &str) -> Vec<Action> {
        let State::InRoom(room) = &mut self.state else {
            return Vec::new();
        };
        match &room.peer {
            Some(peer)
                if peer.node.as_deref() == Some(node)
                    && !room.declared
                    && room.peer_away.is_none() =>
            {
                room.declared = true;
                let (user, name, node) = (peer.user.clone(), peer.name.clone(), node.to_string());
                // A native peer may resume elsewhere: away, not lost.
                let declare = if UserKey::from_raw(user.clone()).is_legacy() {
                    Action::DeclarePeerLost { user, name, node }
                } else {
                    Action::DeclarePeerAway { user, name, node }
                };
                vec![Action::Unwatch, declare]
            }
            _ => Vec::new(),
        }
    }

    /// Our [`Action::Reclaim`] was logged as entry `id`: its echo is ours,
    /// not a newer socket's.
    pub fn on_reclaimed(&mut self, id: StreamId) {
        if let State::InRoom(room) = &mut self.state {
            room.joined_id = room.joined_id.max(id);
        }
    }

    /// The grace timer armed by [`Action::ArmGrace`] went off: if the peer
    /// is still away past its deadline (`now_ms`), declare it timed out.
    pub fn on_grace_expired(&mut self, now_ms: u64) -> Vec<Action> {
        let State::InRoom(room) = &mut self.state else {
            return Vec::new();
        };
        match (&room.peer, room.peer_away) {
            (Some(peer), Some(until_ms)) if now_ms >= until_ms && !room.timing_out => {
                room.timing_out = true;
                vec![Action::DeclarePeerTimedOut {
                    user: peer.user.clone(),
                    name: peer.name.clone(),
                    until_ms,
                }]
            }
            (Some(_), Some(until_ms)) if now_ms < until_ms => vec![Action::ArmGrace { until_ms }],
            _ => Vec::new(),
        }
    }

    /// The `DeclarePeerTimedOut` could not be written (Redis is down): tell
    /// our client directly.
    pub fn on_timeout_failed(&mut self) -> Vec<Action> {
        let name = match &self.state {
            State::InRoom(room) => room
                .peer
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            _ => return Vec::new(),
        };
        self.end(&name, LeaveReason::Timeout, None)
    }

    /// The credential and cursor this session resumes with (native, in a
    /// room), for a `reconnect`.
    pub fn resume_point(&self) -> Option<(String, StreamId)> {
        match &self.state {
            State::InRoom(r) => r.resume.clone().map(|c| (c, r.last)),
            _ => None,
        }
    }

    /// The `DeclarePeerLost` could not be written (Redis is down): tell our
    /// client directly.
    pub fn on_declare_failed(&mut self) -> Vec<Action> {
        self.end_node_lost()
    }

    /// The room is over because a node was lost (the peer's, or ours as
    /// the peer's node judged): tell the client, naming the peer.
    fn end_node_lost(&mut self) -> Vec<Action> {
        let name = match &self.state {
            State::InRoom(room) => room
                .peer
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            _ => return Vec::new(),
        };
        self.end(&name, LeaveReason::NodeLost, None)
    }

    /// The socket closed (or failed): leave the room if in one; a native
    /// session goes away instead, and may resume within the grace window.
    pub fn on_closed(&mut self) -> Vec<Action> {
        if self.dialect == Dialect::Native && self.close_room() {
            return vec![Action::Unwatch, Action::GoAway];
        }
        self.leave_with(LeaveReason::Disconnected)
    }

    /// The node is shutting down gracefully. A native session in a room is
    /// told to `reconnect` (to any node) with what it needs to resume, and
    /// the socket stays served until it moves or closes; anything else
    /// leaves its room and is closed with 1001.
    pub fn on_drain(&mut self) -> Vec<Action> {
        if self.dialect == Dialect::Native {
            if let Some((resume, last)) = self.resume_point() {
                return vec![Action::Send(SignallerEvent::Reconnect {
                    reason: "draining".into(),
                    resume,
                    last_id: last.to_string(),
                })];
            }
        }
        let mut actions = self.leave_with(LeaveReason::Drained);
        actions.push(Action::Close {
            code: wire::CloseCode::GoingAway,
            reason: "node draining",
        });
        actions
    }

    fn leave_with(&mut self, reason: LeaveReason) -> Vec<Action> {
        if self.close_room() {
            return vec![Action::Unwatch, Action::Leave(reason)];
        }
        if self.state == State::Joining {
            self.state = State::Idle;
        }
        Vec::new()
    }

    /// The room is over for this socket from now on (`InRoom` → `Over`);
    /// whether it was in the room.
    fn close_room(&mut self) -> bool {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::InRoom(room) => {
                self.state = State::Over(Some(room));
                true
            }
            other => {
                self.state = other;
                false
            }
        }
    }
}

fn error(code: wire::ErrorCode, message: impl Into<String>) -> Action {
    Action::Send(SignallerEvent::error(code, message))
}

fn not_joined() -> Action {
    error(wire::ErrorCode::NotJoined, "join a room first")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use wire::user::{Role, UserKey};

    const NODE: &str = "node-a";

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    fn sent(actions: &[Action]) -> Vec<Value> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(e) => Some(serde_json::from_str(&e.to_json()).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn ev(from: &str, name: &str, body: RoomBody) -> RoomEvent {
        RoomEvent {
            from: from.into(),
            from_name: name.into(),
            sent_ms: 1_000,
            body,
        }
    }

    /// A `Joined` entry of `from` on signaller node `node`.
    fn joined_ev(from: &str, name: &str, node: &str) -> RoomEvent {
        ev(
            from,
            name,
            RoomBody::Joined {
                node: node.to_string(),
            },
        )
    }

    fn signal(n: u32) -> RoomBody {
        RoomBody::Signal {
            data_json: format!(r#"{{"n":{n}}}"#),
            type_json: Some(r#""signal""#.into()),
        }
    }

    fn alice() -> Member {
        Member {
            user: UserKey::legacy("alice"),
            name: "alice".into(),
            role: Role::Initiator,
        }
    }

    fn outcome(peer: Option<PeerInfo>, backlog: Vec<(StreamId, RoomEvent)>) -> JoinOutcome {
        JoinOutcome {
            room: "R".into(),
            me: alice(),
            joined_id: id(10),
            peer,
            backlog,
            resume: Some("cred".into()),
            resumed: false,
            peer_away: None,
        }
    }

    fn joined(dialect: Dialect, peer: Option<PeerInfo>) -> (Session, Vec<Action>) {
        let mut s = Session::new(dialect, NODE);
        let join = match s.dialect {
            Dialect::Legacy { .. } => r#"{"event":"join","room_code":"R","role":"initiator"}"#,
            Dialect::Native => r#"{"event":"join","ticket":"t"}"#,
        };
        assert!(matches!(s.on_text(join)[..], [Action::Join(_)]));
        let actions = s.on_join_result(Ok(outcome(peer, vec![])));
        (s, actions)
    }

    fn legacy() -> Dialect {
        Dialect::Legacy {
            name: "alice".into(),
        }
    }

    fn bob_on(node: &str) -> PeerInfo {
        PeerInfo {
            user: "l:bob".into(),
            name: "bob".into(),
            node: Some(node.into()),
        }
    }

    #[test]
    fn legacy_join_asks_for_the_room_record_with_the_url_name() {
        let mut s = Session::new(legacy(), NODE);
        assert_eq!(
            s.on_text(r#"{"event":"join","room_code":"R","target":"","type":"offer"}"#),
            vec![Action::Join(JoinRequest::Legacy {
                name: "alice".into(),
                room: "R".into()
            })]
        );
    }

    #[test]
    fn native_join_needs_a_ticket_and_legacy_a_room() {
        let mut s = Session::new(Dialect::Native, NODE);
        assert_eq!(
            sent(&s.on_text(r#"{"event":"join","room_code":"R"}"#))[0]["code"],
            "bad_message"
        );
        let mut s = Session::new(legacy(), NODE);
        assert_eq!(
            sent(&s.on_text(r#"{"event":"join","ticket":"t"}"#))[0]["code"],
            "bad_message"
        );
    }

    #[test]
    fn frames_before_join_are_refused_and_bad_frames_explained() {
        let mut s = Session::new(Dialect::Native, NODE);
        for (frame, code) in [
            (r#"{"event":"signal","data":{}}"#, "not_joined"),
            (r#"{"event":"chat","message":"hi"}"#, "not_joined"),
            (r#"{"event":"leave"}"#, "not_joined"),
            ("{nope", "bad_json"),
            (r#"{"event":"dance"}"#, "unknown_event"),
            (r#"{"event":"signal"}"#, "bad_message"),
        ] {
            assert_eq!(sent(&s.on_text(frame))[0]["code"], code, "{frame}");
        }
        assert_eq!(sent(&s.on_text(r#"{"event":"ping"}"#))[0]["event"], "pong");
    }

    #[test]
    fn every_frame_refused_for_rate_is_answered() {
        let (mut s, _) = joined(Dialect::Native, None);
        for _ in 0..3 {
            let answer = sent(&s.on_rate_limited(r#"{"event":"signal","data":{}}"#));
            assert_eq!(answer.len(), 1);
            assert_eq!(answer[0]["code"], "rate_limited");
            assert!(answer[0]["message"].as_str().unwrap().contains("signal"));
        }
        assert!(s.in_room(), "refusing frames changes nothing else");
    }

    #[test]
    fn a_bad_legacy_name_is_refused_at_once() {
        let mut s = Session::new(
            Dialect::Legacy {
                name: "a\u{7}b".into(),
            },
            NODE,
        );
        let actions = s.on_open();
        assert_eq!(sent(&actions)[0]["code"], "bad_name");
        assert!(matches!(
            actions[1],
            Action::Close {
                code: wire::CloseCode::Policy,
                ..
            }
        ));
        assert!(Session::new(legacy(), NODE).on_open().is_empty());
    }

    #[test]
    fn refused_join_can_be_retried_and_second_join_is_refused() {
        let mut s = Session::new(legacy(), NODE);
        let join = r#"{"event":"join","room_code":"R"}"#;
        s.on_text(join);
        let actions = s.on_join_result(Err(JoinRefusal::NoRoom));
        assert_eq!(sent(&actions)[0]["code"], "no_room");
        assert!(matches!(s.on_text(join)[..], [Action::Join(_)]));
        s.on_join_result(Ok(outcome(None, vec![])));
        assert_eq!(sent(&s.on_text(join))[0]["code"], "already_joined");
    }

    #[test]
    fn legacy_gets_verified_native_gets_joined_with_peer_presence() {
        let (_, actions) = joined(legacy(), None);
        assert_eq!(
            sent(&actions),
            vec![json!({"event":"verified","room_code":"R","role":"initiator"})]
        );
        let (_, actions) = joined(Dialect::Native, Some(bob_on("node-b")));
        assert_eq!(
            sent(&actions),
            vec![json!({"event":"joined","room_code":"R","role":"initiator",
                        "peer_present":true,"peer_name":"bob","resume":"cred"})]
        );
        assert!(actions.contains(&Action::Watch {
            node: "node-b".into()
        }));
        // A peer on our own node needs no watching: if we die, so does it.
        let (_, actions) = joined(Dialect::Native, Some(bob_on(NODE)));
        assert!(!actions.iter().any(|a| matches!(a, Action::Watch { .. })));
    }

    #[test]
    fn backlog_is_replayed_in_order_without_our_own_entries() {
        let mut s = Session::new(legacy(), NODE);
        s.on_text(r#"{"event":"join","room_code":"R"}"#);
        let backlog = vec![
            (id(1), joined_ev("l:bob", "bob", "node-b")),
            (id(2), ev("l:bob", "bob", signal(1))),
            (id(3), ev("l:bob", "bob", signal(2))),
            (id(10), joined_ev("l:alice", "alice", NODE)),
        ];
        let actions = s.on_join_result(Ok(outcome(Some(bob_on("node-b")), backlog)));
        let out = sent(&actions);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[1]["data"], json!({"n":1}));
        assert_eq!(out[1]["from"], "bob");
        assert_eq!(out[1]["type"], "signal");
        assert_eq!(out[2]["data"], json!({"n":2}));
        // Live copies of what the backlog held are not delivered again.
        assert!(s
            .on_room_event(id(3), &ev("l:bob", "bob", signal(2)))
            .is_empty());
        assert!(s
            .on_room_event(id(10), &ev("l:bob", "bob", signal(9)))
            .is_empty());
        assert_eq!(
            sent(&s.on_room_event(id(11), &ev("l:bob", "bob", signal(3)))).len(),
            1
        );
        assert_eq!(s.last_delivered(), Some(id(11)));
    }

    #[test]
    fn signal_from_and_type_are_the_servers_not_the_clients() {
        let (mut s, _) = joined(legacy(), None);
        let out = sent(&s.on_room_event(
            id(11),
            &ev(
                "l:bob",
                "bob",
                RoomBody::Signal {
                    data_json: r#"{"sdp":"v=0\r\n"}"#.into(),
                    type_json: None,
                },
            ),
        ));
        assert_eq!(
            out,
            vec![json!({"event":"signal","room_code":"R","from":"bob","data":{"sdp":"v=0\r\n"}})]
        );
    }

    #[test]
    fn late_peer_is_announced_to_native_only_and_watched() {
        for dialect in [legacy(), Dialect::Native] {
            let native = dialect == Dialect::Native;
            let (mut s, _) = joined(dialect, None);
            let actions = s.on_room_event(id(11), &joined_ev("s:bob", "bob", "node-b"));
            assert!(actions.contains(&Action::Watch {
                node: "node-b".into()
            }));
            let out = sent(&actions);
            if native {
                assert_eq!(
                    out,
                    vec![json!({"event":"peer-joined","peer_name":"bob","last_id":"11-0"})]
                );
            } else {
                assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn publish_only_in_the_room() {
        let (mut s, _) = joined(Dialect::Native, None);
        assert!(matches!(
            s.on_text(r#"{"event":"signal","data":{"a":1},"target":"x","from":"mallory"}"#)[..],
            [Action::Publish(RoomBody::Signal { .. })]
        ));
        assert!(matches!(
            s.on_text(r#"{"event":"chat","message":"hi"}"#)[..],
            [Action::Publish(RoomBody::Chat { .. })]
        ));
        let long = format!(r#"{{"event":"chat","message":"{}"}}"#, "x".repeat(2001));
        assert_eq!(sent(&s.on_text(&long))[0]["code"], "too_long");
    }

    #[test]
    fn peer_leaving_ends_the_room_with_the_dialects_notice() {
        let (mut s, _) = joined(legacy(), Some(bob_on("node-b")));
        let out = sent(&s.on_room_event(
            id(11),
            &ev(
                "l:bob",
                "bob",
                RoomBody::Left {
                    reason: LeaveReason::Disconnected,
                },
            ),
        ));
        assert_eq!(
            out,
            vec![json!({"event":"peer-disconnected","message":"bob has disconnected"})]
        );
        assert!(!s.in_room());
        assert_eq!(
            sent(&s.on_text(r#"{"event":"signal","data":{}}"#))[0]["code"],
            "room_closed"
        );
        // The socket closing now writes nothing more: the room is closed.
        assert!(s.on_closed().is_empty());

        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        let out = sent(&s.on_room_event(
            id(11),
            &ev(
                "l:bob",
                "bob",
                RoomBody::Left {
                    reason: LeaveReason::Left,
                },
            ),
        ));
        assert_eq!(
            out,
            vec![json!({"event":"peer-left","peer_name":"bob","reason":"left","last_id":"11-0"})]
        );
    }

    #[test]
    fn our_leave_close_and_drain_write_left_once() {
        let (mut s, _) = joined(Dialect::Native, None);
        assert_eq!(
            s.on_text(r#"{"event":"leave"}"#),
            vec![Action::Unwatch, Action::Leave(LeaveReason::Left)]
        );
        assert_eq!(s.on_left(false), vec![Action::Release]);
        assert!(s.on_text(r#"{"event":"leave"}"#).is_empty());
        assert!(s.on_closed().is_empty());

        let (mut s, _) = joined(legacy(), None);
        assert_eq!(
            s.on_closed(),
            vec![Action::Unwatch, Action::Leave(LeaveReason::Disconnected)]
        );
        let (mut s, _) = joined(legacy(), None);
        assert_eq!(
            s.on_drain(),
            vec![
                Action::Unwatch,
                Action::Leave(LeaveReason::Drained),
                Action::Close {
                    code: wire::CloseCode::GoingAway,
                    reason: "node draining"
                }
            ]
        );
        assert!(Session::new(Dialect::Native, NODE).on_closed().is_empty());
    }

    #[test]
    fn lost_peer_node_is_declared_once_and_its_echo_tells_the_client() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        assert!(s.on_node_lost("node-c").is_empty());
        assert_eq!(
            s.on_node_lost("node-b"),
            vec![
                Action::Unwatch,
                Action::DeclarePeerLost {
                    user: "l:bob".into(),
                    name: "bob".into(),
                    node: "node-b".into(),
                }
            ]
        );
        assert!(s.on_node_lost("node-b").is_empty());
        let out = sent(&s.on_room_event(
            id(12),
            &ev(
                "l:bob",
                "bob",
                RoomBody::Left {
                    reason: LeaveReason::NodeLost,
                },
            ),
        ));
        assert_eq!(
            out,
            vec![
                json!({"event":"peer-left","peer_name":"bob","reason":"node_lost","last_id":"12-0"})
            ]
        );
    }

    #[test]
    fn failed_declaration_tells_the_client_directly() {
        let (mut s, _) = joined(legacy(), Some(bob_on("node-b")));
        s.on_node_lost("node-b");
        assert_eq!(
            sent(&s.on_declare_failed()),
            vec![json!({"event":"peer-disconnected","message":"bob has disconnected"})]
        );
        assert!(s.on_declare_failed().is_empty());
    }

    #[test]
    fn being_declared_lost_ourselves_ends_the_room() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        let out = sent(&s.on_room_event(
            id(12),
            &ev(
                "l:alice",
                "alice",
                RoomBody::Left {
                    reason: LeaveReason::NodeLost,
                },
            ),
        ));
        assert_eq!(out[0]["event"], "peer-left");
        assert!(!s.in_room());
    }

    #[test]
    fn a_third_party_entry_is_never_relayed() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        assert!(s
            .on_room_event(id(11), &ev("s:eve", "eve", signal(1)))
            .is_empty());
    }

    fn big_signal(bytes: usize) -> String {
        // `"` + n × `x` + `"`: the data is `bytes` bytes of JSON.
        format!(
            r#"{{"event":"signal","type":"signal","data":"{}"}}"#,
            "x".repeat(bytes - 2)
        )
    }

    #[test]
    fn a_member_cannot_relay_a_signal_over_16_kib() {
        let (mut s, _) = joined(Dialect::Native, None);
        // `"signal"` (8 bytes) counts with the data.
        let limit = wire::limits::MAX_SIGNAL_BYTES - 8;
        assert!(matches!(
            s.on_text(&big_signal(limit))[..],
            [Action::Publish(RoomBody::Signal { .. })]
        ));
        let out = sent(&s.on_text(&big_signal(limit + 1)));
        assert_eq!(out.len(), 1, "refused, nothing published: {out:?}");
        assert_eq!(out[0]["code"], "too_large");
        let message = out[0]["message"].as_str().unwrap();
        assert!(
            message.contains("signal") && message.contains("16384"),
            "{message}"
        );
        assert!(s.in_room(), "the socket carries on");
    }

    #[test]
    fn what_the_room_log_refuses_is_answered_naming_it() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        let chat = RoomBody::Chat {
            message: "hi".into(),
        };
        let out = sent(&s.on_publish_refused(&chat, PublishRefusal::LogFull));
        assert_eq!(out[0]["code"], "room_log_full");
        assert!(out[0]["message"].as_str().unwrap().contains("chat"));
        let out = sent(&s.on_publish_refused(&signal(1), PublishRefusal::RoomClosed));
        assert_eq!(out[0]["code"], "room_closed");
        assert!(out[0]["message"].as_str().unwrap().contains("signal"));
        assert!(s.in_room(), "the peer's Left, on its way, ends the room");
    }

    fn alice_joined_again(ms: u64) -> (StreamId, RoomEvent) {
        (id(ms), joined_ev("l:alice", "alice", "node-z"))
    }

    #[test]
    fn a_newer_socket_of_our_user_closes_this_one_without_leaving() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        let (newer, event) = alice_joined_again(11);
        let actions = s.on_room_event(newer, &event);
        assert_eq!(
            actions,
            vec![
                Action::Unwatch,
                Action::Close {
                    code: wire::CloseCode::Replaced,
                    reason: "replaced by a newer socket of the same user",
                }
            ]
        );
        assert!(!s.in_room());
        // Its socket closing neither closes the room nor drops the claim,
        // which are the newer socket's now.
        assert!(s.on_closed().is_empty());
        assert!(!s
            .on_drain()
            .iter()
            .any(|a| matches!(a, Action::Leave(_) | Action::GoAway)));
        assert_eq!(
            sent(&s.on_text(r#"{"event":"signal","data":{}}"#))[0]["code"],
            "room_closed"
        );
    }

    #[test]
    fn a_fenced_write_closes_the_replaced_socket() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        let actions = s.on_publish_refused(&signal(1), PublishRefusal::Replaced);
        assert!(matches!(
            actions[..],
            [
                Action::Unwatch,
                Action::Close {
                    code: wire::CloseCode::Replaced,
                    ..
                }
            ]
        ));
        assert!(s.on_closed().is_empty());
    }

    #[test]
    fn the_replacing_socket_skips_its_predecessors_entries() {
        let mut s = Session::new(legacy(), NODE);
        s.on_text(r#"{"event":"join","room_code":"R"}"#);
        // The older socket's Joined and signal, then bob's, then ours (10).
        let backlog = vec![
            alice_joined_again(1),
            (id(2), ev("l:alice", "alice", signal(1))),
            (id(3), joined_ev("l:bob", "bob", "node-b")),
            (id(4), ev("l:bob", "bob", signal(2))),
            (id(10), joined_ev("l:alice", "alice", NODE)),
        ];
        let actions = s.on_join_result(Ok(outcome(Some(bob_on("node-b")), backlog)));
        let out = sent(&actions);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1]["data"], json!({"n":2}));
        assert!(s.in_room(), "an older Joined of ours does not replace us");
    }

    #[test]
    fn a_peer_replaced_onto_another_node_is_watched_there() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        let bob_joined = |node| joined_ev("l:bob", "bob", node);
        // Moved to node-c: watch it, and say nothing to the client.
        let actions = s.on_room_event(id(11), &bob_joined("node-c"));
        assert_eq!(
            actions,
            vec![Action::Watch {
                node: "node-c".into()
            }]
        );
        // node-b dying now is none of our business.
        assert!(s.on_node_lost("node-b").is_empty());
        // Onto our own node: nothing to watch.
        assert_eq!(
            s.on_room_event(id(12), &bob_joined(NODE)),
            vec![Action::Unwatch]
        );
        assert!(s.on_node_lost("node-c").is_empty());
        // A declaration fenced off, then the peer's move: judged anew.
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        assert_eq!(s.on_node_lost("node-b").len(), 2);
        s.on_room_event(id(11), &bob_joined("node-c"));
        assert!(matches!(
            s.on_node_lost("node-c")[..],
            [Action::Unwatch, Action::DeclarePeerLost { .. }]
        ));
    }

    #[test]
    fn a_peer_leaving_releases_our_claim_on_the_room() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        let actions = s.on_room_event(
            id(11),
            &ev(
                "l:bob",
                "bob",
                RoomBody::Left {
                    reason: LeaveReason::Left,
                },
            ),
        );
        assert!(actions.contains(&Action::Release));
    }

    #[test]
    fn a_socket_closing_before_it_hears_it_was_replaced_keeps_the_newer_ones_claim() {
        let (mut s, _) = joined(legacy(), Some(bob_on("node-b")));
        // The newer socket's Joined has not reached us; our client closes.
        assert_eq!(
            s.on_closed(),
            vec![Action::Unwatch, Action::Leave(LeaveReason::Disconnected)]
        );
        // The log fenced our Left off: the room and the claim are the newer one's.
        assert!(s.on_left(true).is_empty());
    }

    fn bob_native_on(node: &str) -> PeerInfo {
        PeerInfo {
            user: "s:bob".into(),
            name: "bob".into(),
            node: Some(node.into()),
        }
    }

    fn away(until_ms: u64) -> RoomBody {
        RoomBody::Away { until_ms }
    }

    #[test]
    fn a_native_socket_closing_goes_away_instead_of_leaving() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_native_on("node-b")));
        assert_eq!(s.on_closed(), vec![Action::Unwatch, Action::GoAway]);
        assert!(s.on_closed().is_empty(), "once");
    }

    #[test]
    fn a_peer_away_is_announced_timed_and_welcomed_back() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_native_on("node-b")));
        let actions = s.on_room_event(id(11), &ev("s:bob", "bob", away(5_000)));
        assert!(actions.contains(&Action::ArmGrace { until_ms: 5_000 }));
        assert_eq!(
            sent(&actions),
            vec![json!({"event":"peer-reconnecting","peer_name":"bob","last_id":"11-0"})]
        );
        // Its node's death is old news now.
        assert!(s.on_node_lost("node-b").is_empty());
        // Back on node-c: watched there, timer off, client told.
        let actions = s.on_room_event(
            id(12),
            &ev(
                "s:bob",
                "bob",
                RoomBody::Resumed {
                    node: "node-c".into(),
                },
            ),
        );
        assert!(actions.contains(&Action::DisarmGrace));
        assert!(actions.contains(&Action::Watch {
            node: "node-c".into()
        }));
        assert_eq!(
            sent(&actions),
            vec![json!({"event":"peer-resumed","peer_name":"bob","last_id":"12-0"})]
        );
        assert!(s.on_grace_expired(9_999).is_empty(), "not away any more");
        assert!(s.in_room());
    }

    #[test]
    fn a_peer_not_back_in_time_is_declared_timed_out_once() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_native_on("node-b")));
        s.on_room_event(id(11), &ev("s:bob", "bob", away(5_000)));
        // Early (clocks differ): armed again for the deadline.
        assert_eq!(
            s.on_grace_expired(4_000),
            vec![Action::ArmGrace { until_ms: 5_000 }]
        );
        assert_eq!(
            s.on_grace_expired(5_000),
            vec![Action::DeclarePeerTimedOut {
                user: "s:bob".into(),
                name: "bob".into(),
                until_ms: 5_000
            }]
        );
        assert!(s.on_grace_expired(6_000).is_empty(), "once");
        let out = sent(&s.on_room_event(
            id(12),
            &ev(
                "s:bob",
                "bob",
                RoomBody::Left {
                    reason: LeaveReason::Timeout,
                },
            ),
        ));
        assert_eq!(
            out,
            vec![
                json!({"event":"peer-left","peer_name":"bob","reason":"timeout","last_id":"12-0"})
            ]
        );
        assert!(!s.in_room());
    }

    #[test]
    fn a_native_peers_lost_node_makes_it_away_a_legacy_peers_ends_the_room() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_native_on("node-b")));
        assert_eq!(
            s.on_node_lost("node-b"),
            vec![
                Action::Unwatch,
                Action::DeclarePeerAway {
                    user: "s:bob".into(),
                    name: "bob".into(),
                    node: "node-b".into(),
                }
            ]
        );
        let (mut s, _) = joined(Dialect::Native, Some(bob_on("node-b")));
        assert!(matches!(
            s.on_node_lost("node-b")[..],
            [Action::Unwatch, Action::DeclarePeerLost { .. }]
        ));
    }

    #[test]
    fn a_resume_join_carries_credential_and_cursor() {
        let mut s = Session::new(Dialect::Native, NODE);
        assert_eq!(
            s.on_text(r#"{"event":"join","resume":"c","last_id":"5-2"}"#),
            vec![Action::Join(JoinRequest::Resume {
                credential: "c".into(),
                last_id: StreamId { ms: 5, seq: 2 },
                room: None,
            })]
        );
        let mut s = Session::new(Dialect::Native, NODE);
        assert_eq!(
            sent(&s.on_text(r#"{"event":"join","resume":"c","last_id":"five"}"#))[0]["code"],
            "bad_message"
        );
        // A legacy socket cannot resume: it joins by room code as ever.
        let mut s = Session::new(legacy(), NODE);
        assert!(matches!(
            s.on_text(r#"{"event":"join","room_code":"R","resume":"c"}"#)[..],
            [Action::Join(JoinRequest::Legacy { .. })]
        ));
    }

    #[test]
    fn a_resumed_session_replays_what_it_missed_once_and_knows_its_peer_is_away() {
        let mut s = Session::new(Dialect::Native, NODE);
        s.on_text(r#"{"event":"join","resume":"c","last_id":"3-0"}"#);
        let mut outcome = outcome(
            Some(bob_native_on("node-b")),
            vec![
                (id(4), ev("s:bob", "bob", signal(4))),
                // Our own Away and our older socket's Joined: not echoed,
                // and not a newer socket.
                (id(5), ev("l:alice", "alice", away(9_000))),
                (id(6), ev("s:bob", "bob", signal(6))),
                (id(10), joined_ev("l:alice", "alice", NODE)),
            ],
        );
        outcome.resumed = true;
        outcome.resume = Some("fresh".into());
        outcome.peer_away = Some(7_000);
        let actions = s.on_join_result(Ok(outcome));
        let out = sent(&actions);
        assert_eq!(
            out[0],
            json!({"event":"resumed","room_code":"R","role":"initiator","peer_present":true,
                   "peer_name":"bob","peer_reconnecting":true,"resume":"fresh"})
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[1]["data"], json!({"n":4}));
        assert_eq!(out[1]["last_id"], "4-0");
        assert_eq!(out[2]["data"], json!({"n":6}));
        assert!(actions.contains(&Action::ArmGrace { until_ms: 7_000 }));
        assert!(!actions.iter().any(|a| matches!(a, Action::Watch { .. })));
        assert!(s.in_room());
        assert_eq!(s.resume_point(), Some(("fresh".into(), id(10))));
    }

    #[test]
    fn a_draining_node_tells_a_native_session_to_reconnect_and_keeps_serving_it() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_native_on("node-b")));
        s.on_room_event(id(11), &ev("s:bob", "bob", signal(1)));
        assert_eq!(
            sent(&s.on_drain()),
            vec![json!({"event":"reconnect","reason":"draining","resume":"cred","last_id":"11-0"})]
        );
        assert!(s.in_room());
        // Not joined: closed as before.
        let mut s = Session::new(Dialect::Native, NODE);
        assert!(matches!(s.on_drain()[..], [Action::Close { .. }]));
    }

    #[test]
    fn our_session_declared_away_while_alive_takes_its_place_back() {
        let (mut s, _) = joined(Dialect::Native, Some(bob_native_on("node-b")));
        assert_eq!(
            s.on_room_event(id(11), &ev("l:alice", "alice", away(9_000))),
            vec![Action::Reclaim]
        );
        // Our own Resumed echo (id 12) is not a newer socket.
        s.on_reclaimed(id(12));
        let resumed = |node: &str| ev("l:alice", "alice", RoomBody::Resumed { node: node.into() });
        assert!(s.on_room_event(id(12), &resumed(NODE)).is_empty());
        // A later Resumed of our user is another socket taking over.
        assert!(matches!(
            s.on_room_event(id(13), &resumed("node-z"))[..],
            [Action::Unwatch, Action::Close { .. }]
        ));
    }
}
