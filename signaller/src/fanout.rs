//! Fan-out: the node's one Redis subscriber and the dispatcher that routes
//! room publications to the local sockets of each room.
//!
//! Rooms use sharded pub/sub (`SSUBSCRIBE`, and `SPUBLISH` in the room
//! scripts): a room's channel lives in the room's hash slot, so on a Redis
//! Cluster a publication goes only to the shard that serves the room (and
//! its replicas) instead of being broadcast over the cluster bus to every
//! node, as a classic `PUBLISH` is. A single Redis (7.0 or later) serves
//! sharded pub/sub just the same.
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
//! A shard channel is dropped by its node when the slot moves (resharding)
//! or the node fails (failover): the server pushes an `sunsubscribe`,
//! which fred swallows, and fred does not subscribe again. So on a cluster
//! the manager checks, every [`SLOT_CHECK`] and on every cluster change
//! fred reports, which node serves each subscribed room's slot; a room
//! whose node changed (or whose subscription failed) is subscribed again
//! on its new node, and its sockets resync from the room log, before any
//! live entry of the new subscription (see [`resubscribe`]). Delivery stays
//! exactly-once: a socket skips entries at or below the last id it has.
//!
//! A joiner reads the room log right after [`Fanout::join`], so the
//! subscription must be in force at Redis by then: see [`subscribe`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::*;
use fred::types::config::Server;
use fred::types::{ClusterStateChange, Message};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use wire::internal::{RoomBody, RoomEvent};

use crate::mailbox::{ConnId, Mailbox};
use crate::stages::{self, RelayMetrics};

/// How often, on a cluster, the manager checks that every room's channel
/// is still subscribed on the node serving its slot (one `CLUSTER SLOTS`).
/// Bounds how late a moved room is noticed; what it published meanwhile is
/// read back from the log.
pub const SLOT_CHECK: Duration = Duration::from_millis(500);

/// Room channel → the local sockets in that room.
type Registry = Arc<Mutex<HashMap<String, HashMap<ConnId, Local>>>>;

