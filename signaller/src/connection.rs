//! The async shell around one socket: it reads frames, feeds them to the
//! socket's [`Session`], performs the session's [`Action`]s (Redis, the
//! fan-out, the presence watch, writes to the socket) and feeds the results
//! back. All protocol decisions are the session's; this file only does I/O.
//!
//! Also here, because they are about the socket itself: the flood limit
//! (token bucket), the idle timeout with server pings, close codes for
//! binary and oversized frames, and a bounded wait on every write so that a
//! client that stops reading cannot hold the task forever.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use fred::prelude::Client;
use futures_util::SinkExt;
use service::rate_limit::TokenBucket;
use service::shutdown::Shutdown;
use tracing::Instrument;
use wire::internal::{LeaveReason, RoomEvent};
use wire::signaller_api::SignallerEvent;

use crate::admission::{self, JoinRefusal, Member};
use crate::close;
use crate::fanout::Fanout;
use crate::mailbox::{self, ConnId, Delivery, Inbox, Mailbox};
use crate::presence::Presence;
use crate::room_log::{JoinReply, RoomLog};
use crate::secret::TicketSecret;
use crate::session::{Action, Dialect, JoinOutcome, JoinRequest, Session};

/// Longest wait for one write to a socket before the client is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub limits: Limits,
    /// Triggered when the node drains: leave rooms, close with 1001.
    pub drain: Shutdown,
}

/// Per-socket limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub rate: u32,
    pub burst: u32,
}

/// Whether to keep serving the socket.
enum Flow {
    Continue,
    /// Stop; the reason is logged.
    End(&'static str),
}

struct Connection {
    id: ConnId,
    socket: WebSocket,
    session: Session,
    shared: Arc<Shared>,
    mailbox: Mailbox,
    /// Who we are in the room, once joined (for the events we write).
    me: Option<Member>,
    bucket: TokenBucket,
    /// Events were queued on the socket and not flushed yet.
    unflushed: bool,
    /// `rate_limited` was sent and no frame has been accepted since.
    limited: bool,
    last_seen: Instant,
}

/// Count a live signal or chat handed to this socket, and how long it took
/// from the sender's node (stamped at publish) to here.
fn record_relay(event: &RoomEvent, actions: &[Action]) {
    let relayed = actions.iter().any(|a| {
        matches!(
            a,
            Action::Send(SignallerEvent::Signal { .. } | SignallerEvent::Chat { .. })
        )
    });
    if relayed {
        metrics::counter!(service::metrics::RELAYED).increment(1);
        let age_ms = service::clock::now_ms().saturating_sub(event.sent_ms);
        metrics::histogram!(service::metrics::RELAY_LATENCY).record(age_ms as f64 / 1000.0);
    }
}

/// Count an error event by kind: refused joins apart from other bad input.
fn record_error(event: &SignallerEvent) {
    if let SignallerEvent::Error { code, .. } = event {
        let kind = match code.kind() {
            // Counted where the frame is refused.
            wire::codes::ErrorKind::RateLimited | wire::codes::ErrorKind::Expected => return,
            kind => kind.as_str(),
        };
        metrics::counter!(service::metrics::ERRORS, "kind" => kind).increment(1);
    }
}

/// Serve one upgraded socket until it closes (or the node stops).
pub async fn run(socket: WebSocket, dialect: Dialect, shared: Arc<Shared>, id: ConnId) {
    let span = tracing::info_span!("conn", conn = %id);
    async move {
        let legacy = matches!(dialect, Dialect::Legacy { .. });
        tracing::info!(legacy, "socket opened");
        let open = metrics::gauge!(service::metrics::SOCKETS_OPEN, "role" => "signaller");
        open.increment(1.0);
        let (mailbox, mut inbox) = mailbox::new();
        let now = Instant::now();
        let mut conn = Connection {
            id,
            socket,
            session: Session::new(dialect, shared.node.clone()),
            bucket: TokenBucket::new(shared.limits.rate, shared.limits.burst, now),
            shared,
            mailbox,
            me: None,
            unflushed: false,
            limited: false,
            last_seen: now,
        };
        let why = conn.serve(&mut inbox).await;
        conn.finish().await;
        open.decrement(1.0);
        tracing::info!(why, "socket closed");
    }
    .instrument(span)
    .await
}

impl Connection {
    async fn serve(&mut self, inbox: &mut Inbox) -> &'static str {
        let mut drain = self.shared.drain.clone();
        let every = (self.shared.limits.idle_timeout / 3).max(Duration::from_millis(100));
        let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let actions = self.session.on_open();
        if let Flow::End(why) = self.perform(actions).await {
            return why;
        }
        loop {
            // Not `biased`: a client sending fast must not starve the
            // delivery of what its peer sends (both wait in bounded places).
            let flow = tokio::select! {
                _ = drain.wait() => {
                    let actions = self.session.on_drain();
                    self.perform(actions).await;
                    self.close(close::GOING_AWAY, "server shutting down").await;
                    Flow::End("node draining")
                }
                frame = self.socket.recv() => self.on_frame(frame).await,
                Some(delivery) = inbox.rx.recv() => {
                    let mut actions = self.on_delivery(delivery);
                    // Whatever else is queued already goes out in the same write.
                    for _ in 1..DELIVERY_BATCH {
                        let Ok(delivery) = inbox.rx.try_recv() else { break };
                        actions.extend(self.on_delivery(delivery));
                    }
                    self.perform(actions).await
                }
                _ = inbox.resync.wanted() => self.resync().await,
                _ = pings.tick() => self.on_ping_tick().await,
            };
            if let Flow::End(why) = flow {
                return why;
            }
        }
    }

