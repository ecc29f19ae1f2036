//! `bench signaller`: P pairs in synthetic rooms, user A of each pair on the
//! first signaller node and user B on the second, sending `signal`s to each
//! other at a fixed total rate (Poisson by default: `--send-process`, timed
//! by [`crate::pacer`]). Each payload carries its send time (ns since
//! one `Instant` of this process, which both ends share), so the receiver
//! measures the one-way relay latency: client → node 1 → Redis → node 2 →
//! client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::pacer::Pacer;
use crate::run_costs::{RunCostArgs, RunWatch};
use crate::stats::Summary;
use crate::tickets::Rooms;
use crate::ws::{self, Ws};

#[derive(Debug, clap::Args)]
pub struct SignallerArgs {
    /// Native WebSocket URL of a signaller node. Give it twice (two nodes):
    /// user A of every pair joins on the first, user B on the second.
    #[arg(long = "node", default_values_t = [
        "ws://127.0.0.1:4000/ws".to_string(),
        "ws://127.0.0.1:4001/ws".to_string(),
    ])]
    pub nodes: Vec<String>,

    /// The signallers' `--ticket-secret`: the benchmark signs its own room tickets.
    #[arg(long, env = "RVC_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: String,

    /// Pairs (rooms); each has two sockets.
    #[arg(long, default_value_t = 500)]
    pub pairs: usize,

    /// Target total rate of `signal` messages, both directions together, per second.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,

    /// How the sends are spread in time: `poisson` (exponential gaps, as
    /// from independent users) or `even` (exactly 1 / rate apart). Either
    /// way each send goes to the next socket in turn.
    #[arg(long, value_enum, default_value_t = crate::arrivals::Process::Poisson)]
    pub send_process: crate::arrivals::Process,

    /// Seed of the send times (`--send-process poisson`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Measured sending time, s.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,

    /// Sending time before the measurement starts (not counted), s.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,

    /// Extra bytes of padding in each payload (an ICE candidate is about 200).
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,

    /// WebSocket handshakes (and joins) in flight at once while setting up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,

    /// What the measured window's costs are read from (`--watch`,
    /// `--metrics`, `--redis`, `--redis-script-times`).
    #[command(flatten)]
    pub costs: RunCostArgs,
}

/// How long in-flight messages are awaited after the last send.
const DRAIN: Duration = Duration::from_secs(2);

/// Connect to `url` and join with `ticket`; returns the socket once `joined`.
pub async fn connect_and_join(url: &str, ticket: &str) -> Result<Ws> {
    join(ws::connect(url).await?, ticket).await
}

/// Join with `ticket` on an open socket; returns it once `joined`.
pub async fn join(mut ws: Ws, ticket: &str) -> Result<Ws> {
    ws.send(Message::text(
        json!({"event": "join", "ticket": ticket}).to_string(),
    ))
    .await?;
    let deadline = Duration::from_secs(10);
    loop {
        let reply = ws::recv_json_within(&mut ws, deadline).await?;
        match ws::event(&reply) {
            "joined" => return Ok(ws),
            "error" => bail!("join refused: {reply}"),
            _ => {} // e.g. a hello, if a node ever sends one
        }
    }
}

/// What the run's tasks share.
struct Clock {
    epoch: Instant,
    /// Sends from here on are measured (ns since epoch).
    measure_from: u64,
    /// No sends from here on (ns since epoch).
    send_until: u64,
}

impl Clock {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
    fn in_window(&self, t: u64) -> bool {
        t >= self.measure_from && t < self.send_until
    }
}

#[derive(Default)]
struct SendReport {
    sent: u64,
    sent_in_window: u64,
    errors: BTreeMap<String, u64>,
}

