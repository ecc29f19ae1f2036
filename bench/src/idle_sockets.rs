//! `bench idle-sockets`: open many idle sockets to one signaller node and
//! report how much its resident memory grew per connection.
//!
//! The node's `VmRSS` is read before the first socket and again once all
//! are open and have settled; the delta divided by the count is the figure.
//! Sockets are native `/ws` connections. By default they stay unjoined (the
//! signaller keeps such a socket until its idle timeout, which the client's
//! automatic pong answers keep from firing); with `--joined` they join
//! synthetic rooms in pairs, which adds a room subscription per pair.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::procfs;
use crate::signaller_load::connect_and_join;
use crate::tickets::Rooms;
use crate::ws::{self, Ws};

#[derive(Debug, clap::Args)]
pub struct IdleSocketsArgs {
    /// Native WebSocket URL of the signaller node to load.
    #[arg(long, default_value = "ws://127.0.0.1:4000/ws")]
    pub node: String,

    /// Pid of that signaller process (its /proc/<pid>/status is read).
    #[arg(long)]
    pub pid: u32,

    /// Sockets to open (one client IP holds at most ~28,000).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,

    /// Join the sockets in pairs to synthetic rooms (needs --ticket-secret).
    #[arg(long)]
    pub joined: bool,

    /// The signaller's `--ticket-secret`, for --joined.
    #[arg(long, env = "RVC_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Option<String>,

    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,

    /// Wait this long with every socket open before reading the RSS, s.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
}

pub async fn run(args: IdleSocketsArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be positive");
    }
    let rooms = match (args.joined, &args.ticket_secret) {
        (false, _) => None,
        (true, Some(secret)) => Some(Rooms::new(secret)),
        (true, None) => bail!("--joined needs --ticket-secret"),
    };
    let before = procfs::rss_kib(args.pid)?;
    println!(
        "idle sockets: {} {} sockets to {} (pid {}); RSS before: {before} KiB",
        args.count,
        if args.joined { "joined" } else { "unjoined" },
        args.node,
        args.pid
    );
    let opening = Instant::now();
    let node = args.node.clone();
    let rooms = &rooms;
    let opened: Vec<Result<Ws>> = futures_util::stream::iter(0..args.count)
        .map(|i| {
            let node = node.clone();
            async move {
                match rooms {
                    None => ws::connect(&node).await,
                    Some(rooms) => {
                        let room = rooms.room(i / 2);
                        let ticket = if i % 2 == 0 {
                            room.initiator
                        } else {
                            room.responder
                        };
                        connect_and_join(&node, &ticket).await
                    }
                }
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let mut errors = 0usize;
    let mut first_error = None;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut holders = Vec::new();
    for r in opened {
        match r {
            Ok(ws) => holders.push(tokio::spawn(hold(ws, stop_rx.clone()))),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    let open = holders.len();
    println!(
        "opened {open} sockets in {:.2} s ({errors} failed{})",
        opening.elapsed().as_secs_f64(),
        first_error
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after = procfs::rss_kib(args.pid)?;
    let mut closed_early = 0;
    stop_tx.send_replace(true);
    for h in holders {
        if !h.await.unwrap_or(false) {
            closed_early += 1;
        }
    }
    let delta = after.saturating_sub(before);
    println!("--- idle socket results ---");
    println!("RSS after: {after} KiB; delta {delta} KiB over {open} sockets");
    if open > 0 {
        println!(
            "RSS per idle connection: {:.2} KiB",
            delta as f64 / open as f64
        );
    }
    println!("sockets the server closed during the hold: {closed_early}");
    Ok(())
}

/// Keep a socket open (reading, so pings are answered) until told to stop;
/// `true` if it was still open then.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>) -> bool {
    let alive = loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(_)) => {}
                _ => break false,
            },
            _ = stop.wait_for(|&s| s) => break true,
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
    alive
}
