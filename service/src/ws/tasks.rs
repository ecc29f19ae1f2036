//! Every socket task of a node, so that the node can abort them all at
//! once (a simulated crash: no clean-up runs) or wait for them to finish
//! (a graceful drain). Each task gets a fresh [`ConnId`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// Identifies one socket on this node. Per socket, never per user: a
/// client that reconnects opens a new socket under the same user moments
/// after closing the old one, and the old one's clean-up must not touch it.
pub type ConnId = ulid::Ulid;

/// The live socket tasks of a node; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ConnTasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tasks: Mutex<Tasks>,
    emptied: Notify,
}

#[derive(Default)]
struct Tasks {
    live: HashMap<ConnId, AbortHandle>,
    /// After [`ConnTasks::abort_all`], no new task starts.
    closed: bool,
}

/// Removes its task from the registry when the task ends, aborted or not.
struct Deregister {
    inner: Arc<Inner>,
    id: ConnId,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let mut tasks = self.inner.tasks.lock().unwrap();
        tasks.live.remove(&self.id);
        if tasks.live.is_empty() {
            self.inner.emptied.notify_waiters();
        }
    }
}

impl ConnTasks {
    /// Run `task(id)` for a new socket with a fresh id (not after
    /// `abort_all`: then the task is dropped without running).
    pub fn spawn<F, Fut>(&self, task: F)
    where
        F: FnOnce(ConnId) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = ConnId::new();
        let deregister = Deregister {
            inner: self.inner.clone(),
            id,
        };
        // Hold the lock while spawning, so the task cannot deregister
        // before it is registered.
        let mut tasks = self.inner.tasks.lock().unwrap();
        if tasks.closed {
            drop(tasks);
            return;
        }
        // `map`, not an async block: a block that captures a future (or
        // the closure that makes it) and awaits it holds it twice (once as
        // the capture, once as the awaited value), for the socket's whole
        // life. `Map` holds the future once, next to the deregistration,
        // which it drops when the task ends or is aborted.
        let handle = tokio::spawn(task(id).map(move |()| drop(deregister)));
        tasks.live.insert(id, handle.abort_handle());
    }

    /// Number of live socket tasks.
    pub fn len(&self) -> usize {
        self.inner.tasks.lock().unwrap().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Abort every socket task; refuse new ones.
    pub fn abort_all(&self) {
        let mut tasks = self.inner.tasks.lock().unwrap();
        tasks.closed = true;
        for handle in tasks.live.values() {
            handle.abort();
        }
    }

    /// Resolves once no socket task is left.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.inner.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn abort_ends_tasks_and_wait_sees_it() {
        let tasks = ConnTasks::default();
        for _ in 0..3 {
            tasks.spawn(|_| std::future::pending::<()>());
        }
        assert_eq!(tasks.len(), 3);
        tasks.abort_all();
        tokio::time::timeout(Duration::from_secs(1), tasks.wait_empty())
            .await
            .expect("all aborted");
        tasks.spawn(|_| std::future::pending::<()>());
        assert!(tasks.is_empty(), "no new task after abort_all");
    }

    #[tokio::test]
    async fn finished_tasks_deregister() {
        let tasks = ConnTasks::default();
        tasks.spawn(|_| async {});
        tokio::time::timeout(Duration::from_secs(1), tasks.wait_empty())
            .await
            .expect("finished");
    }
}
