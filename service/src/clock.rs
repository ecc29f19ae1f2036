//! Wall-clock time as the services exchange it, and the deadline timer
//! their socket tasks select on.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch: the stamp a stage that crosses
/// processes is measured from (comparable across hosts as far as their
/// clocks agree).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Seconds from `stamp_us` to `now_us`, both [`now_us`] stamps (0 when the
/// clocks disagree): what a stage histogram records.
pub fn secs_since_us(stamp_us: u64, now_us: u64) -> f64 {
    now_us.saturating_sub(stamp_us) as f64 / 1e6
}

/// Sleep until `at`, or forever when there is no deadline. The timer is
/// allocated only while armed: a socket task holds one per deadline it
/// selects on for its whole life, most of it with none armed.
pub fn deadline(
    at: Option<tokio::time::Instant>,
) -> futures_util::future::Either<std::pin::Pin<Box<tokio::time::Sleep>>, std::future::Pending<()>>
{
    match at {
        Some(at) => futures_util::future::Either::Left(Box::pin(tokio::time::sleep_until(at))),
        None => futures_util::future::Either::Right(std::future::pending()),
    }
}
