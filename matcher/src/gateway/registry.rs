//! The sockets this gateway holds, by user. The only state a gateway keeps,
//! and all it needs to put its users back after Redis comes back empty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use tokio::sync::mpsc;
use wire::user::UserKey;

/// Something to write to one socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    Text(String),
    /// A WebSocket ping (keep-alive).
    Ping,
    /// Close with this code and reason, then stop writing.
    Close(u16, String),
}

/// How to reach one connected socket.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Unique per socket; a later socket of the same user has another.
    pub conn_id: String,
    pub tx: mpsc::Sender<Outbound>,
    /// Signaller URL to hand this client in `matched`.
    pub signaller_url: String,
    /// Fired when the socket's queue overflows: the socket is closed.
    pub overflow: Arc<Notify>,
}

impl ConnHandle {
    /// Queue a frame without waiting. A socket whose queue is full is not
    /// reading; it is closed rather than let the gateway's memory grow.
    pub fn send(&self, text: String) -> bool {
        match self.tx.try_send(Outbound::Text(text)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A registration this gateway made for one of its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reg: String,
    pub name: String,
    /// When the user registered, for the time-to-match metric.
    pub since: std::time::Instant,
}

struct Entry {
    conn: ConnHandle,
    waiting: Option<Waiting>,
}

/// Connected users of this gateway.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<HashMap<UserKey, Entry>>,
    /// Woken whenever the last socket leaves (a drain waits for it).
    emptied: Notify,
}

impl Registry {
    /// Add a socket; `false` if this user already has one here.
    pub fn insert(&self, user: UserKey, conn: ConnHandle) -> bool {
        let mut map = self.inner.lock().unwrap();
        if map.contains_key(&user) {
            return false;
        }
        map.insert(
            user,
            Entry {
                conn,
                waiting: None,
            },
        );
        true
    }

    /// Remove a socket, only if it is still the one with `conn_id`.
    pub fn remove(&self, user: &UserKey, conn_id: &str) -> bool {
        let mut map = self.inner.lock().unwrap();
        if map.get(user).is_some_and(|e| e.conn.conn_id == conn_id) {
            map.remove(user);
            if map.is_empty() {
                self.emptied.notify_waiters();
            }
            return true;
        }
        false
    }

    /// Resolves once no socket is left.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }

    pub fn get(&self, user: &UserKey) -> Option<ConnHandle> {
        self.inner.lock().unwrap().get(user).map(|e| e.conn.clone())
    }

    /// Remember (or forget) that a local user waits in the pool.
    pub fn set_waiting(&self, user: &UserKey, waiting: Option<Waiting>) {
        if let Some(e) = self.inner.lock().unwrap().get_mut(user) {
            e.waiting = waiting;
        }
    }

    pub fn waiting(&self, user: &UserKey) -> Option<Waiting> {
        self.inner
            .lock()
            .unwrap()
            .get(user)
            .and_then(|e| e.waiting.clone())
    }

    /// Every socket, with what it waits for.
    pub fn snapshot(&self) -> Vec<(UserKey, ConnHandle, Option<Waiting>)> {
        self.inner
            .lock()
            .unwrap()
            .iter()
            .map(|(u, e)| (u.clone(), e.conn.clone(), e.waiting.clone()))
            .collect()
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

    fn handle(id: &str) -> ConnHandle {
        ConnHandle {
            conn_id: id.into(),
            tx: mpsc::channel(1).0,
            signaller_url: String::new(),
            overflow: Arc::default(),
        }
    }

    #[test]
    fn a_later_socket_is_not_removed_by_the_earlier_ones_cleanup() {
        let r = Registry::default();
        let u = UserKey::legacy("ann");
        assert!(r.insert(u.clone(), handle("c1")));
        assert!(!r.insert(u.clone(), handle("c2")));
        assert!(r.remove(&u, "c1"));
        assert!(r.insert(u.clone(), handle("c2")));
        assert!(!r.remove(&u, "c1"));
        assert_eq!(r.get(&u).unwrap().conn_id, "c2");
    }

    #[tokio::test]
    async fn wait_empty_wakes_when_the_last_socket_leaves() {
        let r = std::sync::Arc::new(Registry::default());
        let u = UserKey::legacy("ann");
        r.insert(u.clone(), handle("c1"));
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.wait_empty().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        r.remove(&u, "c1");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }

    #[test]
    fn waiting_is_per_user() {
        let r = Registry::default();
        let u = UserKey::native("1");
        r.insert(u.clone(), handle("c"));
        let w = Waiting {
            reg: "r".into(),
            name: "n".into(),
            since: std::time::Instant::now(),
        };
        r.set_waiting(&u, Some(w.clone()));
        assert_eq!(r.waiting(&u), Some(w));
        assert_eq!(r.snapshot().len(), 1);
        r.set_waiting(&UserKey::native("2"), None);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_full_queue_signals_overflow() {
        let (tx, mut rx) = mpsc::channel(1);
        let h = ConnHandle {
            conn_id: "c".into(),
            tx,
            signaller_url: String::new(),
            overflow: Arc::default(),
        };
        assert!(h.send("a".into()));
        assert!(!h.send("b".into()));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Text(t)) if t == "a"));
        // The overflow was signalled: a waiter wakes at once.
        let fired = h.overflow.notified();
        tokio::pin!(fired);
        assert!(futures_util::FutureExt::now_or_never(fired).is_some());
    }
}
