//! `bench matcher`: N simulated native users, each going M times through
//! register → queued + matched → register again, against running gateways.
//!
//! Time-to-match is measured per pair, as the matcher issue defines it: from
//! the later of the two users' `register` sends to the later of their two
//! `matched` receipts. Users are paired afterwards by `room_code`. Every
//! timestamp comes from one monotonic clock in this process.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::procfs;
use crate::run_costs::{RunCostArgs, RunWatch};
use crate::stats::Summary;
use crate::ws::{self, Ws};

#[derive(Debug, clap::Args)]
pub struct MatcherArgs {
    /// Native WebSocket URL of a running matcher gateway; repeat the flag to
    /// spread the users round-robin over several gateways.
    #[arg(long = "gateway", default_values_t = ["ws://127.0.0.1:8000/ws".to_string()])]
    pub gateways: Vec<String>,

    /// Simulated users, all connected (and all cycling) at once.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,

    /// Register → matched rounds per user.
    #[arg(long, default_value_t = 10)]
    pub rounds: u32,

    /// Pause between a user's `matched` and its next `register`, ms; each
    /// pause is drawn evenly from 0.5x to 1.5x this. 0 (the default) is a
    /// closed loop: every user re-registers at once, so the offered load is
    /// whatever the system can take and time-to-match includes the queueing
    /// (Little's law: about users / (2 x matches/s)).
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,

    /// Interest tags each user registers with (0: none), drawn per round
    /// from `--interest-tags` tags with a Zipf law (a few tags are common,
    /// most are rare), as the matchmaking filters see them in production.
    #[arg(long, default_value_t = 0)]
    pub interests: usize,

    /// How many distinct interest tags exist.
    #[arg(long, default_value_t = 200)]
    pub interest_tags: usize,

    /// A user that waits longer than this for `queued` + `matched` gives up
    /// (counted as a `timeout` error), s.
    #[arg(long, default_value_t = 10)]
    pub round_timeout_secs: u64,

    /// Upper bound on the whole measured run, s; users still cycling then stop.
    #[arg(long, default_value_t = 120)]
    pub max_secs: u64,

    /// WebSocket handshakes in flight at once while connecting the users.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,

    /// What the run's costs are read from (`--watch`, `--metrics`,
    /// `--redis`, `--redis-script-times`).
    #[command(flatten)]
    pub costs: RunCostArgs,

    /// After the run (all sockets closed), measure this process's idle CPU
    /// use, e.g. the matcher worker's pid.
    #[arg(long)]
    pub idle_cpu_pid: Option<u32>,

    /// How long to measure idle CPU, s.
    #[arg(long, default_value_t = 30)]
    pub idle_cpu_secs: u64,

    /// Wait this long after the run before measuring idle CPU (lets the
    /// worker's back-off grow to its maximum), s.
    #[arg(long, default_value_t = 10)]
    pub idle_settle_secs: u64,

    /// Open loop: users arrive at this many per second (0: the closed loop
    /// of `--rounds`). `--users` is then the pool of pre-connected sockets
    /// the arrivals use (see `bench/src/arrivals.rs`).
    #[arg(long, default_value_t = 0.0)]
    pub arrival_rate: f64,

    /// Open loop: how long users keep arriving, s.
    #[arg(long, default_value_t = 10)]
    pub arrival_secs: u64,

    /// Open loop: how arrivals are spread in time.
    #[arg(long, value_enum, default_value_t = crate::arrivals::Process::Poisson)]
    pub arrival_process: crate::arrivals::Process,

    /// Open loop: seed of the arrival times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// The delay each way between the services and Redis (`bench
    /// delay-proxy`), ms: prints time-to-match p50 / (2 x this), the Redis
    /// round trips on a user's path.
    #[arg(long)]
    pub redis_delay_ms: Option<u64>,
}

/// How long a user who is the last one cycling still waits for a `matched`
/// already on its way.
const LONELY_GRACE: Duration = Duration::from_secs(1);

