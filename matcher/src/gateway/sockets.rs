//! The sockets this gateway holds, by user: how to reach each socket's task
//! (its mailbox). Nothing else is kept here; what a user waits for lives in
//! its socket's session.

use std::collections::HashMap;
use std::sync::Mutex;

use service::mailbox::{self, Posted};
use wire::internal::{ChatNotice, MatchedNotice};
use wire::user::UserKey;

use super::session::Waiting;

/// Messages queued for one socket before it counts as not keeping up.
pub const MAILBOX: usize = 64;

/// Something for one socket's task, from outside it. Kept small (the
/// larger variants boxed): a busy socket's queue holds up to [`MAILBOX`]
/// of them.
#[derive(Debug)]
pub enum SocketMsg {
    /// A `matched` notice waits for the user in Redis.
    NoticeWaiting,
    /// The `matched` notice itself, pushed by the pairing run to this
    /// socket (native users).
    Pushed(Box<MatchedNotice>),
    /// A chat line from the partner.
    Chat(Box<ChatNotice>),
    /// The user was registered by the legacy HTTP endpoint.
    RegisteredElsewhere(Box<Waiting>),
    /// Redis came back or this gateway was presumed dead: restore.
    Restore,
    /// The name's registrant took this socket's place (from another
    /// address): close it.
    Replaced,
}

/// How to reach one connected socket.
#[derive(Debug, Clone)]
pub struct SocketHandle {
    /// Unique per socket; a later socket of the same user has another.
    pub socket_id: String,
    mailbox: mailbox::Sender<SocketMsg>,
}

/// The receiving end of a socket's mailbox: a [`service::mailbox`], which
/// allocates nothing until a message comes (most sockets idle for minutes
/// and never get one). A raised mailbox ([`mailbox::Receiver::raised`])
/// overflowed: its socket is not keeping up (see [`SocketHandle::post`]).
pub type Mailbox = mailbox::Receiver<SocketMsg>;

impl SocketHandle {
    pub fn new(socket_id: String) -> (SocketHandle, Mailbox) {
        let (tx, rx) = mailbox::bounded(MAILBOX);
        (
            SocketHandle {
                socket_id,
                mailbox: tx,
            },
            rx,
        )
    }

    /// Queue a message without waiting. A socket whose mailbox is full is
    /// not keeping up; it is closed rather than let memory grow (what it
    /// missed is a notice, which waits in Redis, or chat, which the sender
    /// was told was relayed to a live socket).
    pub fn post(&self, msg: SocketMsg) -> bool {
        self.mailbox.post(msg) == Posted::Queued
    }
}

/// Connected users of this gateway.
#[derive(Default)]
pub struct Sockets {
    inner: Mutex<HashMap<UserKey, SocketHandle>>,
    /// Every open socket by its id, listed from the moment it opens: the
    /// pairing run addresses the socket whose location it read, which may
    /// not be listed by user yet (its location script has run, its reply
    /// is on the way), and must not miss it. Its mailbox holds the word
    /// until the socket's task has its location's reply.
    by_socket: Mutex<HashMap<String, SocketHandle>>,
}

impl Sockets {
    /// List `user`'s socket (Redis recorded its location), in place of any
    /// earlier socket of the user here (which Redis has told to close).
    pub fn put(&self, user: UserKey, handle: SocketHandle) {
        let id = handle.socket_id.clone();
        let earlier = self.inner.lock().unwrap().insert(user, handle);
        // The earlier socket was on this gateway: Redis's word for it may
        // reach us after this, and find the new socket listed. Tell it here.
        if let Some(earlier) = earlier.filter(|e| e.socket_id != id) {
            earlier.post(SocketMsg::Replaced);
        }
    }

    /// List a socket that just opened by its id (see `by_socket`).
    pub fn open(&self, handle: SocketHandle) {
        self.by_socket
            .lock()
            .unwrap()
            .insert(handle.socket_id.clone(), handle);
    }

    /// Post `msg` to the open socket `socket_id`, if it is here.
    pub fn post_to_socket(&self, socket_id: &str, msg: SocketMsg) {
        let handle = self.by_socket.lock().unwrap().get(socket_id).cloned();
        if let Some(handle) = handle {
            handle.post(msg);
        }
    }

    /// Remove a socket (by user only if it is still the one with
    /// `socket_id` there).
    pub fn remove(&self, user: &UserKey, socket_id: &str) -> bool {
        self.by_socket.lock().unwrap().remove(socket_id);
        let mut map = self.inner.lock().unwrap();
        if map.get(user).is_some_and(|h| h.socket_id == socket_id) {
            map.remove(user);
            return true;
        }
        false
    }

    pub fn get(&self, user: &UserKey) -> Option<SocketHandle> {
        self.inner.lock().unwrap().get(user).cloned()
    }

    /// Post `msg` to `user`'s socket here, if it has one (and, with
    /// `socket_id`, only if it is that socket).
    pub fn post_to(&self, user: &UserKey, socket_id: Option<&str>, msg: SocketMsg) {
        let handle = self.get(user);
        if let Some(handle) = handle.filter(|h| socket_id.is_none_or(|id| h.socket_id == id)) {
            handle.post(msg);
        }
    }

    /// Post `make()` to every socket.
    pub fn post_all(&self, make: impl Fn() -> SocketMsg) {
        for handle in self.inner.lock().unwrap().values() {
            handle.post(make());
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_socket_is_not_removed_by_the_earlier_ones_cleanup() {
        let s = Sockets::default();
        let u = UserKey::legacy("ann");
        let (c1, c1_mailbox) = SocketHandle::new("c1".into());
        s.put(u.clone(), c1);
        s.put(u.clone(), SocketHandle::new("c2".into()).0);
        assert!(matches!(c1_mailbox.try_recv(), Some(SocketMsg::Replaced)));
        assert!(!s.remove(&u, "c1"), "c2 replaced it");
        assert_eq!(s.get(&u).unwrap().socket_id, "c2");
        assert!(s.remove(&u, "c2"));
        assert!(s.get(&u).is_none());
    }

    /// An idle socket's mailbox allocates no buffer until a message comes
    /// (a tokio `mpsc` channel of 144-byte messages took over 5 KiB per
    /// socket), and a message stays small.
    #[test]
    fn an_idle_mailbox_is_small() {
        assert!(std::mem::size_of::<SocketMsg>() <= 16);
        let (_h, mailbox) = SocketHandle::new("c".into());
        assert_eq!(mailbox.buffer_capacity(), 0);
    }

    #[test]
    fn a_full_mailbox_signals_overflow() {
        let (h, mailbox) = SocketHandle::new("c".into());
        for _ in 0..MAILBOX {
            assert!(h.post(SocketMsg::NoticeWaiting));
        }
        assert!(!h.post(SocketMsg::NoticeWaiting));
        assert!(matches!(mailbox.try_recv(), Some(SocketMsg::NoticeWaiting)));
        let fired = mailbox.raised();
        tokio::pin!(fired);
        assert!(futures_util::FutureExt::now_or_never(fired).is_some());
    }
}
