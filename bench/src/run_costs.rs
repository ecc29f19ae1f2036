//! What a measured run cost, watched and printed the same way by every
//! load mode: CPU per watched process, Redis per unit of work, latency per
//! stage.

use anyhow::Result;

use crate::procfs::{self, CpuWatch};
use crate::redis_stats::{RedisWatch, Snapshot};
use crate::scrape::StageWatch;

/// What a load mode reads its run's costs from: the same flags in every
/// mode.
#[derive(clap::Args, Debug, Clone)]
pub struct RunCostArgs {
    /// Report the CPU use of this process during the run (LABEL=PID or PID,
    /// repeatable), e.g. `--watch gateway=1234 --watch redis=1200`.
    #[arg(long = "watch", value_parser = procfs::parse_labelled_pid)]
    pub watch: Vec<(String, u32)>,

    /// A service's Prometheus endpoint (http://HOST:PORT/metrics), scraped
    /// at the start of the measured run and at its end (once the work in
    /// flight has drained), for the per-stage breakdown; repeat for every
    /// process.
    #[arg(long = "metrics")]
    pub metrics: Vec<String>,

    /// Redis the services use (redis://HOST:PORT, directly, not through a
    /// delay proxy): its INFO commandstats and CPU are read before and
    /// after the run, for the Redis cost per match or relayed message.
    #[arg(long)]
    pub redis: Option<String>,

    /// Also time every command and script Redis runs during the run
    /// (its SLOWLOG at threshold 0), printed per unit: which script the
    /// Redis time goes to. Costs Redis some work itself.
    #[arg(long)]
    pub redis_script_times: bool,
}

/// The counters read at the start of a measured run.
pub struct RunWatch {
    stages: StageWatch,
    redis: RedisWatch,
    cpu: CpuWatch,
    /// The CPU report, once the CPU window was closed ([`RunWatch::stop_cpu`]).
    cpu_lines: Option<Vec<String>>,
}

/// What a run cost, read at its end.
pub struct RunCosts {
    cpu_lines: Vec<String>,
    redis: RedisWatch,
    redis_after: Option<Snapshot>,
    stage_lines: Vec<String>,
}

impl RunWatch {
    /// Read every counter `args` names now: the services' stage
    /// histograms, Redis (with per-script times if asked), and the CPU of
    /// the watched processes.
    pub async fn start(args: &RunCostArgs) -> Result<RunWatch> {
        Ok(RunWatch {
            stages: StageWatch::start(&args.metrics).await?,
            redis: RedisWatch::start(args.redis.as_deref(), args.redis_script_times).await?,
            cpu: CpuWatch::start(&args.watch)?,
            cpu_lines: None,
        })
    }

    /// Close the CPU window now, before [`RunWatch::finish`] (which reads
    /// Redis and the stages once the work in flight has drained).
    pub fn stop_cpu(&mut self) {
        self.cpu_lines.get_or_insert_with(|| self.cpu.report());
    }

    /// Read every counter again (CPU only if its window is still open).
    pub async fn finish(mut self) -> Result<RunCosts> {
        self.stop_cpu();
        Ok(RunCosts {
            cpu_lines: self.cpu_lines.unwrap_or_default(),
            redis_after: self.redis.finish().await?,
            stage_lines: self.stages.finish().await?,
            redis: self.redis,
        })
    }
}

impl RunCosts {
    /// Print the costs of a run that did `units` of `label` (match, message).
    pub fn print(self, cpu_heading: &str, units: u64, label: &str) {
        println!("{cpu_heading}");
        for line in self.cpu_lines {
            println!("  {line}");
        }
        for line in self
            .redis
            .report(&self.redis_after, units, label)
            .into_iter()
            .chain(self.stage_lines)
        {
            println!("{line}");
        }
    }
}