/// A local socket in a room: its queue, and the user it speaks for, if
/// known. A socket's own signals and chat come back to its node on the
/// room channel (both members' nodes subscribe it); they are not handed
/// back to it, since its session would only drop them, and waking the
/// socket for nothing doubled the node's work per message.
struct Local {
    mailbox: Mailbox,
    user: Option<Arc<str>>,
}

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
        local: Local,
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
    pub fn start(subscriber: Client) -> (Fanout, Vec<JoinHandle<()>>) {
        let registry = Registry::default();
        // Taken before anything is subscribed, so no publication is missed.
        let messages = subscriber.message_rx();
        let (commands, rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(manage(subscriber, registry.clone(), rx)),
            tokio::spawn(dispatch(messages, registry.clone(), RelayMetrics::new())),
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
        self.attach(
            room,
            conn,
            Local {
                mailbox,
                user: None,
            },
        )
        .await
    }

    /// [`Fanout::join`] for a socket of `user`: its own signals and chat
    /// are not routed back to it (see [`Local`]).
    pub async fn join_as(
        &self,
        room: &str,
        conn: ConnId,
        mailbox: Mailbox,
        user: &str,
    ) -> Result<(), FanoutError> {
        let user = Some(Arc::from(user));
        self.attach(room, conn, Local { mailbox, user }).await
    }

    async fn attach(&self, room: &str, conn: ConnId, local: Local) -> Result<(), FanoutError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Join {
                channel: wire::keys::room_channel(room),
                conn,
                local,
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

/// Where a subscribed channel is known to be in force.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// Confirmed by the node serving the slot then (`None`: not a cluster).
    On(Option<Server>),
    /// Not known to be in force (the subscribe failed, or the connection
    /// was lost): subscribed again at the next check.
    Lost,
}

/// Subscribe and unsubscribe, in the order asked; restore after reconnects
/// and slot moves.
async fn manage(
    subscriber: Client,
    registry: Registry,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut subscribed: HashMap<String, Held> = HashMap::new();
    let mut reconnects = subscriber.reconnect_rx();
    let mut changes = subscriber.cluster_change_rx();
    let clustered = subscriber.is_clustered();
    let mut ticks = tokio::time::interval(SLOT_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                run(&subscriber, &registry, &mut subscribed, command).await;
            }
            event = reconnects.recv() => match event {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Every subscription went with the old connections.
                    for held in subscribed.values_mut() {
                        *held = Held::Lost;
                    }
                    check(&subscriber, &registry, &mut subscribed, false).await;
                    tracing::info!(rooms = subscribed.len(), "room subscriptions restored after reconnect");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            change = changes.recv(), if clustered => match change {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    log_change(change.ok());
                    check(&subscriber, &registry, &mut subscribed, false).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticks.tick(), if clustered => {
                check(&subscriber, &registry, &mut subscribed, true).await;
            }
        }
    }
}

fn log_change(change: Option<Vec<ClusterStateChange>>) {
    tracing::info!(?change, "cluster changed; checking room subscriptions");
}

/// The node serving `channel`'s slot, as the subscriber last saw the
/// cluster (`None` when not a cluster).
fn owner(subscriber: &Client, channel: &str) -> Option<Server> {
    let slot = fred::util::redis_keyslot(channel.as_bytes());
    subscriber
        .cached_cluster_state()
        .and_then(|state| state.get_server(slot).cloned())
}

/// Subscribe to `channel`'s shard; returns once Redis has confirmed it,
/// with the node it is in force on.
///
/// fred waits for the `SSUBSCRIBE` reply (unlike `SUBSCRIBE`, which it
/// completes as soon as it is queued), following a `MOVED` to the slot's
/// node; so once this returns, every later publication on the channel
/// reaches this node, and a joiner may read the room log. One channel per
/// command: fred matches each reply to one command, and a multi-channel
/// `SSUBSCRIBE` has one reply per channel.
async fn subscribe(subscriber: &Client, channel: &str) -> Result<Held, fred::error::Error> {
    subscriber.ssubscribe(channel).await?;
    Ok(Held::On(owner(subscriber, channel)))
}

/// Run one command.
async fn run(
    subscriber: &Client,
    registry: &Registry,
    subscribed: &mut HashMap<String, Held>,
    command: Command,
) {
    match command {
        Command::Join {
            channel,
            conn,
            local,
            done,
        } => {
            registry
                .lock()
                .unwrap()
                .entry(channel.clone())
                .or_default()
                .insert(conn, local);
            let was_lost = match subscribed.get(&channel) {
                Some(Held::On(_)) => {
                    let _ = done.send(Ok(()));
                    return;
                }
                Some(Held::Lost) => true,
                None => false,
            };
            // The sockets already there (if it was lost) missed what came
            // while it was not in force: they read it back.
            let subscribed_now = if was_lost {
                resubscribe(subscriber, registry, &channel).await
            } else {
                subscribe(subscriber, &channel).await
            };
            match subscribed_now {
                Ok(held) => {
                    subscribed.insert(channel.clone(), held);
                    let _ = done.send(Ok(()));
                }
                Err(e) => {
                    // Not known to be subscribed: the joiner is refused; the
                    // others in the room (if any) are restored by the next
                    // check.
                    if remove(registry, &channel, conn) {
                        subscribed.remove(&channel);
                    } else {
                        subscribed.insert(channel, Held::Lost);
                    }
                    let _ = done.send(Err(e.into()));
                }
            }
        }
        Command::Leave { channel, conn } => {
            if remove(registry, &channel, conn) && subscribed.remove(&channel).is_some() {
                if let Err(e) = subscriber.sunsubscribe(channel.as_str()).await {
                    // At worst the node keeps receiving a room nobody
                    // here is in: its publications are routed to no one.
                    tracing::warn!(error = %e, "unsubscribe failed");
                }
            }
        }
    }
}

/// Subscribe again every room whose subscription is lost or whose slot is
/// served by another node than the one it was confirmed on, then have
/// those rooms' sockets resync from their logs (after the subscription is
/// in force, so that nothing falls between). With `sync`, the cluster's
/// slot map is read first.
async fn check(
    subscriber: &Client,
    registry: &Registry,
    subscribed: &mut HashMap<String, Held>,
    sync: bool,
) {
    if sync && !subscribed.is_empty() {
        if let Err(e) = subscriber.sync_cluster().await {
            tracing::debug!(error = %e, "cluster slot map not read; checking with the cached one");
        }
    }
    let mut moved = Vec::new();
    for (channel, held) in subscribed.iter() {
        let stale = match held {
            Held::Lost => true,
            Held::On(server) => server.is_some() && *server != owner(subscriber, channel),
        };
        if stale {
            moved.push(channel.clone());
        }
    }
    let mut restored = 0usize;
    for channel in moved {
        match resubscribe(subscriber, registry, &channel).await {
            Ok(held) => {
                subscribed.insert(channel.clone(), held);
                restored += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, "room channel not subscribed again yet; retried at the next check");
                subscribed.insert(channel, Held::Lost);
            }
        }
    }
    if restored > 0 {
        tracing::info!(
            rooms = restored,
            "room channels subscribed again on their current node"
        );
    }
}