/// One completed round of one user. Times are ns since the run's epoch.
struct Round {
    index: u32,
    sent: u64,
    queued: u64,
    matched: u64,
    room: String,
}

#[derive(Default)]
struct UserReport {
    rounds: Vec<Round>,
    errors: BTreeMap<String, u64>,
    /// Rounds not completed (gave up, stopped, or left without a partner).
    unfinished: u32,
    /// Rounds whose register was refused with an error event.
    refused: u32,
}

impl UserReport {
    fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }
}

/// What every user task shares.
struct Shared {
    epoch: Instant,
    rounds: u32,
    round_timeout: Duration,
    think: Duration,
    /// Tags per register, and the Zipf law's cumulative weights.
    interests: usize,
    zipf: Vec<f64>,
    /// Users still cycling.
    active: AtomicUsize,
    /// Set once fewer than two users cycle: a lone user can never be matched.
    lonely: watch::Sender<bool>,
    /// Set when the run's time bound is reached.
    stop: watch::Sender<bool>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn user_done(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) <= 2 {
            self.lonely.send_replace(true);
        }
    }
}

/// Connect to a gateway and wait for its `hello`.
async fn connect_user(url: &str) -> Result<Ws> {
    let mut ws = ws::connect(url).await?;
    let hello = ws::recv_json_within(&mut ws, Duration::from_secs(10)).await?;
    if ws::event(&hello) != "hello" {
        bail!("expected hello, got {hello}");
    }
    Ok(ws)
}

pub async fn run(args: MatcherArgs) -> Result<()> {
    if args.users < 2 || args.rounds == 0 {
        bail!("need at least 2 users and 1 round");
    }
    if !(args.arrival_rate >= 0.0 && args.arrival_rate.is_finite()) {
        bail!("--arrival-rate must be a non-negative number");
    }
    crate::fd_limit::ensure_own(args.users)?;
    let epoch = Instant::now();
    if args.arrival_rate > 0.0 {
        println!(
            "matcher bench: open loop, {}/s arrivals over {} gateway(s): {}",
            args.arrival_rate,
            args.gateways.len(),
            args.gateways.join(", ")
        );
    } else {
        println!(
            "matcher bench: {} users x {} rounds over {} gateway(s): {}",
            args.users,
            args.rounds,
            args.gateways.len(),
            args.gateways.join(", ")
        );
    }

    // One socket to each gateway first: an unreachable one fails here,
    // clearly, rather than as a thousand connect errors.
    let mut probes = Vec::new();
    for url in &args.gateways {
        let ws = connect_user(url)
            .await
            .map_err(|e| anyhow::anyhow!("gateway {url} is not reachable: {e:#}"))?;
        probes.push(ws);
    }
    // Connect everyone first (each waits for `hello`), so that the measured
    // run is only matching.
    let connecting = Instant::now();
    let gateways = args.gateways.clone();
    let mut results: Vec<Result<Ws>> = futures_util::stream::iter(probes.len()..args.users)
        .map(|i| {
            let url = gateways[i % gateways.len()].clone();
            async move { connect_user(&url).await }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    results.extend(probes.into_iter().map(Ok));
    let mut sockets = Vec::new();
    let mut connect_errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in results {
        match r {
            Ok(ws) => sockets.push(ws),
            Err(e) => *connect_errors.entry(format!("{e:#}")).or_default() += 1,
        }
    }
    println!(
        "connected {} of {} users in {:.2} s",
        sockets.len(),
        args.users,
        connecting.elapsed().as_secs_f64()
    );
    for (e, n) in &connect_errors {
        println!("  connect error x{n}: {e}");
    }
    if sockets.len() < 2 {
        bail!("fewer than two users connected");
    }
    if args.arrival_rate > 0.0 {
        crate::arrivals::run(&args, sockets, epoch).await?;
        if let Some(pid) = args.idle_cpu_pid {
            procfs::idle_cpu(pid, args.idle_cpu_secs, args.idle_settle_secs).await?;
        }
        return Ok(());
    }

    let (lonely, _) = watch::channel(false);
    let (stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        epoch,
        rounds: args.rounds,
        round_timeout: Duration::from_secs(args.round_timeout_secs),
        think: Duration::from_millis(args.think_ms),
        interests: args.interests,
        zipf: zipf_cumulative(args.interest_tags),
        active: AtomicUsize::new(sockets.len()),
        lonely,
        stop,
    });
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(sockets.len());
    for (id, ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(user(id, ws, shared.clone(), go_rx.clone())));
    }
    // Let every task reach its start line before the gun.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let watch = RunWatch::start(&args.costs).await?;
    let t0 = shared.now();
    go_tx.send_replace(true);

    let joined = futures_util::future::join_all(tasks);
    tokio::pin!(joined);
    let outcomes = tokio::select! {
        o = &mut joined => o,
        _ = tokio::time::sleep(Duration::from_secs(args.max_secs)) => {
            println!("time bound of {} s reached: stopping the users", args.max_secs);
            shared.stop.send_replace(true);
            joined.await
        }
    };
    let t_end = shared.now();
    let costs = watch.finish().await?;

    let mut reports = Vec::new();
    let mut sockets = Vec::new();
    for o in outcomes {
        let (report, ws) = o?;
        reports.push(report);
        if let Some(ws) = ws {
            sockets.push(ws);
        }
    }
    let strays = close_all(sockets).await;
    let pairs = summarize(&args, t0, t_end, &reports, &strays);
    costs.print("CPU during the run:", pairs as u64, "match");

    if let Some(pid) = args.idle_cpu_pid {
        procfs::idle_cpu(pid, args.idle_cpu_secs, args.idle_settle_secs).await?;
    }
    Ok(())
}

