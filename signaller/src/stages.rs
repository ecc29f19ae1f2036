//! Where the time of one relayed message goes, by stage
//! ([`service::metrics::SIGNALLER_STAGES`] of [`service::metrics::STAGE`]),
//! and the relay counter and latency.
//!
//! The handles are looked up once per node (a `histogram!` with a label
//! hashes its key and searches the registry on every call), so that
//! recording costs a few atomic adds per message:
//!
//! * `append`: the sender's frame read → the room script replied (sender's node);
//! * `fanout`: the sender's node sent the script → the receiving node's
//!   dispatcher got the publication (two nodes' wall clocks: as good as
//!   their clock sync; on one host, exact);
//! * `dispatch`: the dispatcher got it → written to the peer's socket.

use std::time::Duration;

use metrics::{Counter, Histogram};

/// The node's relay metrics, looked up once.
#[derive(Clone)]
pub struct RelayMetrics {
    append: Histogram,
    fanout: Histogram,
    dispatch: Histogram,
    relayed: Counter,
    latency: Histogram,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayMetrics {
    /// Look the handles up (after the recorder is installed).
    pub fn new() -> RelayMetrics {
        use service::metrics::stage;
        RelayMetrics {
            append: stage("append"),
            fanout: stage("fanout"),
            dispatch: stage("dispatch"),
            relayed: metrics::counter!(service::metrics::RELAYED),
            latency: metrics::histogram!(service::metrics::RELAY_LATENCY),
        }
    }

    pub fn append(&self, took: Duration) {
        self.append.record(took.as_secs_f64());
    }

    /// A publication stamped `sent_us` (µs since the Unix epoch, not 0) by
    /// the sender's node reached this node at `now_us`.
    pub fn fanout(&self, sent_us: u64, now_us: u64) {
        self.fanout
            .record(service::clock::secs_since_us(sent_us, now_us));
    }

    /// A delivery the dispatcher got at `received_us` ([`mono_us`]) was
    /// written to its socket now.
    pub fn dispatch(&self, received_us: u64) {
        let took = mono_us().saturating_sub(received_us);
        self.dispatch.record(took as f64 / 1_000_000.0);
    }

    /// A live signal or chat handed to a socket, `age_ms` after its
    /// sender's node stamped it.
    pub fn relayed(&self, age_ms: u64) {
        self.relayed.increment(1);
        self.latency.record(age_ms as f64 / 1000.0);
    }
}

/// Microseconds on this node's monotonic clock (since the first call), a
/// compact stamp for the dispatch stage (a `u64` keeps each queued
/// delivery as small as it was; an `Instant` would add 8 bytes to every
/// slot of every joined socket's queue).
pub fn mono_us() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}
