//! The async shell around one matching socket, legacy (`/ws/{name}`) or
//! native (`/ws`): it reads frames and mailbox messages, feeds them to the
//! socket's [`Session`], performs the session's [`Action`]s (Redis through
//! the store, writes through the shared socket shell) and feeds the results
//! back. All protocol decisions are the session's; this file only does I/O.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use service::client_addr::{AddressKey, ClientIp};
use service::ws::{ConnId, Inbound, Socket};
use tracing::Instrument;
use wire::matcher_api::MatcherEvent;
use wire::moderation::Who;
use wire::stored::Location;
use wire::user::UserKey;
use wire::CloseCode;

use super::session::{Action, Identity, Session, TicketIssuer, Waiting};
use super::sockets::{Mailbox, SocketHandle, SocketMsg};
use super::SharedGateway;
use crate::store::{Located, Registered, Unparked, WAIT_REFRESH};

/// First wait before recording a location again after Redis failed.
const LOCATE_RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between two such attempts.
const LOCATE_RETRY_MAX: Duration = Duration::from_secs(2);

/// Whether to keep serving the socket.
enum Flow {
    Continue,
    End(&'static str),
}

struct Connection {
    gw: SharedGateway,
    socket: Socket,
    session: Session,
    user: UserKey,
    /// The client's address as its per-address limits count it.
    address: AddressKey,
    /// Whom bans and blocks name: the device (native) or the address.
    who: Who,
    location: Location,
    /// How other tasks reach this socket; listed in the gateway's sockets
    /// once Redis has recorded the location (it may replace another socket
    /// of the same user there).
    handle: SocketHandle,
    /// When to try recording the location again, after Redis failed.
    locate_retry: Option<(Instant, Duration)>,
    /// When the drain's grace period ends, once draining.
    drain_deadline: Option<tokio::time::Instant>,
    /// When to refresh the waiting registration; only while the user waits
    /// (an idle socket has no timer of its own but the shell's pings).
    refresh_at: Option<tokio::time::Instant>,
    /// A native client's session id and when it gets fresh TURN
    /// credentials (only when credentials are issued).
    ice_refresh: Option<(String, tokio::time::Instant)>,
    unflushed: bool,
    /// When word of a match reached this socket's mailbox, for the
    /// `deliver` stage; recorded when the `perform` of that word delivered
    /// a `matched` (`delivered`) and flushed it, and cleared either way.
    delivering: Option<Instant>,
    delivered: bool,
}

/// Serve one upgraded socket until it closes (or the gateway is killed:
/// the task is aborted and nothing is cleaned up, as in a crash). Call it
/// inside the runtime (the socket's ping timer starts here).
///
/// Not an `async fn`: the returned future holds the connection and the
/// state of serving it, once. An `async fn` would also keep its arguments
/// (the socket among them) for the socket's whole life, beside the
/// connection they were moved into.
pub fn run(
    gw: SharedGateway,
    ws: WebSocket,
    identity: Identity,
    client: ClientIp,
    signaller_url: String,
    device: Option<String>,
    id: ConnId,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!("socket", socket = %id);
    let user = identity.user();
    let socket_id = id.to_string();
    let (handle, mailbox) = SocketHandle::new(socket_id.clone());
    gw.sockets.open(handle.clone());
    let issuer = TicketIssuer {
        secret: gw.secret.clone(),
        ticket_ttl_ms: gw.settings.ticket_ttl.as_millis() as u64,
        signaller_url,
    };
    // A native client gets its ICE servers (TURN credential minted for
    // this session) with `hello`, and fresh ones before they expire.
    let native_session = match &identity {
        Identity::Native { session, .. } => Some(session.clone()),
        Identity::Legacy { .. } => None,
    };
    let who = match &device {
        Some(device) => Who::device(device, client.key().as_str()),
        None => Who::address(client.key().as_str()),
    };
    let mut session = Session::new(identity, issuer);
    if let Some(device) = &device {
        session = session.with_device(wire::moderation::sign_device(&gw.secret, device));
    }
    if let Some(id) = &native_session {
        let ice = gw.mint_ice_servers(id, "hello");
        if !ice.ice_servers.is_empty() {
            session = session.with_ice_servers(ice);
        }
    }
    let ice_refresh = native_session
        .zip(gw.ice.refresh_after())
        .map(|(id, after)| (id, tokio::time::Instant::now() + after));
    let mut conn = Connection {
        socket: Socket::new(ws, gw.settings.socket),
        session: session.with_matchmaking(gw.settings.matchmaking.clone()),
        address: client.key(),
        who,
        location: Location {
            addr: client.0.to_string(),
            gateway: gw.id.clone(),
            socket: socket_id,
        },
        gw,
        user,
        handle,
        locate_retry: None,
        drain_deadline: None,
        refresh_at: None,
        ice_refresh,
        unflushed: false,
        delivering: None,
        delivered: false,
    };
    async move {
        let user = &conn.user;
        tracing::info!(%user, "matching socket opened");
        let open = metrics::gauge!(service::metrics::SOCKETS_OPEN, "role" => "matcher");
        open.increment(1.0);
        let why = conn.serve(&mailbox).await;
        Box::pin(conn.finish()).await;
        open.decrement(1.0);
        let user = &conn.user;
        tracing::info!(%user, why, "matching socket closed");
    }
    .instrument(span)
}

impl Connection {
    /// Serve until the socket ends; the reason, for the log.
    ///
    /// A socket waits in the `select!` below nearly all its life, and its
    /// task keeps the size of the largest state it can be in: what each
    /// branch then does (writes, Redis calls) is boxed (`Box::pin`), and
    /// timers are allocated only while armed, so that an idle socket's
    /// task carries none of them.
    async fn serve(&mut self, mailbox: &Mailbox) -> &'static str {
        let mut drain = self.gw.drain.clone();
        // A banned identity or address is told so and turned away at once
        // (if Redis cannot say, the register checks again, atomically).
        if let Ok(Some(retry_after)) = Box::pin(self.gw.store.ban_left(&self.who)).await {
            let actions = self.session.on_banned(retry_after);
            if let Flow::End(why) = Box::pin(self.perform(actions)).await {
                return why;
            }
        }
        let actions = self.session.on_open();
        if let Flow::End(why) = Box::pin(self.perform(actions)).await {
            return why;
        }
        loop {
            let until_drained = service::clock::deadline(self.drain_deadline);
            let until_retry = service::clock::deadline(
                self.locate_retry
                    .map(|(at, _)| tokio::time::Instant::from_std(at)),
            );
            self.refresh_at = match (self.session.waiting(), self.refresh_at) {
                (None, _) => None,
                (Some(_), None) => Some(tokio::time::Instant::now() + WAIT_REFRESH),
                (Some(_), at) => at,
            };
            let until_refresh = service::clock::deadline(self.refresh_at);
            let until_ice_refresh =
                service::clock::deadline(self.ice_refresh.as_ref().map(|(_, at)| *at));
            let actions = tokio::select! {
                inbound = self.socket.next() => match inbound {
                    Inbound::Text(text) => self.session.on_text(text.as_str()),
                    // Counted and logged by the shell.
                    Inbound::RateLimited(text) => self.session.on_rate_limited(text.as_str()),
                    Inbound::End(why) => return why.as_str(),
                },
                msg = mailbox.recv() => match msg {
                    SocketMsg::NoticeWaiting => {
                        self.delivering = Some(Instant::now());
                        self.session.on_notice_waiting()
                    }
                    SocketMsg::Pushed(notice) => {
                        self.delivering = Some(Instant::now());
                        self.session.on_notice_pushed(*notice, service::clock::now_ms())
                    }
                    SocketMsg::Chat(chat) => self.session.on_chat(*chat),
                    SocketMsg::RegisteredElsewhere(w) => self.session.on_registered_elsewhere(*w),
                    SocketMsg::Restore => self.session.on_restore(),
                    SocketMsg::Replaced => self.session.on_replaced(),
                },
                _ = until_refresh => {
                    self.refresh_at = None;
                    self.session.on_tick()
                }
                _ = until_ice_refresh => self.refresh_ice_servers(),
                _ = mailbox.raised() => {
                    Box::pin(self.socket.close(CloseCode::Policy)).await;
                    return "not keeping up with its messages";
                }
                _ = drain.wait(), if self.drain_deadline.is_none() => {
                    self.drain_deadline =
                        Some(tokio::time::Instant::now() + self.gw.settings.drain_grace);
                    self.session.on_drain()
                }
                _ = until_drained => self.session.on_drain_deadline(),
                _ = until_retry => vec![Action::Locate { exclusive: false }],
            };
            if let Flow::End(why) = Box::pin(self.perform(actions)).await {
                return why;
            }
        }
    }

