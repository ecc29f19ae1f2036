//! The worker's idle pacing, as a plain state machine (no clock, no I/O).
//!
//! The back-off is how long the worker's blocking stream read may wait when
//! nothing happens. A new register wakes that read at once, so the back-off
//! never delays a pairing: it only spaces out the idle checks (ghost purges,
//! retries), which is what keeps an idle worker near zero CPU.

use std::time::Duration;

/// Exponential back-off between `initial` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// How long the next blocking read may wait.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Something happened (entries read or pairs made): be quick again.
    pub fn on_activity(&mut self) {
        self.current = self.initial;
    }

    /// A round passed with nothing to do: wait twice as long next time.
    pub fn on_idle(&mut self) {
        self.current = (self.current * 2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn doubles_up_to_max_and_resets_on_activity() {
        let mut b = Backoff::new(ms(10), ms(5000));
        let mut seen = vec![b.current()];
        for _ in 0..12 {
            b.on_idle();
            seen.push(b.current());
        }
        assert_eq!(&seen[..4], &[ms(10), ms(20), ms(40), ms(80)]);
        assert_eq!(*seen.last().unwrap(), ms(5000));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        b.on_activity();
        assert_eq!(b.current(), ms(10));
    }

    #[test]
    fn degenerate_bounds_are_sane() {
        let mut b = Backoff::new(ms(0), ms(0));
        assert_eq!(b.current(), ms(1));
        b.on_idle();
        assert_eq!(b.current(), ms(1));
        let b = Backoff::new(ms(100), ms(10));
        assert_eq!(b.current(), ms(100));
    }
}
