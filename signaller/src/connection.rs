//! The adapter between one socket and its [`Session`]: it takes what the
//! client sends from the shared WebSocket shell ([`service::ws::Socket`],
//! which applies the flood limit, the idle timeout, the close codes for
//! binary and oversized frames and the bounded writes) and what the node
//! delivers from the socket's mailbox, feeds both to the session, performs
//! the session's [`Action`]s (Redis, the fan-out, the presence watch,
//! writes to the socket) and feeds the results back. All protocol
//! decisions are the session's; this file only does I/O.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use fred::prelude::Client;
use service::shutdown::Shutdown;
use service::ws::{Gone, Inbound, Socket, SocketLimits};
use tracing::Instrument;
use wire::internal::{LeaveReason, RoomEvent};
use wire::signaller_api::SignallerEvent;

use crate::admission::{self, JoinRefusal, Member};
use crate::fanout::Fanout;
use crate::mailbox::{self, ConnId, Delivery, Inbox, Mailbox};
use crate::presence::Presence;
use crate::room_log::{AppendOptions, Appended, Claim, JoinReply, ResumeReply, RoomLog, Writer};
use crate::secret::TicketSecret;
use crate::session::{Action, Dialect, JoinOutcome, JoinRequest, PublishRefusal, Session};
use crate::stages::RelayMetrics;

/// Most queued deliveries handled (and written with one flush) at once.
const DELIVERY_BATCH: usize = 64;

/// How long a `Left` is retried when Redis fails while a socket leaves.
const LEAVE_RETRY_FOR: Duration = Duration::from_secs(10);

/// What every connection of a node shares.
pub struct Shared {
    pub node: String,
    pub redis: Client,
    pub room_log: RoomLog,
    pub fanout: Fanout,
    pub presence: Presence,
    pub secret: TicketSecret,
    pub limits: SocketLimits,
    /// Triggered when the node drains: native sessions are told to
    /// `reconnect` elsewhere, the rest leave their rooms and close with 1001.
    pub drain: Shutdown,
    /// How long a native session whose socket is gone may resume.
    pub resume_grace: Duration,
    /// How long a resume credential is valid (a room's lifetime).
    pub resume_valid: Duration,
    /// The relay counter and stage histograms, looked up once.
    pub metrics: RelayMetrics,
}

/// Whether to keep serving the socket.
enum Flow {
    Continue,
    /// Stop; the reason is logged.
    End(&'static str),
}

struct Connection {
    id: ConnId,
    socket: Socket,
    session: Session,
    shared: Arc<Shared>,
    /// The socket's queue from the node's shared tasks, made when the
    /// session first needs one (a join, a watch): most idle sockets never
    /// join, and an unused queue would cost each of them its buffer.
    mailbox: Option<(Mailbox, Inbox)>,
    /// This connection across the cluster (`<node>/<connection id>`): the
    /// room log takes writes for our user from its newest connection only.
    token: String,
    /// When the peer's grace window ends ([`Action::ArmGrace`]).
    grace_at: Option<tokio::time::Instant>,
    /// The node's drain was handled already.
    draining: bool,
    /// When the frame being handled was read (the append stage starts).
    read_at: Option<Instant>,
    /// When this socket's appends last set the room's lifetime again
    /// (see [`crate::room_log::Limits::refresh_every`]).
    refreshed: Option<Instant>,
}

/// Whether `actions` hand a signal or chat to the client.
fn relays(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Send(SignallerEvent::Signal { .. } | SignallerEvent::Chat { .. })
        )
    })
}

/// Serve one upgraded socket until it closes (or the node stops). Call it
/// inside the runtime (the socket's ping timer starts here).
///
/// Not an `async fn`: the returned future holds the connection and the
/// state of serving it, once. An `async fn` would also keep its arguments
/// (the socket among them) for the socket's whole life, beside the
/// connection they were moved into.
pub fn run(
    socket: WebSocket,
    dialect: Dialect,
    shared: Arc<Shared>,
    id: ConnId,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!("conn", conn = %id);
    let legacy = matches!(dialect, Dialect::Legacy { .. });
    let mut conn = Connection {
        id,
        socket: Socket::new(socket, shared.limits),
        session: Session::new(dialect, shared.node.clone()),
        token: format!("{}/{id}", shared.node),
        shared,
        mailbox: None,
        grace_at: None,
        draining: false,
        read_at: None,
        refreshed: None,
    };
    async move {
        tracing::info!(legacy, "socket opened");
        let open = metrics::gauge!(service::metrics::SOCKETS_OPEN, "role" => "signaller");
        open.increment(1.0);
        let why = conn.serve().await;
        Box::pin(conn.finish()).await;
        open.decrement(1.0);
        tracing::info!(why, "socket closed");
    }
    .instrument(span)
}