    /// After the socket ended: what the session does on closing, and the
    /// socket is no longer listed.
    async fn finish(&mut self) {
        let actions = self.session.on_closed();
        self.perform(actions).await;
        self.gw.sockets.remove(&self.user, &self.location.socket);
    }

    /// Mint this native client's fresh ICE servers and arm the next refresh.
    fn refresh_ice_servers(&mut self) -> Vec<Action> {
        let (Some((id, _)), Some(after)) = (self.ice_refresh.take(), self.gw.ice.refresh_after())
        else {
            return Vec::new();
        };
        let ice = self.gw.mint_ice_servers(&id, "refresh");
        self.ice_refresh = Some((id, tokio::time::Instant::now() + after));
        self.session.on_ice_servers(ice)
    }

    /// Perform `actions` in order, and whatever they lead to; what they
    /// send to the client is flushed once, at the end.
    async fn perform(&mut self, actions: Vec<Action>) -> Flow {
        let flow = self.perform_unflushed(actions).await;
        if matches!(flow, Flow::Continue) && self.unflushed {
            self.unflushed = false;
            if let Err(gone) = self.socket.flush().await {
                return Flow::End(gone.0.as_str());
            }
        }
        let delivered = std::mem::take(&mut self.delivered);
        if let Some(from) = self.delivering.take().filter(|_| delivered) {
            crate::stages::stages()
                .deliver
                .record(from.elapsed().as_secs_f64());
        }
        flow
    }