/// A `register` frame for user `id` in round `round`, with `interests` tags
/// drawn from the Zipf law `zipf`.
pub fn register_frame(id: usize, round: u32, interests: usize, zipf: &[f64]) -> Message {
    let mut frame = json!({"event": "register", "name": format!("b{id}")});
    if interests > 0 {
        let tags: Vec<String> = (0..interests)
            .map(|k| {
                let u = unit_hash(id as u64, ((round as u64) << 16) | k as u64);
                format!("t{}", zipf_rank(zipf, u))
            })
            .collect();
        frame["interests"] = json!(tags);
    }
    Message::text(frame.to_string())
}

/// One simulated user. Returns its report and, unless it broke, its socket
/// (kept open until everyone is done, so nobody leaves while others cycle).
async fn user(
    id: usize,
    ws: Ws,
    shared: Arc<Shared>,
    mut go: watch::Receiver<bool>,
) -> (UserReport, Option<Ws>) {
    let mut report = UserReport::default();
    let _ = go.wait_for(|&g| g).await;
    let (mut sink, mut stream) = ws.split();
    let mut lonely = shared.lonely.subscribe();
    let mut stop = shared.stop.subscribe();
    let register = |round: u32| register_frame(id, round, shared.interests, &shared.zipf);
    let mut broken = false;
    let mut round = 0;
    'rounds: while round < shared.rounds {
        if round > 0 && !shared.think.is_zero() {
            let pause = shared
                .think
                .mul_f64(0.5 + unit_hash(id as u64, round as u64));
            tokio::time::sleep(pause).await;
        }
        let sent = shared.now();
        if let Err(e) = sink.send(register(round)).await {
            report.error(format!("send: {e}"));
            broken = true;
            break;
        }
        let mut deadline = tokio::time::Instant::now() + shared.round_timeout;
        let mut alone = false;
        let mut queued: Option<u64> = None;
        let mut matched: Option<(String, u64)> = None;
        while queued.is_none() || matched.is_none() {
            tokio::select! {
                frame = ws::recv_json(&mut stream) => {
                    let now = shared.now();
                    let frame = match frame {
                        Ok(f) => f,
                        Err(e) => {
                            report.error(format!("socket: {e:#}"));
                            broken = true;
                            break 'rounds;
                        }
                    };
                    match ws::event(&frame) {
                        "queued" => queued = Some(now),
                        "matched" => {
                            let room = frame.get("room_code").and_then(Value::as_str).unwrap_or("");
                            if room.is_empty() {
                                report.error("matched without room_code");
                            }
                            if matched.is_some() {
                                report.error("second matched in one round");
                            }
                            matched = Some((room.to_string(), now));
                        }
                        "error" => {
                            let code = frame.get("code").and_then(Value::as_str).unwrap_or("?");
                            report.error(format!("error event: {code}"));
                            if code != "already_waiting" {
                                // The register was refused: this round is lost.
                                report.refused += 1;
                                round += 1;
                                continue 'rounds;
                            }
                        }
                        other => report.error(format!("unexpected event: {other}")),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if !alone {
                        report.error("timeout");
                    }
                    break 'rounds;
                }
                _ = lonely.wait_for(|&l| l), if !alone => {
                    // Everyone else is done, so nobody is left to pair with,
                    // unless our own `matched` is still on its way (the
                    // partner may have read theirs first and finished).
                    alone = true;
                    deadline = deadline.min(tokio::time::Instant::now() + LONELY_GRACE);
                }
                _ = stop.wait_for(|&s| s) => break 'rounds,
            }
        }
        let (room, matched) = matched.expect("loop ends with a match");
        report.rounds.push(Round {
            index: round,
            sent,
            queued: queued.expect("loop ends queued"),
            matched,
            room,
        });
        round += 1;
    }
    report.unfinished = shared.rounds - round + report.refused;
    shared.user_done();
    let ws = if broken {
        None
    } else {
        sink.reunite(stream).ok()
    };
    (report, ws)
}

