//! `bench`: load generator for the matcher and the signaller. It drives
//! simulated users against processes that are already running (see
//! `scripts/bench`, which starts them) and prints the figures recorded in
//! `docs/BENCHMARKS.md`.

mod arrivals;
mod delay_proxy;
mod fd_limit;
mod idle_sockets;
mod matcher_load;
mod pacer;
mod procfs;
mod redis_stats;
mod run_costs;
mod scrape;
mod signaller_load;
mod stats;
mod tickets;
mod ws;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive simulated native users through register → matched rounds
    /// against running matcher gateways; print matches/s and time-to-match.
    Matcher(matcher_load::MatcherArgs),
    /// Measure a process's CPU use over a period (from /proc/<pid>/stat).
    IdleCpu(IdleCpuArgs),
    /// Pairs on two signaller nodes exchanging signals at a fixed rate;
    /// print one-way cross-node relay latency and messages/s.
    Signaller(signaller_load::SignallerArgs),
    /// Open many idle sockets to a signaller (or a matcher gateway); print
    /// its RSS per connection.
    IdleSockets(idle_sockets::IdleSocketsArgs),
    /// Forward TCP (to Redis) with a fixed delay each way, keeping order and
    /// throughput: Redis "in another zone" without netem.
    DelayProxy(delay_proxy::DelayProxyArgs),
}

#[derive(Debug, clap::Args)]
struct IdleCpuArgs {
    /// The process to measure, e.g. an idle matcher worker.
    #[arg(long)]
    pid: u32,
    /// Measurement period, s.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Wait this long before measuring, s.
    #[arg(long, default_value_t = 0)]
    settle_secs: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Matcher(args) => matcher_load::run(args).await,
        Command::IdleCpu(a) => procfs::idle_cpu(a.pid, a.secs, a.settle_secs).await,
        Command::Signaller(args) => signaller_load::run(args).await,
        Command::IdleSockets(args) => idle_sockets::run(args).await,
        Command::DelayProxy(args) => delay_proxy::run(args).await,
    }
}
