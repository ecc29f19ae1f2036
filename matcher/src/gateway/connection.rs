//! One matching socket, legacy (`/ws/{name}`) or native (`/ws`), from
//! upgrade to clean-up.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use service::rate_limit::TokenBucket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wire::keys;
use wire::matcher_api::{MatcherClientMsg, MatcherEvent};
use wire::user::UserKey;

use super::{delivery, register, ConnHandle, Gateway, Outbound, RegisterOutcome, SharedGateway};
use crate::scripts;

/// Frames queued for one socket before it counts as not reading.
const OUT_QUEUE: usize = 256;

/// Display name of a native user who gives none.
pub const DEFAULT_NAME: &str = "Stranger";

/// Who is on a socket.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Legacy client, identified by its (unique) display name.
    Legacy { name: String },
    /// Native client, identified by a fresh session id.
    Native { session: String },
}

impl Identity {
    pub fn user(&self) -> UserKey {
        match self {
            Identity::Legacy { name } => UserKey::legacy(name),
            Identity::Native { session } => UserKey::native(session),
        }
    }

    fn is_legacy(&self) -> bool {
        matches!(self, Identity::Legacy { .. })
    }
}

/// How a socket's life ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Closed (by either side): clean up.
    Closed,
    /// The gateway was killed: leave everything as a crash would.
    Killed,
}

