//! Per-socket flood control: a token bucket, as a plain state machine fed
//! with the caller's clock (no I/O, no timer of its own).

use std::time::{Duration, Instant};

/// Allows `rate` frames per second on average and bursts of `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = burst.max(1) as f64;
        TokenBucket {
            rate: rate.max(1) as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
    }

    /// How long from `now` until one more frame is within the limit
    /// (zero: now). Counts nothing.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            // Rounded up, so that waiting this long is always enough.
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate) + Duration::from_micros(1)
        }
    }

    /// Whether one more frame at `now` is within the limit (and count it).
    pub fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| b.allow(t0)).count(), 5);
        assert!(!b.allow(t0));
        // 100 ms at 10/s refills one token.
        assert!(b.allow(t0 + Duration::from_millis(100)));
        assert!(!b.allow(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| b.allow(later)).count(), 5);
    }

    #[test]
    fn wait_is_the_time_to_the_next_token() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 1, t0);
        assert_eq!(b.wait(t0), Duration::ZERO);
        assert!(b.allow(t0));
        let wait = b.wait(t0);
        assert!(wait >= Duration::from_millis(100) && wait < Duration::from_millis(101));
        assert!(!b.allow(t0 + wait - Duration::from_millis(1)));
        assert!(b.allow(t0 + wait));
    }
}