    /// Each store call is boxed: their futures are large, and inlined they
    /// would make every socket's task carry their size while idle.
    async fn perform_unflushed(&mut self, actions: Vec<Action>) -> Flow {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let store = &self.gw.store;
            let user = &self.user;
            match action {
                Action::Send(event) => {
                    if let MatcherEvent::Error { code, .. } = &event {
                        service::metrics::count_error_event(*code);
                    }
                    self.unflushed = true;
                    if let Err(gone) = self.socket.feed(event.to_json()).await {
                        return Flow::End(gone.0.as_str());
                    }
                }
                Action::Close(code) => {
                    if self.unflushed {
                        self.unflushed = false;
                        let _ = self.socket.flush().await;
                    }
                    self.socket.close(code).await;
                    return Flow::End(code.reason());
                }
                Action::Locate { exclusive } => {
                    let result = Box::pin(store.locate(user, &self.location, exclusive))
                        .await
                        .map_err(|e| tracing::warn!(%user, error = %e, "could not record the socket's location yet"));
                    if result.is_ok() {
                        self.locate_retry = None;
                    }
                    if let Ok(Located::Here(_)) = &result {
                        self.gw.sockets.put(user.clone(), self.handle.clone());
                    }
                    queue.extend(self.session.on_located(result, service::clock::now_ms()));
                }
                Action::LocateLater => {
                    let delay = self
                        .locate_retry
                        .map_or(LOCATE_RETRY_FIRST, |(_, d)| (d * 2).min(LOCATE_RETRY_MAX));
                    self.locate_retry = Some((Instant::now() + delay, delay));
                }
                Action::Register { name, prefs } => {
                    let started = Instant::now();
                    // Registrations count against the address's rate, on
                    // every gateway together.
                    if let Err(refused) = Box::pin(self.gw.addresses.admit(&self.address)).await {
                        queue.extend(self.session.on_register_refused(refused.message()));
                        continue;
                    }
                    let reg = ulid::Ulid::new().to_string();
                    let since = Instant::now();
                    let addr = &self.location.addr;
                    let registered = store.register(
                        user,
                        &reg,
                        addr,
                        &name,
                        &self.who,
                        prefs.as_ref(),
                        false,
                        self.session.last_matched_reg(),
                    );
                    let result = match Box::pin(registered).await {
                        Ok(outcome) => {
                            crate::stages::stages()
                                .register
                                .record(started.elapsed().as_secs_f64());
                            if outcome == Registered::Queued {
                                crate::stages::per_user().registrations.increment(1);
                            }
                            Ok((
                                outcome,
                                Waiting {
                                    reg,
                                    name,
                                    prefs,
                                    since,
                                },
                            ))
                        }
                        Err(e) => {
                            redis_failed(e);
                            Err(())
                        }
                    };
                    queue.extend(self.session.on_registered(result));
                }
                Action::Requeue(w) => {
                    let addr = &self.location.addr;
                    let again = store.register(
                        user,
                        &w.reg,
                        addr,
                        &w.name,
                        &self.who,
                        w.prefs.as_ref(),
                        true,
                        None,
                    );
                    let result = Box::pin(again).await;
                    let result = result.map_err(|e| {
                        redis_failed(e);
                        self.gw.request_restore();
                    });
                    queue.extend(self.session.on_requeued(result));
                }
                Action::RefreshWait { reg } => {
                    if let Err(e) = Box::pin(store.refresh_wait(user, &reg)).await {
                        redis_failed(e);
                    }
                }
                Action::Withdraw { reply } => {
                    let result = Box::pin(store.withdraw(user)).await.map_err(redis_failed);
                    if reply {
                        queue.extend(self.session.on_withdrawn(result));
                    }
                }
                Action::TakeNotice => {
                    match Box::pin(store.take_notice(user, &self.location.addr)).await {
                        Ok(notice) => {
                            queue.extend(self.session.on_notice(notice, service::clock::now_ms()))
                        }
                        // The notice waits in Redis; the next restore delivers it.
                        Err(e) => {
                            redis_failed(e);
                            self.gw.request_restore();
                        }
                    }
                }
                Action::Chat { name, message } => {
                    let sent = service::clock::now_ms();
                    let result = Box::pin(store.chat(user, &name, &message, sent))
                        .await
                        .map_err(redis_failed);
                    queue.extend(self.session.on_chat_result(result));
                }
                Action::Report { reason, note } => {
                    let policy = &self.gw.settings.report_policy;
                    let result = Box::pin(store.report(user, &self.who, reason, &note, policy))
                        .await
                        .map_err(redis_failed);
                    if let Ok(crate::store::Reported::Stored { ban, .. }) = &result {
                        metrics::counter!(service::metrics::REPORTS).increment(1);
                        if let Some((id, secs)) = ban {
                            metrics::counter!(service::metrics::BANS, "by" => "reports")
                                .increment(1);
                            tracing::info!(ban = %id, secs = secs.as_secs(), "banned after reports");
                        }
                    }
                    queue.extend(self.session.on_reported(result));
                }
                Action::Block => {
                    let for_ = self.gw.settings.block_for;
                    let result = Box::pin(store.block(user, &self.who, for_))
                        .await
                        .map_err(redis_failed);
                    if result == Ok(true) {
                        metrics::counter!(service::metrics::BLOCKS).increment(1);
                    }
                    queue.extend(self.session.on_blocked(result));
                }
                Action::CountMatch { since } => {
                    self.delivered = true;
                    crate::stages::per_user().matched_delivered.increment(1);
                    if let Some(since) = since {
                        crate::stages::per_user()
                            .time_to_match
                            .record(since.elapsed().as_secs_f64());
                    }
                    tracing::info!(%user, "matched");
                }
                Action::Park => {
                    let grace = self.gw.settings.resume_grace;
                    let delivered = self.session.last_matched_reg();
                    let parked = store.park(user, &self.location, grace, delivered);
                    if let Err(e) = Box::pin(parked).await {
                        tracing::warn!(%user, error = %e, "park failed; released on the next heartbeat");
                        self.gw
                            .pending_releases
                            .lock()
                            .unwrap()
                            .push((user.clone(), self.location.clone()));
                    }
                }
                Action::Unpark => {
                    let result = Box::pin(store.unpark(user, &self.location, &self.who)).await.map_err(
                        |e| tracing::warn!(%user, error = %e, "could not take the session back"),
                    );
                    if matches!(&result, Ok(back) if *back != Unparked::Gone) {
                        self.gw.sockets.put(user.clone(), self.handle.clone());
                    }
                    queue.extend(self.session.on_unparked(
                        result,
                        Instant::now(),
                        service::clock::now_ms(),
                    ));
                }
                Action::Release => {
                    if let Err(e) = Box::pin(store.release(user, &self.location)).await {
                        tracing::warn!(%user, error = %e, "release failed; retried on the next heartbeat");
                        self.gw
                            .pending_releases
                            .lock()
                            .unwrap()
                            .push((user.clone(), self.location.clone()));
                    }
                }
            }
        }
        Flow::Continue
    }
}

fn redis_failed(e: fred::error::Error) {
    tracing::warn!(error = %e, "Redis command failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function returns, without calling it.
    fn future_size<A, B, C, D, E, G, H, F: std::future::Future>(
        _: fn(A, B, C, D, E, G, H) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every socket's task holds this future for the socket's whole life,
    /// most of it idle: what handling a frame or a message needs (writes,
    /// Redis calls, timers) must be boxed, not carried by every idle
    /// socket, and the socket must be held once (in the connection), not
    /// also as an argument. Measured: about 1.9 KiB now (of which the
    /// connection itself, socket and session included, is about 1.3 KiB);
    /// 2,600 bytes with the handling of a frame inlined in the loop alone.
    #[test]
    fn an_idle_sockets_task_is_small() {
        let size = future_size(run);
        assert!(size <= 2048, "connection::run is {size} bytes");
    }
}