#[derive(Default)]
struct RecvReport {
    latencies: Vec<u64>,
    received: u64,
    gaps: u64,
    reordered: u64,
    events: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

pub async fn run(args: SignallerArgs) -> Result<()> {
    if args.nodes.is_empty() || args.pairs == 0 || args.rate == 0 {
        bail!("need a node, at least one pair and a positive rate");
    }
    let node_a = args.nodes[0].clone();
    let node_b = args.nodes[1 % args.nodes.len()].clone();
    println!(
        "signaller bench: {} pairs, A on {node_a}, B on {node_b}, {} msgs/s total ({:?}), {} s measured after {} s warm-up, {} B padding",
        args.pairs, args.rate, args.send_process, args.secs, args.warmup_secs, args.payload_bytes
    );
    if node_a == node_b {
        println!("note: both users of each pair are on the same node (no cross-node relay)");
    }
    let rooms = Arc::new(Rooms::new(&args.ticket_secret));
    println!(
        "rooms {} .. {}",
        rooms.room(0).code,
        rooms.room(args.pairs - 1).code
    );

    let setup = Instant::now();
    let a_side = join_all(&node_a, &rooms, true, args.pairs, args.connect_concurrency).await?;
    let b_side = join_all(&node_b, &rooms, false, args.pairs, args.connect_concurrency).await?;
    println!(
        "joined {} rooms ({} sockets) in {:.2} s",
        args.pairs,
        2 * args.pairs,
        setup.elapsed().as_secs_f64()
    );
    // Let the `peer-joined` notices arrive before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sockets: Vec<Ws> = a_side.into_iter().chain(b_side).collect();
    let n = sockets.len();
    let epoch = Instant::now();
    let start = Duration::from_millis(200);
    let clock = Arc::new(Clock {
        epoch,
        measure_from: (start + Duration::from_secs(args.warmup_secs)).as_nanos() as u64,
        send_until: (start + Duration::from_secs(args.warmup_secs + args.secs)).as_nanos() as u64,
    });
    // `rate` sends a second in all, spread as `--send-process` says, each
    // to the next socket in turn (see `pacer`).
    let (pacer, tokens) = Pacer::start(
        epoch + start,
        epoch + Duration::from_nanos(clock.send_until),
        args.rate as f64,
        args.send_process,
        args.seed,
        n,
    );
    let pad = "x".repeat(args.payload_bytes);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut senders = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    for (ws, tokens) in sockets.into_iter().zip(tokens) {
        let (sink, stream) = ws.split();
        senders.push(tokio::spawn(sender(
            sink,
            clock.clone(),
            tokens,
            pad.clone(),
        )));
        readers.push(tokio::spawn(reader(stream, clock.clone(), stop_rx.clone())));
    }
    let cpu_start =
        tokio::time::Instant::from_std(epoch) + start + Duration::from_secs(args.warmup_secs);
    tokio::time::sleep_until(cpu_start).await;
    let mut watch = RunWatch::start(&args.costs).await?;
    let window_end = cpu_start + Duration::from_secs(args.secs);
    tokio::time::sleep_until(window_end).await;
    watch.stop_cpu();

    let mut send = SendReport::default();
    let mut sinks = Vec::with_capacity(n);
    for s in senders {
        let (report, sink) = s.await?;
        send.sent += report.sent;
        send.sent_in_window += report.sent_in_window;
        merge(&mut send.errors, report.errors);
        sinks.push(sink);
    }
    tokio::task::spawn_blocking(move || pacer.join()).await?;
    tokio::time::sleep(DRAIN).await;
    let costs = watch.finish().await?;
    stop_tx.send_replace(true);
    let mut recv = RecvReport::default();
    for r in readers {
        let report = r.await?;
        recv.latencies.extend(report.latencies);
        recv.received += report.received;
        recv.gaps += report.gaps;
        recv.reordered += report.reordered;
        merge(&mut recv.events, report.events);
        merge(&mut recv.errors, report.errors);
    }
    for mut sink in sinks {
        let _ = tokio::time::timeout(Duration::from_millis(200), sink.close()).await;
    }

    let window = Duration::from_nanos(clock.send_until - clock.measure_from).as_secs_f64();
    let measured = recv.latencies.len() as u64;
    println!("--- signaller results ---");
    println!(
        "sent {} signals ({} in the {:.1} s window = {:.0} msgs/s offered)",
        send.sent,
        send.sent_in_window,
        window,
        send.sent_in_window as f64 / window,
    );
    println!(
        "received {} signals; of the window's: {} = {:.0} msgs/s delivered, {} missing",
        recv.received,
        measured,
        measured as f64 / window,
        send.sent_in_window.saturating_sub(measured)
    );
    match Summary::of(recv.latencies) {
        Some(s) => println!("one-way relay latency: {s}"),
        None => println!("one-way relay latency: no samples"),
    }
    println!(
        "sequence gaps: {}, out of order or repeated: {}",
        recv.gaps, recv.reordered
    );
    if !recv.events.is_empty() {
        println!("other events: {:?}", recv.events);
    }
    let errors: BTreeMap<String, u64> = send.errors.into_iter().chain(recv.errors).collect();
    if errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors: {errors:?}");
    }
    costs.print("CPU during the measured window:", measured, "message");
    Ok(())
}

