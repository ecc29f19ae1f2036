//! Latency summaries: exact percentiles over every sample (nearest rank).
//!
//! A run records at most a few hundred thousand samples, so sorting a plain
//! vector is cheap and avoids the bucketing error of a histogram.

use std::fmt;
use std::time::Duration;

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    /// Summarise `samples` (in nanoseconds); `None` when there are none.
    pub fn of(mut samples: Vec<u64>) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        let at = |q: f64| Duration::from_nanos(nearest_rank(&samples, q));
        Some(Summary {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_nanos(*samples.last().expect("not empty")),
            mean: Duration::from_nanos((sum / samples.len() as u128) as u64),
        })
    }
}

/// The smallest sample with at least `q` of all samples at or below it.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={} p90={} p99={} p99.9={} max={} mean={}",
            self.count,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            ms(self.mean)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of((1..=100).collect()).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_nanos(50));
        assert_eq!(s.p90, Duration::from_nanos(90));
        assert_eq!(s.p99, Duration::from_nanos(99));
        assert_eq!(s.max, Duration::from_nanos(100));
        assert_eq!(s.mean, Duration::from_nanos(50));
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let s = Summary::of(vec![7]).unwrap();
        let seven = Duration::from_nanos(7);
        assert_eq!((s.p50, s.p99, s.max), (seven, seven, seven));
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(Summary::of(Vec::new()), None);
    }
}
