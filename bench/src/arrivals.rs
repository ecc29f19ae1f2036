//! `bench matcher --arrival-rate R`: an open loop. Users arrive at R per
//! second whatever the matcher's speed, so time-to-match is latency, not
//! queueing behind a crowd that re-registers at once (the closed loop).
//!
//! Arrivals form a Poisson process (exponential gaps, seeded; or evenly
//! spaced with `--arrival-process even`). The users' sockets are connected
//! ahead of time: a pool of `--users` sockets, each of which, on an
//! arrival, sends one `register` and goes back to the pool once `matched`
//! (a socket is reused for later arrivals, so connecting is not measured
//! and the pool stays small: by Little's law, R × time-to-match sockets
//! are busy at once). If no socket is free at an arrival's time, the
//! arrival waits for one and its time-to-match still counts from its
//! scheduled time (no coordinated omission); such waits are counted.
//!
//! Time-to-match of a pair: the later of the two `matched` receipts minus
//! the later of the two `register` sends (the closed loop's definition);
//! also printed from the later of the two scheduled arrival times, which
//! adds the bench's own lateness (the pacer thread's wake-up, then the
//! runtime's: see `crate::pacer`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::matcher_load::{close_all, print_summary, register_frame, MatcherArgs};
use crate::pacer::{offsets, Pacer};
use crate::run_costs::RunWatch;
use crate::stats::Summary;
use crate::ws::{self, Ws};

/// How arrivals are spread in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Process {
    /// Exponentially distributed gaps (independent users).
    Poisson,
    /// Exactly 1/R apart.
    Even,
}

/// How long after the last arrival those still waiting may get a partner.
const DRAIN: Duration = Duration::from_secs(3);

/// A send later than its scheduled time by more than this counts as late.
const LATE: Duration = Duration::from_millis(1);

/// One arrival. Times are ns since the run's epoch.
struct Arrival {
    scheduled: u64,
    sent: u64,
    queued: Option<u64>,
    matched: Option<(String, u64)>,
    errors: Vec<String>,
}

/// Gaps between arrivals, s: the `k`th of a seeded sequence.
pub fn gap(process: Process, rate: f64, seed: u64, k: u64) -> f64 {
    match process {
        Process::Even => 1.0 / rate,
        Process::Poisson => {
            let u = crate::matcher_load::unit_hash(seed, k);
            -(1.0 - u).ln() / rate
        }
    }
}

