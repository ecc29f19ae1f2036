//! What the kernel says about a process: CPU time from `/proc/<pid>/stat`
//! and resident memory from `/proc/<pid>/status`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

/// Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`; 100 on
/// every Linux this runs on).
pub const CLK_TCK: u64 = 100;

/// A process's command name and its user + system CPU time, in ticks.
pub fn cpu_ticks(pid: u32) -> Result<(String, u64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).ok_or_else(|| anyhow!("unexpected format of {path}"))
}

/// `comm` and `utime + stime` from a `stat` line. The command name is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // After ")": field 3 (state) is index 0, so utime (14) is 11, stime (15) 12.
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Resident set size of a process, KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).ok_or_else(|| anyhow!("no VmRSS in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Percent of one core used by `ticks` of CPU time over `wall`.
pub fn percent_of_core(ticks: u64, wall: Duration) -> f64 {
    ticks as f64 / CLK_TCK as f64 / wall.as_secs_f64() * 100.0
}

/// Busy and total CPU time of the whole machine, in ticks, from the `cpu`
/// line of `/proc/stat` (busy: everything but idle and iowait).
pub fn machine_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_machine(&stat).ok_or_else(|| anyhow!("unexpected format of /proc/stat"))
}

fn parse_machine(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already counted in user, so only the first eight add up.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU use of several processes over an interval: started by [`CpuWatch::start`],
/// read by [`CpuWatch::report`].
pub struct CpuWatch {
    start: Instant,
    procs: Vec<(String, u32, u64)>,
    machine: (u64, u64),
}

impl CpuWatch {
    /// Start watching `(label, pid)` pairs; this process itself is always included.
    pub fn start(watch: &[(String, u32)]) -> Result<CpuWatch> {
        let mut procs = Vec::new();
        for (label, pid) in watch
            .iter()
            .cloned()
            .chain(std::iter::once(("bench".to_string(), std::process::id())))
        {
            let (_, ticks) = cpu_ticks(pid)?;
            procs.push((label, pid, ticks));
        }
        Ok(CpuWatch {
            start: Instant::now(),
            procs,
            machine: machine_ticks()?,
        })
    }

    /// One line per process: percent of one core since the start; then the
    /// whole machine, and what processes other than the watched ones used
    /// (other people's builds and tests, on a shared machine).
    pub fn report(&self) -> Vec<String> {
        let wall = self.start.elapsed();
        let mut watched = 0;
        let mut lines: Vec<String> = self
            .procs
            .iter()
            .map(|(label, pid, before)| match cpu_ticks(*pid) {
                Ok((_, now)) => {
                    let used = now.saturating_sub(*before);
                    watched += used;
                    format!(
                        "{label} (pid {pid}): {:.1}% of one core",
                        percent_of_core(used, wall)
                    )
                }
                Err(e) => format!("{label} (pid {pid}): {e:#}"),
            })
            .collect();
        if let Ok((busy, total)) = machine_ticks() {
            let busy = busy.saturating_sub(self.machine.0);
            let total = total.saturating_sub(self.machine.1).max(1);
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            lines.push(format!(
                "whole machine: {:.0}% busy ({:.2} of {cores} cores); processes not listed above: {:.2} cores",
                busy as f64 / total as f64 * 100.0,
                busy as f64 / total as f64 * cores as f64,
                busy.saturating_sub(watched) as f64 / total as f64 * cores as f64,
            ));
        }
        lines
    }
}

/// Parse `label=pid` (or a bare pid, labelled by itself).
pub fn parse_labelled_pid(s: &str) -> Result<(String, u32), String> {
    let (label, pid) = match s.split_once('=') {
        Some((l, p)) => (l.to_string(), p),
        None => (s.to_string(), s),
    };
    let pid = pid
        .parse()
        .map_err(|_| format!("{s:?}: expected LABEL=PID or PID"))?;
    Ok((label, pid))
}

/// Measure the CPU use of `pid` over `secs` seconds and print it.
pub async fn idle_cpu(pid: u32, secs: u64, settle_secs: u64) -> Result<()> {
    if settle_secs > 0 {
        println!("settling for {settle_secs} s before measuring");
        tokio::time::sleep(Duration::from_secs(settle_secs)).await;
    }
    let (comm, before) = cpu_ticks(pid)?;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let wall = start.elapsed();
    let (_, after) = cpu_ticks(pid)?;
    let ticks = after.saturating_sub(before);
    println!(
        "idle CPU of pid {pid} ({comm}): {ticks} ticks ({:.2} s CPU) over {:.1} s = {:.3}% of one core",
        ticks as f64 / CLK_TCK as f64,
        wall.as_secs_f64(),
        percent_of_core(ticks, wall)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_paren() {
        let line = "1234 (we (ird) name) S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 8 0";
        assert_eq!(parse_stat(line), Some(("we (ird) name".to_string(), 287)));
    }

    #[test]
    fn machine_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_machine(stat), Some((160, 980)));
    }

    #[test]
    fn vm_rss_in_kib() {
        let status = "Name:\tx\nVmPeak:\t 10 kB\nVmRSS:\t   5120 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
    }

    #[test]
    fn own_process_is_readable() {
        let (_, _) = cpu_ticks(std::process::id()).unwrap();
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn labelled_pids() {
        assert_eq!(parse_labelled_pid("worker=42"), Ok(("worker".into(), 42)));
        assert_eq!(parse_labelled_pid("42"), Ok(("42".into(), 42)));
        assert!(parse_labelled_pid("worker=x").is_err());
    }
}
