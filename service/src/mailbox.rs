//! A socket task's mailbox: what the node's shared tasks (a dispatcher, a
//! pub/sub reader) hand to one socket, without ever waiting on it.
//!
//! Not a tokio `mpsc` channel: that allocates its cache-padded state and a
//! first block of 32 slots (over 1.5 KiB) when it is made, and most sockets
//! sit idle for minutes with nothing queued. This one is a `VecDeque` under
//! a lock, allocated when something is queued and given back once it is
//! read empty, plus two wake-ups: *ready* (something is queued) and
//! *raised* (a sender found the queue full, or raised it on purpose; what
//! that means is the owner's policy: close the socket, read a log back).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// What [`Sender::post`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Queued,
    /// The queue held its capacity: the message was not queued, and the
    /// mailbox was raised.
    Full,
    /// The receiver is gone.
    Closed,
}

/// A mailbox for up to `capacity` messages.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            messages: VecDeque::new(),
            closed: false,
        }),
        capacity,
        ready: Notify::new(),
        raised: AtomicBool::new(false),
        raise: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    capacity: usize,
    /// Wakes the receiver when a message is queued.
    ready: Notify,
    /// Set by [`Sender::raise`], cleared by [`Receiver::raised`].
    raised: AtomicBool,
    raise: Notify,
}

struct Queue<T> {
    messages: VecDeque<T>,
    /// The receiver is gone: nothing is queued any more.
    closed: bool,
}

/// The sending side; cheap to clone.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mailbox::Sender").finish_non_exhaustive()
    }
}

/// The receiving side, owned by the socket's task; dropping it closes the
/// mailbox.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mailbox::Receiver").finish_non_exhaustive()
    }
}

impl<T> Sender<T> {
    /// Queue `message` without waiting. A full queue takes nothing and
    /// raises the mailbox: the receiver decides what a sender that could
    /// not get through means.
    pub fn post(&self, message: T) -> Posted {
        let posted = self.try_post(message);
        if posted == Posted::Full {
            self.raise();
        }
        posted
    }

    /// [`Sender::post`] without raising the mailbox when it is full: for a
    /// sender that tries again later itself.
    pub fn try_post(&self, message: T) -> Posted {
        let mut queue = self.shared.queue.lock().unwrap();
        if queue.closed {
            return Posted::Closed;
        }
        if queue.messages.len() >= self.shared.capacity {
            return Posted::Full;
        }
        queue.messages.push_back(message);
        drop(queue);
        self.shared.ready.notify_one();
        Posted::Queued
    }

    /// Queue `marker` even if the queue holds its capacity, unless the last
    /// message queued is already one (`is_marker`): for a marker that must
    /// keep its place in the order (a "read back now" between what came
    /// before and what comes after), which a full queue would otherwise
    /// turn into an out-of-order request. Two in a row would do the same
    /// as one, so a queue that is not read grows by one marker at most.
    pub fn post_marker(&self, marker: T, is_marker: impl Fn(&T) -> bool) -> Posted {
        let mut queue = self.shared.queue.lock().unwrap();
        if queue.closed {
            return Posted::Closed;
        }
        if !queue.messages.back().is_some_and(is_marker) {
            queue.messages.push_back(marker);
        }
        drop(queue);
        self.shared.ready.notify_one();
        Posted::Queued
    }

    /// Wake the receiver's [`Receiver::raised`] (once, however often it is
    /// raised before it looks).
    pub fn raise(&self) {
        self.shared.raised.store(true, Ordering::SeqCst);
        self.shared.raise.notify_one();
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.lock().unwrap().closed
    }
}

impl<T> Receiver<T> {
    /// The next message, once there is one. Cancel-safe: a message is
    /// taken from the queue only when it is returned.
    pub async fn recv(&self) -> T {
        loop {
            if let Some(message) = self.try_recv() {
                return message;
            }
            // A message queued since the check left a permit: this
            // returns at once, and the loop takes it.
            self.shared.ready.notified().await;
        }
    }

    /// The next message, if one is queued. The buffer is given back when
    /// the last one is taken: an idle socket holds none.
    pub fn try_recv(&self) -> Option<T> {
        let mut queue = self.shared.queue.lock().unwrap();
        let message = queue.messages.pop_front();
        if message.is_some() && queue.messages.is_empty() {
            queue.messages = VecDeque::new();
        }
        message
    }

    /// Resolves once the mailbox was raised since the last time this
    /// resolved (a raise before the wait is not lost). Cancel-safe.
    pub async fn raised(&self) {
        loop {
            if self.shared.raised.swap(false, Ordering::SeqCst) {
                return;
            }
            self.shared.raise.notified().await;
        }
    }

    /// Bytes of queue buffer held now (for the idle-size tests).
    pub fn buffer_capacity(&self) -> usize {
        self.shared.queue.lock().unwrap().messages.capacity()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock().unwrap();
        queue.closed = true;
        queue.messages = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// An idle mailbox is its shared state only (a tokio `mpsc` channel
    /// allocated over 1.5 KiB per socket up front); a drained one gives
    /// its buffer back.
    #[test]
    fn an_idle_mailbox_holds_no_buffer() {
        let size = std::mem::size_of::<Shared<[u64; 5]>>();
        assert!(size <= 160, "a mailbox is {size} bytes");
        let (tx, rx) = bounded::<[u64; 5]>(8);
        assert_eq!(rx.buffer_capacity(), 0);
        tx.post([1; 5]);
        tx.post([2; 5]);
        assert!(rx.buffer_capacity() > 0);
        assert_eq!(rx.try_recv(), Some([1; 5]));
        assert_eq!(rx.try_recv(), Some([2; 5]));
        assert_eq!(rx.buffer_capacity(), 0);
    }

    #[test]
    fn a_closed_mailbox_takes_nothing() {
        let (tx, rx) = bounded(4);
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.post(1), Posted::Closed);
    }

    #[test]
    fn a_full_mailbox_refuses_and_raises() {
        let (tx, rx) = bounded(2);
        assert_eq!(tx.post(1), Posted::Queued);
        assert_eq!(tx.post(2), Posted::Queued);
        assert_eq!(tx.post(3), Posted::Full);
        assert!(rx.raised().now_or_never().is_some());
        assert!(rx.raised().now_or_never().is_none(), "cleared once seen");
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(tx.post(3), Posted::Queued);
        // Full: try_post refuses without raising.
        assert_eq!(tx.try_post(4), Posted::Full);
        assert!(rx.raised().now_or_never().is_none());
        // A marker keeps its place after what is queued, full or not, and
        // is not stacked on one already last.
        assert_eq!(tx.post_marker(9, |m| *m == 9), Posted::Queued);
        assert_eq!(tx.post_marker(9, |m| *m == 9), Posted::Queued);
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), Some(3));
        assert_eq!(rx.try_recv(), Some(9));
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn a_message_posted_while_waiting_wakes_the_receiver() {
        let (tx, rx) = bounded(4);
        let mut waiting = Box::pin(rx.recv());
        // The receiver is waiting (found nothing) before the post.
        assert!(futures_util::poll!(&mut waiting).is_pending());
        tx.post(7);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken");
        assert_eq!(got, 7);
    }
}