    fn on_delivery(&mut self, delivery: Delivery) -> Vec<Action> {
        match delivery {
            Delivery::Event(id, event) => {
                let actions = self.session.on_room_event(id, &event);
                record_relay(&event, &actions);
                actions
            }
            Delivery::NodeLost(node) => self.session.on_node_lost(&node),
        }
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

    async fn on_frame(&mut self, frame: Option<Result<Message, axum::Error>>) -> Flow {
        let message = match frame {
            None => return Flow::End("closed"),
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                if is_too_big(e) {
                    self.close(close::TOO_BIG, "message too big").await;
                    return Flow::End("message too big");
                }
                return Flow::End("socket error");
            }
        };
        let now = Instant::now();
        self.last_seen = now;
        match message {
            Message::Text(text) => {
                if !self.bucket.allow(now) {
                    if self.limited {
                        return Flow::Continue;
                    }
                    self.limited = true;
                    tracing::info!("rate limited");
                    metrics::counter!(service::metrics::ERRORS, "kind" => "rate_limited")
                        .increment(1);
                    let limited = SignallerEvent::error(
                        wire::ErrorCode::RateLimited,
                        "too many frames; slow down",
                    );
                    return self.perform(vec![Action::Send(limited)]).await;
                }
                self.limited = false;
                let actions = self.session.on_text(text.as_str());
                self.perform(actions).await
            }
            Message::Binary(_) => {
                self.close(close::UNSUPPORTED, "binary frames are not supported")
                    .await;
                Flow::End("binary frame")
            }
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
            Message::Close(_) => Flow::End("closed by client"),
        }
    }

    async fn on_ping_tick(&mut self) -> Flow {
        if self.last_seen.elapsed() >= self.shared.limits.idle_timeout {
            self.close(close::IDLE, "idle timeout").await;
            return Flow::End("idle timeout");
        }
        match tokio::time::timeout(
            SEND_TIMEOUT,
            self.socket.send(Message::Ping(Default::default())),
        )
        .await
        {
            Ok(Ok(())) => Flow::Continue,
            _ => Flow::End("ping failed"),
        }
    }