/// A number in [0, 1) that looks random, from a user and a round (splitmix64).
/// Cumulative weights of a Zipf law (s = 1) over `n` ranks, normalised to 1.
pub fn zipf_cumulative(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut out: Vec<f64> = (1..=n.max(1))
        .map(|k| {
            acc += 1.0 / k as f64;
            acc
        })
        .collect();
    for w in &mut out {
        *w /= acc;
    }
    out
}

/// The rank whose cumulative weight first reaches `u` in [0, 1).
fn zipf_rank(cumulative: &[f64], u: f64) -> usize {
    cumulative
        .partition_point(|&w| w < u)
        .min(cumulative.len() - 1)
}

pub fn unit_hash(a: u64, b: u64) -> f64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Close every socket, counting any frame that still arrives (a `matched`
/// here would be a notice for a user who never asked).
pub async fn close_all(sockets: Vec<Ws>) -> BTreeMap<String, u64> {
    let strays: Vec<Vec<String>> = futures_util::stream::iter(sockets)
        .map(|mut ws| async move {
            let mut seen = Vec::new();
            let _ = ws.close(None).await;
            let drain = async {
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        seen.push(ws::event(&v).to_string());
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
            seen
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let mut counts = BTreeMap::new();
    for event in strays.into_iter().flatten() {
        *counts.entry(event).or_default() += 1;
    }
    counts
}

fn summarize(
    args: &MatcherArgs,
    t0: u64,
    t_end: u64,
    reports: &[UserReport],
    strays: &BTreeMap<String, u64>,
) -> usize {
    let mut by_room: HashMap<&str, Vec<&Round>> = HashMap::new();
    let mut queued_lat = Vec::new();
    for r in reports.iter().flat_map(|u| &u.rounds) {
        by_room.entry(r.room.as_str()).or_default().push(r);
        queued_lat.push(r.queued.saturating_sub(r.sent));
    }
    let mut ttm = Vec::new();
    let mut ttm_steady = Vec::new();
    let mut skew = Vec::new();
    let (mut half_seen, mut crowded) = (0u64, 0u64);
    let mut last_match = t0;
    let mut match_times = Vec::new();
    for rounds in by_room.values() {
        match rounds.as_slice() {
            [a, b] => {
                let second_register = a.sent.max(b.sent);
                let both_matched = a.matched.max(b.matched);
                let t = both_matched.saturating_sub(second_register);
                ttm.push(t);
                if a.index > 0 && b.index > 0 {
                    ttm_steady.push(t);
                }
                skew.push(a.matched.abs_diff(b.matched));
                last_match = last_match.max(both_matched);
                match_times.push(both_matched);
            }
            [_] => half_seen += 1,
            _ => crowded += 1,
        }
    }
    let pairs = ttm.len();
    let span = Duration::from_nanos(last_match.saturating_sub(t0));
    let user_rounds: usize = reports.iter().map(|u| u.rounds.len()).sum();
    let unfinished: u64 = reports.iter().map(|u| u.unfinished as u64).sum();
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for (e, n) in reports.iter().flat_map(|u| &u.errors) {
        *errors.entry(e.as_str()).or_default() += n;
    }

    println!("--- matcher results ---");
    println!(
        "users {} (connected {}), rounds per user {}, think time {}",
        args.users,
        reports.len(),
        args.rounds,
        if args.think_ms == 0 {
            "none (closed loop)".to_string()
        } else {
            format!("{} ms +-50%", args.think_ms)
        }
    );
    println!(
        "pairs matched: {pairs} ({user_rounds} user-rounds completed of {} planned; {unfinished} not completed)",
        reports.len() as u64 * args.rounds as u64
    );
    println!(
        "run: {:.3} s to the last match ({:.3} s until every user stopped)",
        span.as_secs_f64(),
        Duration::from_nanos(t_end.saturating_sub(t0)).as_secs_f64()
    );
    if span > Duration::ZERO {
        println!("matches/s: {:.0}", pairs as f64 / span.as_secs_f64());
    }
    // With filters on, the last few users may share no interest with anyone
    // left and wait out the interest window: that tail, not the pairing
    // rate, then sets the span. The rate up to the 99th percentile match
    // shows the throughput without it.
    match_times.sort_unstable();
    if let Some(&t99) = match_times.get((match_times.len() * 99 / 100).saturating_sub(1)) {
        let span99 = Duration::from_nanos(t99.saturating_sub(t0));
        if span99 > Duration::ZERO {
            println!(
                "matches/s up to the 99th percentile match: {:.0}",
                (match_times.len() * 99 / 100) as f64 / span99.as_secs_f64()
            );
        }
    }
    print_summary("time-to-match (all rounds)", ttm);
    print_summary("time-to-match (rounds 2.. only)", ttm_steady);
    print_summary("register -> queued (one user)", queued_lat);
    print_summary("gap between the two matched receipts", skew);
    println!("rooms seen by one user only: {half_seen}; rooms seen by more than two: {crowded}");
    if errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors:");
        for (e, n) in errors {
            println!("  {e}: {n}");
        }
    }
    if !strays.is_empty() {
        println!("frames after a user finished: {strays:?}");
    }
    pairs
}

pub fn print_summary(label: &str, samples: Vec<u64>) {
    match Summary::of(samples) {
        Some(s) => println!("{label}: {s}"),
        None => println!("{label}: no samples"),
    }
}

#[cfg(test)]
mod tests {
    use super::{unit_hash, zipf_cumulative, zipf_rank};

    #[test]
    fn zipf_ranks_favour_the_first_tags() {
        let c = zipf_cumulative(200);
        let draws: Vec<usize> = (0..10_000)
            .map(|i| zipf_rank(&c, unit_hash(i, 9)))
            .collect();
        assert!(draws.iter().all(|&r| r < 200));
        let first = draws.iter().filter(|&&r| r == 0).count();
        // P(rank 0) = 1 / H(200) ≈ 0.17.
        assert!((1400..2000).contains(&first), "{first}");
    }

    #[test]
    fn unit_hash_is_spread_over_the_unit_interval() {
        let draws: Vec<f64> = (0..1000).map(|i| unit_hash(i, 3)).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let low = draws.iter().filter(|&&d| d < 0.5).count();
        assert!((400..600).contains(&low), "{low} of 1000 below 0.5");
    }
}
