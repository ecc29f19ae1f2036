//! The matcher's per-stage latency ([`service::metrics::STAGE`], stages
//! [`service::metrics::MATCHER_STAGES`]). Stages that cross processes are
//! measured against a wall-clock stamp in microseconds
//! ([`service::clock::now_us`]) carried with the work (a register stream
//! entry, a gateway channel message), since stream ids hold only
//! milliseconds; their accuracy is the clocks' skew.
//!
//! The handles are looked up once per process (a `histogram!` with a label
//! hashes its key and searches the registry on every call): recording is
//! a few atomic adds.

use std::sync::OnceLock;

use metrics::Histogram;

/// The stage histograms, one per stage.
pub struct Stages {
    pub register: Histogram,
    pub stream_wait: Histogram,
    pub pairing: Histogram,
    pub inbox: Histogram,
    pub deliver: Histogram,
}

/// The handles (looked up at first use, once the recorder is installed).
pub fn stages() -> &'static Stages {
    static STAGES: OnceLock<Stages> = OnceLock::new();
    STAGES.get_or_init(|| {
        use service::metrics::stage;
        Stages {
            register: stage("register"),
            stream_wait: stage("stream_wait"),
            pairing: stage("pairing"),
            inbox: stage("inbox"),
            deliver: stage("deliver"),
        }
    })
}
