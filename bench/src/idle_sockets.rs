//! `bench idle-sockets`: open many idle sockets to one signaller node (or,
//! with `--service matcher`, one matcher gateway) and report how much its
//! resident memory grew per connection.
//!
//! To hold 100,000 the bench raises its own open-file limit to the hard
//! limit, checks the server's (`/proc/<pid>/limits`) before starting, and
//! spreads its sockets over several loopback source addresses so that the
//! ephemeral ports of one address do not run out.
//!
//! The node's `VmRSS` is read before the first socket and again once all
//! are open and have settled; the delta divided by the count is the figure.
//! Sockets are native `/ws` connections. By default they stay unjoined (the
//! signaller keeps such a socket until its idle timeout, which the client's
//! automatic pong answers keep from firing); with `--joined` they join
//! synthetic rooms in pairs, which adds a room subscription per pair.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::signaller_load::join;
use crate::tickets::Rooms;
use crate::ws::{self, Ws};
use crate::{fd_limit, procfs};

#[derive(Debug, clap::Args)]
pub struct IdleSocketsArgs {
    /// Native WebSocket URL of the signaller node to load.
    #[arg(long, default_value = "ws://127.0.0.1:4000/ws")]
    pub node: String,

    /// Pid of that signaller process (its /proc/<pid>/status is read).
    #[arg(long)]
    pub pid: u32,

    /// Which service `--node` is: a signaller node or a matcher gateway
    /// (whose `/ws` greets each socket with `hello`, awaited here).
    #[arg(long, value_enum, default_value_t = Service::Signaller)]
    pub service: Service,

    /// Sockets to open.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,

    /// Loopback source addresses to spread the sockets over (127.0.0.2,
    /// 127.0.0.3, …): one address has about 28,000 ephemeral ports towards
    /// one server port. 0: one per 20,000 sockets when `--node` is on
    /// 127.0.0.0/8 and more than 20,000 are asked for, else the default
    /// source address.
    #[arg(long, default_value_t = 0)]
    pub source_addrs: u32,

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

/// The kind of server the sockets go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Signaller,
    Matcher,
}

/// Sockets per source address when spreading automatically (of about
/// 28,000 ephemeral ports by default).
const PER_SOURCE: usize = 20_000;

/// The source addresses to use for `count` sockets to `node`; empty: the
/// default one.
fn sources(node: &str, count: usize, asked: u32) -> Vec<Ipv4Addr> {
    let loopback = node.starts_with("ws://127.") || node.starts_with("ws://localhost");
    let n = match asked {
        0 if loopback && count > PER_SOURCE => count.div_ceil(PER_SOURCE) as u32,
        0 => 0,
        n => n,
    };
    (0..n).map(|k| Ipv4Addr::from(0x7f00_0002 + k)).collect()
}

/// Open one socket of the run (the `i`th).
async fn open(
    i: usize,
    node: &str,
    source: Option<Ipv4Addr>,
    service: Service,
    rooms: Option<&Rooms>,
) -> Result<Ws> {
    let mut ws = match source {
        Some(src) => ws::connect_from(node, src).await?,
        None => ws::connect(node).await?,
    };
    match rooms {
        None => {
            if service == Service::Matcher {
                let hello = ws::recv_json_within(&mut ws, Duration::from_secs(10)).await?;
                if ws::event(&hello) != "hello" {
                    bail!("expected hello, got {hello}");
                }
            }
            Ok(ws)
        }
        Some(rooms) => {
            let room = rooms.room(i / 2);
            let ticket = if i.is_multiple_of(2) {
                room.initiator
            } else {
                room.responder
            };
            join(ws, &ticket).await
        }
    }
}

pub async fn run(args: IdleSocketsArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be positive");
    }
    let rooms = match (args.joined, &args.ticket_secret, args.service) {
        (true, _, Service::Matcher) => bail!("--joined is for signaller nodes only"),
        (false, _, _) => None,
        (true, Some(secret), _) => Some(Rooms::new(secret)),
        (true, None, _) => bail!("--joined needs --ticket-secret"),
    };
    // Both ends must be able to hold them, or the run would measure refusals.
    fd_limit::ensure_own(args.count)?;
    fd_limit::ensure_process(args.pid, args.count)?;
    let sources = sources(&args.node, args.count, args.source_addrs);
    let before = procfs::rss_kib(args.pid)?;
    println!(
        "idle sockets: {} {} sockets to {} {} (pid {}) from {}; RSS before: {before} KiB",
        args.count,
        if args.joined { "joined" } else { "unjoined" },
        match args.service {
            Service::Signaller => "signaller",
            Service::Matcher => "matcher gateway",
        },
        args.node,
        args.pid,
        match (sources.first(), sources.last()) {
            (Some(a), Some(b)) => format!("{} source addresses {a}..{b}", sources.len()),
            _ => "the default source address".to_string(),
        }
    );
    // One socket first: an unreachable service fails here, clearly, not
    // as many thousand connect errors.
    let source_of = |i: usize| (!sources.is_empty()).then(|| sources[i % sources.len()]);
    let probe = open(0, &args.node, source_of(0), args.service, rooms.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("{} is not reachable: {e:#}", args.node))?;
    let opening = Instant::now();
    let node = args.node.clone();
    let rooms = &rooms;
    let progress = std::sync::atomic::AtomicUsize::new(1);
    let step = (args.count / 10).max(1);
    let mut opened: Vec<Result<Ws>> = futures_util::stream::iter(1..args.count)
        .map(|i| {
            let node = &node;
            let progress = &progress;
            let source = source_of(i);
            async move {
                let r = open(i, node, source, args.service, rooms.as_ref()).await;
                let done = progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if done.is_multiple_of(step) {
                    println!(
                        "  {done} of {} handshakes done ({:.1} s)",
                        args.count,
                        opening.elapsed().as_secs_f64()
                    );
                }
                r
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    opened.push(Ok(probe));
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
    if open * 2 < args.count {
        bail!(
            "only {open} of {} sockets opened; first error: {}",
            args.count,
            first_error.unwrap_or_default()
        );
    }
    println!(
        "opened {open} sockets in {:.2} s ({errors} failed{})",
        opening.elapsed().as_secs_f64(),
        first_error
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default()
    );
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after = procfs::rss_kib(args.pid)?;
    let closed_early = holders.iter().filter(|h| h.is_finished()).count();
    stop_tx.send_replace(true);
    // Closing is not measured; it is bounded, the process then exits anyway.
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(holders),
    )
    .await;
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

/// Keep a socket open (reading, so pings are answered) until told to stop
/// or the server closes it.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(_)) => {}
                // Closed by the server: the task ends (counted by the caller).
                _ => return,
            },
            _ = stop.wait_for(|&s| s) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_spread_over_loopback_sources_when_many() {
        assert!(sources("ws://127.0.0.1:4000/ws", 10_000, 0).is_empty());
        let s = sources("ws://127.0.0.1:4000/ws", 100_000, 0);
        assert_eq!(s.len(), 5);
        assert_eq!(s[0], Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(s[4], Ipv4Addr::new(127, 0, 0, 6));
        assert!(sources("ws://10.0.0.5:4000/ws", 100_000, 0).is_empty());
        assert_eq!(sources("ws://10.0.0.5:4000/ws", 10, 3).len(), 3);
    }
}
