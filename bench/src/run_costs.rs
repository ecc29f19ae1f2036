//! What a measured run cost, printed the same way by every load mode: CPU
//! per watched process, Redis per unit of work, latency per stage.

use crate::redis_stats::{RedisWatch, Snapshot};

/// Print the costs of a run that did `units` of `label` (match, message).
pub fn print(
    cpu_heading: &str,
    cpu_lines: Vec<String>,
    redis: &RedisWatch,
    redis_after: &Option<Snapshot>,
    units: u64,
    label: &str,
    stage_lines: Vec<String>,
) {
    println!("{cpu_heading}");
    for line in cpu_lines {
        println!("  {line}");
    }
    for line in redis
        .report(redis_after, units, label)
        .into_iter()
        .chain(stage_lines)
    {
        println!("{line}");
    }
}
