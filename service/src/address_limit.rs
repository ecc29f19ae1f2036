//! Per-client-address limits, shared by every gateway and node through
//! Redis, so that N gateways enforce one budget rather than N:
//!
//! * a rate (GCRA, `lua/address_rate.lua`, one TTL'd key per address):
//!   register POSTs, WebSocket opens and registrations each cost one;
//!   `--ip-rate-limit` per second on average, bursts of `--ip-rate-burst`;
//! * a cap on the sockets an address holds open on one service
//!   (`lua/address_sockets.lua`): `--max-sockets-per-ip`.
//!
//! Addresses are [`AddressKey`]s (IPv4, or the IPv6 /64). `0` turns either
//! limit off (no Redis call). When Redis fails, requests are let through
//! (logged): an outage must not lock every client out, and the per-socket
//! limits still hold.
//!
//! **Socket counts across gateways.** Each address has a hash of counts by
//! node and a sorted set of each node's lease end. Opening a socket adds
//! one to this node's count if the sum over live nodes is under the cap;
//! closing takes one off (the [`SocketPermit`] does it when dropped). Each
//! node keeps its own counts in memory and, every [`SOCKET_LEASE`] / 3,
//! restates them in Redis and renews its lease. A node that crashes stops
//! renewing: its counts are dropped when its lease ends, within
//! [`SOCKET_LEASE`]. A Redis that lost its data is corrected at the next
//! renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fred::prelude::*;
use fred::types::scripts::Script;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::client_addr::AddressKey;

/// How long a node's socket counts outlive its last renewal.
pub const SOCKET_LEASE: Duration = Duration::from_secs(30);

/// Longest a limit check waits for Redis before letting the request
/// through: an outage must not slow every handshake down by the whole
/// command timeout.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// What a client is told to wait when it holds too many sockets: one
/// must close first, which takes an unknown time.
pub const SOCKET_CAP_RETRY: Duration = Duration::from_secs(5);

/// The limits, as configured ([`crate::settings::SharedSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimitSettings {
    /// Requests per second per address on average; 0: no rate limit.
    pub rate: u32,
    /// Requests allowed at once.
    pub burst: u32,
    /// Sockets per address on this service; 0: no cap.
    pub max_sockets: u32,
    /// See [`SOCKET_LEASE`] (shorter in tests).
    pub lease: Duration,
}

/// What a client was refused and for how long; answered with `429` and
/// `Retry-After` over HTTP ([`Refusal::into_response`]), or an error
/// event `rate_limited` on a socket ([`Refusal::message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub what: Refused,
    pub retry_after: Duration,
}

/// Which per-address limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over the address's request rate.
    Rate,
    /// The address holds `--max-sockets-per-ip` sockets already.
    Sockets,
}

impl Refusal {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// Human text naming what was refused.
    pub fn message(&self) -> String {
        let secs = self.retry_after_secs();
        match self.what {
            Refused::Rate => {
                format!("too many requests from your address; retry in {secs} s")
            }
            Refused::Sockets => {
                format!("too many open connections from your address; close one, retry in {secs} s")
            }
        }
    }

    /// The `Retry-After` header value.
    pub fn retry_after_header(&self) -> HeaderValue {
        HeaderValue::from(self.retry_after_secs())
    }
}

impl IntoResponse for Refusal {
    /// `429 Too Many Requests` with `Retry-After` and a text body (for
    /// handshakes; the matcher's register POST answers in JSON).
    fn into_response(self) -> Response {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, self.retry_after_header())],
            self.message(),
        )
            .into_response()
    }
}

/// The per-address limits of one node; cheap to clone (shared).
#[derive(Clone)]
pub struct AddressLimits {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Client,
    settings: AddressLimitSettings,
    /// `matcher` or `signaller`: whose sockets are capped.
    service: &'static str,
    node: String,
    rate_script: Script,
    sockets_script: Script,
    /// This node's sockets by address (the truth its renewals restate).
    held: Mutex<HashMap<AddressKey, u32>>,
}

/// One socket counted against its address; the count is released when
/// this is dropped (keep it for as long as the socket lives).
pub struct SocketPermit {
    held: Option<(Arc<Inner>, AddressKey)>,
}

impl std::fmt::Debug for SocketPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketPermit")
            .field("address", &self.held.as_ref().map(|(_, k)| k))
            .finish()
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let Some((inner, key)) = self.held.take() else {
            return;
        };
        {
            let mut held = inner.held.lock().unwrap();
            if let Some(n) = held.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&key);
                }
            }
        }
        // Without a runtime (the process is ending) the lease expires it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = inner.sockets(&key, "release", 0).await {
                    tracing::debug!(error = %e, "socket count not released; its lease will");
                }
            });
        }
    }
}

impl AddressLimits {
    /// The limits of node `node` (its gateway or node id) of `service`
    /// (`matcher`, `signaller`), and the task that renews its socket
    /// leases (run it for as long as the node lives; abort it on a crash).
    pub fn start(
        redis: Client,
        settings: AddressLimitSettings,
        service: &'static str,
        node: impl Into<String>,
    ) -> (AddressLimits, JoinHandle<()>) {
        let limits = AddressLimits {
            inner: Arc::new(Inner {
                redis,
                settings,
                service,
                node: node.into(),
                rate_script: Script::from_lua(include_str!("lua/address_rate.lua")),
                sockets_script: Script::from_lua(include_str!("lua/address_sockets.lua")),
                held: Mutex::new(HashMap::new()),
            }),
        };
        let renewer = tokio::spawn(limits.clone().renew_forever());
        (limits, renewer)
    }