/// Run one socket to its end.
pub async fn run(gw: SharedGateway, socket: WebSocket, ident: Identity, signaller_url: String) {
    let user = ident.user();
    let conn_id = ulid::Ulid::new().to_string();
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_loop(sink, rx));
    let conn = ConnHandle {
        conn_id: conn_id.clone(),
        tx,
        signaller_url,
        overflow: Default::default(),
    };
    if let Identity::Native { session } = &ident {
        conn.send(
            MatcherEvent::Hello {
                session: session.clone(),
                protocol: wire::PROTOCOL_VERSION,
            }
            .to_json(),
        );
    }
    let claimed = gw.conns.insert(user.clone(), conn.clone())
        && match claim(&gw, &user, &conn_id, ident.is_legacy()).await {
            Ok(claimed) => {
                if !claimed {
                    gw.conns.remove(&user, &conn_id);
                }
                claimed
            }
            Err(e) => {
                // Redis is down or slow: keep the socket and keep trying.
                tracing::warn!(%user, error = %e, "could not record the socket's location yet");
                tokio::spawn(claim_later(gw.clone(), user.clone(), conn.clone()));
                true
            }
        };
    if !claimed {
        tracing::info!(%user, "refused: name already connected");
        conn.send(
            MatcherEvent::error(wire::ErrorCode::NameTaken, "this name is already connected")
                .to_json(),
        );
        let _ = conn
            .tx
            .send(Outbound::Close(4409, "name already connected".into()))
            .await;
        drop(conn);
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
        return;
    }
    tracing::info!(%user, conn = %conn_id, "matching socket opened");
    let open = metrics::gauge!(service::metrics::SOCKETS_OPEN, "role" => "matcher");
    open.increment(1.0);
    delivery::deliver_pending(&gw, &user, &conn).await;

    let end = serve(&gw, &ident, &conn, &mut stream).await;
    if end == End::Closed {
        gw.conns.remove(&user, &conn_id);
        if let Err(e) = release(&gw, &user, &conn_id).await {
            tracing::warn!(%user, error = %e, "release failed; the user's gateway purge will catch it");
        }
    }
    open.decrement(1.0);
    tracing::info!(%user, conn = %conn_id, ?end, "matching socket closed");
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outbound>,
) {
    while let Some(out) = rx.recv().await {
        let sent = match out {
            Outbound::Text(text) => sink.send(Message::Text(text.into())).await,
            Outbound::Ping => sink.send(Message::Ping(Default::default())).await,
            Outbound::Close(code, reason) => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// The read loop: client frames, keep-alive, drain and kill.
async fn serve(
    gw: &Gateway,
    ident: &Identity,
    conn: &ConnHandle,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) -> End {
    let user = ident.user();
    let mut name = match ident {
        Identity::Legacy { name } => name.clone(),
        Identity::Native { .. } => DEFAULT_NAME.to_string(),
    };
    let rate = gw.settings.rate_limit;
    let mut bucket = TokenBucket::new(rate, rate * 4, std::time::Instant::now());
    let idle_timeout = gw.settings.idle_timeout;
    let mut last_seen = Instant::now();
    let mut keepalive = tokio::time::interval(idle_timeout / 3);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut kill = gw.kill.clone();
    let mut drain = gw.drain.clone();
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let until_drained = async {
            match drain_deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = stream.next() => {
                let msg = match frame {
                    None => return End::Closed,
                    Some(Err(e)) => {
                        if is_too_large(e) {
                            let _ = conn.tx.try_send(Outbound::Close(1009, "frame too large".into()));
                        }
                        return End::Closed;
                    }
                    Some(Ok(msg)) => msg,
                };
                last_seen = Instant::now();
                match msg {
                    Message::Text(text) => {
                        if !bucket.allow(std::time::Instant::now()) {
                            metrics::counter!(service::metrics::ERRORS, "kind" => "rate_limited").increment(1);
                            conn.send(MatcherEvent::error(wire::ErrorCode::RateLimited, "too many messages; slow down").to_json());
                            continue;
                        }
                        handle_text(gw, ident, &user, &mut name, conn, text.as_str()).await;
                    }
                    Message::Binary(_) => {
                        let _ = conn.tx.try_send(Outbound::Close(1003, "binary frames are not supported".into()));
                        return End::Closed;
                    }
                    Message::Close(_) => return End::Closed,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            _ = keepalive.tick() => {
                if last_seen.elapsed() > idle_timeout {
                    let _ = conn.tx.try_send(Outbound::Close(4408, "idle timeout".into()));
                    return End::Closed;
                }
                let _ = conn.tx.try_send(Outbound::Ping);
            }
            _ = conn.overflow.notified() => {
                let _ = conn.tx.try_send(Outbound::Close(1008, "not reading; too far behind".into()));
                return End::Closed;
            }
            _ = drain.wait(), if drain_deadline.is_none() => {
                // Waiting users leave the pool cleanly (never matched to a
                // partner while they move). Native clients move at once;
                // legacy clients keep their socket until the grace ends.
                if gw.conns.waiting(&user).is_some() {
                    let _ = register::withdraw(gw, &user).await;
                }
                if !ident.is_legacy() {
                    conn.send(MatcherEvent::Reconnect { reason: "draining".into() }.to_json());
                }
                drain_deadline = Some(Instant::now() + gw.settings.drain_grace);
            }
            _ = until_drained => {
                let _ = conn.tx.try_send(Outbound::Close(1001, "server going away".into()));
                return End::Closed;
            }
            _ = kill.wait() => return End::Killed,
        }
    }
}

fn is_too_large(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    matches!(
        e.into_inner().downcast_ref::<Error>(),
        Some(Error::Capacity(CapacityError::MessageTooLong { .. }))
    )
}

async fn handle_text(
    gw: &Gateway,
    ident: &Identity,
    user: &UserKey,
    name: &mut String,
    conn: &ConnHandle,
    text: &str,
) {
    let reply = match MatcherClientMsg::decode(text) {
        Err(e) => {
            metrics::counter!(service::metrics::ERRORS, "kind" => "bad_input").increment(1);
            Some(MatcherEvent::error(e.code(), e.to_string()))
        }
        Ok(MatcherClientMsg::Ping) => Some(MatcherEvent::Pong {}),
        Ok(MatcherClientMsg::Register { .. }) if gw.health.is_draining() => {
            Some(MatcherEvent::error(
                wire::ErrorCode::Draining,
                "this server is shutting down; reconnect and register again",
            ))
        }
        Ok(MatcherClientMsg::Register { name: wanted }) => {
            if let (Identity::Native { .. }, Some(wanted)) = (ident, wanted) {
                if !wire::limits::valid_name(&wanted) {
                    conn.send(
                        MatcherEvent::error(
                            wire::ErrorCode::BadName,
                            "names are 1 to 64 characters, no control characters",
                        )
                        .to_json(),
                    );
                    return;
                }
                *name = wanted;
            }
            Some(match register::register(gw, user, name).await {
                Ok(RegisterOutcome::Queued) => MatcherEvent::Queued {},
                Ok(RegisterOutcome::AlreadyWaiting) => MatcherEvent::error(
                    wire::ErrorCode::AlreadyWaiting,
                    "already waiting for a partner",
                ),
                Err(e) => unavailable(e),
            })
        }
        Ok(MatcherClientMsg::Cancel) => Some(match register::withdraw(gw, user).await {
            Ok(true) => MatcherEvent::Cancelled {},
            Ok(false) => {
                MatcherEvent::error(wire::ErrorCode::NotWaiting, "not waiting for a partner")
            }
            Err(e) => unavailable(e),
        }),
        Ok(MatcherClientMsg::Chat { message, .. }) => chat(gw, user, name, message).await,
    };
    if let Some(reply) = reply {
        conn.send(reply.to_json());
    }
}

/// Relay a chat line to the current partner; `None` when relayed.
async fn chat(gw: &Gateway, user: &UserKey, name: &str, message: String) -> Option<MatcherEvent> {
    if message.chars().count() > wire::limits::MAX_CHAT_CHARS {
        return Some(MatcherEvent::error(
            wire::ErrorCode::TooLong,
            "chat messages are at most 2000 characters",
        ));
    }
    let relayed: Result<i64, _> = scripts::run(
        &gw.scripts.chat,
        &gw.redis,
        vec![keys::partner(user)],
        vec![
            keys::matcher_prefix(),
            format!("{}:inbox:", keys::PREFIX),
            name.to_string(),
            message,
            service::clock::now_ms().to_string(),
        ],
    )
    .await;
    match relayed {
        Ok(1) => None,
        Ok(0) => Some(MatcherEvent::error(
            wire::ErrorCode::NoPartner,
            "no partner to chat with",
        )),
        Ok(_) => Some(MatcherEvent::error(
            wire::ErrorCode::PeerOffline,
            "your partner is not connected",
        )),
        Err(e) => Some(unavailable(e)),
    }
}

fn unavailable(e: fred::error::Error) -> MatcherEvent {
    metrics::counter!(service::metrics::ERRORS, "kind" => "redis").increment(1);
    tracing::warn!(error = %e, "Redis command failed");
    MatcherEvent::error(
        wire::ErrorCode::Unavailable,
        "the service is temporarily unavailable; retry shortly",
    )
}

/// Retry recording the socket's location until it works or the socket is
/// gone, then deliver any notice that was waiting for it.
async fn claim_later(gw: SharedGateway, user: UserKey, conn: ConnHandle) {
    let mut delay = Duration::from_millis(100);
    let mut kill = gw.kill.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = kill.wait() => return,
        }
        let still_here = gw
            .conns
            .get(&user)
            .is_some_and(|c| c.conn_id == conn.conn_id);
        if !still_here {
            return;
        }
        if claim(&gw, &user, &conn.conn_id, false).await.is_ok() {
            delivery::deliver_pending(&gw, &user, &conn).await;
            // A registration made meanwhile was dropped from the pool for
            // want of a location: make it again.
            if let Some(w) = gw.conns.waiting(&user) {
                if register::requeue(&gw, &user, &w).await.is_err() {
                    gw.needs_restore
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Record in Redis that `user`'s socket is here. With `exclusive` (legacy
/// names), refuse when another live socket holds the name.
pub async fn claim(
    gw: &Gateway,
    user: &UserKey,
    conn_id: &str,
    exclusive: bool,
) -> Result<bool, fred::error::Error> {
    let claimed: i64 = scripts::run(
        &gw.scripts.claim,
        &gw.redis,
        vec![keys::location(user), keys::gateway_users(&gw.id)],
        vec![
            keys::matcher_prefix(),
            format!("{}/{}", gw.id, conn_id),
            user.to_string(),
            if exclusive { "1" } else { "0" }.to_string(),
        ],
    )
    .await?;
    Ok(claimed == 1)
}

/// The socket closed: forget its location, withdraw the user from the pool.
async fn release(gw: &Gateway, user: &UserKey, conn_id: &str) -> Result<(), fred::error::Error> {
    let _: i64 = scripts::run(
        &gw.scripts.release,
        &gw.redis,
        vec![
            keys::location(user),
            keys::pool(),
            keys::gateway_users(&gw.id),
        ],
        vec![
            keys::matcher_prefix(),
            format!("{}/{}", gw.id, conn_id),
            user.to_string(),
        ],
    )
    .await?;
    Ok(())
}
