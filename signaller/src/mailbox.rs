//! What a connection receives from the node's shared tasks (the fan-out
//! dispatcher and the presence checker), and how it is never lost.
//!
//! Senders never block: a full queue does not stall the dispatcher (and so
//! every other room). Instead the connection is told to resync, and reads
//! what it missed back from the room log, which is the source of truth.
//! Nothing is dropped silently.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};
use wire::internal::{RoomEvent, StreamId};

/// Identifies one socket on this node (given by [`service::ws::ConnTasks`]).
pub use service::ws::ConnId;

/// Room events and notices a connection may have queued before it reads
/// them (live publications arrive while it runs its join, for instance).
pub const CAPACITY: usize = 1024;

/// One item for a connection.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An entry of the connection's room log, published live.
    Event(StreamId, Arc<RoomEvent>),
    /// The same, with when the node's dispatcher received it
    /// ([`crate::stages::mono_us`], for the dispatch stage).
    Live(StreamId, Arc<RoomEvent>, u64),
    /// A signaller node stopped heartbeating.
    NodeLost(Arc<str>),
    /// Read the room log back now, before anything queued after this:
    /// the room's live copy was not in force for a while (see
    /// `fanout::resubscribe`). In the queue, not beside it, so that no
    /// later live entry moves the connection's cursor past what it missed.
    Resync,
}

/// The sending side of a connection's queue; cloned into the fan-out
/// registry and the presence watch list.
#[derive(Debug, Clone)]
pub struct Mailbox {
    tx: mpsc::Sender<Delivery>,
    resync: Arc<Resync>,
}

/// The receiving side, owned by the connection.
#[derive(Debug)]
pub struct Inbox {
    pub rx: mpsc::Receiver<Delivery>,
    pub resync: Arc<Resync>,
}

/// "Something was lost: read the room log again."
#[derive(Debug, Default)]
pub struct Resync {
    needed: AtomicBool,
    notify: Notify,
}

impl Resync {
    pub fn request(&self) {
        self.needed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Resolves when a resync was requested (and clears the request).
    pub async fn wanted(&self) {
        loop {
            if self.needed.swap(false, Ordering::SeqCst) {
                return;
            }
            self.notify.notified().await;
        }
    }
}

/// A new queue for one connection.
pub fn new() -> (Mailbox, Inbox) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let resync = Arc::new(Resync::default());
    (
        Mailbox {
            tx,
            resync: resync.clone(),
        },
        Inbox { rx, resync },
    )
}

impl Mailbox {
    /// Queue a room event; if the queue is full, ask for a resync instead.
    pub fn deliver(&self, id: StreamId, event: Arc<RoomEvent>) {
        self.queue(Delivery::Event(id, event));
    }

    /// [`Mailbox::deliver`], with when the dispatcher received it.
    pub fn deliver_live(&self, id: StreamId, event: Arc<RoomEvent>, received_us: u64) {
        self.queue(Delivery::Live(id, event, received_us));
    }

    fn queue(&self, delivery: Delivery) {
        match self.tx.try_send(delivery) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.resync.request(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queue a notice; whether it was queued (the caller retries if not).
    pub fn notify_node_lost(&self, node: &Arc<str>) -> bool {
        self.tx.try_send(Delivery::NodeLost(node.clone())).is_ok()
    }

    /// Ask the connection to read its room log again.
    pub fn request_resync(&self) {
        self.resync.request();
    }

    /// Ask the connection to read its room log again after what is queued
    /// now and before anything queued later ([`Delivery::Resync`]); if the
    /// queue is full, as [`Mailbox::request_resync`].
    pub fn queue_resync(&self) {
        match self.tx.try_send(Delivery::Resync) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.resync.request(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::internal::RoomBody;

    fn event() -> Arc<RoomEvent> {
        Arc::new(RoomEvent {
            from: "n:a".into(),
            from_name: "a".into(),
            sent_ms: 0,
            body: RoomBody::Chat {
                message: "x".into(),
            },
        })
    }

    #[tokio::test]
    async fn a_full_queue_turns_into_a_resync_request() {
        let (mailbox, mut inbox) = new();
        for i in 0..CAPACITY as u64 + 5 {
            mailbox.deliver(StreamId { ms: i, seq: 0 }, event());
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), inbox.resync.wanted())
            .await
            .expect("resync requested");
        assert!(matches!(inbox.rx.recv().await, Some(Delivery::Event(id, _)) if id.ms == 0));
    }

    #[tokio::test]
    async fn a_queued_read_back_comes_after_what_was_queued_before_it() {
        let (mailbox, mut inbox) = new();
        mailbox.deliver(StreamId { ms: 1, seq: 0 }, event());
        mailbox.queue_resync();
        mailbox.deliver(StreamId { ms: 2, seq: 0 }, event());
        assert!(matches!(inbox.rx.recv().await, Some(Delivery::Event(id, _)) if id.ms == 1));
        assert!(matches!(inbox.rx.recv().await, Some(Delivery::Resync)));
        assert!(matches!(inbox.rx.recv().await, Some(Delivery::Event(id, _)) if id.ms == 2));
        // Full: asked beside the queue instead, never dropped.
        for i in 0..CAPACITY as u64 {
            mailbox.deliver(StreamId { ms: 10 + i, seq: 0 }, event());
        }
        mailbox.queue_resync();
        tokio::time::timeout(std::time::Duration::from_secs(1), inbox.resync.wanted())
            .await
            .expect("resync requested");
    }

    #[tokio::test]
    async fn resync_request_before_waiting_is_not_lost() {
        let (mailbox, inbox) = new();
        mailbox.request_resync();
        tokio::time::timeout(std::time::Duration::from_secs(1), inbox.resync.wanted())
            .await
            .expect("resync requested");
    }
}
