//! Fan-out: the node's one Redis subscriber and the dispatcher that routes
//! room publications to the local sockets of each room.
//!
//! The node subscribes to a room channel when the first local socket joins
//! the room and unsubscribes when the last one leaves. Subscribing and
//! unsubscribing are done by one task in the order asked, so a join racing
//! the last leave of the same room never ends unsubscribed. The dispatcher
//! decodes each publication once and hands it to the sockets' mailboxes
//! without blocking.
//!
//! Pub/sub is at-most-once. When the subscriber reconnects or lags, every
//! local socket is told to resync from its room log, so nothing is lost.
//!
//! A joiner reads the room log right after [`Fanout::join`], so the
//! subscription must be in force at Redis by then: see [`subscribe`].

use service::redis_conn::confirm_subscriptions;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::Message;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use wire::internal::RoomEvent;

use crate::mailbox::{ConnId, Mailbox};

/// Room channel → the local sockets in that room.
type Registry = Arc<Mutex<HashMap<String, HashMap<ConnId, Mailbox>>>>;

/// Why a socket could not be attached to its room's channel.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("could not subscribe to the room channel: {0}")]
    Subscribe(#[from] fred::error::Error),
    #[error("the fan-out task has stopped")]
    Stopped,
}

enum Command {
    Join {
        channel: String,
        conn: ConnId,
        mailbox: Mailbox,
        done: oneshot::Sender<Result<(), FanoutError>>,
    },
    Leave {
        channel: String,
        conn: ConnId,
    },
}

/// Handle to the node's fan-out.
#[derive(Clone)]
pub struct Fanout {
    commands: mpsc::UnboundedSender<Command>,
    registry: Registry,
}

impl Fanout {
    /// Start the subscription manager and the dispatcher on `subscriber`.
    pub fn start(subscriber: SubscriberClient) -> (Fanout, Vec<JoinHandle<()>>) {
        let registry = Registry::default();
        // Taken before anything is subscribed, so no publication is missed.
        let messages = subscriber.message_rx();
        let (commands, rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(manage(subscriber, registry.clone(), rx)),
            tokio::spawn(dispatch(messages, registry.clone())),
        ];
        (Fanout { commands, registry }, tasks)
    }

    /// Route `room`'s publications to `mailbox` from now on. Returns once
    /// the node is subscribed to the room channel.
    pub async fn join(
        &self,
        room: &str,
        conn: ConnId,
        mailbox: Mailbox,
    ) -> Result<(), FanoutError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Join {
                channel: wire::keys::room_channel(room),
                conn,
                mailbox,
                done,
            })
            .map_err(|_| FanoutError::Stopped)?;
        result.await.map_err(|_| FanoutError::Stopped)?
    }

    /// Stop routing `room` to `conn` (and unsubscribe if it was the last).
    pub fn leave(&self, room: &str, conn: ConnId) {
        let _ = self.commands.send(Command::Leave {
            channel: wire::keys::room_channel(room),
            conn,
        });
    }

    /// Number of rooms with a local socket.
    pub fn rooms(&self) -> usize {
        self.registry.lock().unwrap().len()
    }
}

