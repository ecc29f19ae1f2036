//! The matcher's per-stage latency ([`service::metrics::STAGE`], stages
//! [`service::metrics::MATCHER_STAGES`]). Stages that cross processes are
//! measured against a wall-clock stamp in microseconds carried with the
//! work (a register stream entry, a gateway channel message), since stream
//! ids hold only milliseconds; their accuracy is the clocks' skew.

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Seconds from `stamp_us` to `now_us` (0 when the clocks disagree).
pub fn since(stamp_us: u64, now_us: u64) -> f64 {
    now_us.saturating_sub(stamp_us) as f64 / 1e6
}

/// The histogram of matcher stage `stage`.
pub fn histogram(stage: &'static str) -> metrics::Histogram {
    metrics::histogram!(service::metrics::STAGE, "stage" => stage)
}