/// Subscribe `channel` again after its subscription was not in force for
/// a while (lost, or its slot moved), and have its sockets read back from
/// their room logs what they missed meanwhile.
///
/// The read-back must come before any live entry of the new subscription:
/// a connection skips entries at or below the last id it handled, so one
/// later entry handled first would move its cursor past those it missed
/// (while a slot migrates, a room's scripts run on the importing node,
/// which publishes where this node is not subscribed yet). So while it
/// subscribes, the room's sockets are taken out of the registry (the
/// dispatcher routes the room's publications to nobody: they are in the
/// log, read back next), and they are put back with a read-back queued
/// first ([`Mailbox::queue_resync`]), under the registry's lock, so every
/// publication routed after is queued behind it. Only this task changes
/// the registry, so nothing else comes or goes meanwhile.
async fn resubscribe(
    subscriber: &Client,
    registry: &Registry,
    channel: &str,
) -> Result<Held, fred::error::Error> {
    let held = registry.lock().unwrap().remove(channel);
    let result = subscribe(subscriber, channel).await;
    if let Some(conns) = held {
        let mut registry = registry.lock().unwrap();
        for local in conns.values() {
            local.mailbox.queue_resync();
        }
        registry.insert(channel.to_string(), conns);
    }
    result
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

fn resync_all(registry: &Registry) {
    for conns in registry.lock().unwrap().values() {
        for local in conns.values() {
            local.mailbox.request_resync();
        }
    }
}

/// Route each publication to the local sockets of its room.
async fn dispatch(
    mut messages: broadcast::Receiver<Message>,
    registry: Registry,
    metrics: RelayMetrics,
) {
    loop {
        match messages.recv().await {
            Ok(message) => route(&registry, &message, &metrics),
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

fn route(registry: &Registry, message: &Message, metrics: &RelayMetrics) {
    let received_us = stages::mono_us();
    let Some(bytes) = message.value.as_bytes() else {
        return;
    };
    let Some((id, stamp_us, payload)) = wire::internal::split_stamped_room_publication(bytes)
    else {
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
    if stamp_us > 0 {
        // (0: an unstamped publication, not timed)
        metrics.fanout(stamp_us, service::clock::now_us());
    }
    // Only a signal or chat: the sender's own `Joined`, `Away` or `Left`
    // may mean something to its other sockets and to itself.
    let echo = matches!(event.body, RoomBody::Signal { .. } | RoomBody::Chat { .. });
    if let Some(conns) = registry.lock().unwrap().get(&*message.channel) {
        for local in conns.values() {
            if echo && local.user.as_deref() == Some(event.from.as_str()) {
                continue;
            }
            local.mailbox.deliver(id, event.clone(), received_us);
        }
    }
}
