//! Sends spread in time as asked, finer than tokio's timer allows.
//!
//! tokio's timer fires on millisecond ticks: a thousand sockets each on its
//! own interval, with phases spread over the period, still send in bursts,
//! all the sends due within one millisecond together. At 5,000 messages/s
//! that is five at once every millisecond, and each burst queues in the
//! services it measures. The pacer is a thread of its own that sleeps
//! (with the kernel's timer slack at 1 µs) until each send is due and
//! hands that socket's task a token.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::arrivals::{gap, Process};

/// When each send is due, from the start: `rate` a second, spread as
/// `process` says (seeded by `seed`), to the nanosecond.
pub fn offsets(rate: f64, process: Process, seed: u64) -> impl Iterator<Item = Duration> {
    let mut offset = 0.0;
    (0u64..).map(move |k| {
        let due = Duration::from_secs_f64(offset);
        offset += gap(process, rate, seed, k);
        due
    })
}

/// A running pacer's thread.
pub struct Pacer {
    thread: JoinHandle<()>,
}

/// Where socket `k`'s tokens arrive: the `k`-th of these.
pub type Tokens = Vec<mpsc::UnboundedReceiver<()>>;

impl Pacer {
    /// From `start` until `until`, `rate` tokens a second, spread as
    /// `process` says (seeded by `seed`), each to the next of `n` sockets in
    /// turn (0, 1, …, n − 1, 0, …): each socket gets `rate / n` a second. A
    /// socket whose task is slow finds its tokens queued and sends them at
    /// once, so a slow client does not quietly lower the offered rate. A
    /// socket whose task ended (its receiver dropped) gets none.
    pub fn start(
        start: Instant,
        until: Instant,
        rate: f64,
        process: Process,
        seed: u64,
        n: usize,
    ) -> (Pacer, Tokens) {
        let (senders, tokens): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let thread = std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || {
                // SAFETY: PR_SET_TIMERSLACK takes the slack in ns as its
                // only argument and affects this thread only.
                unsafe {
                    libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
                }
                for (i, offset) in offsets(rate, process, seed).enumerate() {
                    let due = start + offset;
                    if due >= until {
                        break;
                    }
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let _ = senders[i % n].send(());
                }
            })
            .expect("spawning the pacer thread");
        (Pacer { thread }, tokens)
    }

    /// Wait for the thread (it ends at `until`).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_sends_are_spaced_finer_than_a_millisecond() {
        let first: Vec<Duration> = offsets(5000.0, Process::Even, 1).take(4).collect();
        let us: Vec<u128> = first.iter().map(|d| d.as_micros()).collect();
        assert_eq!(us, [0, 200, 400, 600]);
    }

    /// Poisson gaps keep the rate on average and vary as exponential gaps
    /// do (their spread as large as their mean); evenly spaced sends would
    /// keep the rate too, with no spread at all.
    #[test]
    fn poisson_sends_keep_the_rate_and_vary_like_independent_users() {
        let due: Vec<f64> = offsets(5000.0, Process::Poisson, 7)
            .take(50_001)
            .map(|d| d.as_secs_f64())
            .collect();
        let gaps: Vec<f64> = due.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let spread = var.sqrt() / mean;
        assert!((190e-6..210e-6).contains(&mean), "mean gap {mean} s");
        assert!((0.95..1.05).contains(&spread), "spread / mean {spread}");
    }

    #[test]
    fn every_socket_gets_its_share_in_turn() {
        // 1,000 a second for 50 ms to three sockets: sends 0..=49, the
        // k-th to socket k mod 3.
        let start = Instant::now();
        let until = start + Duration::from_millis(50);
        let (pacer, mut tokens) = Pacer::start(start, until, 1000.0, Process::Even, 1, 3);
        pacer.join();
        let counts: Vec<usize> = tokens
            .iter_mut()
            .map(|rx| std::iter::from_fn(|| rx.try_recv().ok()).count())
            .collect();
        assert_eq!(counts, [17, 17, 16]);
    }
}
