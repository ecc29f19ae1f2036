//! The matcher's per-stage latency ([`service::metrics::STAGE`], stages
//! [`service::metrics::MATCHER_STAGES`]). Stages that cross processes are
//! measured against a wall-clock stamp in microseconds
//! ([`service::clock::now_us`]) carried with the work (a register stream
//! entry, a gateway channel message), since stream ids hold only
//! milliseconds; their accuracy is the clocks' skew.
//!
//! The handles are looked up once per process (a `histogram!` with a label
//! hashes its key and searches the registry on every call): recording is
//! a few atomic adds. So are those of the other metrics a gateway records
//! for every user it matches ([`per_user`]).

use std::sync::OnceLock;

use metrics::{Counter, Histogram};

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

/// The metrics a gateway records for every registration and every match
/// it delivers.
pub struct PerUser {
    /// [`service::metrics::REGISTRATIONS`]: registrations queued.
    pub registrations: Counter,
    /// [`service::metrics::MATCHED_DELIVERED`]: `matched` notices delivered.
    pub matched_delivered: Counter,
    /// [`service::metrics::TIME_TO_MATCH`]: from register to `matched`.
    pub time_to_match: Histogram,
}

/// The handles (looked up at first use, once the recorder is installed).
pub fn per_user() -> &'static PerUser {
    static PER_USER: OnceLock<PerUser> = OnceLock::new();
    PER_USER.get_or_init(|| PerUser {
        registrations: metrics::counter!(service::metrics::REGISTRATIONS),
        matched_delivered: metrics::counter!(service::metrics::MATCHED_DELIVERED),
        time_to_match: metrics::histogram!(service::metrics::TIME_TO_MATCH),
    })
}