/// Subscribe and unsubscribe, in the order asked; restore after reconnects.
async fn manage(
    subscriber: SubscriberClient,
    registry: Registry,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut reconnects = subscriber.reconnect_rx();
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                // Whatever else is queued is handled with it: one PING then
                // confirms all their SUBSCRIBEs (see `subscribe`), so many
                // sockets joining at once wait one round trip, not one each.
                let mut batch = vec![command];
                while let Ok(command) = commands.try_recv() {
                    batch.push(command);
                }
                run_batch(&subscriber, &registry, &mut subscribed, batch).await;
            }
            event = reconnects.recv() => match event {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    restore(&subscriber, &registry, &mut subscribed).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Subscribe to `channels`; returns once Redis has processed the SUBSCRIBE.
///
/// fred 10 resolves `subscribe` as soon as the command is queued on the
/// subscriber's connection, before it is even written: Redis answers
/// SUBSCRIBE out of band, so fred completes it unanswered
/// (`Command::has_no_responses`, `Connection::push_command`) and drops the
/// confirmation when it comes. A caller that then reads the room log on
/// another connection can read it before Redis has subscribed us, and an
/// event published in between reaches neither that read nor this node: it
/// was lost for good. A PING on the same connection is answered only after
/// Redis has run every command queued before it, the SUBSCRIBE included
/// (PING is allowed in subscribed mode; its RESP2 reply there, `["pong",
/// ""]`, is not mistaken for a subscription reply).
async fn subscribe(
    subscriber: &SubscriberClient,
    channels: impl Into<fred::types::MultipleStrings> + Send,
) -> Result<(), fred::error::Error> {
    subscriber.subscribe(channels).await?;
    confirm_subscriptions(subscriber).await
}

/// Run `batch` in order; joins that needed a new subscription are answered
/// once Redis has confirmed it.
async fn run_batch(
    subscriber: &SubscriberClient,
    registry: &Registry,
    subscribed: &mut HashSet<String>,
    batch: Vec<Command>,
) {
    // Channels subscribed in this batch, not confirmed yet.
    let mut fresh: HashSet<String> = HashSet::new();
    let mut waiting = Vec::new();
    for command in batch {
        match command {
            Command::Join {
                channel,
                conn,
                mailbox,
                done,
            } => {
                registry
                    .lock()
                    .unwrap()
                    .entry(channel.clone())
                    .or_default()
                    .insert(conn, mailbox);
                if fresh.contains(&channel) {
                    waiting.push((channel, conn, done));
                } else if subscribed.contains(&channel) {
                    let _ = done.send(Ok(()));
                } else {
                    // Resolves once queued on the connection, in order.
                    match subscriber.subscribe(channel.as_str()).await {
                        Ok(()) => {
                            subscribed.insert(channel.clone());
                            fresh.insert(channel.clone());
                            waiting.push((channel, conn, done));
                        }
                        Err(e) => {
                            remove(registry, &channel, conn);
                            let _ = done.send(Err(e.into()));
                        }
                    }
                }
            }
            Command::Leave { channel, conn } => {
                if remove(registry, &channel, conn) && subscribed.remove(&channel) {
                    fresh.remove(&channel);
                    if let Err(e) = subscriber.unsubscribe(channel.as_str()).await {
                        // Still tracked by the client: dropped after the
                        // next reconnect (below).
                        tracing::warn!(error = %e, "unsubscribe failed");
                    }
                }
            }
        }
    }
    if waiting.is_empty() {
        return;
    }
    let confirmed = confirm_subscriptions(subscriber).await;
    for (channel, conn, done) in waiting {
        match &confirmed {
            Ok(()) => {
                let _ = done.send(Ok(()));
            }
            Err(e) => {
                // Not known to be subscribed: the joiner is refused, and the
                // channel is asked for again by the next join.
                if remove(registry, &channel, conn) {
                    subscribed.remove(&channel);
                }
                let _ = done.send(Err(e.clone().into()));
            }
        }
    }
}

/// Remove `conn` from `channel`; whether the channel has no local socket left.
fn remove(registry: &Registry, channel: &str, conn: ConnId) -> bool {
    let mut registry = registry.lock().unwrap();
    let Some(conns) = registry.get_mut(channel) else {
        return false;
    };
    conns.remove(&conn);
    if conns.is_empty() {
        registry.remove(channel);
        true
    } else {
        false
    }
}

/// After a reconnect: subscribe to every room with a local socket again
/// (before anyone reads the log back), drop subscriptions nobody needs,
/// then have every socket resync from its room log.
async fn restore(
    subscriber: &SubscriberClient,
    registry: &Registry,
    subscribed: &mut HashSet<String>,
) {
    let wanted: Vec<String> = registry.lock().unwrap().keys().cloned().collect();
    if !wanted.is_empty() {
        if let Err(e) = subscribe(subscriber, wanted.clone()).await {
            tracing::warn!(error = %e, "resubscribe after reconnect failed");
        }
    }
    let stale: Vec<String> = subscriber
        .tracked_channels()
        .into_iter()
        .map(|c| c.to_string())
        .filter(|c| !registry.lock().unwrap().contains_key(c))
        .collect();
    if !stale.is_empty() {
        let _ = subscriber.unsubscribe(stale).await;
    }
    *subscribed = wanted.into_iter().collect();
    resync_all(registry);
    tracing::info!(
        rooms = subscribed.len(),
        "room subscriptions restored after reconnect"
    );
}

fn resync_all(registry: &Registry) {
    for conns in registry.lock().unwrap().values() {
        for mailbox in conns.values() {
            mailbox.request_resync();
        }
    }
}

/// Route each publication to the local sockets of its room.
async fn dispatch(mut messages: broadcast::Receiver<Message>, registry: Registry) {
    loop {
        match messages.recv().await {
            Ok(message) => route(&registry, &message),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "subscriber lagged; every socket resyncs from its room log"
                );
                resync_all(&registry);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn route(registry: &Registry, message: &Message) {
    let Some(bytes) = message.value.as_bytes() else {
        return;
    };
    let Some((id, payload)) = wire::internal::split_room_publication(bytes) else {
        tracing::warn!("unframed publication on a room channel; ignored");
        return;
    };
    let event = match wire::internal::decode::<RoomEvent>(payload) {
        Ok(event) => Arc::new(event),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable room event; ignored");
            return;
        }
    };
    if let Some(conns) = registry.lock().unwrap().get(&*message.channel) {
        for mailbox in conns.values() {
            mailbox.deliver(id, event.clone());
        }
    }
}