fn merge(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// Connect and join one side of every room.
async fn join_all(
    url: &str,
    rooms: &Arc<Rooms>,
    initiators: bool,
    pairs: usize,
    concurrency: usize,
) -> Result<Vec<Ws>> {
    let joined: Vec<Result<Ws>> = futures_util::stream::iter(0..pairs)
        .map(|i| {
            let room = rooms.room(i);
            let url = url.to_string();
            async move {
                let ticket = if initiators {
                    room.initiator
                } else {
                    room.responder
                };
                connect_and_join(&url, &ticket).await
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    joined.into_iter().collect()
}

/// Send one signal per token from the pacer, until the tokens end.
async fn sender(
    mut sink: SplitSink<Ws, Message>,
    clock: Arc<Clock>,
    mut tokens: mpsc::UnboundedReceiver<()>,
    pad: String,
) -> (SendReport, SplitSink<Ws, Message>) {
    let mut report = SendReport::default();
    let mut seq = 0u64;
    while tokens.recv().await.is_some() {
        let t = clock.now();
        if t >= clock.send_until {
            break;
        }
        seq += 1;
        let frame = format!(r#"{{"event":"signal","data":{{"t":{t},"seq":{seq},"pad":"{pad}"}}}}"#);
        if let Err(e) = sink.send(Message::text(frame)).await {
            *report.errors.entry(format!("send: {e}")).or_default() += 1;
            break;
        }
        report.sent += 1;
        if clock.in_window(t) {
            report.sent_in_window += 1;
        }
    }
    (report, sink)
}

async fn reader(
    mut stream: SplitStream<Ws>,
    clock: Arc<Clock>,
    mut stop: watch::Receiver<bool>,
) -> RecvReport {
    let mut report = RecvReport::default();
    let mut next_seq = 1u64;
    loop {
        let frame = tokio::select! {
            f = ws::recv_json(&mut stream) => f,
            _ = stop.wait_for(|&s| s) => break,
        };
        let now = clock.now();
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                *report.errors.entry(format!("socket: {e:#}")).or_default() += 1;
                break;
            }
        };
        match ws::event(&frame) {
            "signal" => {
                let data = &frame["data"];
                let (Some(t), Some(seq)) = (data["t"].as_u64(), data["seq"].as_u64()) else {
                    *report
                        .errors
                        .entry("signal without t/seq".into())
                        .or_default() += 1;
                    continue;
                };
                report.received += 1;
                if clock.in_window(t) {
                    report.latencies.push(now.saturating_sub(t));
                }
                if seq == next_seq {
                    next_seq += 1;
                } else if seq > next_seq {
                    report.gaps += seq - next_seq;
                    next_seq = seq + 1;
                } else {
                    report.reordered += 1;
                }
            }
            "error" => {
                let code = frame["code"].as_str().unwrap_or("?").to_string();
                *report
                    .errors
                    .entry(format!("error event: {code}"))
                    .or_default() += 1;
            }
            other => *report.events.entry(other.to_string()).or_default() += 1,
        }
    }
    report
}