    /// Perform `actions` in order, and whatever they lead to; what they
    /// send to the client is flushed once, at the end.
    async fn perform(&mut self, actions: Vec<Action>) -> Flow {
        match self.perform_unflushed(actions).await {
            Flow::Continue if self.unflushed => self.flush().await,
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
                    record_error(&event);
                    if let Flow::End(why) = self.send(&event).await {
                        return Flow::End(why);
                    }
                }
                Action::Close { code, reason } => {
                    self.close(code, reason).await;
                    return Flow::End(reason);
                }
                Action::Join(request) => {
                    let result = Box::pin(self.join(request)).await;
                    if let Ok(outcome) = &result {
                        self.me = Some(outcome.me.clone());
                    }
                    queue.extend(self.session.on_join_result(result));
                }
                Action::Publish(body) => {
                    let (Some(room), Some(me)) = (self.session.room(), &self.me) else {
                        continue;
                    };
                    let event = RoomEvent {
                        from: me.user.to_string(),
                        from_name: me.name.clone(),
                        sent_ms: service::clock::now_ms(),
                        body,
                    };
                    if let Err(e) = Box::pin(self.shared.room_log.append(room, &event)).await {
                        tracing::warn!(error = %e, "relay failed");
                        queue.push_front(Action::Send(SignallerEvent::error(
                            wire::ErrorCode::Unavailable,
                            "could not relay that message; retry shortly",
                        )));
                    }
                }
                Action::Leave(reason) => Box::pin(self.leave(reason)).await,
                Action::Watch { node } => {
                    self.shared
                        .presence
                        .watch(&node, self.id, self.mailbox.clone())
                }
                Action::Unwatch => self.shared.presence.unwatch(self.id),
                Action::DeclarePeerLost { user, name } => {
                    let Some(room) = self.session.room().map(str::to_string) else {
                        continue;
                    };
                    tracing::info!(room, "peer's node lost");
                    let declared = Box::pin(self.shared.room_log.leave(
                        &room,
                        &user,
                        &name,
                        LeaveReason::NodeLost,
                    ))
                    .await;
                    if let Err(e) = declared {
                        tracing::warn!(error = %e, "could not log the lost peer; telling the client directly");
                        queue.extend(self.session.on_declare_failed());
                    }
                }
            }
        }
        Flow::Continue
    }

    /// Admit, subscribe, then run the join script.
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
        };
        let room = admitted.room.as_str();
        shared
            .fanout
            .join(room, self.id, self.mailbox.clone())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot subscribe");
                JoinRefusal::Unavailable
            })?;
        let refusal = match shared.room_log.join(room, &admitted.me).await {
            Ok(JoinReply::Joined(outcome)) => {
                tracing::info!(
                    room,
                    peer_present = outcome.peer.is_some(),
                    backlog = outcome.backlog.len(),
                    "joined"
                );
                return Ok(outcome);
            }
            Ok(JoinReply::Closed) => JoinRefusal::RoomClosed,
            Ok(JoinReply::AlreadyJoined) => JoinRefusal::AlreadyJoined,
            Ok(JoinReply::Full) => JoinRefusal::RoomFull,
            Err(e) => {
                tracing::warn!(error = %e, "join script failed");
                JoinRefusal::Unavailable
            }
        };
        shared.fanout.leave(room, self.id);
        Err(refusal)
    }

    /// Log our `Left`, retrying for a while if Redis fails: the peer must
    /// be told.
    async fn leave(&mut self, reason: LeaveReason) {
        let (Some(room), Some(me)) = (self.session.room(), &self.me) else {
            return;
        };
        tracing::info!(room, reason = reason.as_str(), "leaving room");
        let deadline = Instant::now() + LEAVE_RETRY_FOR;
        loop {
            match self
                .shared
                .room_log
                .leave(room, me.user.as_str(), &me.name, reason)
                .await
            {
                Ok(_) => return,
                Err(e) if Instant::now() >= deadline => {
                    tracing::error!(error = %e, "could not log leaving the room; the peer is not told");
                    return;
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
    /// at the next [`Connection::flush`]).
    async fn send(&mut self, event: &SignallerEvent) -> Flow {
        self.unflushed = true;
        written(
            tokio::time::timeout(
                SEND_TIMEOUT,
                self.socket.feed(Message::text(event.to_json())),
            )
            .await,
        )
    }

    async fn flush(&mut self) -> Flow {
        self.unflushed = false;
        written(tokio::time::timeout(SEND_TIMEOUT, self.socket.flush()).await)
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ =
            tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(frame)))).await;
    }
}

fn written(result: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>) -> Flow {
    match result {
        Ok(Ok(())) => Flow::Continue,
        Ok(Err(_)) => Flow::End("write failed"),
        Err(_) => Flow::End("client not reading"),
    }
}

/// Whether a read failed because a frame or message was over the limit.
fn is_too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
