//! What a connection receives from the node's shared tasks (the fan-out
//! dispatcher and the presence checker), and how it is never lost.
//!
//! Senders never block: a full queue does not stall the dispatcher (and so
//! every other room). Instead the connection is told to resync, and reads
//! what it missed back from the room log, which is the source of truth.
//! Nothing is dropped silently.

use std::sync::Arc;

use service::mailbox::{self, Posted};
use wire::internal::{RoomEvent, StreamId};

/// Identifies one socket on this node (given by [`service::ws::ConnTasks`]).
pub use service::ws::ConnId;

/// Room events and notices a connection may have queued before it reads
/// them (live publications arrive while it runs its join, for instance).
pub const CAPACITY: usize = 1024;

/// One item for a connection.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An entry of the connection's room log, published live, with when
    /// the node's dispatcher received it ([`crate::stages::mono_us`], for
    /// the dispatch stage).
    Event(StreamId, Arc<RoomEvent>, u64),
    /// A signaller node stopped heartbeating.
    NodeLost(Arc<str>),
    /// Read the room log back now, before anything queued after this:
    /// the room's live copy was not in force for a while (see
    /// `fanout::resubscribe`). In the queue, not beside it, so that no
    /// later live entry moves the connection's cursor past what it missed.
    Resync,
}

/// The sending side of a connection's queue; cloned into the fan-out
/// registry and the presence watch list. A [`service::mailbox`]: nothing
/// is allocated for it until something is queued (a joined socket mostly
/// idles), and a full queue *raises* it, which this connection takes as
/// "read the room log back" ([`Inbox`]).
#[derive(Debug, Clone)]
pub struct Mailbox {
    tx: mailbox::Sender<Delivery>,
}

/// The receiving side, owned by the connection: a raised inbox
/// ([`mailbox::Receiver::raised`]) means "read the room log back" (a
/// delivery did not fit, or a resync was requested).
pub type Inbox = mailbox::Receiver<Delivery>;

/// A new queue for one connection.
pub fn new() -> (Mailbox, Inbox) {
    let (tx, rx) = mailbox::bounded(CAPACITY);
    (Mailbox { tx }, rx)
}

impl Mailbox {
    /// Queue a room event the dispatcher received at `received_us`; if the
    /// queue is full, ask for a resync instead.
    pub fn deliver(&self, id: StreamId, event: Arc<RoomEvent>, received_us: u64) {
        self.tx.post(Delivery::Event(id, event, received_us));
    }

    /// Queue a notice; whether it was queued (the caller retries if not).
    pub fn notify_node_lost(&self, node: &Arc<str>) -> bool {
        self.tx.try_post(Delivery::NodeLost(node.clone())) == Posted::Queued
    }

    /// Ask the connection to read its room log again.
    pub fn request_resync(&self) {
        self.tx.raise();
    }

    /// Ask the connection to read its room log again after what is queued
    /// now and before anything queued later ([`Delivery::Resync`]). Queued
    /// even when the queue is full: a request beside the queue could be
    /// served after a later live entry moved the connection's cursor past
    /// what it missed. (Only a room subscribed again queues one, and not
    /// on top of one already last in the queue.)
    pub fn queue_resync(&self) {
        self.tx
            .post_marker(Delivery::Resync, |d| matches!(d, Delivery::Resync));
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
        let (mailbox, inbox) = new();
        for i in 0..CAPACITY as u64 + 5 {
            mailbox.deliver(StreamId { ms: i, seq: 0 }, event(), 0);
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), inbox.raised())
            .await
            .expect("resync requested");
        assert!(matches!(inbox.recv().await, Delivery::Event(id, _, _) if id.ms == 0));
    }

    #[tokio::test]
    async fn a_queued_read_back_comes_after_what_was_queued_before_it() {
        let (mailbox, inbox) = new();
        mailbox.deliver(StreamId { ms: 1, seq: 0 }, event(), 0);
        mailbox.queue_resync();
        mailbox.deliver(StreamId { ms: 2, seq: 0 }, event(), 0);
        assert!(matches!(inbox.recv().await, Delivery::Event(id, _, _) if id.ms == 1));
        assert!(matches!(inbox.recv().await, Delivery::Resync));
        assert!(matches!(inbox.recv().await, Delivery::Event(id, _, _) if id.ms == 2));
        // Full: still queued in its place, after what came before.
        for i in 0..CAPACITY as u64 {
            mailbox.deliver(StreamId { ms: 10 + i, seq: 0 }, event(), 0);
        }
        mailbox.queue_resync();
        mailbox.queue_resync();
        for i in 0..CAPACITY as u64 {
            assert!(matches!(inbox.try_recv(), Some(Delivery::Event(id, _, _)) if id.ms == 10 + i));
        }
        assert!(matches!(inbox.try_recv(), Some(Delivery::Resync)));
        assert!(inbox.try_recv().is_none(), "one read-back, not two");
    }

    #[tokio::test]
    async fn resync_request_before_waiting_is_not_lost() {
        let (mailbox, inbox) = new();
        mailbox.request_resync();
        tokio::time::timeout(std::time::Duration::from_secs(1), inbox.raised())
            .await
            .expect("resync requested");
    }
}