pub async fn run(args: &MatcherArgs, sockets: Vec<Ws>, epoch: Instant) -> Result<()> {
    let rate = args.arrival_rate;
    let window = args.arrival_secs as f64;
    println!(
        "open loop: arrivals at {rate}/s ({:?}) for {} s, a pool of {} pre-connected sockets",
        args.arrival_process,
        args.arrival_secs,
        sockets.len()
    );
    let now = move || epoch.elapsed().as_nanos() as u64;
    let (free_tx, mut free_rx) = mpsc::unbounded_channel::<Ws>();
    for ws in sockets {
        let _ = free_tx.send(ws);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let outstanding = Arc::new(AtomicUsize::new(0));
    let round_timeout = Duration::from_secs(args.round_timeout_secs);
    let watch = RunWatch::start(&args.costs).await?;
    // The arrival times, timed to the microsecond by the pacer (tokio's
    // timer would bunch those due within one millisecond), and the same
    // times again for each arrival's schedule.
    let start = Instant::now() + Duration::from_millis(50);
    let t0 = (start - epoch).as_nanos() as u64;
    let bound = Duration::from_secs(args.max_secs);
    let span = Duration::from_secs_f64(window).min(bound);
    let (pacer, mut tokens) = Pacer::start(
        start,
        start + span,
        rate,
        args.arrival_process,
        args.seed,
        1,
    );
    let mut tokens = tokens.pop().expect("the one socket's tokens");
    let mut handles = Vec::new();
    let mut waited_for_socket = 0u64;
    let mut no_socket = 0u64;
    // Arrivals until the window ends (a Poisson process over a fixed time,
    // so their number varies around rate x secs).
    for (k, offset) in (0u64..).zip(offsets(rate, args.arrival_process, args.seed)) {
        if tokens.recv().await.is_none() {
            break;
        }
        let ws = match free_rx.try_recv() {
            Ok(ws) => ws,
            Err(_) => {
                waited_for_socket += 1;
                match tokio::time::timeout(round_timeout, free_rx.recv()).await {
                    Ok(Some(ws)) => ws,
                    _ => {
                        no_socket += 1;
                        continue;
                    }
                }
            }
        };
        let scheduled = t0 + offset.as_nanos() as u64;
        outstanding.fetch_add(1, Ordering::AcqRel);
        handles.push(tokio::spawn(arrive(
            k,
            ws,
            scheduled,
            Context {
                epoch,
                interests: args.interests,
                zipf: crate::matcher_load::zipf_cumulative(args.interest_tags),
                round_timeout,
                free: free_tx.clone(),
                stop: stop_rx.clone(),
                outstanding: outstanding.clone(),
            },
        )));
    }
    let last_arrival = now();
    if span < Duration::from_secs_f64(window) {
        println!(
            "time bound of {} s reached: no more arrivals",
            args.max_secs
        );
    }
    tokio::task::spawn_blocking(move || pacer.join()).await?;
    // Those still waiting get a bounded time to be paired; one may be left
    // over with nobody to pair with.
    let drain_until = tokio::time::Instant::now() + DRAIN;
    while outstanding.load(Ordering::Acquire) > 1 && tokio::time::Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send_replace(true);
    let mut arrivals = Vec::with_capacity(handles.len());
    for h in handles {
        arrivals.push(h.await?);
    }
    let costs = watch.finish().await?;
    drop(free_tx);
    let mut pool = Vec::new();
    while let Ok(ws) = free_rx.try_recv() {
        pool.push(ws);
    }
    let strays = close_all(pool).await;
    let pairs = summarize(
        args,
        t0,
        last_arrival,
        &arrivals,
        waited_for_socket,
        no_socket,
    );
    if !strays.is_empty() {
        println!("frames on idle pool sockets: {strays:?}");
    }
    costs.print("CPU during the run:", pairs as u64, "match");
    Ok(())
}

/// What an arrival's task needs.
struct Context {
    epoch: Instant,
    interests: usize,
    zipf: Vec<f64>,
    round_timeout: Duration,
    free: mpsc::UnboundedSender<Ws>,
    stop: watch::Receiver<bool>,
    outstanding: Arc<AtomicUsize>,
}

/// One arrival on a pooled socket: register, await `queued` and `matched`,
/// give the socket back.
async fn arrive(k: u64, ws: Ws, scheduled: u64, mut cx: Context) -> Arrival {
    let now = || cx.epoch.elapsed().as_nanos() as u64;
    let mut a = Arrival {
        scheduled,
        sent: now(),
        queued: None,
        matched: None,
        errors: Vec::new(),
    };
    let (mut sink, mut stream) = ws.split();
    let frame = register_frame(k as usize, k as u32, cx.interests, &cx.zipf);
    let mut healthy = true;
    if let Err(e) = sink.send(frame).await {
        a.errors.push(format!("send: {e}"));
        healthy = false;
    }
    let deadline = tokio::time::Instant::now() + cx.round_timeout;
    while healthy && (a.queued.is_none() || a.matched.is_none()) {
        tokio::select! {
            frame = ws::recv_json(&mut stream) => {
                let t = now();
                match frame {
                    Err(e) => {
                        a.errors.push(format!("socket: {e:#}"));
                        healthy = false;
                    }
                    Ok(f) => match ws::event(&f) {
                        "queued" => a.queued = Some(t),
                        "matched" => {
                            let room = f.get("room_code").and_then(Value::as_str).unwrap_or("");
                            a.matched = Some((room.to_string(), t));
                        }
                        "error" => {
                            let code = f.get("code").and_then(Value::as_str).unwrap_or("?");
                            a.errors.push(format!("error event: {code}"));
                            break;
                        }
                        other => a.errors.push(format!("unexpected event: {other}")),
                    },
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                a.errors.push("timeout".into());
                healthy = false;
            }
            _ = cx.stop.wait_for(|&s| s) => {
                // Still waiting when the run ended: not an error, unfinished.
                healthy = false;
            }
        }
    }
    cx.outstanding.fetch_sub(1, Ordering::AcqRel);
    // A socket that still waits in the pool (or broke) is not reused.
    if healthy {
        if let Ok(ws) = sink.reunite(stream) {
            let _ = cx.free.send(ws);
        }
    }
    a
}

fn summarize(
    args: &MatcherArgs,
    t0: u64,
    last_arrival: u64,
    arrivals: &[Arrival],
    waited_for_socket: u64,
    no_socket: u64,
) -> usize {
    let mut by_room: HashMap<&str, Vec<&Arrival>> = HashMap::new();
    let mut late = Vec::new();
    let mut queued_lat = Vec::new();
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unmatched = 0;
    for a in arrivals {
        late.push(a.sent.saturating_sub(a.scheduled));
        if let Some(q) = a.queued {
            queued_lat.push(q.saturating_sub(a.sent));
        }
        match &a.matched {
            Some((room, _)) => by_room.entry(room.as_str()).or_default().push(a),
            None => unmatched += 1,
        }
        for e in &a.errors {
            *errors.entry(e.as_str()).or_default() += 1;
        }
    }
    let (mut ttm, mut ttm_sent) = (Vec::new(), Vec::new());
    let (mut half_seen, mut crowded) = (0u64, 0u64);
    let mut last_match = t0;
    for pair in by_room.values() {
        match pair.as_slice() {
            [a, b] => {
                let m = |x: &Arrival| x.matched.as_ref().map_or(0, |(_, t)| *t);
                let both = m(a).max(m(b));
                ttm.push(both.saturating_sub(a.scheduled.max(b.scheduled)));
                ttm_sent.push(both.saturating_sub(a.sent.max(b.sent)));
                last_match = last_match.max(both);
            }
            [_] => half_seen += 1,
            _ => crowded += 1,
        }
    }
    let pairs = ttm.len();
    let offered = Duration::from_nanos(last_arrival.saturating_sub(t0));
    let span = Duration::from_nanos(last_match.saturating_sub(t0));
    let late_n = late.iter().filter(|&&l| l > LATE.as_nanos() as u64).count();
    println!("--- matcher results (open loop) ---");
    println!(
        "arrivals: {} in {:.3} s = {:.0}/s offered ({:?}, target {}/s); pool {} sockets",
        arrivals.len(),
        offered.as_secs_f64(),
        arrivals.len() as f64 / offered.as_secs_f64().max(1e-9),
        args.arrival_process,
        args.arrival_rate,
        args.users
    );
    println!(
        "pairs matched: {pairs}; arrivals not matched by the end: {unmatched}; \
         arrivals that waited for a free socket: {waited_for_socket} ({no_socket} found none)"
    );
    if span > Duration::ZERO {
        println!(
            "matches/s: {:.0} (pairs / time from the first arrival to the last match, {:.3} s)",
            pairs as f64 / span.as_secs_f64(),
            span.as_secs_f64()
        );
    }
    let summary = Summary::of(ttm_sent.clone());
    print_summary(
        "time-to-match (later register send -> later matched)",
        ttm_sent,
    );
    // Includes the bench's own lateness: tokio's timer fires on millisecond
    // ticks, so sends are up to ~1 ms behind schedule even when idle; a
    // difference well beyond that says the bench (or the pool) fell behind.
    print_summary(
        "time-to-match (later scheduled arrival -> later matched)",
        ttm,
    );
    print_summary("register -> queued (one user)", queued_lat);
    println!(
        "sends later than scheduled by more than {LATE:?}: {late_n} of {}",
        arrivals.len()
    );
    if let (Some(s), Some(d)) = (summary, args.redis_delay_ms.filter(|&d| d > 0)) {
        println!(
            "Redis round trips on the path (time-to-match p50 / (2 x {d} ms)): {:.2} \
             (with the services' own time, small next to the delay, and tokio's 1 ms timer \
             rounding in the proxy: up to 1 ms per direction)",
            s.p50.as_secs_f64() * 1e3 / (2.0 * d as f64)
        );
    }
    println!("rooms seen by one user only: {half_seen}; rooms seen by more than two: {crowded}");
    if errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors:");
        for (e, n) in errors {
            println!("  {e}: {n}");
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_gaps_average_one_over_the_rate() {
        let n = 100_000;
        let mean: f64 = (0..n)
            .map(|k| gap(Process::Poisson, 1000.0, 7, k))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 0.001).abs() < 0.00002, "{mean}");
        // Exponential: about e^-1 of the gaps exceed the mean.
        let above = (0..n)
            .filter(|&k| gap(Process::Poisson, 1000.0, 7, k) > 0.001)
            .count() as f64
            / n as f64;
        assert!((above - (-1f64).exp()).abs() < 0.01, "{above}");
    }

    #[test]
    fn even_gaps_are_exact() {
        assert_eq!(gap(Process::Even, 500.0, 1, 3), 0.002);
    }
}
