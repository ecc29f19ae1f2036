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

/// The longest reconnect back-off of a Redis client, plus a margin: after
/// an outage, another node may be back this much later than this one.
pub const RECONNECT_SKEW: Duration =
    Duration::from_millis(service::redis_conn::MAX_RECONNECT_DELAY.as_millis() as u64 + 500);

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
    health: Mutex<Health>,
}

/// Our own heartbeats, as far as judging other nodes goes.
#[derive(Debug, Default)]
struct Health {
    /// Since when our own heartbeats have been succeeding without a break.
    since: Option<Instant>,
    /// Our heartbeats (or our connection) failed since we started: every
    /// later healthy stretch must allow for the others' reconnects too.
    recovering: bool,
}

impl Health {
    /// How long a healthy stretch must last before we judge others.
    fn wait(&self, ttl: Duration) -> Duration {
        if self.recovering {
            ttl + RECONNECT_SKEW
        } else {
            ttl
        }
    }

    /// A heartbeat failed or Redis reconnected: the wait starts anew, and
    /// allows for the others' reconnects. Whether we were healthy.
    fn broken(&mut self) -> bool {
        self.recovering = true;
        self.since.take().is_some()
    }
}

/// Whether a node healthy since `since` may declare others dead at `now`,
/// once healthy for `wait`.
pub fn may_judge(since: Option<Instant>, wait: Duration, now: Instant) -> bool {
    since.is_some_and(|since| now.saturating_duration_since(since) >= wait)
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
                health: Mutex::default(),
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
                    self.inner.health.lock().unwrap().broken();
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
        let mut health = inner.health.lock().unwrap();
        match ok {
            Ok(()) => {
                health.since.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                if health.broken() {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }

    async fn check(&self) {
        let inner = &self.inner;
        let judge = {
            let health = inner.health.lock().unwrap();
            may_judge(health.since, health.wait(inner.ttl), Instant::now())
        };
        if !judge {
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
        assert!(!may_judge(None, ttl, t0));
        assert!(!may_judge(Some(t0), ttl, t0 + Duration::from_secs(2)));
        assert!(may_judge(Some(t0), ttl, t0 + ttl));
    }

    #[test]
    fn after_a_failure_the_wait_allows_for_the_others_reconnects() {
        let ttl = Duration::from_secs(3);
        let mut health = Health {
            since: Some(Instant::now()),
            recovering: false,
        };
        assert_eq!(health.wait(ttl), ttl);
        assert!(health.broken());
        assert_eq!(health.since, None);
        assert_eq!(health.wait(ttl), ttl + RECONNECT_SKEW);
        assert!(!health.broken(), "already broken");
    }
}
