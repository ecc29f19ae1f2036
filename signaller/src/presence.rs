//! Node liveness: when a whole signaller node dies, the peers of its
//! sockets are told within a bounded time.
//!
//! Each node refreshes its key `wire::keys::signaller_alive` with a TTL on
//! every heartbeat. For its joined sockets it also knows the node their peer
//! is on (from the room's member list and from `Joined` events); once per
//! heartbeat it checks whether those few nodes' keys still exist, and tells
//! the sockets whose peer's node is gone. A dead node's peers are thus told
//! within about `--node-ttl-ms` plus one `--heartbeat-ms`.
//!
//! A node only judges others after its own heartbeats have succeeded for a
//! whole TTL: right after a Redis outage or restart the other nodes' keys
//! may not be back yet, and that is not their death. After an outage it
//! also allows for the other nodes' reconnect back-off ([`RECONNECT_SKEW`]):
//! each Redis client retries on its own schedule, so one node may be back
//! up to a whole back-off step before another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::*;
use fred::types::Expiration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::mailbox::{ConnId, Mailbox};

/// The longest reconnect back-off of a Redis client (`service::redis_conn`:
/// exponential, at most 2 s), plus a margin: after an outage, another node
/// may be back this much later than this one.
pub const RECONNECT_SKEW: Duration = Duration::from_millis(2_500);

/// Handle to this node's heartbeat and its watch list.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    redis: Client,
    heartbeat: Duration,
    ttl: Duration,
    /// Peer node → the local sockets whose peer is there.
    watches: Mutex<HashMap<Arc<str>, HashMap<ConnId, Mailbox>>>,
    /// Since when our own heartbeats have been succeeding without a break,
    /// and how long that must last before we judge others.
    healthy_since: Mutex<Option<(Instant, Duration)>>,
    /// Our heartbeats (or our connection) failed since we started: the
    /// next healthy stretch must allow for the others' reconnects too.
    recovering: std::sync::atomic::AtomicBool,
}

/// Whether a node healthy since `since` (for at least the duration given
/// with it) may declare others dead at `now`.
pub fn may_judge(since: Option<(Instant, Duration)>, now: Instant) -> bool {
    since.is_some_and(|(since, wait)| now.saturating_duration_since(since) >= wait)
}

impl Presence {
    /// Write the first heartbeat and start the heartbeat/check loop.
    pub async fn start(
        redis: Client,
        node: String,
        heartbeat: Duration,
        ttl: Duration,
    ) -> (Presence, JoinHandle<()>) {
        let presence = Presence {
            inner: Arc::new(Inner {
                node,
                redis,
                heartbeat,
                ttl,
                watches: Mutex::new(HashMap::new()),
                healthy_since: Mutex::new(None),
                recovering: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        presence.beat().await;
        let task = tokio::spawn(presence.clone().run());
        (presence, task)
    }

    /// Tell `conn` (through `mailbox`) when `node` is gone. A socket watches
    /// one node at most: a new watch replaces its old one.
    pub fn watch(&self, node: &str, conn: ConnId, mailbox: Mailbox) {
        let mut watches = self.inner.watches.lock().unwrap();
        unwatch_locked(&mut watches, conn);
        watches
            .entry(Arc::from(node))
            .or_default()
            .insert(conn, mailbox);
    }

    /// Stop watching for `conn`.
    pub fn unwatch(&self, conn: ConnId) {
        unwatch_locked(&mut self.inner.watches.lock().unwrap(), conn);
    }

    /// Remove our liveness key (graceful shutdown: our sockets' peers have
    /// been told already).
    pub async fn retire(&self) {
        let _: Result<i64, _> = self
            .inner
            .redis
            .del(wire::keys::signaller_alive(&self.inner.node))
            .await;
        let _ = self.inner.redis.quit().await;
    }

    async fn run(self) {
        let mut ticks = tokio::time::interval(self.inner.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconnects = self.inner.redis.reconnect_rx();
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    self.beat().await;
                    self.check().await;
                }
                // A reconnect may mean an empty Redis: start the wait anew.
                Ok(_) = reconnects.recv() => {
                    self.inner.recovering.store(true, std::sync::atomic::Ordering::SeqCst);
                    *self.inner.healthy_since.lock().unwrap() = None;
                    self.beat().await;
                }
            }
        }
    }

    async fn beat(&self) {
        let inner = &self.inner;
        let ok = inner
            .redis
            .set::<(), _, _>(
                wire::keys::signaller_alive(&inner.node),
                "1",
                Some(Expiration::PX(inner.ttl.as_millis() as i64)),
                None,
                false,
            )
            .await;
        let mut since = inner.healthy_since.lock().unwrap();
        match ok {
            Ok(()) => {
                since.get_or_insert_with(|| {
                    let recovering = inner.recovering.load(std::sync::atomic::Ordering::SeqCst);
                    let wait = if recovering {
                        inner.ttl + RECONNECT_SKEW
                    } else {
                        inner.ttl
                    };
                    (Instant::now(), wait)
                });
            }
            Err(e) => {
                inner
                    .recovering
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                if since.take().is_some() {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }

    async fn check(&self) {
        let inner = &self.inner;
        if !may_judge(*inner.healthy_since.lock().unwrap(), Instant::now()) {
            return;
        }
        let nodes: Vec<Arc<str>> = inner.watches.lock().unwrap().keys().cloned().collect();
        for node in nodes {
            let alive: Result<i64, _> =
                inner.redis.exists(wire::keys::signaller_alive(&node)).await;
            if alive != Ok(0) {
                continue;
            }
            let mut watches = inner.watches.lock().unwrap();
            let Some(conns) = watches.get_mut(&node) else {
                continue;
            };
            tracing::warn!(node = %node, sockets = conns.len(), "signaller node lost; telling its peers");
            // Keep the ones whose queue was full: they are told next time.
            conns.retain(|_, mailbox| !mailbox.is_closed() && !mailbox.notify_node_lost(&node));
            if conns.is_empty() {
                watches.remove(&node);
            }
        }
    }
}

fn unwatch_locked(watches: &mut HashMap<Arc<str>, HashMap<ConnId, Mailbox>>, conn: ConnId) {
    watches.retain(|_, conns| {
        conns.remove(&conn);
        !conns.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_only_after_a_whole_ttl_of_own_health() {
        let ttl = Duration::from_secs(3);
        let t0 = Instant::now();
        assert!(!may_judge(None, t0));
        assert!(!may_judge(Some((t0, ttl)), t0 + Duration::from_secs(2)));
        assert!(may_judge(Some((t0, ttl)), t0 + ttl));
    }
}