    /// Count one request against `address`'s rate: `Ok` (and counted), or
    /// refused with how long until it would be allowed (nothing counted).
    /// Let through when Redis fails or is slower than [`CHECK_TIMEOUT`].
    pub async fn admit(&self, address: &AddressKey) -> Result<(), Refusal> {
        let s = self.inner.settings;
        if s.rate == 0 {
            return Ok(());
        }
        let interval_us = (1_000_000 / u64::from(s.rate)).max(1);
        let reply: Result<Vec<i64>, fred::error::Error> = tokio::time::timeout(
            CHECK_TIMEOUT,
            crate::redis_conn::run_script(
                &self.inner.rate_script,
                &self.inner.redis,
                vec![wire::keys::address_rate(address.as_str())],
                // Every request costs one.
                vec![interval_us as i64, i64::from(s.burst.max(1)), 1],
            ),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out()));
        match reply.as_deref() {
            Ok([0, retry_us, ..]) => {
                metrics::counter!(crate::metrics::ERRORS, "kind" => "rate_limited").increment(1);
                Err(Refusal {
                    what: Refused::Rate,
                    retry_after: Duration::from_micros((*retry_us).max(1) as u64),
                })
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "address rate limit unavailable; request let through");
                Ok(())
            }
        }
    }

    /// Count one more socket for `address` if it is under the cap; the
    /// permit releases it when dropped.
    pub async fn open_socket(&self, address: &AddressKey) -> Result<SocketPermit, Refusal> {
        let s = self.inner.settings;
        if s.max_sockets == 0 {
            return Ok(SocketPermit { held: None });
        }
        match self
            .inner
            .sockets(address, "open", i64::from(s.max_sockets))
            .await
        {
            Ok(false) => {
                metrics::counter!(crate::metrics::ERRORS, "kind" => "rate_limited").increment(1);
                return Err(Refusal {
                    what: Refused::Sockets,
                    retry_after: SOCKET_CAP_RETRY,
                });
            }
            Ok(true) => {}
            Err(e) => {
                // Counted locally all the same: the next renewal states it.
                tracing::warn!(error = %e, "socket cap unavailable; socket let through");
            }
        }
        *self
            .inner
            .held
            .lock()
            .unwrap()
            .entry(address.clone())
            .or_insert(0) += 1;
        Ok(SocketPermit {
            held: Some((self.inner.clone(), address.clone())),
        })
    }

    /// What a WebSocket handshake from `address` must pass before the
    /// upgrade: the rate (an open costs one), then the socket cap.
    pub async fn admit_socket(&self, address: &AddressKey) -> Result<SocketPermit, Refusal> {
        self.admit(address).await?;
        self.open_socket(address).await
    }

    /// Sockets this node holds for `address` (tests, metrics).
    pub fn held(&self, address: &AddressKey) -> u32 {
        self.inner
            .held
            .lock()
            .unwrap()
            .get(address)
            .copied()
            .unwrap_or(0)
    }

    /// Restate this node's counts and renew its leases, every lease / 3.
    async fn renew_forever(self) {
        if self.inner.settings.max_sockets == 0 {
            return;
        }
        let every = (self.inner.settings.lease / 3).max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let held: Vec<(AddressKey, u32)> = self
                .inner
                .held
                .lock()
                .unwrap()
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .collect();
            let inner = &self.inner;
            futures_util::stream::iter(held)
                .for_each_concurrent(32, |(key, n)| async move {
                    if let Err(e) = inner.sockets(&key, "refresh", i64::from(n)).await {
                        tracing::debug!(error = %e, "socket lease not renewed");
                    }
                })
                .await;
        }
    }
}

impl Inner {
    /// Run `op` of the sockets script for `address`; whether allowed.
    async fn sockets(
        &self,
        address: &AddressKey,
        op: &str,
        arg: i64,
    ) -> Result<bool, fred::error::Error> {
        let lease_ms = self.settings.lease.as_millis().max(1) as i64;
        let reply: Vec<i64> = tokio::time::timeout(
            CHECK_TIMEOUT,
            crate::redis_conn::run_script(
                &self.sockets_script,
                &self.redis,
                vec![
                    wire::keys::address_sockets(address.as_str(), self.service),
                    wire::keys::address_socket_leases(address.as_str(), self.service),
                ],
                vec![
                    Value::from(op),
                    Value::from(self.node.as_str()),
                    Value::from(lease_ms),
                    Value::from(arg),
                ],
            ),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out()))?;
        Ok(reply.first() == Some(&1))
    }
}

fn timed_out() -> fred::error::Error {
    fred::error::Error::new(fred::error::ErrorKind::Timeout, "limit check timed out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let r = |ms| Refusal {
            what: Refused::Rate,
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(r(1).retry_after_secs(), 1);
        assert_eq!(r(1000).retry_after_secs(), 1);
        assert_eq!(r(1001).retry_after_secs(), 2);
        let resp = r(2500).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
    }
}