impl Connection {
    async fn serve(&mut self) -> &'static str {
        let mut drain = self.shared.drain.clone();
        let actions = self.session.on_open();
        if let Flow::End(why) = Box::pin(self.perform(actions)).await {
            return why;
        }
        loop {
            // Not `biased`: a client sending fast must not starve the
            // delivery of what its peer sends (both wait in bounded places).
            // What each branch then does is boxed (`Box::pin`): a socket
            // waits here nearly all its life, and its task keeps the size
            // of the largest state it can be in, so the writes, Redis calls
            // and timers of handling a frame are allocated only while a
            // frame is handled, not held by every idle socket.
            let grace = service::clock::deadline(self.grace_at);
            let flow = tokio::select! {
                // A native session told to reconnect is served on until it
                // has moved (its newer socket replaces this one) or closes.
                _ = drain.wait(), if !self.draining => {
                    self.draining = true;
                    let actions = self.session.on_drain();
                    Box::pin(self.perform(actions)).await
                }
                _ = grace, if self.grace_at.is_some() => {
                    self.grace_at = None;
                    let actions = self.session.on_grace_expired(service::clock::now_ms());
                    Box::pin(self.perform(actions)).await
                }
                // Cancel-safe: a delivery winning the race loses no frame.
                inbound = self.socket.next() => Box::pin(self.on_inbound(inbound)).await,
                woken = next_delivery(&mut self.mailbox) => match woken {
                    Woken::Delivery(delivery) => Box::pin(self.deliver(delivery)).await,
                    Woken::Resync => Box::pin(self.resync()).await,
                },
            };
            if let Flow::End(why) = flow {
                return why;
            }
        }
    }

    /// The sending side of this socket's queue (made on first use).
    fn mailbox(&mut self) -> Mailbox {
        self.mailbox.get_or_insert_with(mailbox::new).0.clone()
    }

    /// Handle `first` and whatever else is queued already (up to a batch),
    /// written with one flush, up to a read-back ([`Delivery::Resync`]),
    /// which is done in its turn, after them.
    async fn deliver(&mut self, first: Delivery) -> Flow {
        let mut received = Vec::new();
        let mut actions = Vec::new();
        let mut resync = false;
        let mut delivery = first;
        for taken in 1.. {
            if matches!(delivery, Delivery::Resync) {
                resync = true;
                break;
            }
            actions.extend(self.on_delivery(delivery, &mut received));
            if taken == DELIVERY_BATCH {
                break;
            }
            let Some((_, inbox)) = self.mailbox.as_mut() else {
                break;
            };
            let Some(next) = inbox.try_recv() else {
                break;
            };
            delivery = next;
        }
        let flow = self.perform(actions).await;
        for at in received {
            self.shared.metrics.dispatch(at);
        }
        match flow {
            Flow::Continue if resync => self.resync().await,
            flow => flow,
        }
    }

    /// What a delivery means; `received` collects when the dispatcher got
    /// each live signal or chat relayed to the client (the dispatch stage
    /// ends once it is written).
    fn on_delivery(&mut self, delivery: Delivery, received: &mut Vec<u64>) -> Vec<Action> {
        let (id, event, at) = match delivery {
            Delivery::Event(id, event, at) => (id, event, at),
            Delivery::NodeLost(node) => return self.session.on_node_lost(&node),
            // Taken in its turn by `deliver`, never passed here.
            Delivery::Resync => return Vec::new(),
        };
        let actions = self.session.on_room_event(id, &event);
        if relays(&actions) {
            let age_ms = service::clock::now_ms().saturating_sub(event.sent_ms);
            self.shared.metrics.relayed(age_ms);
            received.push(at);
        }
        actions
    }

    /// After the socket ended: leave the room (if still in it) and detach.
    async fn finish(&mut self) {
        let actions = self.session.on_closed();
        self.perform(actions).await;
        if let Some(room) = self.session.room() {
            self.shared.fanout.leave(room, self.id);
        }
        self.shared.presence.unwatch(self.id);
    }

    async fn on_inbound(&mut self, inbound: Inbound) -> Flow {
        let actions = match inbound {
            Inbound::Text(text) => {
                self.read_at = Some(Instant::now());
                self.session.on_text(text.as_str())
            }
            Inbound::RateLimited(text) => self.session.on_rate_limited(text.as_str()),
            Inbound::End(reason) => return Flow::End(reason.as_str()),
        };
        self.perform(actions).await
    }

    /// Perform `actions` in order, and whatever they lead to; what they
    /// send to the client is flushed once, at the end.
    async fn perform(&mut self, actions: Vec<Action>) -> Flow {
        match self.perform_unflushed(actions).await {
            Flow::Continue => written(self.socket.flush().await),
            flow => flow,
        }
    }

    /// Each Redis call below is boxed: their futures are large, and inlined
    /// they would make every connection's task carry their size while idle
    /// (measured: 22.8 KiB per idle socket inlined, 11.8 KiB boxed).
    async fn perform_unflushed(&mut self, actions: Vec<Action>) -> Flow {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send(event) => {
                    if let SignallerEvent::Error { code, .. } = &event {
                        service::metrics::count_error_event(*code);
                    }
                    if let Flow::End(why) = self.send(&event).await {
                        return Flow::End(why);
                    }
                }
                Action::Close { code, reason } => {
                    self.socket.close(code).await;
                    return Flow::End(reason);
                }
                Action::Join(request) => {
                    let result = Box::pin(self.join(request)).await;
                    queue.extend(self.session.on_join_result(result));
                }
                Action::Publish(body) => {
                    let (Some(room), Some(me)) = (self.session.room(), self.session.member())
                    else {
                        continue;
                    };
                    let event = RoomEvent {
                        from: me.user.to_string(),
                        from_name: me.name.clone(),
                        sent_ms: service::clock::now_ms(),
                        body,
                    };
                    let writer = Writer::Conn {
                        user: &me.user,
                        conn: &self.token,
                    };
                    let refresh = self.refreshed.is_none_or(|at| {
                        at.elapsed() >= self.shared.room_log.limits().refresh_every()
                    });
                    let options = AppendOptions {
                        refresh,
                        stamp_us: Some(service::clock::now_us()),
                    };
                    let appended = Box::pin(
                        self.shared
                            .room_log
                            .append_with(room, &event, writer, options),
                    )
                    .await;
                    let refusal = match appended {
                        Ok(Appended::Logged(_)) => {
                            if refresh {
                                self.refreshed = Some(Instant::now());
                            }
                            if let Some(read_at) = self.read_at.take() {
                                self.shared.metrics.append(read_at.elapsed());
                            }
                            continue;
                        }
                        Ok(Appended::Closed) => PublishRefusal::RoomClosed,
                        Ok(Appended::Fenced) => PublishRefusal::Replaced,
                        Ok(Appended::LogFull) => PublishRefusal::LogFull,
                        Err(e) => {
                            tracing::warn!(error = %e, "relay failed");
                            queue.push_front(Action::Send(SignallerEvent::error(
                                wire::ErrorCode::Unavailable,
                                "could not relay that message; retry shortly",
                            )));
                            continue;
                        }
                    };
                    tracing::info!(?refusal, "relay refused by the room log");
                    let actions = self.session.on_publish_refused(&event.body, refusal);
                    for action in actions.into_iter().rev() {
                        queue.push_front(action);
                    }
                }
                Action::Leave(reason) => {
                    let fenced = Box::pin(self.leave(reason)).await;
                    queue.extend(self.session.on_left(fenced));
                }
                Action::Release => Box::pin(self.release()).await,
                Action::Watch { node } => {
                    let mailbox = self.mailbox();
                    self.shared.presence.watch(&node, self.id, mailbox)
                }
                Action::Unwatch => self.shared.presence.unwatch(self.id),
                Action::DeclarePeerLost { user, name, node } => {
                    let actions = Box::pin(self.declare_peer_lost(&user, &name, &node)).await;
                    queue.extend(actions);
                }
                Action::GoAway => Box::pin(self.go_away()).await,
                Action::DeclarePeerAway { user, name, node } => {
                    let actions = Box::pin(self.declare_peer_away(&user, &name, &node)).await;
                    queue.extend(actions);
                }
                Action::ArmGrace { until_ms } => {
                    let left = until_ms.saturating_sub(service::clock::now_ms());
                    self.grace_at = Some(tokio::time::Instant::now() + Duration::from_millis(left));
                }
                Action::DisarmGrace => self.grace_at = None,
                Action::DeclarePeerTimedOut {
                    user,
                    name,
                    until_ms,
                } => {
                    let actions =
                        Box::pin(self.declare_peer_timed_out(&user, &name, until_ms)).await;
                    queue.extend(actions);
                }
                Action::Reclaim => Box::pin(self.reclaim()).await,
            }
        }
        Flow::Continue
    }

    /// Admit, claim, subscribe, then run the join script.
    async fn join(&mut self, request: JoinRequest) -> Result<JoinOutcome, JoinRefusal> {
        let result = self.try_join(request).await;
        if let Err(refusal) = &result {
            tracing::info!(code = refusal.code().as_str(), "join refused");
        }
        result
    }

    async fn try_join(&mut self, request: JoinRequest) -> Result<JoinOutcome, JoinRefusal> {
        let shared = self.shared.clone();
        let admitted = match request {
            JoinRequest::Legacy { name, room } => {
                let record = admission::fetch_room_record(&shared.redis, &room)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "cannot read the room record");
                        JoinRefusal::Unavailable
                    })?;
                admission::admit_legacy(&name, &room, &record)?
            }
            JoinRequest::Native { ticket, room } => {
                let secret = shared.secret.get().ok_or(JoinRefusal::Unavailable)?;
                admission::admit_native(secret, &ticket, room.as_deref(), service::clock::now_ms())?
            }
            JoinRequest::Resume {
                credential,
                last_id,
                room,
            } => return self.try_resume(&credential, last_id, room.as_deref()).await,
        };
        let room = admitted.room.as_str();
        let user = &admitted.me.user;
        let claim = shared.room_log.claim(user, room).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot count the user's rooms");
            JoinRefusal::Unavailable
        })?;
        if claim == Claim::Refused {
            return Err(JoinRefusal::TooManyRooms(
                shared.room_log.limits().max_rooms_per_user,
            ));
        }
        let mut result = self.enter(room, &admitted.me).await;
        // A room claimed for this join only is not the user's after all (a
        // claim it held already belongs to its older socket, still in).
        if result.is_err() && claim == Claim::New {
            if let Err(e) = shared.room_log.release(user, room).await {
                tracing::warn!(error = %e, "could not release the room claim; it lapses by itself");
            }
        }
        if let Ok(outcome) = &mut result {
            outcome.resume = self.resume_credential(outcome);
        }
        result
    }

    /// A native session's credential, bound to this connection (`None`
    /// for legacy sockets and before the secret is known).
    fn resume_credential(&self, outcome: &JoinOutcome) -> Option<String> {
        if outcome.me.user.is_legacy() {
            return None;
        }
        let secret = self.shared.secret.get()?;
        Some(admission::resume_credential(
            secret,
            &outcome.room,
            &outcome.me,
            &self.token,
            service::clock::now_ms(),
            self.shared.resume_valid.as_millis() as u64,
        ))
    }

    /// Verify the credential, claim, subscribe, then run the resume script.
    async fn try_resume(
        &mut self,
        credential: &str,
        last_id: wire::internal::StreamId,
        room_hint: Option<&str>,
    ) -> Result<JoinOutcome, JoinRefusal> {
        let shared = self.shared.clone();
        let secret = shared.secret.get().ok_or(JoinRefusal::Unavailable)?;
        let resume =
            admission::admit_resume(secret, credential, room_hint, service::clock::now_ms())?;
        let (room, me) = (resume.admitted.room.as_str(), &resume.admitted.me);
        match shared.room_log.is_banned(me.user.as_str()).await {
            Ok(true) => return Err(JoinRefusal::Banned),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the user's ban");
                return Err(JoinRefusal::Unavailable);
            }
        }
        // The away session still holds its claim; a claim that lapsed
        // meanwhile is taken again, within the limit.
        let claim = shared.room_log.claim(&me.user, room).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot count the user's rooms");
            JoinRefusal::Unavailable
        })?;
        if claim == Claim::Refused {
            return Err(JoinRefusal::TooManyRooms(
                shared.room_log.limits().max_rooms_per_user,
            ));
        }
        let mailbox = self.mailbox();
        if let Err(e) = (shared.fanout)
            .join_as(room, self.id, mailbox, me.user.as_str())
            .await
        {
            tracing::warn!(error = %e, "cannot subscribe");
            return Err(JoinRefusal::Unavailable);
        }
        let refusal = match shared
            .room_log
            .resume(room, me, &resume.from_conn, &self.token, last_id)
            .await
        {
            Ok(ResumeReply::Resumed(mut outcome)) => {
                tracing::info!(
                    room,
                    replayed = outcome.backlog.len(),
                    peer_away = outcome.peer_away.is_some(),
                    "resumed"
                );
                outcome.resume = self.resume_credential(&outcome);
                return Ok(*outcome);
            }
            Ok(ResumeReply::Closed(_)) => JoinRefusal::RoomClosed,
            Ok(ResumeReply::Gone) => JoinRefusal::SessionGone,
            Ok(ResumeReply::Used) => JoinRefusal::ResumeUsed,
            Ok(ResumeReply::TimedOut) => JoinRefusal::GraceOver,
            Ok(ResumeReply::LogFull) => JoinRefusal::RoomLogFull,
            Err(e) => {
                tracing::warn!(error = %e, "resume script failed");
                JoinRefusal::Unavailable
            }
        };
        shared.fanout.leave(room, self.id);
        if claim == Claim::New {
            let _ = shared.room_log.release(&me.user, room).await;
        }
        Err(refusal)
    }

    /// Our socket is gone: mark our session away (it may resume within the
    /// grace window), retrying for a while if Redis fails.
    async fn go_away(&mut self) {
        let (Some(room), Some(me)) = (self.session.room(), self.session.member()) else {
            return;
        };
        let until_ms = service::clock::now_ms() + self.shared.resume_grace.as_millis() as u64;
        tracing::info!(room, "socket gone: session away, may resume");
        let deadline = Instant::now() + LEAVE_RETRY_FOR;
        let writer = Writer::Conn {
            user: &me.user,
            conn: &self.token,
        };
        loop {
            match self
                .shared
                .room_log
                .away(room, me.user.as_str(), &me.name, until_ms, writer)
                .await
            {
                Ok(outcome) => {
                    tracing::debug!(?outcome, "away logged");
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    tracing::error!(error = %e, "could not mark the session away; the peer's node judges ours");
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Mark our native peer `user` away: its node `node` is gone, but it
    /// may resume elsewhere. What the session makes of a failure.
    async fn declare_peer_away(&mut self, user: &str, name: &str, node: &str) -> Vec<Action> {
        let Some(room) = self.session.room() else {
            return Vec::new();
        };
        tracing::info!(room, "peer's node lost: peer away, may resume");
        let until_ms = service::clock::now_ms() + self.shared.resume_grace.as_millis() as u64;
        let writer = Writer::DeclaringLost { user, node };
        match self
            .shared
            .room_log
            .away(room, user, name, until_ms, writer)
            .await
        {
            // Logged: its echo tells our client. Fenced: the peer moved (its
            // `Resumed` moves our watch) or was marked away already.
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "could not mark the lost peer away; telling the client directly");
                self.session.on_declare_failed()
            }
        }
    }

    /// Our peer `user` did not resume by `until_ms`: close the room for it.
    async fn declare_peer_timed_out(
        &mut self,
        user: &str,
        name: &str,
        until_ms: u64,
    ) -> Vec<Action> {
        let Some(room) = self.session.room() else {
            return Vec::new();
        };
        let writer = Writer::Away { user, until_ms };
        match self
            .shared
            .room_log
            .leave(room, user, name, LeaveReason::Timeout, writer)
            .await
        {
            Ok(Appended::Logged(_)) => {
                tracing::info!(room, "peer did not resume in time");
                let peer = wire::user::UserKey::from_raw(user.to_string());
                if let Err(e) = self.shared.room_log.release(&peer, room).await {
                    tracing::warn!(error = %e, "could not release the timed-out peer's room claim; it lapses by itself");
                }
                Vec::new()
            }
            // Fenced: it resumed; its `Resumed` is on its way.
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "could not log the peer's timeout; telling the client directly");
                self.session.on_timeout_failed()
            }
        }
    }

    /// Another node declared our live session away: take our place back,
    /// as a resume of this very connection.
    async fn reclaim(&mut self) {
        let (Some(room), Some(me), Some(after)) = (
            self.session.room(),
            self.session.member(),
            self.session.last_delivered(),
        ) else {
            return;
        };
        let (room, me) = (room.to_string(), me.clone());
        match self
            .shared
            .room_log
            .resume(&room, &me, &self.token, &self.token, after)
            .await
        {
            Ok(ResumeReply::Resumed(outcome)) => self.session.on_reclaimed(outcome.joined_id),
            Ok(other) => tracing::info!(?other, "could not take our place back"),
            Err(e) => tracing::warn!(error = %e, "could not take our place back"),
        }
    }

    /// Subscribe to `room`, then run the join script as `me`; a refused
    /// join is unsubscribed again.
    async fn enter(&mut self, room: &str, me: &Member) -> Result<JoinOutcome, JoinRefusal> {
        let mailbox = self.mailbox();
        let shared = &self.shared;
        if let Err(e) = (shared.fanout)
            .join_as(room, self.id, mailbox, me.user.as_str())
            .await
        {
            tracing::warn!(error = %e, "cannot subscribe");
            return Err(JoinRefusal::Unavailable);
        }
        let refusal = match shared.room_log.join(room, me, &self.token).await {
            Ok(JoinReply::Joined { outcome, replaced }) => {
                tracing::info!(
                    room,
                    peer_present = outcome.peer.is_some(),
                    backlog = outcome.backlog.len(),
                    replaced,
                    "joined"
                );
                return Ok(*outcome);
            }
            Ok(JoinReply::Closed) => JoinRefusal::RoomClosed,
            Ok(JoinReply::Full) => JoinRefusal::RoomFull,
            Ok(JoinReply::LogFull) => JoinRefusal::RoomLogFull,
            Err(e) => {
                tracing::warn!(error = %e, "join script failed");
                JoinRefusal::Unavailable
            }
        };
        shared.fanout.leave(room, self.id);
        Err(refusal)
    }

    /// Log that our peer `user` (`name`) was lost with its node `node`,
    /// unless its socket has moved meanwhile; what the session makes of a
    /// failure.
    async fn declare_peer_lost(&mut self, user: &str, name: &str, node: &str) -> Vec<Action> {
        let Some(room) = self.session.room() else {
            return Vec::new();
        };
        tracing::info!(room, "peer's node lost");
        let declared = self
            .shared
            .room_log
            .leave(
                room,
                user,
                name,
                LeaveReason::NodeLost,
                Writer::DeclaringLost { user, node },
            )
            .await;
        match declared {
            // Logged: its echo tells our client; and the lost peer is no
            // longer in this room (its own node cannot say so any more).
            Ok(Appended::Logged(_)) => {
                let peer = wire::user::UserKey::from_raw(user.to_string());
                if let Err(e) = self.shared.room_log.release(&peer, room).await {
                    tracing::warn!(error = %e, "could not release the lost peer's room claim; it lapses by itself");
                }
                Vec::new()
            }
            // Closed: the `Left` that closed the room tells our client.
            Ok(Appended::Closed | Appended::LogFull) => Vec::new(),
            // The peer's newer socket is on a live node; its `Joined` moves
            // our watch there.
            Ok(Appended::Fenced) => {
                tracing::info!(room, "the lost peer has moved");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not log the lost peer; telling the client directly");
                self.session.on_declare_failed()
            }
        }
    }

    /// Stop counting our room among our user's rooms.
    async fn release(&mut self) {
        let (Some(room), Some(me)) = (self.session.room(), self.session.member()) else {
            return;
        };
        if let Err(e) = self.shared.room_log.release(&me.user, room).await {
            tracing::warn!(error = %e, "could not release the room claim; it lapses by itself");
        }
    }

    /// Log our `Left`, retrying for a while if Redis fails: the peer must
    /// be told. Whether it was fenced off (a newer socket of our user holds
    /// the room).
    async fn leave(&mut self, reason: LeaveReason) -> bool {
        let (Some(room), Some(me)) = (self.session.room(), self.session.member()) else {
            return false;
        };
        tracing::info!(room, reason = reason.as_str(), "leaving room");
        let deadline = Instant::now() + LEAVE_RETRY_FOR;
        let writer = Writer::Conn {
            user: &me.user,
            conn: &self.token,
        };
        loop {
            match self
                .shared
                .room_log
                .leave(room, me.user.as_str(), &me.name, reason, writer)
                .await
            {
                Ok(Appended::Fenced) => {
                    // A newer socket of our user is in the room: it stays open.
                    tracing::info!(room, "replaced: the room is left to the newer socket");
                    return true;
                }
                Ok(Appended::Logged(_)) => return false,
                Ok(other) => {
                    tracing::warn!(room, outcome = ?other, "our leaving was not logged");
                    return false;
                }
                Err(e) if Instant::now() >= deadline => {
                    tracing::error!(error = %e, "could not log leaving the room; the peer is not told");
                    return false;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Read back what the mailbox could not hold (or the subscriber missed).
    async fn resync(&mut self) -> Flow {
        let (Some(room), Some(after)) = (self.session.room(), self.session.last_delivered()) else {
            return Flow::Continue;
        };
        let room = room.to_string();
        match Box::pin(self.shared.room_log.read_after(&room, after)).await {
            Ok(entries) => {
                let mut actions = Vec::new();
                for (id, event) in &entries {
                    actions.extend(self.session.on_room_event(*id, event));
                }
                self.perform(actions).await
            }
            Err(e) => {
                // The next reconnect asks again.
                tracing::warn!(error = %e, "resync failed");
                Flow::Continue
            }
        }
    }

    /// Queue an event for the client (written once the buffer fills, or
    /// when [`Connection::perform`] flushes).
    async fn send(&mut self, event: &SignallerEvent) -> Flow {
        written(self.socket.feed(event.to_json()).await)
    }
}

/// What woke a socket from its queue.
enum Woken {
    Delivery(Delivery),
    Resync,
}

/// The next delivery or resync request of a socket's queue; never, while
/// it has none. Cancel-safe (both waits are).
async fn next_delivery(mailbox: &mut Option<(Mailbox, Inbox)>) -> Woken {
    let Some((_, inbox)) = mailbox else {
        return std::future::pending().await;
    };
    // Not `biased`, as the socket's own select.
    tokio::select! {
        delivery = inbox.recv() => Woken::Delivery(delivery),
        _ = inbox.raised() => Woken::Resync,
    }
}

fn written(result: Result<(), Gone>) -> Flow {
    match result {
        Ok(()) => Flow::Continue,
        Err(Gone(reason)) => Flow::End(reason.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function returns, without calling it.
    fn future_size<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every socket's task holds this future for the socket's whole life,
    /// most of it idle: what handling a frame needs (writes, Redis calls,
    /// timers) must be boxed, not carried by every idle socket, and the
    /// socket must be held once (in the connection), not also as an
    /// argument. Measured: 7,888 bytes with everything inlined, 2,208 with
    /// the Redis calls boxed, 1,680 now (of which the connection itself,
    /// socket and session included, is 992).
    #[test]
    fn an_idle_sockets_task_is_small() {
        let size = future_size(run);
        assert!(size <= 1792, "connection::run is {size} bytes");
    }
}
