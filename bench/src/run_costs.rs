//! What a measured run cost, watched and printed the same way by every
//! load mode: CPU per watched process, Redis per unit of work, latency per
//! stage.

use anyhow::Result;

use crate::procfs::CpuWatch;
use crate::redis_stats::{RedisWatch, Snapshot};
use crate::scrape::StageWatch;

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
    /// Read every counter now: the services' stage histograms (`metrics`
    /// URLs), Redis (`redis`, with per-script times if `script_times`), and
    /// the CPU of the `watch`ed processes.
    pub async fn start(
        metrics: &[String],
        redis: Option<&str>,
        script_times: bool,
        watch: &[(String, u32)],
    ) -> Result<RunWatch> {
        Ok(RunWatch {
            stages: StageWatch::start(metrics).await?,
            redis: RedisWatch::start(redis, script_times).await?,
            cpu: CpuWatch::start(watch)?,
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
